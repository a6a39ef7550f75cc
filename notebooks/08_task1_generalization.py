# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (chap-task1-generalization)=
# # Task 1: generalization across phases, lattice sizes and chemical potentials
#
# **Overview.** A network that has learned *the observable* rather than the training set
# should predict $n$ and $|\phi|^2$ wherever the formula for them is the same: in a phase it
# has not seen, on a larger lattice, at a chemical potential beyond the training range. The
# source {cite}`Bulusu:2021njs,Favoni:2021talk` tests all three and finds that EQ networks
# generalize where ST and FL networks fail. This chapter repeats
#
# - the **Silver Blaze** test: networks trained on one side of the onset of the density only,
#   tested across it;
# - the **lattice-size** test: networks trained on $60\times4$ only, tested on the larger
#   lattices of the test split (FL networks cannot run there at all);
# - the **extrapolation** in $\mu$: networks trained on the training range, tested beyond it;
# - and looks at the predictions of the best and worst instances to see *why* ST and FL fail.
#
# The lattice-size and extrapolation tests are shown first at full statistics, from the
# `paper` run of {ref}`chap-task1-comparison` kept in the results store (its instances are
# tested on every test lattice and chemical potential), then live at this page's profile.
# The live networks are the instances of {ref}`chap-task1-comparison` at its largest
# training set (loaded from the cache) and, for the Silver Blaze test, new instances trained
# on one phase.

# %% tags=["parameters"]
profile = "ci"

# %% tags=["hide-input"]
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from qftml import datasets, experiments, figures, nets, results, search, training
from qftml.plotting import FAMILY_COLORS
from qftml.profiles import notebook_params, setup
from qftml.tasks import regression

P = setup("08_task1_generalization", profile)
T0 = time.perf_counter()
FAMILIES = list(regression.FAMILIES)
S6 = notebook_params("06_task1_search", profile)

# %% tags=["hide-input"]
train = datasets.load_task1(profile, "train")
val = datasets.load_task1(profile, "val")
LATTICES = datasets.lattices(1, profile, "test")
tests = {lat: datasets.load_task1(profile, "test", lat) for lat in LATTICES}
mu, mu_val = train.meta["mu"], val.meta["mu"]
lo, hi = mu.min(), mu.max()
TASK = search.Task(n_out=2, lattice=tuple(train.x.shape[-2:]), loss="mse")
OUT = train.target_names
SPECS = regression.architectures(P["architectures"], train, val, TASK, search_params=S6["search"],
                                 search_seed=S6["seed"], prefix=f"task1-{profile}")  # fmt: skip
budget = training.Budget.from_params(P["train"])
print(f"training range {lo:g} <= mu <= {hi:g} on {train.lattice}; test lattices {LATTICES}")
print("test mu:", np.unique(tests[train.lattice].meta["mu"]).round(3).tolist())


# %% [markdown]
# ## Full statistics: other lattice sizes and larger $\mu$
#
# The stored instances of the `paper` profile at the largest training-set size at which every
# instance is stored ({mod}`qftml.results`), on every test lattice, with $\mu$ inside the
# training range (left) and per $\mu$ on the training lattice (right). The verdicts are those
# of {func}`qftml.tasks.regression.generalization`: EQ against ST on each other lattice
# (one-sided Mann–Whitney, all must reject at 5 %) and the ST kink on the odd spatial extent
# (paired Wilcoxon tests against both neighbouring lattices, instance by instance).

