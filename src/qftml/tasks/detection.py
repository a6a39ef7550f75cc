"""Task 2, detecting flux violations: the analysis of its chapter, with computed verdicts.

A configuration of the dual variables is *valid* when the divergence
``(div k)(y) = k_{y,1} - k_{y-1hat,1} + k_{y,2} - k_{y-2hat,2}`` vanishes at every site
:cite:p:`Gattringer:2012df`; half of the task's configurations carry one open worm, which
breaks the law at its two ends :cite:p:`Bulusu:2021njs`. The chapter's checks and verdicts:

- :func:`stencil_check`: the fixed 2 × 2 kernel :func:`qftml.nets.divergence_kernel` equals
  :func:`qftml.lattice.divergence` (shifted by one site) on a whole data set (``exact``).
- :func:`shuffle_check`: a network of 1 × 1 convolutions and a global pooling is a function
  of the *set* of site values, so shuffling the sites of a valid configuration, which breaks
  the law almost surely, leaves its output unchanged (``blind``).
- :func:`hand_detector`: the hand-set EQ network :func:`qftml.nets.flux_network` classifies
  every test set exactly (``exact``).
- :func:`run_search` and :func:`retrain`: the optuna search per family and the instances of
  the winners (:func:`qftml.experiments.run_grid`), with the accuracy per instance, lattice
  and parameter point.
- :func:`stored`: the ``paper`` profile's instances of the published winners from the
  results store (:mod:`qftml.results`, ``task2-detection``), with the same tables and
  verdicts as a live retraining.
- :func:`family_verdict`: the best EQ and ST architecture on the largest lattice, and whether
  the published EQ winner's error ``1 - accuracy`` there is smaller than the published ST
  winner's: one-sided Mann-Whitney test (:func:`qftml.experiments.compare`) at ``alpha``.
  With ``n`` instances each the smallest attainable ``p`` is ``1 / binom(2n, n)`` (0.05 for
  three), so a small run cannot establish the ordering however clear it is.
- :func:`data_size_curve`: the accuracy against ``N_train``; an instance *solves* the task
  when both its validation accuracy and its mean accuracy on the largest lattice reach
  ``solved`` (0.99).
- :func:`pooling_check`: which global pooling each architecture has (a global average dilutes
  the two violating sites by ``2 / V``, a global maximum does not), and the accuracy per
  lattice of every instance with a validation accuracy of at least ``good`` (0.95).
- :func:`feature_maps`: the first convolution (after its activation) of the best EQ and ST
  instances on a configuration with one inserted worm; ``end_share`` is the share of the
  change the worm causes that sits on the two stencil sites of its ends (1 for the
  divergence itself).

Entry points take the chapter's parameters (:class:`Params`) and data (:class:`Data`) as
values and return dataclasses of pandas tables and arrays; each has ``lines()``, the verdicts
as sentences with their numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import experiments, nets, search, training
from ..lattice import divergence, n_violations
from .searches import (  # noqa: F401 (re-exported: the chapter calls its task module)
    PARAMETER_BOUND,
    SizeVerdict,
    size_verdict,
    space_share,
)

__all__ = [
    "FAMILIES",
    "Data",
    "DataSizeCurve",
    "FamilyVerdict",
    "FeatureMaps",
    "FirstLayer",
    "HandDetector",
    "Params",
    "PoolingCheck",
    "Retraining",
    "Stored",
    "SearchResult",
    "ShuffleCheck",
    "StencilCheck",
    "accuracy_summary",
    "assess",
    "best_instance",
    "data_size_curve",
    "end_share",
    "family_verdict",
    "feature_maps",
    "first_maps",
    "global_pooling",
    "hand_detector",
    "kernels",
    "one_by_one_spec",
    "pooling_check",
    "prepare",
    "readable",
    "retrain",
    "stored",
    "run_search",
    "kernel_comparison",
    "stored_search",
    "search_result",
    "shuffle_check",
    "solved_counts",
    "stencil_check",
]

FAMILIES = ("EQ", "ST", "FL")


def readable(table, digits: int = 3):
    """``table`` for reading: every number to ``digits`` significant digits, whole numbers
    (counts, parameters) in full, NaN as ``n/a``; other cells unchanged."""

    def fmt(v):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            return v
        if not np.isfinite(v):
            return "n/a"
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.{digits}g}"

    return table.map(fmt)


# --------------------------------------------------------------------------------------------
# Parameters and data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the ``09_task2_detection`` section of ``profiles.yml``)."""

    seed: int
    instances: int  # retrained instances (seeds 0 .. instances - 1) per architecture
    budget: dict  # qftml.training.Budget fields of the retraining
    search: dict  # n_trials, jobs and budget (overrides of ``budget``) per family
    curve_sizes: tuple = ()  # smaller training-set sizes of the data-size curve
    example_worm_length: tuple = (4, 8)  # (min, max) steps of the worm in the feature maps
    feature_channels: int = 5  # feature maps shown per model
    alpha: float = 0.05  # level of the family comparison
    solved: float = 0.99  # accuracy that counts as solving the task
    good: float = 0.95  # validation accuracy of the instances listed by pooling_check
    retrain_search: bool = True  # retrain the search's winners beside the published ones

    @classmethod
    def from_dict(cls, params: Mapping) -> Params:
        """From a profile section; keys that are not fields (``reads``, ...) are ignored."""
        known = {k: v for k, v in params.items() if k in cls.__dataclass_fields__}
        for k in ("curve_sizes", "example_worm_length"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)

    @property
    def train_budget(self) -> training.Budget:
        return training.Budget.from_params(dict(self.budget))

    @property
    def search_budget(self) -> training.Budget:
        return training.Budget.from_params({**self.budget, **self.search.get("budget", {})})


