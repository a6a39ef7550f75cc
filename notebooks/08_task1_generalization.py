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
# generalize where ST and FL networks fail. This chapter repeats the **Silver Blaze** test
# (trained on one side of the onset of the density, tested across it), the **lattice-size**
# test (trained on $60\times4$, tested on larger lattices, where FL cannot run at all) and
# the **extrapolation** in $\mu$, and looks at the best and worst instances to see *why* ST
# and FL fail. All three tests are shown first at full statistics, from the `paper` run kept
# in the results store, then live at this page's profile, with the instances of
# {ref}`chap-task1-comparison` at its largest training set (from the cache).

# %% tags=["parameters"]
profile = "ci"

# %% tags=["hide-input"]
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from qftml import datasets, experiments, figures
from qftml.profiles import notebook_params, setup
from qftml.tasks import regression

P = setup("08_task1_generalization", profile)
pd.set_option("display.float_format", "{:.3g}".format)  # tables: three significant digits
data = regression.prepare(
    datasets.load_task1(profile, "train"), datasets.load_task1(profile, "val"),
    {lat: datasets.load_task1(profile, "test", lat) for lat in datasets.lattices(1, profile, "test")},
)  # fmt: skip
LATTICES, OUT, (lo, hi) = list(data.tests), data.outputs, data.mu_range
S6 = notebook_params("06_task1_search", profile)
SPECS = regression.architectures(P["architectures"], data, search_params=S6["search"],
                                 search_seed=S6["seed"], prefix=f"task1-{profile}")  # fmt: skip
print(*data.lines(), sep="\n")

# %% [markdown]
# (store-task1-generalization)=
# ## Full statistics: other lattice sizes and larger $\mu$
#
# The stored instances of the `paper` profile at the largest training-set size among those
# with the most stored instances ({func}`qftml.tasks.regression.generalization_size`: a size
# just begun has too few instances for any test to reject), on every test lattice, with $\mu$
# inside the training range (left) and per $\mu$ on the training lattice (right). The verdicts
# are those of {func}`qftml.tasks.regression.generalization`: EQ against ST on each other
# lattice (one-sided Mann–Whitney, all must reject at 5 %) and the ST kink on the odd spatial
# extent (paired Wilcoxon tests against both neighbouring lattices, instance by instance).

# %% tags=["hide-input"]
STORE = regression.stored(P["store"][0]) if P["store"] else None
V_GEN = STORE.generalization() if STORE else None
print(*(STORE.lines() if STORE else ["this profile recomputes everything: no stored results"]),
      sep="\n")  # fmt: skip
if V_GEN is not None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    figures.store_generalization(axes, V_GEN, STORE.per_mu, STORE.lattice, STORE.mu_range)
    fig.tight_layout()
    plt.show()
    display(V_GEN.versus, V_GEN.kink)  # noqa: F821
    print(*V_GEN.lines(), sep="\n")
    W = regression.worst_st(STORE.per_mu, train_lattice=STORE.lattice, mu_range=STORE.mu_range,
                            n_train=V_GEN.n_train)  # fmt: skip
    print(W.line(), f"no EQ instance behaves like the worst ST: {W.no_eq_like_worst_st}")

# %% [markdown]
# ### Full statistics: training on one phase only
#
# The store's `task1-phases` ({mod}`qftml.results`): the published winners trained with
# chapter 07's recipe on $N_\text{train}$ = `phase_n_train` configurations of one phase only,
# below or above the onset of the density (defined below), against chapter 07's stored
# instances of the same size trained on both phases. Each is tested on the phase the
# one-phase instances never saw, up to the top of the training range (below it the phase goes
# on: at `paper` every test $\mu$ below the onset lies there); the statement holds for a family
# when training on both is not significantly better on either side (one-sided Mann–Whitney,
# 5 % per side, {func}`qftml.tasks.regression.phase_verdict`), and it is judged on EQ, the
# source's network. Loss per $\mu$ on the training lattice, median and range over instances:

# %% tags=["hide-input"]
PH = regression.stored_phases() if "task1-phases" in P["store"] else None
print(*(PH.lines() if PH else ["this profile recomputes everything: no stored results"]),
      sep="\n")  # fmt: skip
if PH is not None and PH.verdict is not None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    figures.phase_losses(axes, PH.losses, PH.verdict.onset, PH.phases.mu_range)
    fig.tight_layout()
    plt.show()
    display(PH.verdict.table)  # noqa: F821

# %% [markdown]
# ## Silver Blaze: training on one phase only
#
# Below the onset the density vanishes (up to thermal windings at $N_t = 60$), above it the
# charges wind around the time direction; at the onset nothing in the formulas for $n$ and
# $|\phi|^2$ changes. We locate the onset in the training data as the first training $\mu$ at
# which a fraction `charged_fraction` of the configurations carries charge ($n \neq 0$), and
# train every family on $N_\text{train}$ = `phase_n_train` configurations below it only and
# above it only (balanced over $\mu$, validation cut the same way), then test on the whole
# $\mu$ range of the test split ({func}`qftml.tasks.regression.train_phases`). Predicted
# (median over instances, min–max band) against true (mean ± standard error over the test
# configurations) per $\mu$, then the loss on the trained phase and on the other one, both up
# to the top of the training range (so that extrapolation in $\mu$ does not enter), median
# and range over instances, and the verdict against chapter 07's instances of the same size
# trained on both phases (from the cache), as for the store above:

