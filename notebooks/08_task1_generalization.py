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

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from qftml import datasets, experiments, nets, results, search, training
from qftml.plotting import FAMILY_COLORS
from qftml.profiles import notebook_params, setup
from qftml.tasks import regression

P = setup("08_task1_generalization", profile)
T0 = time.perf_counter()
FAMILIES = ["EQ", "ST", "FL"]

# %%
train = datasets.load_task1(profile, "train")
val = datasets.load_task1(profile, "val")
LATTICES = datasets.lattices(1, profile, "test")
tests = {lat: datasets.load_task1(profile, "test", lat) for lat in LATTICES}
mu, mu_val = train.meta["mu"], val.meta["mu"]
lo, hi = mu.min(), mu.max()
TASK = search.Task(n_out=2, lattice=tuple(train.x.shape[-2:]), loss="mse")
OUT = train.target_names
if P["architectures"] == "published":
    SPECS = {f: nets.published(1, f).spec for f in FAMILIES}
elif P["architectures"] == "search":
    S6 = notebook_params("06_task1_search", profile)
    S = S6["search"]
    sub = experiments.nested_subsets(len(train), [S["n_train"]], S6["seed"], groups=mu)
    studies = experiments.search_studies(
        FAMILIES, train.select(sub[S["n_train"]]).xy, val.xy, task=TASK,
        budget=training.Budget.from_params(S["budget"]),
        n_trials=S["n_trials"], seed=S6["seed"], jobs=S["jobs"], pruner=S["pruner"],
        prefix=f"task1-{profile}",
    )  # fmt: skip
    SPECS = {f: search.top_specs(studies[f], 1)[0][0] for f in FAMILIES}
else:
    raise ValueError(f"architectures must be 'published' or 'search'; got {P['architectures']!r}")
B = P["train"]
budget = training.Budget.from_params(B)
print(f"training range {lo:g} <= mu <= {hi:g} on {train.lattice}; test lattices {LATTICES}")
print("test mu:", np.unique(tests[train.lattice].meta["mu"]).round(3).tolist())


def curves(instances, data):
    """Per-mu predictions of every instance that can run on ``data``'s lattice."""
    models = {}
    for inst in instances:
        try:
            inst.model.check_lattice(tuple(data.x.shape[-2:]))
        except ValueError:
            continue  # an FL network on another lattice size
        models[(inst.family, inst.seed)] = inst.model
    if not models:
        return pd.DataFrame()
    df = experiments.prediction_curves(models, *data.xy, data.meta["mu"], output_names=OUT)
    df["family"] = [m[0] for m in df["model"]]
    df["seed"] = [m[1] for m in df["model"]]
    return df


def band(ax, x, values, color, label=None, ls="-"):
    """Median over instances (line) and min-max band; ``values`` has one row per instance."""
    ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, lw=0)
    ax.plot(x, np.median(values, axis=0), ls=ls, marker="o", ms=3, color=color, label=label)


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
        x = np.arange(len(order))
        for k, f in enumerate(FAMILIES):
            if f not in V_GEN.losses.index.get_level_values(0):
                continue
            L = V_GEN.losses.loc[f].reindex(order)
            axes[0].errorbar(x + 0.08 * (k - 1), L["median"], [L["median"] - L["min"],
                             L["max"] - L["median"]], marker="o", color=FAMILY_COLORS[f],
                             label=f)  # fmt: skip
        axes[0].set_xticks(x, order)
        axes[0].set_yscale("log")
        axes[0].set_xlabel(r"test lattice $N_t\times N_x$ (FL: training lattice only)")
        axes[0].set_ylabel("test loss (MSE), median and min–max")
        axes[0].set_title(f"store: trained on {LAT_P}, N_train = {N_GEN}, training $\\mu$")
        axes[0].legend()
        sel = per_mu[(per_mu["lattice"] == LAT_P) & (per_mu["n_train"] == N_GEN)
                     & (per_mu["augment"] == "none")]  # fmt: skip
        for f in FAMILIES:
            piv = sel[sel["label"] == f].pivot_table(index="seed", columns="mu", values="loss")
            if len(piv):
                band(axes[1], piv.columns.to_numpy(float), piv.to_numpy(), FAMILY_COLORS[f], f)
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