@dataclass
class Data:
    """The task's training, validation and test data, the test sets named per point."""

    train: object  # qftml.datasets.TaskData
    val: object
    by_lattice: dict  # lattice -> TaskData of the test split
    tests: dict  # "8x8 eta=4.25 mu=1" -> (X, y)
    points: object  # DataFrame: test, lattice, eta, mu, n
    lattices: list  # test lattices, in profile order (the first is the training lattice)
    train_points: list  # sorted (eta, mu) of the training set

    @property
    def task(self) -> training.Task:
        """One output, binary cross-entropy, on the training lattice."""
        nt, nx = self.train.k.shape[-2:]
        return training.Task(n_out=1, lattice=(int(nt), int(nx)), loss="bce")

    def lines(self) -> list[str]:
        p = self.points
        return [
            f"training:   {len(self.train)} configurations ({self.train.targets.mean():.2f} "
            f"violated) at (eta, mu) = {self.train_points}",
            f"validation: {len(self.val)} configurations ({self.val.targets.mean():.2f} violated)",
            f"test:       {len(p)} sets ({len(self.lattices)} lattices x "
            f"{len(p) // len(self.lattices)} points), {p['n'].sum()} configurations, "
            f"{p['n'].min()} to {p['n'].max()} per set",
        ]


def prepare(train, val, by_lattice: Mapping) -> Data:
    """:class:`Data` from the loaded splits; one test set per lattice and ``(eta, mu)``."""
    import pandas as pd

    tests, points = {}, []
    for lat, d in by_lattice.items():
        for (eta, mu), sub in d.groups("eta", "mu"):
            name = f"{lat} eta={eta:g} mu={mu:g}"
            tests[name] = sub.xy
            points.append({"test": name, "lattice": lat, "eta": eta, "mu": mu, "n": len(sub)})
    train_points = sorted(
        {(float(e), float(m)) for e, m in zip(train.meta["eta"], train.meta["mu"], strict=True)}
    )
    return Data(
        train, val, dict(by_lattice), tests, pd.DataFrame(points), list(by_lattice), train_points
    )


# --------------------------------------------------------------------------------------------
# What a network has to compute
# --------------------------------------------------------------------------------------------


@dataclass
class StencilCheck:
    """The 2 × 2 divergence kernel against the lattice divergence on a data set."""

    kernel: np.ndarray  # (2, 2, 2): the weights on the channels k_space, k_time
    max_error: float  # max |conv - roll(div k, (-1, -1))| over the data
    violations: list  # distinct numbers of sites with div k != 0 per violated configuration
    exact: bool  # max_error below float32 rounding

    def lines(self) -> list[str]:
        return [
            "2x2 kernel (channels k_space, k_time):",
            str(self.kernel),
            f"max |conv - divergence| over the training set: {self.max_error:g}",
            f"sites with nonzero divergence per violated configuration: {self.violations}",
            f"the 2x2 convolution is the divergence: {self.exact}",
        ]


def stencil_check(data, kernel: torch.Tensor | None = None) -> StencilCheck:
    """Apply ``Conv*(2x2, 4, 1)`` holding ``kernel`` (default
    :func:`qftml.nets.divergence_kernel`) to ``data``.

    With periodic padding it reads the window to the upper right of each site, so its
    output at ``(t, x)`` is ``div k (t + 1, x + 1)``.
    """
    kernel = nets.divergence_kernel() if kernel is None else kernel
    stencil = nets.from_spec("Conv*(2x2, 4, 1)")
    with torch.no_grad():
        stencil.net[0].weight.copy_(kernel)
        conv = stencil(data.x)[:, 0].numpy()
    exact = np.roll(divergence(data.k), (-1, -1), axis=(-2, -1))
    err = float(np.abs(conv - exact).max()) if len(data) else 0.0
    bad = data.k[data.targets[:, 0] == 1]
    counts = sorted(set(n_violations(bad).tolist())) if len(bad) else []
    return StencilCheck(kernel[0, :2].numpy(), err, counts, err < 1e-4)


@dataclass
class ShuffleCheck:
    """A network of 1 × 1 kernels on valid configurations and on their shuffled sites."""

    n_valid: int
    violated_fraction: float  # of the shuffled configurations, violating the law
    change: float  # largest |f(shuffled) - f(valid)| of the network (float64)
    blind: bool  # change below float64 rounding: the network cannot see the law

    def lines(self) -> list[str]:
        return [
            f"valid configurations: {self.n_valid}; violated after shuffling their sites: "
            f"{self.violated_fraction:.3f}",
            f"largest output change of the 1x1 network under the shuffle: {self.change:.1e}",
            f"the 1x1 network is blind to the shuffle: {self.blind}",
        ]


