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
# (chap-task1-search)=
# # Task 1: searching architectures for n and |φ|²
#
# **Overview.** The first task of {cite}`Bulusu:2021njs` is a regression: from one dual
# configuration $\{k, l\}$ of the charged scalar field on the $N_t\times N_x = 60\times 4$
# lattice at $\eta = 4.01$, $\lambda = 1$, predict its charge density $n$ and its
# $|\phi|^2$. Both are averages over the lattice of local functions of the fields,
# so a network that is exactly translation invariant (EQ) has the right form, while a strided
# (ST) or flattening (FL) network has to learn the symmetry from data. Before the families can
# be compared, each needs its best architecture. This chapter
#
# - runs the optuna {cite}`Akiba:2019optuna` search of {mod}`qftml.search` separately for EQ,
#   ST and FL on the task-1 training data and shows the optimization histories and winners;
# - trains the winners published in the backup tables of {cite}`Favoni:2021talk` from
#   scratch, several instances each, and compares them with what our search found.
#
# The next two chapters use these architectures for the comparisons:
# {ref}`chap-task1-comparison` and {ref}`chap-task1-generalization`.
#
# **Prerequisites.** The datasets ({ref}`chap-datasets`) and the spec notation and training
# loop ({ref}`chap-networks`).

# %% tags=["parameters"]
profile = "ci"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from optuna.trial import TrialState

from qftml import datasets, experiments, nets, search, training
from qftml.plotting import FAMILY_COLORS
from qftml.profiles import setup

P = setup("06_task1_search", profile)
T0 = time.perf_counter()
FAMILIES = P["families"]

# %% [markdown]
# ## The data
#
# The training and validation sets cover a grid of chemical potentials across the onset of
# the charge density; the test set used here is the one on the training lattice (the other
# lattices and the $\mu$ outside the training range are the subject of
# {ref}`chap-task1-generalization`): its configurations at the $\mu$ of the test grid that lie
# inside the training range.
# As a yardstick for every loss below we print the loss of the best *constant* prediction,
# the variance of each target: a network that has learned nothing reaches about this.

# %%
train = datasets.load_task1(profile, "train")
val = datasets.load_task1(profile, "val")
test_all = datasets.load_task1(profile, "test", train.lattice)
lo, hi = train.meta["mu"].min(), train.meta["mu"].max()
test = test_all.select((test_all.meta["mu"] >= lo - 1e-9) & (test_all.meta["mu"] <= hi + 1e-9))
TASK = search.Task(n_out=2, lattice=tuple(train.x.shape[-2:]), loss="mse")
OUT = train.target_names
print(f"lattice {train.lattice} (N_t, N_x) = {TASK.lattice}; inputs {tuple(train.x.shape)}")
print(f"train {len(train)}, validation {len(val)} configurations")
print("training mu:", np.unique(train.meta["mu"]).round(3).tolist())
print(f"test ({train.lattice}): {len(test)} of {len(test_all)} configurations lie in the training "
      f"range {lo:g} <= mu <= {hi:g}, at mu = {np.unique(test.meta['mu']).round(3).tolist()}")  # fmt: skip
var = val.targets.var(axis=0)
print("constant-prediction MSE on the validation set (variance of each target):")
for name, v in zip(OUT, var, strict=True):
    print(f"  {name:>5}: {v:.4g}")
print(f"  both (the MSE loss averages the two): {var.mean():.4g}")

# %% [markdown]
# ## The search
#
# For each family, optuna's TPE sampler proposes architectures from the search space of
# {mod}`qftml.search` (up to five convolution blocks with kernels $1$ to $3$ and widths $4$
# to $80$, the family's pooling rules, up to three dense layers). Each proposal is trained
# with the shared loop for at most `max_epochs` epochs and scored by its best validation
# loss; a median pruner stops trials that fall behind. The studies are stored on disk under
# a name that hashes their data, budget and seed ({func}`qftml.experiments.search_studies`),
# so re-running the chapter loads them, and raising `n_trials` continues them. The search
# trains on a balanced subset of the training set (the same fraction of configurations at
# every $\mu$).

# %%
S = P["search"]
mu = train.meta["mu"]
sub = experiments.nested_subsets(len(train), [S["n_train"]], P["seed"], groups=mu)[S["n_train"]]
search_train = train.select(sub).xy
search_budget = training.Budget.from_params(S["budget"])
t = time.perf_counter()
studies = experiments.search_studies(
    FAMILIES, search_train, val.xy, task=TASK, budget=search_budget, n_trials=S["n_trials"],
    seed=P["seed"], jobs=S["jobs"], pruner=S["pruner"], prefix=f"task1-{profile}",
)  # fmt: skip
print(f"search on {len(sub)} configurations, {S['n_trials']} trials per family: "
      f"{time.perf_counter() - t:.0f} s (0 s when the studies were already on disk)")  # fmt: skip
