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
# (chap-task1-comparison)=
# # Task 1: does translational equivariance make a difference?
#
# **Overview.** The central comparison of {cite}`Bulusu:2021njs`: the winning architecture of
# each family, EQ, ST and FL, retrained from scratch several times (the source uses 10
# instances) for a range of training-set sizes $N_\text{train}$, judged by the test loss of
# the regression of $n$ and $|\phi|^2$. The source reports {cite}`Favoni:2021talk`
#
# 1. EQ beats ST and FL for any number of training samples,
# 2. EQ improves with more samples, while the other two do not,
# 3. data augmentation (random lattice translations) does not help ST and FL.
#
# This chapter reruns the experiment and tests each statement with the spread over instances:
# a one-sided Mann–Whitney test and the probability that an instance of one family beats one
# of the other, and a fit of the loss against $N_\text{train}$ ({mod}`qftml.tasks.regression`).
# Every verdict is computed: first from the full-statistics run of the `paper` profile kept
# in the results store, then live from the instances trained in the profile that built this
# page. Both train with the source's recipe in float32 (bfloat16 autocast, an option of
# {func}`qftml.training.train`, pays only on CPUs with native bfloat16 arithmetic:
# `benchmarks/bench_training.py`).

# %% tags=["parameters"]
profile = "ci"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from qftml import datasets, experiments, nets, results, search, training
from qftml.figures import loss_vs_ntrain
from qftml.plotting import FAMILY_COLORS
from qftml.profiles import notebook_params, setup
from qftml.tasks import regression

P = setup("07_task1_comparison", profile)
T0 = time.perf_counter()
FAMILIES = ["EQ", "ST", "FL"]

# %% [markdown]
# ## Full statistics: the `paper` profile's run
#
# The source's budget: the published winners, 10 instances per point, $N_\text{train}$ = 50,
# 200, 2000 and 20000 configurations of the $60\times4$ lattice at the group's 29 values
# $\mu = 0.910, 0.915, \dots, 1.050$, validation on 10 % of $N_\text{train}$, and the group's
# training recipe (AdamW with amsgrad, learning rate $10^{-2}$, batches of 50 or 100, early
# stopping with patience 25 after 100 to 1000 epochs) {cite}`Ein:scalarmlreflection`. It
# costs CPU-hours, so it is run once by `python -m qftml results run task1-comparison` and
# kept, with its provenance, in the repository's results store ({mod}`qftml.results`;
# `python -m qftml results verify` checks it against today's code and data). Every number
# below is computed from the store when this page is built; while the run is incomplete the
# verdicts use only the training-set sizes at which every instance is stored, and say so.

# %%
full = pd.DataFrame()
if P["store"]:
    LAT_P, MU_LO, MU_HI = results.training_range(1, "paper")
    stored, planned, complete = results.coverage("task1-comparison", "paper")
    chunks = results.complete_seeds("task1-comparison", "paper")
    prov = results.provenance_summary("task1-comparison")
    print(f"results store: {stored} of {planned} planned instances "
          f"({'complete' if complete else 'PARTIAL'}); instances of every model stored per "
          f"N_train: { {m: len(s) for m, s in chunks.items()} or 'none yet'}")  # fmt: skip
    print(f"made at commit(s) {', '.join(c[:10] for c in prov['commits']) or '-'} on "
          f"{'; '.join(prov['machines']) or '-'}, {prov['first']} .. {prov['last']}; "
          f"{prov['train_hours']:.2f} h of training")  # fmt: skip
    per_mu = results.per_mu_table("task1-comparison")
    if len(per_mu):
        full = regression.in_range(per_mu[per_mu["lattice"] == LAT_P], MU_LO, MU_HI)
        full = results.select_complete(full, chunks)  # >= 3 instances of every model
else:
    print("this profile recomputes everything: no stored results are shown")

# %% [markdown]
# Test loss against $N_\text{train}$ at full statistics (test configurations on the training
# lattice, $\mu$ inside the training range; the test sets are independent chains):