def one_by_one_spec() -> str:
    """The published task-2 EQ winner with its 2 × 2 kernel replaced by 1 × 1."""
    return nets.published(2, "EQ").spec.replace("Conv(2x2", "Conv(1x1")


def shuffle_check(data, seed: int, spec: str | None = None) -> ShuffleCheck:
    """Shuffle the sites of the valid configurations of ``data`` (one random permutation
    per configuration, all four channels alike) and compare a network of ``spec``
    (default :func:`one_by_one_spec`, initialised with ``seed``) before and after."""
    valid = data.select(data.targets[:, 0] == 0)
    x = valid.x.double()
    n_sites = x.shape[-2] * x.shape[-1]
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.stack([torch.randperm(n_sites, generator=gen) for _ in range(len(valid))])
    xs = torch.gather(x.flatten(-2), 2, perm[:, None, :].expand(-1, x.shape[1], -1))
    xs = xs.reshape(x.shape)
    k_shuffled = xs[:, :2].round().long().numpy()
    model = nets.from_spec(spec or one_by_one_spec(), seed=int(seed)).double()
    with torch.no_grad():
        change = float((model(xs) - model(x)).abs().max())
    frac = float((n_violations(k_shuffled) > 0).mean())
    return ShuffleCheck(len(valid), frac, change, change < 1e-9)


@dataclass
class HandDetector:
    """The hand-set detector :func:`qftml.nets.flux_network` on every test set."""

    table: object  # DataFrame: test, accuracy, loss, lattice, eta, mu, n
    by_lattice: object  # DataFrame: min and max of accuracy and loss per lattice
    exact: bool  # accuracy 1 on every test set

    def lines(self) -> list[str]:
        return [f"hand-set detector exact on every test set: {self.exact}"]


def hand_detector(data: Data) -> HandDetector:
    """Accuracy and loss of ``flux_network("detector")`` per test set of ``data``."""
    import pandas as pd

    detector = nets.flux_network("detector")
    rows = []
    for name, xy in data.tests.items():
        m = training.evaluate(detector, xy, loss="bce")
        rows.append({"test": name, "accuracy": m["accuracy"], "loss": m["loss"]})
    table = pd.DataFrame(rows).merge(data.points, on="test")
    by_lat = table.groupby("lattice", sort=False)[["accuracy", "loss"]].agg(["min", "max"])
    return HandDetector(table, by_lat, bool((table["accuracy"] == 1).all()))


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


def kernels(spec: str) -> list[int]:
    """Kernel sizes of the convolutions of ``spec``, in order."""
    return [la.kernel for la in nets.parse_spec(spec) if la.kind == "Conv"]


def global_pooling(spec: str) -> str:
    """The layer that pools the lattice away: ``GlobalMaxPool``, ``GlobalAvgPool``, ...,
    or ``Flatten``."""
    for la in nets.parse_spec(spec):
        if la.kind.startswith("Global") or la.kind == "Flatten":
            return la.kind
    raise ValueError(f"spec has no global pooling and no Flatten: {spec!r}")


@dataclass
class SearchResult:
    """Completed trials of the studies, the best one per family, 1 × 1 against larger kernels."""

    studies: dict
    trials: object  # DataFrame: family, trial, val, spec, max kernel, params, published, kernel
    best: object  # DataFrame indexed by family: the best completed trial
    by_kernel: object  # DataFrame: min validation loss and count per family and kernel class
    larger_kernel_wins: dict  # family -> best trial with a kernel >= 2 beats all-1x1 (or None)

    @property
    def counts(self) -> dict:
        return self.trials.groupby("family", sort=False).size().to_dict()

    @property
    def specs(self) -> dict:
        """Architectures to retrain: each family's published winner and, where it differs,
        the best of the search (``"<family> published"``, ``"<family> search"``)."""
        out = {f"{fam} published": nets.published(2, fam).spec for fam in self.best.index}
        for fam in self.best.index:
            if self.best.loc[fam, "spec"] != out[f"{fam} published"]:
                out[f"{fam} search"] = self.best.loc[fam, "spec"]
        return out

    def lines(self) -> list[str]:
        return [
            f"completed trials per family: {self.counts}",
            "best trial with a kernel >= 2 below the best all-1x1 trial (None: one kind "
            f"missing): {self.larger_kernel_wins}",
        ]


