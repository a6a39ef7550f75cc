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
# (chap-task2)=
# # Task 2: detecting flux violations
#
# **Overview.** The dual variables of the charged scalar field obey a local conservation law,
# $\sum_\nu (k_{x,\nu} - k_{x-\hat\nu,\nu}) = 0$ at every site {cite}`Gattringer:2012df`.
# The second task of {cite}`Bulusu:2021njs` asks a network whether a configuration obeys it:
# half of the configurations carry one open worm, which breaks the law at its two ends
# (see {ref}`chap-datasets`). The networks are trained at two parameter points,
# $(\eta, \mu) = (4.25, 1)$ and $(4.01, 1.5)$, on $8\times 8$ and tested on a grid of nine
# points on four lattice sizes up to $64\times 64$ {cite}`Favoni:2021talk`. This chapter
# shows what a network has to compute (a divergence, which a $2\times 2$ kernel can see and a
# $1\times 1$ kernel cannot) and builds an exact EQ detector by hand; searches EQ, ST and FL
# architectures and retrains the source's winners (in `paper` also ours) as several instances;
# reports the test accuracy per parameter point and lattice size with the spread over
# instances; and shows the first feature maps on a configuration with a violation.
#
# The analysis and its verdicts are computed in {mod}`qftml.tasks.detection`, the figures
# drawn by {mod}`qftml.figures`. The source's statistics, ten instances of each published
# winner trained with the `paper` budget, come first, from the results store; the rest of
# the chapter runs live at the page's profile.

# %% tags=["parameters"]
profile = "ci"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch

from qftml import datasets, figures
from qftml.profiles import notebook_params, setup
from qftml.tasks import detection
from qftml.tasks.detection import readable

P = setup("09_task2_detection", profile)
torch.set_num_threads(P["torch_threads"])  # tiny networks: one thread is fastest
D = notebook_params("datasets", profile)["task2"]
PAR = detection.Params.from_dict(P)

# %% [markdown]
# (store-task2)=
# ## Full statistics: the results store
#
# Instances of each of the source's three winners, trained on the whole training set of the
# `paper` profile with its budget (both printed below), each tested on every parameter point
# and lattice of the `paper` test split. Run once by `python -m qftml results run task2-detection`
# and kept with its provenance ({mod}`qftml.results`); every number in this section is
# computed from it. The verdict compares the published EQ and ST winners once at least four
# instances of each are stored ({data}`qftml.results.MIN_SEEDS`).

# %% tags=["hide-input"]
STORE = detection.stored(P["store"][0]) if P["store"] else None
V_FULL = STORE.verdict(PAR.alpha) if STORE else None
if STORE is None:
    print("this profile recomputes everything: no stored results are shown")
else:
    print(*STORE.lines(), sep="\n")
if V_FULL is not None:
    fig, axes = plt.subplots(len(STORE.labels), 1, figsize=(10, 1.9 * len(STORE.labels) + 0.6),
                             constrained_layout=True, squeeze=False)  # fmt: skip
    for ax, label in zip(axes[:, 0], STORE.labels, strict=True):
        im = figures.accuracy_map(ax, STORE, label, STORE.train_points)
    axes[-1, 0].set_xlabel(r"test point $(\eta, \mu)$; red: training lattice and point")
    fig.colorbar(im, ax=axes[:, 0], label="accuracy: mean (minimum) over instances", shrink=0.6)
    fig.suptitle("results store (paper profile)", fontsize=10)
    plt.show()
    print(*V_FULL.lines(), sep="\n")
    if not STORE.complete:
        print("(PARTIAL store: verdicts from the instances stored so far)")
    display(readable(STORE.summary()))  # noqa: F821