for fam, st in studies.items():
    states = pd.Series([tr.state.name for tr in st.trials]).value_counts().to_dict()
    print(f"  {fam}: study {st.study_name}: {states}")

# %% [markdown]
# The optimization history: every completed trial's best validation loss (dots), pruned
# trials at the last loss they reported (crosses), and the best loss found so far (line).
# The dashed line is the constant-prediction loss. Proposals that do not make a valid network
# (an ST network without a strided pooling, too many poolings for the 4 sites in space) count
# as pruned trials without a loss ("invalid").

# %%
fig, axes = plt.subplots(1, len(FAMILIES), figsize=(4 * len(FAMILIES), 3.6), sharey=True)
for ax, fam in zip(np.atleast_1d(axes), FAMILIES, strict=True):
    trials = studies[fam].trials
    done = [(tr.number, tr.value) for tr in trials if tr.state == TrialState.COMPLETE]
    pruned = [
        (tr.number, list(tr.intermediate_values.values())[-1])
        for tr in trials
        if tr.state == TrialState.PRUNED and tr.intermediate_values
    ]
    c = FAMILY_COLORS[fam]
    if done:
        n, v = np.array(done).T
        ax.scatter(n, v, color=c, s=18, label="completed")
        ax.step(n, np.minimum.accumulate(v), where="post", color=c, label="best so far")
    if pruned:
        n, v = np.array(pruned).T
        ax.scatter(n, v, marker="x", color=c, s=22, alpha=0.6, label="pruned")
    ax.axhline(var.mean(), color="k", ls="--", lw=1, label="constant prediction")
    ax.set_yscale("log")
    ax.set_xlabel("trial")
    invalid = sum("invalid" in tr.user_attrs for tr in trials)
    ax.set_title(f"{fam}: {len(done)} completed, {len(pruned)} pruned, {invalid} invalid")