def search_result(studies: Mapping) -> SearchResult:
    """Tables of the completed trials (with a spec) of ``{family: optuna study}``."""
    import pandas as pd

    rows = []
    for fam, study in studies.items():
        for t in search.finished_trials(study):
            if t.state.name == "COMPLETE" and "spec" in t.user_attrs:
                spec = t.user_attrs["spec"]
                rows.append({"family": fam, "trial": t.number, "val": t.value, "spec": spec,
                             "max kernel": max(kernels(spec)), "params": t.user_attrs["n_params"],
                             "published": bool(t.user_attrs.get("enqueued"))})  # fmt: skip
    cols = ["family", "trial", "val", "spec", "max kernel", "params", "published"]
    trials = pd.DataFrame(rows, columns=cols)
    if trials.empty:
        raise ValueError("no completed trial with a spec in the studies")
    trials["kernel"] = np.where(trials["max kernel"] > 1, "some kernel >= 2", "all 1x1")
    best = trials.loc[trials.groupby("family", sort=False)["val"].idxmin()].set_index("family")
    by_kernel = trials.pivot_table(
        index="family", columns="kernel", values="val", aggfunc=["min", "count"]
    )
    wins = {}
    for fam, sub in trials.groupby("family", sort=False):
        lo = sub.groupby("kernel")["val"].min()
        both = {"all 1x1", "some kernel >= 2"} <= set(lo.index)
        wins[fam] = bool(lo["some kernel >= 2"] < lo["all 1x1"]) if both else None
    return SearchResult(dict(studies), trials, best, by_kernel, wins)


def stored_search(profile: str = "paper", root=None):
    """The results store's task-2 architecture search that matches today's code and data
    (:func:`qftml.search_store.load`, experiment ``task2-search``)."""
    from .. import search_store

    return search_store.load(profile, root, experiment="task2-search")


def kernel_comparison(studies: Mapping):
    """Per family and kernel class (``"all 1x1"``, ``"some kernel >= 2"``): how many
    architectures were trained (completed or pruned), how many completed, and the lowest
    validation loss any of them reached (a pruned trial at its best report before it was
    stopped). Unlike :func:`search_result`, which compares completed trials only, this counts
    the 1x1 networks the pruner stopped, the usual fate of a network that cannot see the
    divergence."""
    import pandas as pd
    from optuna.trial import TrialState

    rows = []
    for fam, study in studies.items():
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if "spec" not in t.user_attrs or not t.intermediate_values:
                continue
            wide = max(kernels(t.user_attrs["spec"])) > 1
            rows.append({
                "family": fam,
                "kernel": "some kernel >= 2" if wide else "all 1x1",
                "completed": t.state == TrialState.COMPLETE,
                "lowest val loss": min(t.intermediate_values.values()),
            })  # fmt: skip
    if not rows:
        raise ValueError("no trained trial with a spec in the studies")
    trials = pd.DataFrame(rows)
    out = trials.groupby(["family", "kernel"], sort=False).agg(
        trained=("completed", "size"), completed=("completed", "sum"),
        **{"lowest val loss": ("lowest val loss", "min")},
    )  # fmt: skip
    return out.astype({"trained": int, "completed": int})


def run_search(data: Data, params: Params, *, families: Sequence[str] = FAMILIES):
    """Run (or load) one optuna study per family, the published winner enqueued first
    (:func:`qftml.experiments.search_studies`); the :func:`search_result` of the studies."""
    s = params.search
    studies = experiments.search_studies(
        families, data.train.xy, data.val.xy, task=data.task, budget=params.search_budget,
        n_trials=s["n_trials"], seed=params.seed, jobs=s.get("jobs", 1), prefix="task2",
        enqueue={fam: [nets.published(2, fam).spec] for fam in families},
    )  # fmt: skip
    return search_result(studies)


# --------------------------------------------------------------------------------------------
# Instances and their accuracy
# --------------------------------------------------------------------------------------------


class _AccuracyTable:
    """What :class:`Retraining` and :class:`Stored` read off their long ``accuracy`` table
    (columns ``label, seed, lattice, eta, mu, accuracy``) over ``lattices`` and ``labels``."""

    def accuracy_grid(self, label: str):
        """``(mean, minimum)`` accuracy over instances, lattice (rows) x ``(eta, mu)``."""
        sub = self.accuracy[self.accuracy["label"] == label]
        kw = dict(index="lattice", columns=["eta", "mu"], values="accuracy")
        mean = sub.pivot_table(aggfunc="mean", **kw).reindex(self.lattices)
        lo = sub.pivot_table(aggfunc="min", **kw).reindex(self.lattices)
        return mean, lo

    def summary(self):
        """:func:`accuracy_summary` of these instances."""
        return accuracy_summary(self.accuracy, self.labels, self.lattices)


@dataclass
class Retraining(_AccuracyTable):
    """Instances of each architecture and their accuracy on every test set."""

    specs: dict  # label -> spec
    table: object  # DataFrame: run_grid's rows plus "val accuracy"
    instances: list  # qftml.experiments.Instance, in the table's order
    accuracy: object  # DataFrame: label, family, seed, test, accuracy, lattice, eta, mu, n
    lattices: list

    @property
    def labels(self) -> list[str]:
        return list(self.specs)

    @property
    def per_instance(self):
        """Mean accuracy over the parameter points, per label, lattice and seed (Series)."""
        return self.accuracy.groupby(["label", "lattice", "seed"], sort=False)["accuracy"].mean()

    def validation(self):
        """Per label: validation loss (mean, min, max), epochs (mean), validation accuracy
        (min, median, max) over instances."""
        import pandas as pd

        g = self.table.groupby("label", sort=False)
        out = g.agg({"val": ["mean", "min", "max"], "epochs": ["mean"]})
        acc = g["val accuracy"].agg(["min", "median", "max"])
        acc.columns = pd.MultiIndex.from_product([["val accuracy"], acc.columns])
        return out.join(acc).reindex(self.labels)

    def lines(self) -> list[str]:
        t = self.table
        return [
            f"{len(self.instances)} instances ({int(t['cached'].sum())} from the cache), "
            f"{t['train_seconds'].sum():.0f} s of training"
        ]