# %%
V_GEN = None
if P["store"]:
    LAT_P, MU_LO, MU_HI = results.training_range(1, "paper")
    chunks = results.complete_seeds("task1-comparison", "paper")
    stored, planned, complete = results.coverage("task1-comparison", "paper")
    usable = [m for m, seeds in chunks.items() if len(seeds) >= 3]
    print(f"results store: {stored} of {planned} planned instances "
          f"({'complete' if complete else 'PARTIAL'}); instances of every model per N_train: "
          f"{ {m: len(s) for m, s in chunks.items()} or 'none yet'}")  # fmt: skip
    if usable:
        per_mu = results.select_complete(results.per_mu_table("task1-comparison"), chunks)
        N_GEN = max(usable)
        V_GEN = regression.generalization(per_mu, train_lattice=LAT_P, n_train=N_GEN,
                                          mu_range=(MU_LO, MU_HI))  # fmt: skip
        order = regression.lattice_order(per_mu["lattice"].unique())
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        figures.verdict_loss_vs_lattice(axes[0], V_GEN, order)
        axes[0].set_xlabel(r"test lattice $N_t\times N_x$ (FL: training lattice only)")
        axes[0].set_ylabel("test loss (MSE), median and min–max")
        axes[0].set_title(f"store: trained on {LAT_P}, N_train = {N_GEN}, training $\\mu$")
        axes[0].legend()
        sel = per_mu[(per_mu["lattice"] == LAT_P) & (per_mu["n_train"] == N_GEN)
                     & (per_mu["augment"] == "none")]  # fmt: skip
        figures.bands_per_mu(axes[1], sel.rename(columns={"mu": "group"}),
                             "loss")  # fmt: skip
        axes[1].axvspan(MU_LO, MU_HI, color="0.85", zorder=0)
        axes[1].set_yscale("log")
        axes[1].set_xlabel(r"chemical potential $\mu$ (grey: training range)")
        axes[1].set_ylabel(f"test loss (MSE) per $\\mu$ on {LAT_P}")
        axes[1].set_title("store: median and min–max over instances")
        axes[1].legend()
        fig.tight_layout()
        plt.show()
        with pd.option_context("display.float_format", "{:.3g}".format):
            display(V_GEN.versus)  # noqa: F821
            display(V_GEN.kink)  # noqa: F821
        print("\n".join(V_GEN.lines()) + ("" if complete else "\n(PARTIAL store)"))
else:
    print("this profile recomputes everything: no stored results are shown")

# %% [markdown]
# ## Silver Blaze: training on one phase only
#
# Below the onset the density vanishes (up to thermal windings at $N_t = 60$), above it the
# charges wind around the time direction; at the onset nothing in the formulas for $n$ and
# $|\phi|^2$ changes. We locate the onset in the training data as the first training $\mu$ at
# which a fraction `charged_fraction` of the configurations carries charge ($n \neq 0$), and
# train every family, on the configurations below it only and above it only (validation set
# cut the same way), then test on the whole $\mu$ range of the test split.

# %% tags=["hide-input"]
onset, frac = regression.onset(mu, train.meta["n"], P["charged_fraction"])
print("fraction of training configurations with n != 0, per mu:")
print("  " + ", ".join(f"{m:.3f}: {v:.2f}" for m, v in frac.items()))
print(f"onset: mu_c = {onset:g} (below: mu < mu_c, above: mu >= mu_c)")
sb = {}
for side in ("below", "above"):
    tr = train.select(regression.phase(mu, onset, side))
    va = val.select(regression.phase(mu_val, onset, side))
    print(f"{side}: {len(tr)} training, {len(va)} validation configurations, "
          f"mu in [{tr.meta['mu'].min():g}, {tr.meta['mu'].max():g}]")  # fmt: skip
    _, insts = experiments.run_grid(
        SPECS, tr.xy, va.xy, seeds=P["seeds"], task=TASK, budget=budget,
        subset_seed=P["seed"], groups=tr.meta["mu"], desc=f"silver blaze {side}",
    )  # fmt: skip
    sb[side] = (tr, regression.curves(insts, tests[train.lattice], OUT))

# %% [markdown]
# Predicted (median over instances, min–max band) against true (mean ± standard error over
# the test configurations) $\langle n\rangle$ and $\langle|\phi|^2\rangle$ per $\mu$:

# %% tags=["hide-input"]
fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
for col, (side, (tr, df)) in enumerate(sb.items()):
    for row, out in enumerate(OUT):
        ax = axes[row, col]
        d = df[df["output"] == out]
        figures.truth_per_mu(ax, d)
        figures.bands_per_mu(ax, d, "pred", FAMILIES)
        ax.axvspan(tr.meta["mu"].min(), tr.meta["mu"].max(), color="0.85", zorder=0)
        ax.axvline(onset, color="k", ls=":", lw=1)
        ax.set_ylabel({"n": r"$\langle n\rangle$", "phi2": r"$\langle|\phi|^2\rangle$"}[out])
        if row == 0:
            ax.set_title(f"trained {side} the onset (grey: training range)")
        else:
            ax.set_xlabel(r"chemical potential $\mu$")