# %%
if len(full):
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    plain_full = full[full["augment"] == "none"]
    for f in FAMILIES:
        loss_vs_ntrain(ax, plain_full, f, FAMILY_COLORS[f])
    for f in ("ST", "FL"):
        loss_vs_ntrain(ax, full[full["augment"] == "translations"], f, FAMILY_COLORS[f], ls=":",
                       marker="s", name=f"{f} + translations")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"training samples $N_\mathrm{train}$")
    ax.set_ylabel("test loss (MSE of $n$, $|\\phi|^2$)")
    n_inst = int(full.groupby(["label", "augment", "n_train"]).size().min())
    ax.set_title(f"results store (paper profile): {n_inst} instances per point")
    ax.legend(
        title="median (line, ≥ 68 % interval), mean (open)\nmin–max (band), instances (dots)",
        fontsize=8,
    )
    fig.tight_layout()
    plt.show()
    V_FULL = regression.compare_families(full)
    with pd.option_context("display.float_format", "{:.3g}".format):
        display(V_FULL.versus)  # noqa: F821
        display(V_FULL.scaling)  # noqa: F821
    print("\n".join(V_FULL.lines()))
    counts = full.groupby("n_train")["seed"].nunique().to_dict()
    if not complete:
        print(f"(PARTIAL store: instances per model at each N_train shown: {counts})")
else:
    V_FULL = None
    print("no complete training-set size in the store yet")

# %% [markdown]
# ## Data and architectures
#
# Training and validation sets as in {ref}`chap-task1-search`; the test set is the part of
# the test split on the training lattice whose $\mu$ lies in the training range (the
# generalization beyond it is {ref}`chap-task1-generalization`). Smaller training sets are
# nested, balanced subsets of the full one ({func}`qftml.experiments.nested_subsets`); the
# validation set, used for early stopping, is the same for all sizes.
#
# The architectures are, by the profile's `architectures` setting, either the published
# winners of {cite}`Favoni:2021talk` (`published`) or the best trial of each family in our
# own search of {ref}`chap-task1-search` (`search`; the study is loaded from disk).

# %%
train = datasets.load_task1(profile, "train")
val = datasets.load_task1(profile, "val")
test_all = datasets.load_task1(profile, "test", train.lattice)
mu = train.meta["mu"]
lo, hi = mu.min(), mu.max()
test = test_all.select((test_all.meta["mu"] >= lo - 1e-9) & (test_all.meta["mu"] <= hi + 1e-9))
TASK = search.Task(n_out=2, lattice=tuple(train.x.shape[-2:]), loss="mse")
OUT = train.target_names
const = float(test.targets.var(axis=0).mean())
print(f"train {len(train)}, validation {len(val)}, test {len(test)} configurations "
      f"(mu = {np.unique(test.meta['mu']).round(3).tolist()})")  # fmt: skip
print(f"constant-prediction MSE on the test set: {const:.4g}")

S6 = notebook_params("06_task1_search", profile)
SPECS = regression.architectures(P["architectures"], train, val, TASK, search_params=S6["search"],
                                 search_seed=S6["seed"], prefix=f"task1-{profile}")  # fmt: skip
for f, spec in SPECS.items():
    print(f"{f} ({nets.spec_params(spec)} parameters): {spec}")

B = P["train"]
budget = training.Budget.from_params(B)
grid = dict(
    sizes=P["n_train"], seeds=P["seeds"], task=TASK, budget=budget, subset_seed=P["seed"],
    groups=mu, val_fraction=P["val_fraction"], val_groups=val.meta["mu"], output_names=OUT,
)  # fmt: skip
tests = {"test": test.xy, "test_all_mu": test_all.xy}

# %% [markdown]
# ## Test loss against the number of training samples
#
# Each family is trained for every $N_\text{train}$ and seed (instances differ in their
# initial weights and mini-batch order). Instances already trained (in
# {ref}`chap-task1-search` or an earlier build) are loaded from the cache.

# %%
t = time.perf_counter()
table, instances = experiments.run_grid(SPECS, train.xy, val.xy, tests, desc="comparison", **grid)
print(f"{len(table)} instances ({int(table['cached'].sum())} from the cache) in "
      f"{time.perf_counter() - t:.0f} s")  # fmt: skip
summary = experiments.summarize(table, ["label", "n_train"], ["test"])
with pd.option_context("display.float_format", "{:.3g}".format):
    display(summary["test"])  # noqa: F821


# %%
fig, ax = plt.subplots(figsize=(6.4, 4.4))
for f in FAMILIES:
    loss_vs_ntrain(ax, table, f, FAMILY_COLORS[f])