def assess(specs: Mapping, table, instances: Sequence, data: Data) -> Retraining:
    """The validation accuracy of every instance (column ``"val accuracy"``) and its
    accuracy (threshold 1/2) on every test set; NaN where a model cannot run (FL)."""
    import pandas as pd

    task = data.task
    table = table.copy()
    val_acc, rows = [], []
    for (_, row), inst in zip(table.iterrows(), instances, strict=True):
        m = experiments.evaluate_instance(inst, {"val": data.val.xy}, task=task)["val"]
        val_acc.append(m["accuracy"])
        for name, m in experiments.evaluate_instance(inst, data.tests, task=task).items():
            rows.append({"label": row["label"], "family": row["family"], "seed": row["seed"],
                         "test": name, "accuracy": m.get("accuracy", np.nan)})  # fmt: skip
    table["val accuracy"] = val_acc
    cols = ["label", "family", "seed", "test", "accuracy"]
    acc = pd.DataFrame(rows, columns=cols).merge(data.points, on="test")
    return Retraining(dict(specs), table, list(instances), acc, list(data.lattices))


def retrain(data: Data, specs: Mapping, params: Params, *, desc="task 2 instances") -> Retraining:
    """Train (or load) ``params.instances`` instances of every spec on the full training
    set (:func:`qftml.experiments.run_grid`) and :func:`assess` them. Without
    ``params.retrain_search`` only the published winners (labels ``"<family> published"``)
    are retrained."""
    if not params.retrain_search:
        specs = {label: spec for label, spec in specs.items() if label.endswith(" published")}
    table, instances = experiments.run_grid(
        specs, data.train.xy, data.val.xy, data.tests, seeds=range(params.instances),
        task=data.task, budget=params.train_budget, desc=desc,
    )  # fmt: skip
    return assess(specs, table, instances, data)


@dataclass
class Stored(_AccuracyTable):
    """The ``paper`` profile's retraining of the published winners, read from the results
    store (:mod:`qftml.results`, experiment ``task2-detection``)."""

    n: int  # current entries
    planned: int  # instances of the profile's plan
    provenance: dict  # results.provenance_summary
    accuracy: object  # DataFrame: label, family, seed, test, accuracy, lattice, eta, mu
    validation: object  # DataFrame per instance: label, family, seed, val, epochs, val accuracy
    lattices: list
    labels: list
    train_points: list  # (eta, mu) of the training set
    plan: object  # qftml.results.Plan of the experiment in the profile

    @property
    def complete(self) -> bool:
        return self.n == self.planned

    def instances(self) -> dict:
        """Stored instances per label."""
        seeds = self.validation.groupby("label")["seed"].nunique()
        return {label: int(seeds.get(label, 0)) for label in self.labels}

    def verdict(self, alpha: float = 0.05, *, min_seeds: int | None = None) -> FamilyVerdict | None:
        """:func:`family_verdict` on the stored instances, once every label has at least
        ``min_seeds`` (default :data:`qftml.results.MIN_SEEDS`; else None: no comparison is
        attempted on a store just begun)."""
        from ..results import MIN_SEEDS

        need = MIN_SEEDS if min_seeds is None else min_seeds
        if min(self.instances().values(), default=0) < need:
            return None
        return family_verdict(self.accuracy, self.lattices, alpha=alpha)

    def lines(self) -> list[str]:
        from .. import results

        b = self.plan.budget
        return [
            f"plan ({self.plan.profile} profile): {len(self.plan.seeds)} instances of each of "
            f"{', '.join(self.labels)} on N_train = {self.plan.sizes[0]}, at most "
            f"{b.max_epochs} epochs (patience {b.patience}, batch {b.batch_size}, lr {b.lr:g})",
            results.store_line(self.n, self.planned, self.provenance),
            "instances per model: " + ", ".join(f"{k} {v}" for k, v in self.instances().items()),
        ]


def stored(experiment: str = "task2-detection", profile: str = "paper", root=None) -> Stored:
    """The store's current entries of ``experiment`` made with ``profile``: coverage,
    provenance, per-instance validation and the accuracy on every test set."""
    import pandas as pd

    from .. import datasets, results
    from ..datasets.jobs import jobs_for

    n, planned, _ = results.coverage(experiment, profile, root)
    plan = results.plan_task2_detection(profile)
    t = results.point_table(experiment, profile, root)
    cols = ["label", "family", "seed", "test", "accuracy", "lattice", "eta", "mu"]
    if len(t):
        t = t.assign(
            test=[
                f"{lat} eta={e:g} mu={m:g}"
                for lat, e, m in zip(t["lattice"], t["eta"], t["mu"], strict=True)
            ]
        )
        t["accuracy"] = t["accuracy"].astype(float)  # None (FL elsewhere) -> NaN
    acc = t[cols] if len(t) else pd.DataFrame(columns=cols)
    val = pd.DataFrame(
        [{"label": e["instance"]["label"], "family": e["instance"]["family"],
          "seed": e["instance"]["seed"], "val": e["best_val_loss"],
          "epochs": (e["history"]["epoch"] or [0])[-1], "val accuracy": e.get("val_accuracy")}
         for e in results.current_entries(experiment, profile, root)],
        columns=["label", "family", "seed", "val", "epochs", "val accuracy"],
    )  # fmt: skip
    points = sorted({(j.eta, j.mu) for j in jobs_for(2, profile, "train")})
    prov = results.provenance_summary(experiment, profile, root)
    lattices = datasets.lattices(2, profile, "test")
    return Stored(n, planned, prov, acc, val, lattices, list(plan.specs), points, plan)