# %% tags=["hide-input"]
onset, frac = regression.onset(data.train.meta["mu"], data.train.meta["n"], P["charged_fraction"])
print("fraction of training configurations with n != 0, per mu: "
      + ", ".join(f"{m:.3f}: {v:.2f}" for m, v in frac.items()))  # fmt: skip
print(f"onset: mu_c = {onset:g} (below: mu < mu_c, above: mu >= mu_c)")
sb = regression.train_phases(SPECS, data, P, onset, n_train=P["phase_n_train"])
fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
figures.phase_predictions(axes, sb, onset, OUT)
fig.tight_layout()
plt.show()
SB = regression.silver_blaze({side: df for side, (_, df) in sb.items()}, onset, hi)
display(SB.table)  # noqa: F821
print(*SB.lines(), sep="\n")
_, both = regression.train_grid(SPECS, data, P, sizes=[P["phase_n_train"]],
                                desc=f"both phases, N_train = {P['phase_n_train']}")  # fmt: skip
LOSSES = pd.concat(
    [regression.phase_losses(df, side) for side, (_, df) in sb.items()]
    + [regression.phase_losses(regression.curves(both, data.test_all, OUT), "both")]
)
V_PH = regression.phase_verdict(LOSSES, onset=onset, mu_max=hi, n_train=P["phase_n_train"])
display(V_PH.table)  # noqa: F821
print(*V_PH.lines(), sep="\n")

# %% [markdown]
# ## Generalization to other lattice sizes
#
# The instances trained on $N_\text{train}$ = `n_train` configurations of the $60\times4$
# training set (those of the largest size of {ref}`chap-task1-comparison`, loaded from the
# cache) are tested on every lattice of the test split, over the whole test $\mu$ range and
# over the part inside the training range. Since $n$ and $|\phi|^2$ are averages over sites,
# the same network with a global average pooling computes them on any lattice size. An FL
# network has a dense layer whose size is fixed by the lattice: it is **not applicable** to
# other sizes (`nan` below).

# %% tags=["hide-input"]
test_sets = data.test_sets()
table, instances = regression.train_grid(SPECS, data, P, test_sets, sizes=[P["n_train"]],
                                         desc=f"trained on N_train = {P['n_train']}")  # fmt: skip
med = experiments.summarize(table, ["label"], list(test_sets)).xs("median", axis=1, level=1).T
display(med)  # noqa: F821
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, suffix, title in ((axes[0], "", "all test mu"), (axes[1], " (training mu)", "training mu")):
    figures.loss_vs_lattice(ax, table, LATTICES, suffix)
    ax.set_title(f"trained on {data.lattice} only; {title}")
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
print(*regression.kink_lines(table, SPECS["ST"], LATTICES), sep="\n")

# %% [markdown]
# ## Extrapolation to larger chemical potential
#
# The test loss per $\mu$, on each lattice, for the instances trained on the training range
# (grey band): median over instances and min–max band.

# %% tags=["hide-input"]
per_lat = {lat: regression.curves(instances, d, OUT) for lat, d in data.tests.items()}
fig, axes = plt.subplots(1, len(LATTICES), figsize=(4 * len(LATTICES), 3.8), sharey=True,
                         squeeze=False)  # fmt: skip
figures.loss_per_mu(axes[0], per_lat, (lo, hi))
fig.tight_layout()
plt.show()
EXTRA = regression.extrapolation(per_lat[data.lattice], (lo, hi))
display(EXTRA)  # noqa: F821

# %% [markdown]
# ## Why do ST and FL fail?
#
# For each family, the best and the worst instance (by the loss on the whole $\mu$ range of
# the $60\times4$ test split), prediction against truth for every test configuration at a
# $\mu$ inside the training range and at one beyond it. The density takes the discrete values
# $w/N_x$; beyond the training range the configurations carry windings $w$ that no training
# configuration had.

# %% tags=["hide-input"]
test0 = data.test_all
mu_in, mu_out = data.nearest_mu(P["mu_inside"]), data.nearest_mu(P["mu_outside"])
print(f"mu inside: {mu_in:g}, mu outside: {mu_out:g} (nearest test-grid points); largest |n| "
      f"in the training set: {np.abs(data.train.meta['n']).max():.3g}, at mu = {mu_out:g} in "
      f"the test set: {np.abs(test0.where(mu=mu_out).meta['n']).max():.3g}")  # fmt: skip
picks, why = regression.best_worst(table, instances, test0, data.lattice, (mu_in, mu_out), OUT)
fig, axes = plt.subplots(len(OUT) * 2, 3, figsize=(11, 13))
figures.best_worst_grid(axes, picks, OUT, mu_out)
fig.tight_layout()
plt.show()
display(why)  # noqa: F821

# %% [markdown]
# ## Summary
#
# The source finds EQ ahead in every one of these tests {cite}`Favoni:2021talk`. The
# full-statistics verdicts are printed with the store's figures above and collected in
# {ref}`chap-statements`; the live tables bound what their instance counts can establish:

# %% tags=["hide-input"]
n_live = len(P["seeds"])
print(f"live ({profile!r} profile, N_train = {P['n_train']}): with {n_live} instances per "
      f"family the smallest attainable one-sided Mann-Whitney p is "
      f"{1 / math.comb(2 * n_live, n_live):.3g}")  # fmt: skip