# %%
frac = pd.Series(train.meta["n"] != 0).groupby(mu).mean()
print("fraction of training configurations with n != 0, per mu:")
print("  " + ", ".join(f"{m:.3f}: {v:.2f}" for m, v in frac.items()))
charged = frac.index[frac >= P["charged_fraction"]]
if len(charged) == 0 or charged[0] == frac.index[0]:
    raise ValueError(
        f"no onset inside the training range at charged_fraction = {P['charged_fraction']}: "
        f"fractions {frac.round(2).to_dict()}"
    )
onset = float(charged[0])
print(f"onset: mu_c = {onset:g} (below: mu < mu_c, above: mu >= mu_c)")
phases = {"below": (mu < onset - 1e-9, mu_val < onset - 1e-9),
          "above": (mu >= onset - 1e-9, mu_val >= onset - 1e-9)}  # fmt: skip
sb = {}
for phase, (m_tr, m_val) in phases.items():
    tr, va = train.select(m_tr), val.select(m_val)
    print(f"{phase}: {len(tr)} training, {len(va)} validation configurations, "
          f"mu in [{tr.meta['mu'].min():g}, {tr.meta['mu'].max():g}]")  # fmt: skip
    _, insts = experiments.run_grid(
        SPECS, tr.xy, va.xy, seeds=P["seeds"], task=TASK, budget=budget,
        subset_seed=P["seed"], groups=tr.meta["mu"], desc=f"silver blaze {phase}",
    )  # fmt: skip
    sb[phase] = (tr, curves(insts, tests[train.lattice]))

# %% [markdown]
# Predicted (median over instances, min–max band) against true (mean ± standard error over
# the test configurations) $\langle n\rangle$ and $\langle|\phi|^2\rangle$ per $\mu$:

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
for col, (phase, (tr, df)) in enumerate(sb.items()):
    for row, out in enumerate(OUT):
        ax = axes[row, col]
        d = df[df["output"] == out]
        truth = d[d["model"] == d["model"].iloc[0]]
        ax.errorbar(truth["group"], truth["true"], truth["true_sem"], color="k", marker=".",
                    ls="none", label="true", zorder=5)  # fmt: skip
        for f in FAMILIES:
            piv = d[d["family"] == f].pivot_table(index="seed", columns="group", values="pred")
            band(ax, piv.columns.to_numpy(float), piv.to_numpy(), FAMILY_COLORS[f], f)
        ax.axvspan(tr.meta["mu"].min(), tr.meta["mu"].max(), color="0.85", zorder=0)
        ax.axvline(onset, color="k", ls=":", lw=1)
        ax.set_ylabel({"n": r"$\langle n\rangle$", "phi2": r"$\langle|\phi|^2\rangle$"}[out])
        if row == 0:
            ax.set_title(f"trained {phase} the onset (grey: training range)")
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

# %%
rows = []
for phase, (_, df) in sb.items():
    upper = df["group"] >= onset - 1e-9
    within = df["group"] <= hi + 1e-9  # no extrapolation beyond the training range here
    same = (~upper if phase == "below" else upper) & within
    other = (upper if phase == "below" else ~upper) & within
    for f in FAMILIES:
        d = df[df["family"] == f]
        for name, sel in (("same phase", same), ("other phase", other)):
            per_inst = d[sel[d.index]].groupby("seed")["mse"].mean()
            rows.append({"trained": phase, "family": f, "tested": name,
                         "test mu": sorted(d.loc[sel[d.index], "group"].unique().round(3)),
                         "median loss": per_inst.median(), "min": per_inst.min(),
                         "max": per_inst.max()})  # fmt: skip
sb_table = pd.DataFrame(rows).set_index(["trained", "tested", "family"]).sort_index()
with pd.option_context("display.float_format", "{:.3g}".format):
    display(sb_table)  # noqa: F821
for phase in sb:
    m = sb_table.loc[(phase, "other phase"), "median loss"]
    print(f"trained {phase}: lowest median loss on the other phase: {m.idxmin()} ({m.min():.3g}); "
          + ", ".join(f"{f} {m[f]:.3g}" for f in FAMILIES))  # fmt: skip

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