ax.axhline(const, color="k", ls="--", lw=1, label="constant prediction")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel(r"training samples $N_\mathrm{train}$")
ax.set_ylabel("test loss (MSE)")
ax.set_title(f"task 1 on {train.lattice}: {len(P['seeds'])} instances per point")
ax.legend(
    title="median (line, ≥ 68 % interval), mean (open)\nmin–max (band), instances (dots)",
    fontsize=9,
)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Statement 1: does EQ beat ST and FL at every $N_\text{train}$?
#
# For each size: the median losses, their ratio, the probability of superiority
# $P(\text{loss}_\text{EQ} < \text{loss}_\text{other})$ over all pairs of instances, and the
# one-sided Mann–Whitney $p$-value. With $n$ instances per family the smallest possible
# $p$-value is $1/\binom{2n}{n}$ (column `p_min`): with 2 instances it is $1/6$, so the `ci`
# profile cannot establish a difference at the 5 % level, whatever the losses; with 10
# instances (`paper`) it is $5\times10^{-6}$.

# %%
ALPHA = 0.05
cmp = pd.concat(
    [
        experiments.compare(table, ["n_train"], "label", "EQ", other, "test")
        for other in ("ST", "FL")
    ]
)
with pd.option_context("display.float_format", "{:.3g}".format):
    display(cmp)  # noqa: F821
for other in ("ST", "FL"):
    c = cmp[cmp["b"] == other]
    lower = c["median_a"] < c["median_b"]
    signif = c["p_value"] < ALPHA
    print(f"EQ vs {other}: EQ has the lower median at {int(lower.sum())} of {len(c)} sizes; "
          f"significant (p < {ALPHA}) at {int(signif.sum())} of {len(c)}; "
          f"median ratio {other}/EQ from {c['ratio'].min():.3g} to {c['ratio'].max():.3g}")  # fmt: skip
all_lower = bool((cmp["median_a"] < cmp["median_b"]).all())
all_signif = bool((cmp["p_value"] < ALPHA).all())
print(f"statement 1 (EQ has the lowest median at every size): {all_lower}; "
      f"established at p < {ALPHA} at every size: {all_signif}")  # fmt: skip

# %% [markdown]
# ### Statement 2: which families improve with more samples?
#
# A least-squares fit of $\log_{10}(\text{loss})$ against $\log_{10} N_\text{train}$ over all
# instances: a slope of $-1$ is the rate at which averaging removes noise, $0$ means no
# improvement. We call a family *improving* when the whole two-sided 95 % confidence interval
# of its slope lies below zero: `upper` = slope + $t_{0.975,\,\nu}$ s.e., with the Student
# quantile for the fit's $\nu$ = points − 2 degrees of freedom (4.30 for $\nu = 2$, not 2).

# %%
sc = experiments.scaling(table, ["label"], "n_train", "test").set_index("label")
with pd.option_context("display.float_format", "{:.3g}".format):
    display(sc)  # noqa: F821
improving = sc.index[sc["improving"]].tolist()
print(f"improving families: {improving or 'none'}; "
      f"statement 2 (only EQ improves) holds here: {improving == ['EQ']}")  # fmt: skip

# %% [markdown]
# The loss of each observable separately, at the largest training set (the MSE loss is their
# average; $n$ takes the discrete values $w/N_x$ and $|\phi|^2$ is continuous, so their
# errors need not be alike):

# %%
big = table[table["n_train"] == max(P["n_train"])]
per = big.groupby("label")[[f"test[{o}]" for o in OUT]].median()
with pd.option_context("display.float_format", "{:.3g}".format):
    display(per)  # noqa: F821

# %% [markdown]
# ## Data augmentation by random translations
#
# An ST or FL network is not invariant under lattice translations, but the targets are. The
# standard remedy is to show it the symmetry: every mini-batch is shifted by a random
# translation per configuration ({class}`qftml.experiments.RandomTranslations`), a fresh one
# each epoch. For EQ the augmentation changes nothing (its loss is invariant, so the
# gradients are the same; the tests of {mod}`qftml.experiments` check this), so only ST and FL
# are retrained, with the same sizes, seeds and budget.

# %%
t = time.perf_counter()
aug_table, aug_instances = experiments.run_grid(
    {f: SPECS[f] for f in P["augment"]}, train.xy, val.xy, tests, augment=["translations"],
    desc="augmented", **grid,
)  # fmt: skip
print(f"{len(aug_table)} augmented instances ({int(aug_table['cached'].sum())} from the cache) "
      f"in {time.perf_counter() - t:.0f} s")  # fmt: skip