def accuracy_summary(accuracy, labels: Sequence[str], lattices: Sequence[str]):
    """Per label (rows) and lattice (columns): mean, std and count over instances of the
    accuracy averaged over the parameter points, the best instance, and the worst single
    test set of any instance. A lattice a model cannot run on gives NaN (count 0)."""
    per_inst = accuracy.groupby(["label", "lattice", "seed"], sort=False)["accuracy"].mean()
    g = per_inst.groupby(["label", "lattice"], sort=False)
    summary = g.agg(["mean", "std", "count"])
    summary["best instance"] = g.max()
    summary["worst set"] = accuracy.groupby(["label", "lattice"], sort=False)["accuracy"].min()
    summary = summary.unstack("lattice").reindex(list(labels))
    return summary.reindex(columns=list(lattices), level="lattice")


@dataclass
class FamilyVerdict:
    """EQ against ST (and FL) on the largest and the smallest lattice."""

    alpha: float
    smallest: str
    largest: str
    best: dict  # family -> (label, mean accuracy on the largest, on the smallest lattice)
    fl_small: float  # mean accuracy of FL on the smallest lattice (the only one it runs on)
    comparison: object  # Series: experiments.compare of the published EQ and ST errors
    eq_ahead: bool  # published EQ's error significantly smaller on the largest lattice
    st_ahead: bool = False  # ... or ST's (the same test the other way round)
    p_st: float = math.nan  # the one-sided p-value of "ST's error is smaller"

    def lines(self) -> list[str]:
        out = [
            f"{fam}: best on {self.largest} is '{label}' with mean accuracy {big:.3f} "
            f"(on {self.smallest}: {small:.3f})"
            for fam, (label, big, small) in self.best.items()
        ]
        out.append(
            f"FL on {self.smallest}: mean accuracy {self.fl_small:.3f} (the only lattice it can "
            "run on)"
        )
        c = {k: self.comparison.get(k, math.nan) for k in ("median_a", "median_b", "p_superior",
                                                            "p_value", "p_min")}  # fmt: skip
        out.append(
            f"on {self.largest}, published EQ vs published ST: median error {c['median_a']:.3g} "
            f"vs {c['median_b']:.3g}, P(EQ better) = {c['p_superior']:.2f}, one-sided "
            f"Mann-Whitney p = {c['p_value']:.3g} (smallest attainable {c['p_min']:.3g}): EQ "
            f"ahead at the {100 * self.alpha:g} % level: {self.eq_ahead}; the other way round, "
            f"p = {self.p_st:.3g}: ST ahead: {self.st_ahead}"
        )
        return out