# %%
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

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
x = np.arange(len(LATTICES))
for ax, suffix, title in ((axes[0], "", "all test mu"), (axes[1], " (training mu)", "training mu")):
    for k, f in enumerate(FAMILIES):
        sub = table[table["label"] == f]
        vals = sub[[f"{lat}{suffix}" for lat in LATTICES]].to_numpy(float)
        ok = ~np.isnan(vals).all(axis=0)
        if ok.any():
            v = vals[:, ok]
            medv = np.median(v, axis=0)
            ax.errorbar(x[ok] + 0.08 * (k - 1), medv, [medv - v.min(axis=0), v.max(axis=0) - medv],
                        marker="o", color=FAMILY_COLORS[f], label=f)  # fmt: skip
        for j in np.flatnonzero(~ok):
            ax.annotate(f"{f}: n/a", (x[j] + 0.08 * (k - 1), 0.02), xycoords=("data", "axes fraction"),
                        rotation=90, color=FAMILY_COLORS[f], fontsize=8, ha="center")  # fmt: skip
    ax.set_xticks(x, LATTICES)
    ax.set_yscale("log")
    ax.set_xlabel(r"test lattice $N_t\times N_x$")
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

# %%
st = nets.from_spec(SPECS["ST"])
for lat in LATTICES:
    nt, nx = datasets.parse_lattice(lat)
    covered, shape = 1.0, (nt, nx)
    for layer in st.layers:
        if layer.kind in ("AvgPool", "MaxPool") and layer.stride > 1:
            k, s = layer.kernel, layer.stride
            out = tuple((n - k) // s + 1 for n in shape)
            covered *= np.prod([(o - 1) * s + k for o in out]) / np.prod(shape)
            shape = out
    losses = table.loc[table["label"] == "ST", f"{lat} (training mu)"]
    print(f"{lat:>7}: ST pooling covers {covered:.0%} of the sites; ST test loss (training mu) "
          f"median {losses.median():.3g} [{losses.min():.3g}, {losses.max():.3g}]")  # fmt: skip
st_med = med.loc[[f"{lat} (training mu)" for lat in LATTICES], "ST"].to_numpy()
odd = [i for i, lat in enumerate(LATTICES) if datasets.parse_lattice(lat)[1] % 2]
for i in odd:
    neighbours = [st_med[j] for j in (i - 1, i + 1) if 0 <= j < len(LATTICES)]
    print(f"ST on {LATTICES[i]} (odd N_x): {st_med[i]:.3g}, larger than on both neighbouring "
          f"lattices ({', '.join(f'{v:.3g}' for v in neighbours)}): {st_med[i] > max(neighbours)}")  # fmt: skip
eq_med = med.loc[[f"{lat} (training mu)" for lat in LATTICES], "EQ"].to_numpy()
print(
    "median loss ST / EQ per lattice (training mu): "
    + ", ".join(f"{lat} {a / b:.3g}" for lat, a, b in zip(LATTICES, st_med, eq_med, strict=True))
)

# %% [markdown]
# ## Extrapolation to larger chemical potential
#
# The test loss per $\mu$, on each lattice, for the instances trained on the training range
# (grey band): median over instances and min–max band.

# %%
per_lat = {lat: curves(instances, d) for lat, d in tests.items()}
fig, axes = plt.subplots(1, len(LATTICES), figsize=(4 * len(LATTICES), 3.8), sharey=True)
for ax, (lat, df) in zip(np.atleast_1d(axes), per_lat.items(), strict=True):
    loss = df.groupby(["family", "seed", "group"])["mse"].mean().reset_index()
    for f in FAMILIES:
        piv = loss[loss["family"] == f].pivot_table(index="seed", columns="group", values="mse")
        if len(piv):
            band(ax, piv.columns.to_numpy(float), piv.to_numpy(), FAMILY_COLORS[f], f)
    ax.axvspan(lo, hi, color="0.85", zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel(r"chemical potential $\mu$")
    ax.set_title(f"test lattice {lat}")
np.atleast_1d(axes)[0].set_ylabel("test loss (MSE) per $\\mu$")
np.atleast_1d(axes)[0].legend()
fig.tight_layout()
plt.show()
df0 = per_lat[train.lattice]
loss0 = df0.groupby(["family", "seed", "group"])["mse"].mean().reset_index()
for f in FAMILIES:
    d = loss0[loss0["family"] == f]
    ins = d[(d["group"] >= lo - 1e-9) & (d["group"] <= hi + 1e-9)].groupby("seed")["mse"].mean()
    out = d[d["group"] > hi + 1e-9].groupby("seed")["mse"].mean()
    print(f"{f} on {train.lattice}: median loss inside the training range {ins.median():.3g}, "
          f"beyond it (mu > {hi:g}) {out.median():.3g}, ratio {out.median() / ins.median():.3g}")  # fmt: skip

# %% [markdown]
# ## Why do ST and FL fail?
#
# For each family, the best and the worst instance (by the loss on the whole $\mu$ range of
# the $60\times4$ test split), prediction against truth for every test configuration at a
# $\mu$ inside the training range and at one beyond it. The density takes the discrete values
# $w/N_x$; beyond the training range the configurations carry windings $w$ that no training
# configuration had.

# %%
test0 = tests[train.lattice]
grid_mu = np.unique(test0.meta["mu"])
mu_in = float(grid_mu[np.argmin(abs(grid_mu - P["mu_inside"]))])
mu_out = float(grid_mu[np.argmin(abs(grid_mu - P["mu_outside"]))])
print(f"mu inside: {mu_in:g}, mu outside: {mu_out:g} (nearest test-grid points)")
print(f"largest |n| in the training set: {np.abs(train.meta['n']).max():.3g}; "
      f"at mu = {mu_out:g} in the test set: {np.abs(test0.where(mu=mu_out).meta['n']).max():.3g}")  # fmt: skip
fig, axes = plt.subplots(len(OUT) * 2, len(FAMILIES), figsize=(11, 13))
rows = []
for c, f in enumerate(FAMILIES):
    sub = table[table["label"] == f]
    ranked = sub.sort_values(train.lattice)
    picks = {"best": ranked.index[0], "worst": ranked.index[-1]}
    for r_mu, m in enumerate((mu_in, mu_out)):
        d = test0.where(mu=m)
        for which, idx in picks.items():
            pred = instances[idx].model(d.x).detach().numpy()
            for j, out in enumerate(OUT):
                ax = axes[2 * j + r_mu, c]
                ax.scatter(d.targets[:, j], pred[:, j], s=10, alpha=0.7,
                           marker="o" if which == "best" else "x", color=FAMILY_COLORS[f],
                           label=f"{which} (seed {sub.loc[idx, 'seed']})")  # fmt: skip
                rows.append({"family": f, "instance": which, "mu": m, "output": out,
                             "mse": float(((pred[:, j] - d.targets[:, j]) ** 2).mean())})  # fmt: skip
        for j, out in enumerate(OUT):
            ax = axes[2 * j + r_mu, c]
            t = d.targets[:, j]
            ax.plot([t.min(), t.max()], [t.min(), t.max()], color="k", lw=1)
            ax.set_title(f"{f}, {out}, $\\mu = {m:g}$", fontsize=10)
            ax.set_xlabel(f"true {out}", fontsize=9)
            ax.set_ylabel(f"predicted {out}", fontsize=9)
axes[0, 0].legend(fontsize=8)
fig.tight_layout()
plt.show()
why = pd.DataFrame(rows).pivot_table(index=["family", "instance"], columns=["output", "mu"],
                                     values="mse")  # fmt: skip
with pd.option_context("display.float_format", "{:.3g}".format):
    display(why)  # noqa: F821

# %% [markdown]
# ## Summary
#
# The source finds EQ ahead in every one of these tests {cite}`Favoni:2021talk`. At full
# statistics (the results store, verdicts computed above by
# {func}`qftml.tasks.regression.generalization`):

# %%
if V_GEN is not None:
    print("\n".join(V_GEN.lines()) + ("" if complete else "  (PARTIAL store)"))
else:
    print("no full-statistics verdict on this page (no complete size in the store)")
n_live = len(P["seeds"])
print(f"live ({profile!r} profile, N_train = {P['n_train']}): the tables above; with {n_live} "
      f"instances per family the smallest attainable one-sided Mann-Whitney p is "
      f"{1 / math.comb(2 * n_live, n_live):.3g}")  # fmt: skip
print(f"page computed in {time.perf_counter() - T0:.0f} s")