both = pd.concat([table, aug_table], ignore_index=True)
fig, ax = plt.subplots(figsize=(6.4, 4.4))
loss_vs_ntrain(ax, table, "EQ", FAMILY_COLORS["EQ"])
for f in P["augment"]:
    loss_vs_ntrain(ax, table, f, FAMILY_COLORS[f], ls=":", marker="s", name=f"{f}")
    loss_vs_ntrain(ax, aug_table, f, FAMILY_COLORS[f], name=f"{f} + translations")
ax.axhline(const, color="k", ls="--", lw=1, label="constant prediction")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel(r"training samples $N_\mathrm{train}$")
ax.set_ylabel("test loss (MSE)")
ax.set_title("augmentation by random lattice translations")
ax.legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Does augmentation help ST and FL (augmented against plain instances), and does it bring them
# to EQ?

# %%
rows = []
for f in P["augment"]:
    sub = both[both["label"] == f]
    c = experiments.compare(sub, ["n_train"], "augment", "translations", "none", "test")
    c.insert(0, "family", f)
    rows.append(c)
    eq = pd.concat([table[table["label"] == "EQ"], aug_table[aug_table["label"] == f]])
    c2 = experiments.compare(eq, ["n_train"], "label", "EQ", f, "test")
    c2.insert(0, "family", f)
    c2["a"], c2["b"] = "EQ", f"{f} + translations"
    rows.append(c2)
aug_cmp = pd.concat(rows, ignore_index=True)
with pd.option_context("display.float_format", "{:.3g}".format):
    display(aug_cmp)  # noqa: F821
for f in P["augment"]:
    c = aug_cmp[(aug_cmp["family"] == f) & (aug_cmp["a"] == "translations")]
    helped = c["median_a"] < c["median_b"]
    c2 = aug_cmp[(aug_cmp["family"] == f) & (aug_cmp["a"] == "EQ")]
    print(f"{f}: augmentation lowers the median loss at {int(helped.sum())} of {len(c)} sizes "
          f"(significant at {int((c['p_value'] < ALPHA).sum())}); EQ stays below the "
          f"augmented {f} at {int((c2['median_a'] < c2['median_b']).sum())} of {len(c2)} sizes")  # fmt: skip

# %% [markdown]
# Augmentation does not make a network invariant, it only rewards invariance on the training
# data. We measure how far each trained instance (largest training set) is from invariance:
# the largest change of its output under all $N_t N_x$ translations of a few test
# configurations, relative to the largest output ({func}`qftml.nets.equivariance_error`).

# %%
x_eq = test.x[:4]
rows = []
for tab, insts in ((table, instances), (aug_table, aug_instances)):
    for (_, row), inst in zip(tab.iterrows(), insts, strict=True):
        if row["n_train"] == max(P["n_train"]):
            err = nets.equivariance_error(inst.model, x_eq)
            rows.append({"family": row["label"], "augment": row["augment"], "seed": row["seed"],
                         "max relative change": max(err.values())})  # fmt: skip
inv = (
    pd.DataFrame(rows)
    .groupby(["family", "augment"])["max relative change"]
    .agg(["median", "min", "max"])
)
with pd.option_context("display.float_format", "{:.3g}".format):
    display(inv)  # noqa: F821

# %% [markdown]
# ## Summary
#
# The three statements, judged by {func}`qftml.tasks.regression.compare_families` (EQ against
# ST and FL by one-sided Mann–Whitney tests at every size, all of which must reject; slopes
# by their 95 % Student-t interval; augmentation by Mann–Whitney tests with Holm's correction
# over families and sizes). First at full statistics, from the results store; then for the
# instances trained live in this page's profile, whose instance counts bound the attainable
# $p$-value (with 2 instances per family no test can reach 5 %).

# %%
V_LIVE = regression.compare_families(both, alpha=ALPHA)
if V_FULL is not None:
    print(f"full statistics (results store, instances per N_train {counts}"
          f"{'' if complete else ', PARTIAL'}):")  # fmt: skip
    print("\n".join("  " + line for line in V_FULL.lines()))
print(f"live, profile {profile!r} ({len(P['seeds'])} instances per point, "
      f"N_train = {P['n_train']}):")  # fmt: skip
print("\n".join("  " + line for line in V_LIVE.lines()))
print(f"page computed in {time.perf_counter() - T0:.0f} s")
