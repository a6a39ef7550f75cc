"""Task 3, counting flux violations: the number of worms, computed, learnt and compared.

:cite:p:`Bulusu:2021njs` trains networks on ``8x8`` configurations with 0 and 5 open worms
and tests them on every combination of lattice, parameter point ``(eta, mu)`` and worm
count ``W = 0..10``. The label is ``W = sum_x |div k(x)| / 2``: worms never share an end,
so ``W`` worms leave ``2 W`` sites with ``|div k| = 1`` (:func:`qftml.datasets.insert_worms`).

The verdicts, each a boolean with the numbers behind it:

- :func:`check_data`: every configuration has ``max |div k| <= 1`` and its label equals
  its worm count and ``sum_x |div k| / 2``.
- :func:`counter_losses`: the hand-set bias-free EQ counter
  (:func:`qftml.nets.flux_network` ``"counter"``) is *exact*: its MSE on every test
  combination is below ``1e-20`` (double-precision round-off), so a loss of zero is
  reachable and a trained network's loss measures only what it failed to learn.
- :func:`compare_with_source`: per table (the source's, ours), the models with a linear
  head after the global sum (:func:`qftml.nets.is_extensive`) have a lower median test loss
  on the largest lattices than those with a nonlinear head, and whether ours orders them as
  the source does; per model, whether our median test loss up to the largest lattice is
  within a factor ``10`` of the source's, ``1/10 < L_ours / L_source < 10``.
- :func:`explained_variance`: a model has *learnt* to count when its median instance
  explains more than 90 % of the variance of the validation labels,
  ``1 - L_val / Var(y) > 0.9`` (0: no better than a constant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import experiments, nets, training
from ..datasets.jobs import parse_lattice
from ..lattice import divergence

__all__ = [
    "FAMILIES",
    "SOURCE",
    "TASK",
    "CounterResult",
    "DataCheck",
    "Explained",
    "Retrained",
    "SourceComparison",
    "architectures",
    "assemble",
    "check_data",
    "compare_with_source",
    "counter_losses",
    "explained_variance",
    "fmt",
    "label_variance",
    "instance_losses",
    "predict_tests",
    "published",
    "ratio",
    "retrain",
    "source_table",
    "Stored",
    "stored",
]

FAMILIES = ("EQ", "ST", "FL")
#: What the counting networks are for: one output, trained on 8x8, loss = MSE of the count.
TASK = training.Task(n_out=1, lattice=(8, 8), loss="count")
_RANKS = {1: "1st", 2: "2nd", 3: "3rd"}

#: Quoted from the backup slide "Test loss vs validation loss table" of the source talk
#: (Favoni:2021talk): (mean, median) of validation 8x8, test 8x8, test up to 64x64.
SOURCE = {
    "1st EQ": (4.676e-5, 4.137e-5, 2.108e-4, 1.483e-4, 1.008e-3, 8.308e-4),
    "2nd EQ": (1.042e-4, 2.440e-5, 3.525e-4, 8.783e-5, 1.807e-3, 7.936e-4),
    "3rd EQ": (8.992e-3, 3.072e-4, 2.105e-2, 9.163e-4, 1.925, 4.031e-2),
    "1st ST": (2.331e-5, 2.173e-5, 9.438e-3, 3.576e-3, 4.446, 3.026),
    "2nd ST": (8.479e-5, 4.372e-5, 2.545e-4, 9.340e-5, 3.738e-3, 1.171e-3),
    "3rd ST": (2.869e-4, 2.171e-5, 1.676e-2, 1.381e-3, 2.943, 9.580e-1),
    "1st FL": (2.602e-5, 1.787e-5, 7.837e-2, 3.817e-2, math.nan, math.nan),
    "2nd FL": (4.004e-5, 1.117e-5, 5.300e-2, 1.285e-3, math.nan, math.nan),
    "3rd FL": (5.805e-5, 1.031e-5, 6.382e-2, 3.556e-2, math.nan, math.nan),
}


def fmt(value, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, for tables read by people; ``"n/a"``
    where it is missing (NaN or None: a model that cannot run on a lattice)."""
    import pandas as pd

    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def _family(label: str) -> str:
    """The family of a model label such as ``"1st EQ"`` (its last word)."""
    return label.split()[-1]