np.atleast_1d(axes)[0].set_ylabel("best validation loss (MSE)")
np.atleast_1d(axes)[0].legend(fontsize=8)
fig.suptitle(f"task 1: architecture search ({profile} profile)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The best architectures of each family, with their validation loss in the search and their
# parameter count:

# %%
rows = []
for fam, st in studies.items():
    for rank, (spec, value) in enumerate(search.top_specs(st, S["top_k"]), 1):
        rows.append({"family": fam, "rank": rank, "val loss": value,
                     "parameters": nets.spec_params(spec), "spec": spec})  # fmt: skip
winners = pd.DataFrame(rows).set_index(["family", "rank"])
with pd.option_context("display.max_colwidth", None, "display.float_format", "{:.3g}".format):
    display(winners)  # noqa: F821 (IPython builtin)

# %% [markdown]
# ## The published winners
#
# The backup tables of {cite}`Favoni:2021talk` list the task-1 winners of the original
# search, all below $10^5$ parameters ({ref}`chap-networks` rebuilds them with exactly the
# stated counts). To place our search, each published winner is first trained *under the
# search's own budget and data*, one instance with the search's seed, and its validation loss
# is ranked among the completed trials of its family's study:

# %%
pub = {fam: nets.published(1, fam).spec for fam in FAMILIES}
ranked = []
for fam in FAMILIES:
    inst = experiments.train_instance(
        pub[fam], search_train, val.xy, task=TASK, budget=search_budget, seed=P["seed"]
    )
    done = [tr.value for tr in studies[fam].trials if tr.state == TrialState.COMPLETE]
    v = inst.history["best_val_loss"]
    ranked.append({"family": fam, "published winner": v, "best trial": min(done, default=np.nan),
                   "rank among trials": f"{1 + sum(d < v for d in done)} of {len(done) + 1}"})  # fmt: skip
ranked = pd.DataFrame(ranked).set_index("family")
with pd.option_context("display.float_format", "{:.3g}".format):
    display(ranked)  # noqa: F821

# %% [markdown]
# Then each published winner is retrained from scratch on the *whole* training set, with the
# training budget used for every instance of the task-1 chapters (the source group's recipe
# {cite}`Ein:scalarmlreflection`: AdamW with amsgrad at learning rate $10^{-2}$, batches of
# 50 or 100, early stopping with patience 25, validation on 10 % of $N_\text{train}$) and one
# instance per seed
# (different initial weights and mini-batch order). These instances are cached on disk by
# content ({mod}`qftml.experiments`): the comparison chapter, which trains the same
# architectures on the same data, loads them instead of training them again.

# %%
B = P["train"]
budget = training.Budget.from_params(B)
table, instances = experiments.run_grid(
    pub, train.xy, val.xy, {"test": test.xy}, seeds=P["seeds"], task=TASK, budget=budget,
    subset_seed=P["seed"], groups=mu, val_fraction=P["val_fraction"], val_groups=val.meta["mu"],
    output_names=OUT, desc="published winners",
)  # fmt: skip
fig, ax = plt.subplots(figsize=(6.4, 4))
for inst, (_, row) in zip(instances, table.iterrows(), strict=True):
    h = inst.history
    ax.plot(h["epoch"], h["val_loss"], color=FAMILY_COLORS[row["family"]], alpha=0.8,
            label=row["family"] if row["seed"] == P["seeds"][0] else None)  # fmt: skip
ax.axhline(var.mean(), color="k", ls="--", lw=1, label="constant prediction")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("validation loss (MSE)")
ax.set_title(f"published task-1 winners, {len(P['seeds'])} instances each, N_train = {len(train)}")
ax.legend()
fig.tight_layout()
plt.show()
summary = experiments.summarize(table, ["label"], ["val", "test", "test[n]", "test[phi2]"])
with pd.option_context("display.float_format", "{:.3g}".format):
    display(summary)  # noqa: F821

# %% [markdown]
# ## What the numbers say
#
# The verdicts below are computed from the tables above, at the statistics of the profile
# that produced this page (in `ci`: a handful of trials and short training, so the ordering
# can differ from that of the `paper` profile and of {cite}`Bulusu:2021njs`).

# %%
med = summary[("test", "median")]
order = med.sort_values().index.tolist()
print(f"median test loss of the published winners ({len(P['seeds'])} instances each): "
      + ", ".join(f"{f} {med[f]:.3g}" for f in order))  # fmt: skip
print(f"lowest median: {order[0]}; constant prediction: {var.mean():.3g}")
ratio = var.mean() / med
print("constant-prediction loss / median test loss: "
      + ", ".join(f"{f} {ratio[f]:.3g}" for f in order))  # fmt: skip
spread = summary[("test", "max")] / summary[("test", "min")]
print("max / min test loss over the instances of a family: "
      + ", ".join(f"{f} {spread[f]:.3g}" for f in order))  # fmt: skip
for fam in FAMILIES:
    best_search = winners.loc[(fam, 1), "val loss"] if (fam, 1) in winners.index else np.nan
    verdict = "better" if best_search < ranked.loc[fam, "published winner"] else "not better"
    print(f"{fam}: our best trial ({best_search:.3g}) is {verdict} than the published winner "
          f"under the same search budget ({ranked.loc[fam, 'published winner']:.3g})")  # fmt: skip
print(f"page computed in {time.perf_counter() - T0:.0f} s")

# %% [markdown]
# ## Summary
#
# - The architecture search runs per family and is resumable; its winners (table above) feed
#   the comparison in the `paper` profile, while the `ci` profile compares the published
#   winners, which a few-trial search cannot be expected to match.
# - How far each published winner gets below the constant prediction, and how much its
#   instances scatter, is printed above; whether the differences between the families are
#   larger than that scatter is the subject of {ref}`chap-task1-comparison`.
#
# **Reproduce at the paper's scale.** One command runs the three task-1 chapters with the
# `paper` profile (10 instances, 5 training-set sizes up to 30 000 configurations, 100 trials
# per family):
#
# ```
# python -m qftml data 1 --profile paper
# python -m qftml book --profile paper --only 06_task1_search 07_task1_comparison 08_task1_generalization
# ```
#
# Expected run time, estimated from the training throughput of the published winners on a
# free CPU core of the development machine (about 1300 (EQ) to 2800 (ST) configurations per
# second; `benchmarks/bench_training.py` measures it): the search (300 trials, pruned) about
# 5 h, the published winners 5 h, the comparison with augmentation about 14 h, the Silver
# Blaze instances and the evaluations on the large lattices about 6 h: some 30 CPU hours on
# two cores, a few hours on one GPU. Trained instances and studies are cached, so an
# interrupted run resumes where it stopped.