# %% [markdown]
# (store-task2-search)=
# ### The stored search
#
# The architecture search of the live section below, at the `paper` section's
# `store_search` budget (printed below: the paper's trials per family on the whole training
# set, one worker, so that it is reproducible), run once by
# `python -m qftml results run task2-search` and kept in the results store
# ({mod}`qftml.search_store`); the source's winner of each family is its first trial. From
# it: the best trial of each family, and, per family, how many networks with only $1\times1$
# kernels and with a larger kernel were trained (completed or stopped by the pruner), how many
# completed, and the lowest validation cross-entropy any of them reached (chance, a constant
# prediction of 1/2, is $\ln 2 \approx 0.69$); and the size of the best trials against the
# source's "Optuna favoured architectures with $< 10^5$ parameters"
# ({func}`qftml.tasks.searches.size_verdict`; its criterion as in {ref}`chap-task1-search`).

# %% tags=["hide-input"]
SEARCH = detection.stored_search() if "task2-search" in P["store"] else None
if SEARCH is None:
    print("this profile recomputes everything: no stored search is shown")
else:
    print(*SEARCH.lines(), sep="\n")
if SEARCH is not None and SEARCH.studies:
    FOUND = detection.search_result(SEARCH.studies)
    display(readable(FOUND.best[["val", "params", "max kernel", "published", "spec"]]))  # noqa: F821
    display(readable(detection.kernel_comparison(SEARCH.studies)))  # noqa: F821
    SIZE = detection.size_verdict(SEARCH.studies, SEARCH.plan.top_k)
    fams = list(SEARCH.studies)
    fig, axes = plt.subplots(1, len(fams), figsize=(4 * len(fams), 3.4), squeeze=False)
    for ax, fam in zip(axes[0], fams, strict=True):
        figures.search_sizes(ax, SEARCH.studies[fam], fam, detection.PARAMETER_BOUND,
                             SEARCH.plan.top_k)  # fmt: skip
    axes[0, 0].set_ylabel("best validation loss (BCE)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("stored task-2 search (paper profile)")
    fig.tight_layout()
    plt.show()
    print(SIZE.line())
    print("Optuna favoured architectures with < 1e5 parameters (task 2): "
          + ("confirmed" if SIZE.confirmed else "not confirmed")
          + ("" if SEARCH.complete else " (PARTIAL search)"))  # fmt: skip

# %% [markdown]
# ## Live: the data
#
# Training and validation sets are $8\times 8$ configurations at the two training points,
# half with one open worm (label 1); the test sets cover
# $\eta\in\{4.01, 4.04, 4.25\}\times\mu\in\{1, 1.25, 1.5\}$ on $8\times 8$ to $64\times 64$.

# %% tags=["hide-input"]
LATTICES = datasets.lattices(2, profile, "test")
data = detection.prepare(
    datasets.load_task2(profile, "train"), datasets.load_task2(profile, "val"),
    {lat: datasets.load_task2(profile, "test", lat) for lat in LATTICES},
)  # fmt: skip
print(*data.lines(), sep="\n")

# %% [markdown]
# ## What a network has to compute
#
# The divergence at a site $y$,
#
# $$
# (\nabla\cdot k)(y) = k_{y,1} - k_{y-\hat 1,1} + k_{y,2} - k_{y-\hat 2,2},
# $$
#
# combines links that start at three different sites, $y$, $y-\hat 1$ and $y-\hat 2$. They
# form an L inside the $2\times 2$ plaquette with upper corner $y$. A convolution whose
# kernel covers that plaquette can compute the divergence exactly with fixed integer
# weights; {func}`qftml.nets.divergence_kernel` holds them. We check this on the whole
# training set against {func}`qftml.lattice.divergence` (the periodic $2\times 2$ convolution
# of {func}`qftml.nets.from_spec` reads the window to the upper right of each site, so its
# output is the divergence shifted by one site in each direction):

# %% tags=["hide-input"]
print(*detection.stencil_check(data.train).lines(), sep="\n")

# %% [markdown]
# A stack of $1\times 1$ convolutions followed by a global pooling is a function of the *set*
# of site values: it cannot tell a configuration from one whose sites have been shuffled,
# although shuffling breaks the conservation law almost surely. The valid validation
# configurations, shuffled, seen by a random all-$1\times 1$ EQ network (the task-2 EQ
# winner with its $2\times 2$ kernel replaced) and by the divergence:

# %% tags=["hide-input"]
print(*detection.shuffle_check(data.val, PAR.seed).lines(), sep="\n")

# %% [markdown]
# So an EQ network needs a kernel of at least $2\times 2$ somewhere; the source notes that
# $2\times 2$ convolutions are necessary for this task {cite}`Favoni:2021talk`. (A
# network with a `Flatten` layer could combine neighbouring sites in its dense layer
# instead, but only at the fixed positions it was trained on.)
#
# The stencil also gives an exact EQ solution of the task, of the form of the published EQ
# winner: {func}`qftml.nets.flux_network` stacks the channels $\pm\nabla\cdot k$, a
# LeakyReLU, a global max pooling and one output neuron. The divergence sums to zero on the
# torus, so every violated configuration has a site with $\nabla\cdot k \ge 1$ and one with
# $\nabla\cdot k \le -1$, and the network separates the two classes by a margin on every
# lattice. Its accuracy and loss on all test sets (minimum and maximum per lattice):

# %% tags=["hide-input"]
hand = detection.hand_detector(data)
print(*hand.lines(), sep="\n")
readable(hand.by_lattice)

# %% [markdown]
# Whether trained networks find such a solution, and keep it on lattices they have never
# seen, is the question of this chapter.
#
# ## Architecture search
#
# As for task 1, optuna {cite}`Akiba:2019optuna` searches each family in the space of
# {func}`qftml.search.suggest_spec`, starting from the source's winner (the first trial),
# minimizing the binary cross-entropy on the validation set; studies are stored by a key of
# their inputs ({func}`qftml.experiments.search_studies`).

# %% tags=["hide-input"]
found = detection.run_search(data, PAR)
print(*found.lines(), sep="\n")
display(readable(found.best[["val", "params", "max kernel", "published", "spec"]]))  # noqa: F821
readable(found.by_kernel)

# %% [markdown]
# The tables list the best completed trial of each family (its validation loss, size,
# largest kernel, and whether it is the source's winner), and whether the completed trials
# with only $1\times 1$ kernels did worse than those with a larger kernel, family by family.
#
# ## Retraining: instances of each winner
#
# We retrain the source's winner of each family and, where the profile's `retrain_search`
# asks for it (`paper`), the best architecture of our search from scratch, several times with
# different seeds (weights and mini-batch order; {func}`qftml.tasks.detection.retrain`). The
# validation loss of every instance during training: a run that learns the task does so
# abruptly, the loss sitting on a plateau, then falling by orders of magnitude within a few
# epochs once the network has found a divergence (hence the budget's long patience):

# %% tags=["hide-input"]
R = detection.retrain(data, found.specs, PAR)
print(*R.lines(), sep="\n")
fig, ax = plt.subplots(figsize=(7, 3.8))
figures.val_loss_curves(ax, R)
plt.show()
readable(R.validation()[["val", "epochs", "val accuracy"]])

# %% [markdown]
# ## Test accuracy per parameter point and lattice
#
# For every instance and test set the accuracy is the fraction of configurations classified
# correctly at threshold $1/2$. FL networks cannot run on lattices other than $8\times 8$.

# %% tags=["hide-input"]
fig, axes = plt.subplots(len(R.labels), 1, figsize=(10, 1.9 * len(R.labels) + 0.6),
                         constrained_layout=True, squeeze=False)  # fmt: skip
for ax, label in zip(axes[:, 0], R.labels, strict=True):
    im = figures.accuracy_map(ax, R, label, D["train"]["points"])
axes[-1, 0].set_xlabel(r"test point $(\eta, \mu)$; red: training lattice and point")
fig.colorbar(im, ax=axes[:, 0], label="accuracy: mean (minimum) over instances", shrink=0.6)
plt.show()

# %% [markdown]
# Averaged over the nine parameter points, per lattice size: mean and standard deviation
# over instances, the best instance, and the worst single test set of any instance.

# %% tags=["hide-input"]
verdict = detection.family_verdict(R.accuracy, data.lattices, alpha=PAR.alpha)
print(*verdict.lines(), f"({profile} profile)", sep="\n")
readable(R.summary())

# %% [markdown]
# The source shows its task-2 results as a figure only, so there are no published numbers to
# compare with; its claim that EQ architectures are the reliable choice across tasks and
# lattice sizes {cite}`Favoni:2021talk,Bulusu:2021njs` is what the verdict lines test.
#
# ## How many configurations does it take?
#
# The source trains on $N_\text{train} = 4000$ configurations {cite}`Favoni:2021talk`. We
# retrain the published EQ and ST winners, with the same budget and seeds, on nested
# subsets of the training set, balanced between valid and violated configurations
# ({func}`qftml.experiments.nested_subsets`), and measure the validation accuracy on
# $8\times 8$ and the mean test accuracy over the nine parameter points of the largest
# lattice. The full training set is the right-most point (the instances above).

# %% tags=["hide-input"]
curve = detection.data_size_curve(data, R, PAR)
small, large = data.lattices[0], data.lattices[-1]
n_large = int((data.points["lattice"] == large).sum())
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
figures.data_size_panel(axes[0], curve, "val", f"validation, {small}")
figures.data_size_panel(axes[1], curve, "large", f"test, {large} ({n_large} points)")
axes[0].set_ylabel("accuracy (dots: instances)")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()
print(*curve.lines(small), sep="\n")
readable(curve.summary())

# %% [markdown]
# An instance that finds the divergence classifies every lattice correctly; one that is
# perfect on the $8\times 8$ validation set but not on the largest lattice has found a rule
# that works only at the training volume.
#
# ## Max or average: how the global pooling scales with the lattice
#
# An argument, checked against the trained models below: two violating sites among $V$ are a
# signal of relative size $2/V$ in a global *average*, so a threshold set on $8\times 8$
# would be missed on $64\times 64$, where they weigh 64 times less; a global *maximum*
# responds to the most violated site whatever the volume, like the hand-set detector. The
# global pooling of each architecture, and every instance with validation accuracy at least
# 0.95 with its accuracy per lattice:

# %% tags=["hide-input"]
print(*detection.pooling_check(R, PAR.good).lines(), sep="\n")

# %% [markdown]
# ## Feature maps of the first convolution
#
# What do the trained networks compute first? We take a valid test configuration at the
# second training point on the training lattice, insert one open worm, and show the output of
# the first convolution (after its LeakyReLU) of the best EQ and the best ST instance (by
# validation loss), next to the divergence. The dashed squares mark the sites where the
# exact stencil responds (each worm end shifted by one site down and left, see above).

# %% tags=["hide-input"]
maps = detection.feature_maps(data, R, PAR, D["train"]["points"][-1])
n_show = PAR.feature_channels
fig, axes = plt.subplots(2, n_show + 1, figsize=(2.1 * (n_show + 1), 4.8), constrained_layout=True)
for r, fam in enumerate(maps.models):
    figures.divergence_panel(axes[r, 0], maps, fam, title=r == 0)
    for j in range(n_show):
        figures.feature_map_panel(axes[r, j + 1], maps, fam, j)
fig.suptitle("first convolution + LeakyReLU on a configuration with one open worm "
             "(channels most changed by the worm)", fontsize=10)  # fmt: skip
plt.show()
print(*maps.lines(), sep="\n")

# %% [markdown]
# A worm changes $k$ along its whole path, so a generic $2\times 2$ filter responds along it;
# only a filter that computes the divergence responds at the two ends alone (share 1, the
# hand-set detector). A share below 1 does not mean the model fails (later layers can still
# combine channels into a divergence), only that its first layer does not compute it.
#
# ## Summary
#
# - Detecting a flux violation means computing a divergence, which involves links of three
#   sites in one plaquette: an EQ network needs a kernel of at least $2\times 2$, and with
#   one it solves the task exactly on every lattice (the hand-set detector).
# - FL networks are confined to the training lattice; a trained network that finds the
#   divergence classifies every lattice correctly, and whether it finds it depends on the
#   number of training configurations (the data-size curve).
#
# **Next:** {ref}`chap-task3` counts the violations instead of detecting them.