axes[0, 0].legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# The test loss on the phase the network was trained on and on the other one, i.e. at the
# test $\mu$ on the side of the onset it has not seen (both up to the upper end of the
# training range, so that extrapolation in $\mu$, the subject of a later section, does not
# enter), median and range over instances:

# %% tags=["hide-input"]
SB = regression.silver_blaze({side: df for side, (_, df) in sb.items()}, onset, hi)
with pd.option_context("display.float_format", "{:.3g}".format):
    display(SB.table)  # noqa: F821
print(*SB.lines(), sep="\n")

# %% [markdown]
# ## Generalization to other lattice sizes
#
# The instances trained on $N_\text{train}$ = `n_train` configurations of the $60\times4$
# training set (those of the largest size of {ref}`chap-task1-comparison`, loaded from the
# cache) are tested on every lattice of
# the test split, over the test split's whole $\mu$ range and over the part inside the training
# range. Since $n$ and $|\phi|^2$ are averages over sites, the same network with a global
# average pooling computes them on any lattice size. An FL network has a dense layer whose
# size is fixed by the lattice: it is **not applicable** to other sizes (`nan` below).

# %% tags=["hide-input"]
inside = {lat: d.select((d.meta["mu"] >= lo - 1e-9) & (d.meta["mu"] <= hi + 1e-9))
          for lat, d in tests.items()}  # fmt: skip
test_sets = {**{f"{lat}": d.xy for lat, d in tests.items()},
             **{f"{lat} (training mu)": d.xy for lat, d in inside.items()}}  # fmt: skip
table, instances = experiments.run_grid(
    SPECS, train.xy, val.xy, test_sets, sizes=[P["n_train"]], seeds=P["seeds"], task=TASK,
    budget=budget, subset_seed=P["seed"], groups=mu, val_fraction=P["val_fraction"],
    val_groups=mu_val, output_names=OUT, desc=f"trained on N_train = {P['n_train']}",
)  # fmt: skip
print(f"{len(table)} instances, {int(table['cached'].sum())} loaded from the cache")
summ = experiments.summarize(table, ["label"], list(test_sets))
med = summ.xs("median", axis=1, level=1).T
with pd.option_context("display.float_format", "{:.3g}".format):
    display(med)  # noqa: F821

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, suffix, title in ((axes[0], "", "all test mu"), (axes[1], " (training mu)", "training mu")):
    figures.loss_vs_lattice(ax, table, LATTICES, suffix, FAMILIES)
    ax.set_title(f"trained on {train.lattice} only; {title}")
axes[0].set_ylabel("test loss (MSE), median and min–max")
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The ST kink at an odd spatial extent
#
# A $2\times2$ pooling of stride 2 in floor mode covers $2\lfloor N/2\rfloor$ sites of an axis
# of length $N$: on $100\times5$ one of the five columns in space is never seen. Worse, the
# convolution after the pooling pads periodically, so it treats pooled columns that are
# *not* neighbours on the original torus as neighbours (the dropped column lay between them).
# The ST network thus sees a configuration with a seam it never met in training, where flux
# lines appear to end. On even extents ($60\times4$, $200\times10$) neither happens. The
# fraction of sites each ST pooling layer covers, per lattice, and the loss on each:

# %% tags=["hide-input"]
st = nets.from_spec(SPECS["ST"])
for lat in LATTICES:
    losses = table.loc[table["label"] == "ST", f"{lat} (training mu)"]
    print(f"{lat:>7}: ST pooling covers {regression.pooling_coverage(st, datasets.parse_lattice(lat)):.0%} "
          f"of the sites; ST test loss (training mu) median {losses.median():.3g} "
          f"[{losses.min():.3g}, {losses.max():.3g}]")  # fmt: skip
trained_mu = [f"{lat} (training mu)" for lat in LATTICES]
print(*regression.odd_extent_lines({f: med.loc[trained_mu, f] for f in ("EQ", "ST")}, LATTICES),
      sep="\n")  # fmt: skip

# %% [markdown]
# ## Extrapolation to larger chemical potential
#
# The test loss per $\mu$, on each lattice, for the instances trained on the training range
# (grey band): median over instances and min–max band.