def family_verdict(accuracy, lattices: Sequence[str], *, alpha: float = 0.05) -> FamilyVerdict:
    """Verdicts from the long accuracy table of :class:`Retraining` (module docstring).

    The comparison is like with like, the source's two winners (labels ``"EQ published"``
    and ``"ST published"``), on the error rate ``1 - accuracy`` of each instance averaged
    over the points of the largest lattice.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    missing = [c for c in ("label", "family", "seed", "lattice", "accuracy") if c not in accuracy]
    if missing:
        raise ValueError(f"accuracy table lacks the column(s) {missing}")
    smallest, largest = lattices[0], lattices[-1]
    best = {}
    for fam in ("EQ", "ST"):
        sub = accuracy[accuracy["family"] == fam]
        if sub.empty:
            raise ValueError(f"no instances of {fam} in the table")
        a_small = sub[sub["lattice"] == smallest].groupby("label")["accuracy"].mean()
        a_large = sub[sub["lattice"] == largest].groupby("label")["accuracy"].mean()
        top = a_large.idxmax()
        best[fam] = (top, float(a_large[top]), float(a_small[top]))
    fl = accuracy[(accuracy["family"] == "FL") & (accuracy["lattice"] == smallest)]
    fl_small = float(fl["accuracy"].mean()) if len(fl) else math.nan
    per_inst = accuracy[accuracy["lattice"] == largest]
    per_inst = per_inst.groupby(["label", "seed"], as_index=False)["accuracy"].mean()
    pub = per_inst[per_inst["label"].isin(["EQ published", "ST published"])]
    pub = pub.assign(error=1 - pub["accuracy"])
    c = experiments.compare(pub, [], "label", "EQ published", "ST published", "error").iloc[0]
    r = experiments.compare(pub, [], "label", "ST published", "EQ published", "error").iloc[0]
    ahead = bool(c.get("p_value", math.nan) < alpha)
    p_st = float(r.get("p_value", math.nan))
    return FamilyVerdict(alpha, smallest, largest, best, fl_small, c, ahead, p_st < alpha, p_st)


# --------------------------------------------------------------------------------------------
# Training-set size, pooling
# --------------------------------------------------------------------------------------------


@dataclass
class DataSizeCurve:
    """Validation accuracy and mean accuracy on the largest lattice against ``N_train``."""

    table: object  # DataFrame: label, family, seed, n_train, val, large
    largest: str
    solved_at: float

    @property
    def sizes(self) -> list[int]:
        return sorted(int(n) for n in self.table["n_train"].unique())

    def summary(self):
        """Min, median, max over instances per label and ``N_train``."""
        g = self.table.groupby(["label", "n_train"], sort=False)[["val", "large"]]
        return g.agg(["min", "median", "max"])

    @property
    def solved(self):
        """:func:`solved_counts` of the curve."""
        return solved_counts(self.table, self.solved_at)

    def lines(self, smallest: str = "8x8") -> list[str]:
        return [
            f"{label}, N_train = {n}: {r['sum']} of {r['count']} instances reach accuracy >= "
            f"{self.solved_at:g} on {smallest} validation and on {self.largest}"
            for (label, n), r in self.solved.iterrows()
        ]


def solved_counts(curve, threshold: float = 0.99):
    """Per label and ``N_train``: how many instances (``sum`` of ``count``) reach
    ``threshold`` in both ``val`` and ``large``."""
    ok = (curve["val"] >= threshold) & (curve["large"] >= threshold)
    return curve.assign(solved=ok).groupby(["label", "n_train"])["solved"].agg(["sum", "count"])


def data_size_curve(
    data: Data,
    retraining: Retraining,
    params: Params,
    labels: Sequence[str] = ("EQ published", "ST published"),
) -> DataSizeCurve:
    """Retrain ``labels`` on nested subsets of the training set (``params.curve_sizes``
    below the full size, balanced between the classes; same budget and seeds) and measure
    every instance, with the full-set instances of ``retraining`` as the right-most point."""
    import pandas as pd

    specs = {label: retraining.specs[label] for label in labels}
    sizes = [int(m) for m in params.curve_sizes if m < len(data.train)]
    pairs = []
    if sizes:
        table, insts = experiments.run_grid(
            specs, data.train.xy, data.val.xy, sizes=sizes, seeds=range(params.instances),
            task=data.task, budget=params.train_budget, subset_seed=params.seed,
            groups=data.train.targets[:, 0], desc="task 2 data sizes",
        )  # fmt: skip
        pairs.append((table, insts, None))
    pairs.append((retraining.table, retraining.instances, len(data.train)))
    largest = data.lattices[-1]
    large = {n: xy for n, xy in data.tests.items() if n.startswith(f"{largest} ")}
    rows = []
    for table, insts, n_full in pairs:
        for (_, row), inst in zip(table.iterrows(), insts, strict=True):
            if row["label"] not in specs:
                continue
            m_val = experiments.evaluate_instance(inst, {"val": data.val.xy}, task=data.task)
            m_big = experiments.evaluate_instance(inst, large, task=data.task)
            rows.append({"label": row["label"], "family": row["family"], "seed": row["seed"],
                         "n_train": n_full or row["n_train"], "val": m_val["val"]["accuracy"],
                         "large": np.mean([m["accuracy"] for m in m_big.values()])})  # fmt: skip
    curve = pd.DataFrame(rows).sort_values(["label", "n_train", "seed"], ignore_index=True)
    return DataSizeCurve(curve, largest, params.solved)


@dataclass
class PoolingCheck:
    """The global pooling of each architecture and the instances that learnt the task."""

    pooling: dict  # label -> GlobalMaxPool, GlobalAvgPool, ... or Flatten
    has_avg: bool  # a global average pooling is among the trained models
    has_max: bool  # a global max pooling is among the trained models
    good: object  # DataFrame: label, seed, pooling, val accuracy and accuracy per lattice
    threshold: float

    def lines(self) -> list[str]:
        out = [
            f"global pooling: {self.pooling}",
            f"a global average pooling is among the trained models: {self.has_avg} - a global "
            f"max pooling: {self.has_max}",
        ]
        if self.good.empty:
            out.append(
                f"no instance reached a validation accuracy of {self.threshold:g} in this run"
            )
        lats = [
            c for c in self.good.columns if c not in ("label", "seed", "pooling", "val accuracy")
        ]
        for _, r in self.good.iterrows():
            accs = ", ".join(f"{lat} {r[lat]:.3f}" for lat in lats if np.isfinite(r[lat]))
            out.append(f"{r['label']} seed {r['seed']} ({r['pooling']}): validation accuracy "
                       f"{r['val accuracy']:.3f}; test accuracy {accs}")  # fmt: skip
        return out


def pooling_check(retraining: Retraining, threshold: float = 0.95) -> PoolingCheck:
    """:func:`global_pooling` per label, and each instance with a validation accuracy of at
    least ``threshold`` with its mean accuracy per lattice."""
    import pandas as pd

    pooling = {label: global_pooling(spec) for label, spec in retraining.specs.items()}
    kinds = set(pooling.values())
    t = retraining.table
    good = t[t["val accuracy"] >= threshold][["label", "seed", "val accuracy"]]
    by_lat = retraining.per_instance.unstack("lattice").reindex(columns=retraining.lattices)
    rows = []
    for _, r in good.iterrows():
        accs = by_lat.loc[(r["label"], r["seed"])]
        rows.append({"label": r["label"], "seed": r["seed"], "pooling": pooling[r["label"]],
                     "val accuracy": r["val accuracy"], **accs.to_dict()})  # fmt: skip
    cols = ["label", "seed", "pooling", "val accuracy", *retraining.lattices]
    return PoolingCheck(
        pooling, "GlobalAvgPool" in kinds, "GlobalMaxPool" in kinds,
        pd.DataFrame(rows, columns=cols), threshold,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Feature maps
# --------------------------------------------------------------------------------------------


def best_instance(retraining: Retraining, family: str):
    """``(label, seed, model)`` of the instance of ``family`` with the lowest validation loss."""
    t = retraining.table.reset_index(drop=True)
    sub = t[t["family"] == family]
    if sub.empty:
        raise ValueError(f"no instance of {family} in the table")
    i = sub["val"].idxmin()
    return t.loc[i, "label"], int(t.loc[i, "seed"]), retraining.instances[i].model


def first_maps(model, x) -> np.ndarray:
    """Output of the first convolution and its activation, ``(channels, N_t, N_x)``."""
    with torch.no_grad():
        return model.net[:2](x)[0].numpy()


def end_share(delta: np.ndarray, marks: Sequence[tuple]) -> float:
    """Share of ``delta`` (``(channels, N_t, N_x)``, non-negative) on the sites ``marks``;
    NaN if ``delta`` vanishes."""
    total = float(delta.sum())
    if total <= 0:
        return math.nan
    return float(sum(delta[:, t, x].sum() for t, x in set(marks))) / total


@dataclass
class FirstLayer:
    """The first layer of one model on the example with and without the worm."""

    label: str
    seed: int
    maps: np.ndarray  # (channels, N_t, N_x) with the worm
    delta: np.ndarray  # |maps with the worm - maps without|
    order: list  # channels by decreasing change, the first n_show
    end_share: float


@dataclass
class FeatureMaps:
    """A valid configuration with one inserted worm and the first layers that see it."""

    point: tuple  # (eta, mu) of the example
    divergence: np.ndarray  # div k of the configuration with the worm, (N_t, N_x)
    ends: list  # (t, x) of the worm's source and sink
    marks: list  # (t, x) where the 2x2 stencil responds to them: each end shifted by -1, -1
    models: dict  # family -> FirstLayer
    hand_share: float  # end_share of the hand-set detector (1: the divergence)

    def lines(self) -> list[str]:
        out = [
            f"{fam}: share of the change |f(with worm) - f(without)| of the first layer that "
            f"sits on the two stencil sites of the worm's ends: {m.end_share:.2f}"
            for fam, m in self.models.items()
        ]
        return [*out, f"hand-set detector: {self.hand_share:.2f}"]


def feature_maps(
    data: Data,
    retraining: Retraining,
    params: Params,
    point: tuple,
    families: Sequence[str] = ("EQ", "ST"),
) -> FeatureMaps:
    """Insert one worm (``params.example_worm_length``, drawn with ``params.seed``) into the
    first valid test configuration at ``point = (eta, mu)`` on the training lattice and
    compare the first layer of the best instance of each family with and without it."""
    from ..datasets import encode, insert_worms

    ex = data.by_lattice[data.lattices[0]].where(eta=point[0], mu=point[1])
    ex = ex.select(ex.targets[:, 0] == 0)
    if not len(ex):
        raise ValueError(f"no valid test configuration at (eta, mu) = {tuple(point)}")
    rng = np.random.default_rng(params.seed)
    ins = insert_worms(ex.k[0], 1, rng, length=tuple(params.example_worm_length))
    x0 = encode(ex.k[0], ex.l[0])[None]
    x1 = encode(ins.k, ex.l[0])[None]
    ends = [tuple(int(v) for v in ins.sources[0, 1:]), tuple(int(v) for v in ins.sinks[0, 1:])]
    nt, nx = ex.k.shape[-2:]
    marks = [((t - 1) % nt, (x - 1) % nx) for t, x in ends]
    models = {}
    for fam in families:
        label, seed, model = best_instance(retraining, fam)
        f1, f0 = first_maps(model, x1), first_maps(model, x0)
        delta = np.abs(f1 - f0)
        order = [int(c) for c in np.argsort(-delta.sum(axis=(1, 2)))[: params.feature_channels]]
        models[fam] = FirstLayer(label, seed, f1, delta, order, end_share(delta, marks))
    detector = nets.flux_network("detector")
    hand = np.abs(first_maps(detector, x1) - first_maps(detector, x0))
    return FeatureMaps(tuple(point), divergence(ins.k), ends, marks, models, end_share(hand, marks))