def _median(values) -> float:
    """Median of ``values``, NaN (without a warning) when there are none."""
    values = np.asarray(values, dtype=float)
    return float(np.median(values)) if values.size else math.nan


# --------------------------------------------------------------------------------------------
# The data and the hand-set counter
# --------------------------------------------------------------------------------------------


@dataclass
class DataCheck:
    """What the stored configurations are, and whether each label is its worm count."""

    n_train: int
    train_worms: list  # worm counts of the training set
    train_labels: list  # distinct training labels
    n_val: int
    n_checked: int  # configurations checked (training, validation, test)
    max_abs_div: int  # the largest |div k| at any site of any configuration
    label_ok: bool  # label = n_worms = sum_x |div k| / 2 for every configuration
    n_test: int
    n_combinations: int  # distinct (lattice, eta, mu, worms) of the test sets
    lattices: list

    @property
    def ok(self) -> bool:
        """No site violates the constraint by more than one unit, and every label is right."""
        return self.max_abs_div <= 1 and self.label_ok

    def lines(self) -> list[str]:
        return [
            f"training:   {self.n_train} configurations, worms {self.train_worms}, "
            f"labels {self.train_labels}",
            f"validation: {self.n_val} configurations",
            f"all {self.n_checked} stored configurations: max |div k| = {self.max_abs_div}; "
            f"label = worms = sum |div k| / 2 everywhere: {self.label_ok}",
            f"test:       {self.n_test} configurations in {self.n_combinations} combinations "
            f"(lattice, eta, mu, worms) on {self.lattices}",
        ]


def check_data(train, val, test: Mapping) -> DataCheck:
    """Check ``label = n_worms = sum_x |div k(x)| / 2`` and ``max |div k| <= 1`` on every
    configuration of ``train``, ``val`` and the ``test`` sets (``{lattice: TaskData}``)."""
    checked = [train, val, *test.values()]
    max_abs_div = max(int(np.abs(divergence(d.k)).max(initial=0)) for d in checked)
    label_ok = all(
        np.array_equal(d.targets[:, 0], d.meta["n_worms"])
        and np.array_equal(np.abs(divergence(d.k)).sum(axis=(-2, -1)), 2 * d.meta["n_worms"])
        for d in checked
    )
    combos = {(lat, *key) for lat, d in test.items() for key, _ in d.groups("eta", "mu", "n_worms")}
    return DataCheck(
        n_train=len(train),
        train_worms=sorted(int(w) for w in set(train.meta["n_worms"])),
        train_labels=np.unique(train.targets).astype(int).tolist(),
        n_val=len(val),
        n_checked=sum(len(d) for d in checked),
        max_abs_div=max_abs_div,
        label_ok=bool(label_ok),
        n_test=sum(len(d) for d in test.values()),
        n_combinations=len(combos),
        lattices=list(test),
    )


@dataclass
class CounterResult:
    """Losses of a fixed counting network on every test combination."""

    losses: object  # DataFrame: lattice, eta, mu, worms, MSE (one row per combination)
    worst: float  # the largest MSE over the combinations
    tol: float
    exact: bool  # worst < tol: zero up to round-off on every combination

    @property
    def by_lattice(self):
        """Number of combinations and largest MSE per lattice."""
        return self.losses.groupby("lattice", sort=False)["MSE"].agg(["count", "max"])

    def lines(self) -> list[str]:
        return [
            f"hand-set counter: {len(self.losses)} test combinations, largest MSE "
            f"{self.worst:.3g}; zero up to double-precision round-off (< {self.tol:g}) on all: "
            f"{self.exact}"
        ]