# %% tags=["hide-input"]
per_lat = {lat: regression.curves(instances, d, OUT) for lat, d in tests.items()}
fig, axes = plt.subplots(1, len(LATTICES), figsize=(4 * len(LATTICES), 3.8), sharey=True)
for ax, (lat, df) in zip(np.atleast_1d(axes), per_lat.items(), strict=True):
    figures.bands_per_mu(ax, df, "mse", FAMILIES)
    ax.axvspan(lo, hi, color="0.85", zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel(r"chemical potential $\mu$")
    ax.set_title(f"test lattice {lat}")
np.atleast_1d(axes)[0].set_ylabel("test loss (MSE) per $\\mu$")
np.atleast_1d(axes)[0].legend()
fig.tight_layout()
plt.show()
EXTRA = regression.extrapolation(per_lat[train.lattice], (lo, hi))
for f, r in EXTRA.iterrows():
    print(f"{f} on {train.lattice}: median loss inside the training range {r['inside']:.3g}, "
          f"beyond it (mu > {hi:g}) {r['beyond']:.3g}, ratio {r['ratio']:.3g}")  # fmt: skip

# %% [markdown]
# ## Why do ST and FL fail?
#
# For each family, the best and the worst instance (by the loss on the whole $\mu$ range of
# the $60\times4$ test split), prediction against truth for every test configuration at a
# $\mu$ inside the training range and at one beyond it. The density takes the discrete values
# $w/N_x$; beyond the training range the configurations carry windings $w$ that no training
# configuration had.

# %% tags=["hide-input"]
test0 = tests[train.lattice]
grid_mu = np.unique(test0.meta["mu"])
mu_in = float(grid_mu[np.argmin(abs(grid_mu - P["mu_inside"]))])
mu_out = float(grid_mu[np.argmin(abs(grid_mu - P["mu_outside"]))])
print(f"mu inside: {mu_in:g}, mu outside: {mu_out:g} (nearest test-grid points)")
print(f"largest |n| in the training set: {np.abs(train.meta['n']).max():.3g}; "
      f"at mu = {mu_out:g} in the test set: {np.abs(test0.where(mu=mu_out).meta['n']).max():.3g}")  # fmt: skip
picks, why = regression.best_worst(table, instances, test0, train.lattice, (mu_in, mu_out), OUT)
fig, axes = plt.subplots(len(OUT) * 2, len(FAMILIES), figsize=(11, 13))
for (f, which, m), (seed, true, pred) in picks.items():
    for j, out in enumerate(OUT):
        ax = axes[2 * j + (m == mu_out), FAMILIES.index(f)]
        figures.predicted_vs_true(ax, true[:, j], pred[:, j], FAMILY_COLORS[f], which=which,
                                  seed=seed)  # fmt: skip
        if which == "worst":
            t = true[:, j]
            ax.plot([t.min(), t.max()], [t.min(), t.max()], color="k", lw=1)
            ax.set_title(f"{f}, {out}, $\\mu = {m:g}$", fontsize=10)
            ax.set_xlabel(f"true {out}", fontsize=9)
            ax.set_ylabel(f"predicted {out}", fontsize=9)
axes[0, 0].legend(fontsize=8)
fig.tight_layout()
plt.show()
with pd.option_context("display.float_format", "{:.3g}".format):
    display(why)  # noqa: F821

# %% [markdown]
# ## Summary
#
# The source finds EQ ahead in every one of these tests {cite}`Favoni:2021talk`. At full
# statistics (the results store, verdicts computed above by
# {func}`qftml.tasks.regression.generalization`):

# %% tags=["hide-input"]
if V_GEN is not None:
    print("\n".join(V_GEN.lines()) + ("" if complete else "  (PARTIAL store)"))
else:
    print("no full-statistics verdict on this page (no complete size in the store)")
n_live = len(P["seeds"])
print(f"live ({profile!r} profile, N_train = {P['n_train']}): the tables above; with {n_live} "
      f"instances per family the smallest attainable one-sided Mann-Whitney p is "
      f"{1 / math.comb(2 * n_live, n_live):.3g}")  # fmt: skip
print(f"page computed in {time.perf_counter() - T0:.0f} s")