def counter_losses(test: Mapping, *, model=None, tol: float = 1e-20) -> CounterResult:
    """MSE ``mean (f(x) - W)^2`` of ``model`` (default: the hand-set counter
    :func:`qftml.nets.flux_network` ``("counter")`` in double precision) on each combination
    ``(lattice, eta, mu, worms)`` of the ``test`` sets (``{lattice: TaskData}``)."""
    import pandas as pd

    if model is None:
        model = nets.flux_network("counter", dtype=torch.float64)
    dtype = next(model.parameters()).dtype
    rows = []
    for lat, d in test.items():
        for (eta, mu, worms), sub in d.groups("eta", "mu", "n_worms"):
            with torch.no_grad():
                out = model(sub.x.to(dtype))[:, 0].numpy()
            se = (out - sub.targets[:, 0]) ** 2
            rows.append(dict(lattice=lat, eta=eta, mu=mu, worms=worms, MSE=float(se.mean())))
    losses = pd.DataFrame(rows, columns=["lattice", "eta", "mu", "worms", "MSE"])
    worst = float(losses["MSE"].max()) if len(losses) else math.nan
    return CounterResult(losses, worst, tol, bool(worst < tol))


# --------------------------------------------------------------------------------------------
# The source's winners, retrained
# --------------------------------------------------------------------------------------------


def published() -> dict:
    """The source's nine task-3 winners, ``{"1st EQ": Published, ...}`` in table order."""
    return {f"{_RANKS[e.rank]} {e.family}": e for e in nets.PUBLISHED if e.task == 3}


def architectures(models: Mapping | None = None):
    """Per model (default: :func:`published`): stated parameters, first kernel, whether
    its output is a sum of local terms with a linear head (:func:`qftml.nets.is_extensive`),
    and the spec."""
    import pandas as pd

    rows = [
        {"model": name, "params": e.stated_params,
         "first kernel": nets.parse_spec(e.spec)[0].kernel,
         "linear head after the sum": nets.is_extensive(e.spec), "spec": e.spec}
        for name, e in (models or published()).items()
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index("model")


def predict_tests(table, models: Sequence, test: Mapping, *, train_lattice=TASK.lattice):
    """One row per instance (``table``'s rows, ``models`` in the same order) and test
    configuration it can run on (FL: only ``train_lattice``): ``label, family, seed,
    lattice, eta, mu, worms, true, pred`` and the squared error ``se``."""
    import pandas as pd

    rows = []
    for (_, row), model in zip(table.iterrows(), models, strict=True):
        for lat, d in test.items():
            if row["family"] == "FL" and parse_lattice(lat) != tuple(train_lattice):
                continue
            p = training.predict(model, d.x, batch_size=256)[:, 0].numpy().astype(float)
            rows.append(pd.DataFrame({
                "label": row["label"], "family": row["family"], "seed": row["seed"],
                "lattice": lat, "eta": d.meta["eta"], "mu": d.meta["mu"],
                "worms": d.meta["n_worms"], "true": d.targets[:, 0], "pred": p,
            }))  # fmt: skip
    preds = pd.concat(rows, ignore_index=True)
    preds["se"] = (preds["pred"] - preds["true"]) ** 2
    return preds


def instance_losses(table, preds, lattices: Sequence[str]):
    """``table`` with each instance's test MSE on each lattice, ``L_lat = mean_{i in lat}
    (f(x_i) - W_i)^2``, and the same mean over the configurations of all lattices, ``"all"``
    (NaN where the instance misses a lattice: FL)."""
    mse = preds.pivot_table(index=["label", "seed"], columns="lattice", values="se", aggfunc="mean")
    mse = mse.reindex(columns=list(lattices))
    out = table.drop(columns=[c for c in [*lattices, "all"] if c in table]).join(
        mse, on=["label", "seed"]
    )
    counts = preds.groupby(["label", "seed"])["se"].agg(["sum", "count"])
    out = out.join((counts["sum"] / counts["count"]).rename("all"), on=["label", "seed"])
    out.loc[out[list(lattices)].isna().any(axis=1), "all"] = np.nan
    return out


@dataclass
class Retrained:
    """Retrained instances of the counting networks and their predictions on the tests."""

    table: object  # DataFrame: one row per instance (run_grid's columns, val, test MSEs)
    preds: object  # DataFrame: one row per instance and test configuration
    labels: list  # models, in table order
    lattices: list  # test lattices, the training lattice first
    train_lattice: str
    train_worms: list
    n_train: int

    @property
    def per_combo(self):
        """Test MSE per instance and combination ``(lattice, eta, mu, worms)``."""
        keys = ["label", "seed", "lattice", "eta", "mu", "worms"]
        return self.preds.groupby(keys, sort=False)["se"].mean().reset_index()

    @property
    def combos_per_instance(self) -> int:
        """Test combinations evaluated by an instance that runs on every lattice."""
        pc, fl = self.per_combo, self.table.loc[self.table["family"] == "FL", "label"]
        sizes = pc[~pc["label"].isin(fl)].groupby(["label", "seed"], sort=False).size()
        return int(sizes.iloc[0]) if len(sizes) else 0

    def columns(self) -> dict:
        """Columns of :meth:`loss_table`: instance-table column -> printed name."""
        return {"val": f"validation {self.train_lattice}", self.train_lattice:
                f"test {self.train_lattice}", "all": f"test up to {self.lattices[-1]}"}  # fmt: skip

    def loss_table(self):
        """The source's table: mean and median over instances of the validation loss, the
        test loss on the training lattice and over all lattices, per model."""
        import pandas as pd

        cols = self.columns()
        ours = self.table.groupby("label", sort=False)[list(cols)].agg(["mean", "median"])
        ours.columns = pd.MultiIndex.from_tuples([(cols[c], s) for c, s in ours.columns])
        return ours.reindex(self.labels)

    def loss_by(self, by: str):
        """Per value ``v`` of ``by`` (``"lattice"`` or ``"worms"``) and model, the median over
        its instances ``s`` of ``mean_{c: by(c) = v} L_{s,c}``, ``L_{s,c}`` the MSE on test
        combination ``c``; one column per model (NaN: not run there)."""
        pc = self.per_combo
        med = pc.groupby(["label", by, "seed"])["se"].mean().groupby(["label", by]).median()
        out = med.unstack("label").reindex(columns=self.labels)
        if by == "lattice":
            out = out.reindex([lat for lat in self.lattices if lat in out.index])
        return out

    def best(self, families: Sequence[str] = FAMILIES) -> dict:
        """Per family, the row of its instance with the lowest validation loss."""
        t = self.table
        return {f: t.loc[t[t["family"] == f]["val"].idxmin()] for f in families
                if (t["family"] == f).any()}  # fmt: skip

    def example(self, lattice: str, eta: float, mu: float) -> dict:
        """Per family, ``(best instance's row, its predictions)`` at one lattice and
        parameter point (all worm counts); families without predictions there are left out."""
        p, out = self.preds, {}
        for fam, row in self.best().items():
            sel = p[(p["label"] == row["label"]) & (p["seed"] == row["seed"])
                    & (p["lattice"] == lattice) & np.isclose(p["eta"], eta)
                    & np.isclose(p["mu"], mu)]  # fmt: skip
            if not sel.empty:
                out[fam] = (row, sel)
        return out

    def exact_fractions(self):
        """Fraction of test configurations whose rounded prediction is the true count, per
        model and lattice (all instances)."""
        hit = self.preds.assign(hit=np.round(self.preds["pred"]) == self.preds["true"])
        hit = hit.groupby(["label", "lattice"], sort=False)["hit"].mean().unstack("lattice")
        return hit.reindex(index=self.labels, columns=self.lattices)

    def lines(self) -> list[str]:
        t = self.table
        return [
            f"{len(t)} instances ({int(t['cached'].sum())} from the cache), "
            f"{t['train_seconds'].sum():.0f} s of training; epochs per instance: "
            f"{t['epochs'].min()} to {t['epochs'].max()}"
        ]


def assemble(table, preds, *, lattices, train_lattice, train_worms, n_train) -> Retrained:
    """A :class:`Retrained` from a table of instances and their predictions."""
    labels = list(dict.fromkeys(table["label"]))
    return Retrained(instance_losses(table, preds, lattices), preds, labels, list(lattices),
                     train_lattice, list(train_worms), int(n_train))  # fmt: skip


def retrain(
    params: Mapping,
    train,
    val,
    test: Mapping,
    *,
    models: Mapping[str, str] | None = None,
    task: training.Task = TASK,
    desc: str = "task 3 instances",
    **grid,
) -> Retrained:
    """Train (or load from the cache) ``params["instances"]`` seeds of each model (default:
    the source's winners, ``{label: spec}``) with the budget ``params["budget"]``, by
    :func:`qftml.experiments.run_grid`, and predict every test configuration.

    ``grid`` goes to ``run_grid`` (e.g. ``cache``, ``workers``).
    """
    specs = models or {name: e.spec for name, e in published().items()}
    budget = training.Budget.from_params(params["budget"])
    table, instances = experiments.run_grid(
        specs, train.xy, val.xy, seeds=range(params["instances"]), task=task, budget=budget,
        desc=desc, **grid,
    )  # fmt: skip
    preds = predict_tests(table, [i.model for i in instances], test, train_lattice=task.lattice)
    worms = sorted(int(w) for w in set(train.meta["n_worms"]))
    return assemble(table, preds, lattices=list(test), train_lattice=train.lattice,
                    train_worms=worms, n_train=len(train))  # fmt: skip


@dataclass
class Stored(Retrained):
    """The ``paper`` profile's retraining of the nine winners, read from the results store
    (:mod:`qftml.results`, experiment ``task3-counting``): every :class:`Retrained` table
    and figure except the per-configuration predictions, which the store does not keep
    (its entries hold the MSE and the exact fraction of each test combination)."""

    combos: object = None  # DataFrame: label, family, seed, lattice, eta, mu, worms, se, exact, n
    n_stored: int = 0  # current entries
    planned: int = 0  # instances of the profile's plan
    provenance: dict = field(default_factory=dict)  # results.provenance_summary
    plan: object = None  # qftml.results.Plan of the experiment in the profile
    var_val: float = math.nan  # variance of the validation labels (from the plan's files)

    @property
    def complete(self) -> bool:
        return self.n_stored == self.planned

    @property
    def per_combo(self):
        return self.combos

    def instances(self) -> dict:
        """Stored instances per model."""
        seeds = self.table.groupby("label")["seed"].nunique() if len(self.table) else {}
        return {label: int(seeds.get(label, 0)) for label in self.plan.specs}

    def exact_fractions(self):
        """Fraction of test configurations whose rounded prediction is the true count, per
        model and lattice (all instances; each combination weighted by its size)."""
        c = self.combos.dropna(subset=["exact"])  # FL elsewhere: not run (NaN)
        c = c.assign(hits=c["exact"] * c["n"])
        g = c.groupby(["label", "lattice"], sort=False)[["hits", "n"]].sum()
        hit = (g["hits"] / g["n"]).unstack("lattice")
        return hit.reindex(index=self.labels, columns=self.lattices)

    def lines(self) -> list[str]:
        from .. import results

        b = self.plan.budget
        return [
            f"plan ({self.plan.profile} profile): {len(self.plan.seeds)} instances of each of "
            f"the {len(self.plan.specs)} winners on N_train = {self.plan.sizes[0]}, at most "
            f"{b.max_epochs} epochs (patience {b.patience}, batch {b.batch_size}, lr {b.lr:g}, "
            f"{b.optimizer})",
            results.store_line(self.n_stored, self.planned, self.provenance),
            "instances per model: " + ", ".join(f"{k} {v}" for k, v in self.instances().items()),
        ]


def label_variance(jobs) -> float:
    """Variance of the labels (worm counts) of the configurations of ``jobs``
    (:func:`qftml.datasets.jobs_for` of task 3): each job holds ``n`` configurations per
    worm count, so the variance follows from the plan without reading a file."""
    w = np.array([x for j in jobs for x in j.worms], dtype=float)
    n = np.array([j.n for j in jobs for _ in j.worms], dtype=float)
    if not n.sum():
        return math.nan
    mean = (w * n).sum() / n.sum()
    return float((n * (w - mean) ** 2).sum() / n.sum())


def stored(experiment: str = "task3-counting", profile: str = "paper", root=None) -> Stored:
    """The store's current entries of ``experiment`` made with ``profile``, as a
    :class:`Stored`: per instance the validation loss and the test MSE per lattice and over
    all lattices (the configurations' mean: combinations weighted by their size), and the
    MSE and exact fraction of every test combination."""
    import pandas as pd

    from .. import datasets, results
    from ..datasets.jobs import jobs_for

    n, planned, _ = results.coverage(experiment, profile, root)
    plan = results.plan_task3_counting(profile)
    lattices = datasets.lattices(3, profile, "test")
    pt = results.point_table(experiment, profile, root)
    cols = ["label", "family", "seed", "lattice", "eta", "mu", "worms", "se", "exact", "n"]
    combos = (
        pt.rename(columns={"n_worms": "worms", "loss": "se"})[cols].astype(
            {"se": float, "exact": float, "n": float, "worms": int}
        )
        if len(pt)
        else pd.DataFrame(columns=cols)
    )
    rows = [
        {"label": e["instance"]["label"], "family": e["instance"]["family"],
         "seed": e["instance"]["seed"], "n_train": e["instance"]["n_train"],
         "val": e["best_val_loss"], "val exact": e.get("val_exact"),
         "epochs": (e["history"]["epoch"] or [0])[-1], "best_epoch": e["best_epoch"],
         "train_seconds": e["train_seconds"], "key": e["keys"]["model"]}
        for e in results.current_entries(experiment, profile, root)
    ]  # fmt: skip
    columns = ["label", "family", "seed", "n_train", "val", "val exact", "epochs", "best_epoch",
               "train_seconds", "key"]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    if len(combos):
        w = combos.dropna(subset=["se"]).assign(wse=lambda c: c["se"] * c["n"])
        by_lat = w.groupby(["label", "seed", "lattice"])[["wse", "n"]].sum()
        mse = (by_lat["wse"] / by_lat["n"]).unstack("lattice").reindex(columns=lattices)
        tot = w.groupby(["label", "seed"])[["wse", "n"]].sum()
        mse["all"] = tot["wse"] / tot["n"]
        mse.loc[mse[lattices].isna().any(axis=1), "all"] = np.nan  # FL: not on every lattice
        table = table.join(mse, on=["label", "seed"])
    else:
        table = table.assign(**{c: pd.Series(dtype=float) for c in [*lattices, "all"]})
    train_jobs = jobs_for(3, profile, "train")
    return Stored(
        table, None, list(plan.specs), list(lattices), train_jobs[0].lattice,
        sorted({w for j in train_jobs for w in j.worms}), plan.sizes[0], combos, n, planned,
        results.provenance_summary(experiment, profile, root), plan,
        label_variance(jobs_for(3, profile, "val")),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Against the source's table
# --------------------------------------------------------------------------------------------


def source_table(columns, source: Mapping = SOURCE):
    """The source's values (:data:`SOURCE`) with the (MultiIndex) ``columns`` of a
    :meth:`Retrained.loss_table`."""
    import pandas as pd

    return pd.DataFrame.from_dict(dict(source), orient="index", columns=columns)


def ratio(ours, source):
    """``ours / source`` per entry, NaN dropped; ``1`` where both are zero (equal) and
    ``inf`` where only the source's is (no division by zero)."""
    import pandas as pd

    index = [m for m in ours.index if m in source.index]
    a = ours.reindex(index).to_numpy(dtype=float)
    b = source.reindex(index).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b != 0, a / np.where(b != 0, b, 1.0), np.where(a == 0, 1.0, np.inf))
    r = np.where(np.isnan(a) | np.isnan(b), np.nan, r)
    return pd.Series(r, index=index).dropna()


@dataclass
class SourceComparison:
    """Our table of losses against the source's, read as verdicts (module docstring)."""

    ours: object  # DataFrame: Retrained.loss_table()
    source: object  # DataFrame: the same columns, the source's values
    summary: object  # DataFrame: per table, the best model and the medians by head
    ratio: object  # Series: ours / source, median test loss up to the largest lattice
    factor: float
    within: list  # models with 1/factor < ratio < factor
    above: list  # ratio >= factor
    below: list  # ratio <= 1/factor
    linear_head_lower: dict  # table -> the linear-head median is below the nonlinear one
    same_ordering: bool  # ... in ours as in the source
    largest: str  # the largest test lattice
    small: str  # the training lattice

    def lines(self) -> list[str]:
        out = []
        for name, s in self.summary.iterrows():
            out += [
                f"{name:>6}: best median test loss up to {self.largest}: {s['best']} "
                f"({s['best loss']:.3g})",
                f"        median over models with a linear head {s['linear head']:.3g}, "
                f"with a nonlinear head {s['nonlinear head']:.3g}",
                f"        best median test loss on {self.small} per family: "
                + ", ".join(f"{f} {s[f]:.3g}" for f in FAMILIES if f in s),
            ]
        out.append(
            f"ours / source, median test loss up to {self.largest}:\n        "
            + ", ".join(f"{m} {r:.2g}" for m, r in self.ratio.items())
        )
        out.append(
            "linear head below nonlinear head: "
            + ", ".join(f"{k} {v}" for k, v in self.linear_head_lower.items())
            + f"; same ordering as the source: {self.same_ordering}"
        )
        return out

    def factor_line(self) -> str:
        """The per-model verdict: within a factor of the source's loss, above or below."""
        return (
            f"within a factor {self.factor:g} of the source: {self.within or 'none'}; "
            f"above: {self.above or 'none'}; below: {self.below or 'none'}"
        )


def compare_with_source(ours, source, linear_head: Mapping, *, factor: float = 10.0):
    """Compare ``ours`` with ``source`` (tables like :meth:`Retrained.loss_table`; columns
    ``(validation, test on the training lattice, test up to the largest)`` x ``(mean,
    median)``); ``linear_head`` maps a model to :func:`qftml.nets.is_extensive`.

    With ``L`` a model's median test loss up to the largest lattice: per table, a linear
    head is lower when ``median_{linear} L < median_{nonlinear} L`` (over the models where
    ``L`` exists); per model, ``r = L_ours / L_source`` (:func:`ratio`) is within the
    ``factor`` when ``1/factor < r < factor``, above when ``r >= factor``, below when
    ``r <= 1/factor``.
    """
    import pandas as pd

    if not factor > 1:
        raise ValueError(f"factor must exceed 1; got {factor}")
    names = list(dict.fromkeys(ours.columns.get_level_values(0)))
    small_col, big_col = names[1], names[-1]
    rows = {}
    heads = {}
    for name, tab in (("source", source), ("ours", ours)):
        med = tab[(big_col, "median")].dropna()
        lin = [m for m in med.index if linear_head[m]]
        non = [m for m in med.index if not linear_head[m]]
        fam_best = tab[(small_col, "median")].groupby(_family).min()
        rows[name] = {
            "best": med.idxmin() if len(med) else None,
            "best loss": med.min() if len(med) else math.nan,
            "linear head": _median(med[lin]),
            "nonlinear head": _median(med[non]),
            **{f: fam_best.get(f, math.nan) for f in FAMILIES},
        }
        heads[name] = bool(rows[name]["linear head"] < rows[name]["nonlinear head"])
    r = ratio(ours[(big_col, "median")], source[(big_col, "median")])
    return SourceComparison(
        ours, source, pd.DataFrame.from_dict(rows, orient="index"), r, float(factor),
        list(r[(r < factor) & (r > 1 / factor)].index), list(r[r >= factor].index),
        list(r[r <= 1 / factor].index), heads, heads["ours"] == heads["source"],
        big_col.removeprefix("test up to "), small_col.removeprefix("test "),
    )  # fmt: skip


@dataclass
class Explained:
    """Fraction of the validation labels' variance that each model's median instance explains."""

    var_y: float
    explained: object  # Series: 1 - median validation loss / var_y, per model
    threshold: float
    learnt: list  # models with explained > threshold

    def lines(self) -> list[str]:
        out = [f"variance of the validation labels: {self.var_y:.3g}",
               "explained fraction (median instance):"]  # fmt: skip
        out += [f"  {m}: {v:.3f}" for m, v in self.explained.items()]
        out.append(
            f"models whose median instance explains more than {self.threshold:.0%} of the "
            f"variance: {self.learnt or 'none'}"
        )
        return out


def explained_variance(table, var_y: float, *, labels=None, threshold: float = 0.9):
    """``1 - L_val / Var(y)`` per model, ``L_val`` the median over its instances; NaN for
    every model when the labels do not vary (``Var(y) = 0``)."""
    med = table.groupby("label", sort=False)["val"].median()
    med = med.reindex(labels) if labels is not None else med
    var_y = float(var_y)
    explained = 1 - med / var_y if var_y > 0 else med * math.nan
    return Explained(var_y, explained, threshold, list(explained[explained > threshold].index))
