"""The results store: full-statistics outcomes kept in the repository, with provenance.

The ``paper`` profile's grids cost CPU-hours, so their outcome is computed once, by
``python -m qftml results run``, and kept under ``results/`` (``$QFTML_RESULTS``
overrides the folder): one JSON entry and one weights file per trained instance,

    results/<experiment>/<model key>.json     what it is, how it trained, its test losses
    results/<experiment>/<model key>.pt       its weights (as qftml.training.save_model)

Each entry records its *provenance* (commit, profile, parameters, device, threads, library
versions, wall time, date, command) and the *keys* that determine it: the instance's content
key (:func:`qftml.experiments.instance_key`), the code digest, the budget and the digest of
the content keys of every dataset file of its splits. ``results verify`` recomputes those
keys from today's code and ``profiles.yml`` (an entry that differs is stale), re-evaluates a
random sample of stored instances on regenerated test files against their stored losses, and
retrains one instance where the device and libraries match.

The run is resumable at the granularity of one instance: finished instances are entries,
the next call trains only what is missing, and a call with ``--hours`` stops after the
chunk that crosses the limit. Chunks run in the order that leaves a complete part after any
stretch: every family and seed at the smallest ``N_train`` before the next size.

Experiments (:data:`EXPERIMENTS`):

- ``task1-comparison``: the published task-1 winners (EQ, ST, FL) and ST, FL with random
  translations, 10 instances at every ``N_train`` of chapter 07's section, each tested on
  every test lattice and chemical potential of the ``datasets.task1.test`` split (the
  lattice-size and mu-extrapolation tests on the same instances).
- ``task1-phases``: chapter 08's Silver Blaze test: the same winners trained on one phase
  only, below or above the onset of the density (``charged_fraction`` of chapter 08's
  section, :func:`qftml.tasks.regression.onset`), ``phase_n_train`` configurations of that
  phase, 10 instances, tested as ``task1-comparison``; the reference is the comparison's
  instances of the same size, trained on both phases.
- ``task2-detection``: the published task-2 winners (EQ, ST, FL), chapter 09-task2's
  ``instances`` on its whole training set (the source's N_train = 4000), each tested on
  every test lattice and ``(eta, mu)`` of the ``datasets.task2.test`` split (binary
  cross-entropy and accuracy at threshold 1/2).
- ``task3-counting``: the source's nine task-3 winners (1st-3rd EQ, ST, FL), chapter
  09-task3's ``instances`` on its whole training set (the source's N_train = 20000, 0 and 5
  worms on 8x8), each tested on every test lattice, ``(eta, mu)`` and worm count of the
  ``datasets.task3.test`` split (MSE of the count and the fraction of exact rounded counts).

The store's architecture searches (``task1-search``, ``task2-search``: optuna studies, not
trained instances) are kept by :mod:`qftml.search_store`; ``results run``, ``verify`` and
``summary`` cover them too.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import experiments, grid, instances, keys, nets
from .paths import ROOT
from .profiles import notebook_params
from .training import Budget, Task, evaluate, load_model, pick_device, resolve_precision

__all__ = [
    "EVAL_RTOL",
    "EXPERIMENTS",
    "MIN_SEEDS",
    "fewest_instances",
    "RETRAIN_RTOL",
    "complete_seeds",
    "complete_sizes",
    "coverage",
    "current_entries",
    "provenance_summary",
    "select_complete",
    "store_digest",
    "store_line",
    "training_range",
    "SCHEMA",
    "Plan",
    "entries",
    "load_table",
    "plan_task1_comparison",
    "plan_task1_phases",
    "plan_task2_detection",
    "plan_task3_counting",
    "point_table",
    "run",
    "store_dir",
    "summary",
    "verify",
]

#: Layout version of an entry; an entry of another version is reported as stale.
SCHEMA = 1
#: Experiment name -> (task, profile section it reads).
EXPERIMENTS = {
    "task1-comparison": (1, "07_task1_comparison"),
    "task1-phases": (1, "08_task1_generalization"),
    "task2-detection": (2, "09_task2_detection"),
    "task3-counting": (3, "09_task3_counting"),
}
#: :func:`summary` lists an experiment under ``task<N>`` unless named here.
SUMMARY_KEYS = {"task1-phases": "task1_phases"}


def fewest_instances(alpha: float = 0.05) -> int:
    """The fewest instances per model at which a one-sided Mann-Whitney test of two models
    can reject at level ``alpha``: the smallest ``n`` with ``1 / binom(2n, n) < alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    n = 1
    while 1 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


#: Instances of every model a size (or an experiment) needs before the pages compare models
#: on it: ``fewest_instances(0.05)`` = 4 (with 3, the smallest attainable p is 0.05).
MIN_SEEDS = fewest_instances(0.05)
#: Relative tolerance of a re-evaluated test loss against the stored one: evaluation is
#: deterministic, but the summation order of a batched forward pass may differ between
#: thread counts and CPUs (float32 rounding, ~1e-7 per operation).
EVAL_RTOL = 1e-4
#: Relative tolerance of a retrained instance's test loss when its weights are not bitwise
#: those stored (another CPU's vector units round differently and training amplifies it).
RETRAIN_RTOL = 0.05


def store_dir() -> Path:
    """The store's folder: ``$QFTML_RESULTS``, else ``<repo>/results``."""
    return Path(os.environ.get("QFTML_RESULTS", ROOT / "results"))


# --------------------------------------------------------------------------------------------
# What an experiment consists of
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The instances of one experiment: ``(label, spec, augment, n_train, seed)`` chunks,
    and how they are trained and tested."""

    experiment: str
    profile: str
    params: dict
    specs: dict
    augment: dict  # label -> list of augmentations ("none" first)
    sizes: list
    seeds: list
    budget: Budget
    val_fraction: float | None
    loss: str = "mse"  # the task's loss (qftml.training.Task)
    points: tuple = ("mu",)  # the metadata that name one test file of a lattice
    subset_seed: int = 0  # seed of the nested training subsets
    groups: str | None = "mu"  # metadata the subsets are balanced over (None: not balanced)
    phases: dict = field(default_factory=dict)  # label -> "below" | "above": one phase only
    charged_fraction: float | None = None  # defines the onset the phases are cut at

    def instances(self) -> list[tuple[str, str, int, int]]:
        """``(label, augment, n_train, seed)`` in run order: size, then seed, then model."""
        out = []
        for m in self.sizes:
            for s in self.seeds:
                for label in self.specs:
                    for aug in self.augment[label]:
                        out.append((label, aug, m, s))
        return out


def plan_task1_comparison(profile: str = "paper", params: dict | None = None) -> Plan:
    """Chapter 07's grid in ``profile`` with the published winners (the source's comparison).

    ``params`` replaces the profile section ``07_task1_comparison`` (tests use it).
    """
    P = notebook_params("07_task1_comparison", profile) if params is None else params
    families = ("EQ", "ST", "FL")
    specs = {f: nets.published(1, f).spec for f in families}
    augmented = set(P.get("augment", ()))
    augment = {f: ["none", *(["translations"] if f in augmented else [])] for f in families}
    return Plan(
        "task1-comparison", profile, P, specs, augment, sorted(int(m) for m in P["n_train"]),
        [int(s) for s in P["seeds"]], Budget.from_params(resolve_precision(P.get("train") or {})),
        P.get("val_fraction"), subset_seed=int(P["seed"]),
    )  # fmt: skip


def plan_task1_phases(profile: str = "paper", params: dict | None = None) -> Plan:
    """Chapter 08's Silver Blaze instances in ``profile``: each published winner trained on
    ``phase_n_train`` configurations of one phase only (``"EQ below"``, ``"EQ above"``, ...),
    balanced over its ``mu``, with chapter 07's recipe, so that the comparison's instances of
    the same size (trained on both phases) are the reference.

    ``params`` replaces the profile section ``08_task1_generalization`` (tests use it).
    """
    P = notebook_params("08_task1_generalization", profile) if params is None else params
    families = ("EQ", "ST", "FL")
    phases = {f"{f} {side}": side for f in families for side in ("below", "above")}
    specs = {label: nets.published(1, label.split()[0]).spec for label in phases}
    return Plan(
        "task1-phases", profile, P, specs, {label: ["none"] for label in phases},
        [int(P["phase_n_train"])], [int(s) for s in P["seeds"]],
        Budget.from_params(resolve_precision(P.get("train") or {})), P.get("val_fraction"),
        subset_seed=int(P["seed"]), phases=phases, charged_fraction=float(P["charged_fraction"]),
    )  # fmt: skip


def plan_task2_detection(profile: str = "paper", params: dict | None = None) -> Plan:
    """Chapter 09-task2's retraining of the published winners in ``profile``: its
    ``instances`` seeds of each on the whole training and validation sets (as
    :func:`qftml.tasks.detection.retrain`, so the keys are the chapter's).

    ``params`` replaces the profile section ``09_task2_detection`` (tests use it).
    """
    from .datasets.jobs import jobs_for
    from .tasks.detection import FAMILIES, Params

    P = notebook_params("09_task2_detection", profile) if params is None else params
    par = Params.from_dict(P)
    specs = {f"{f} published": nets.published(2, f).spec for f in FAMILIES}
    n_train = sum(j.n_total for j in jobs_for(2, profile, "train"))
    return Plan(
        "task2-detection", profile, P, specs, {lab: ["none"] for lab in specs}, [n_train],
        list(range(par.instances)), par.train_budget, None, loss="bce", points=("eta", "mu"),
        groups=None,
    )  # fmt: skip


def plan_task3_counting(profile: str = "paper", params: dict | None = None) -> Plan:
    """Chapter 09-task3's retraining of the source's nine winners in ``profile``: its
    ``instances`` seeds of each on the whole training and validation sets with its
    ``budget`` (as :func:`qftml.tasks.counting.retrain`, so the keys are the chapter's).

    ``params`` replaces the profile section ``09_task3_counting`` (tests use it).
    """
    from .datasets.jobs import jobs_for
    from .tasks.counting import published

    P = notebook_params("09_task3_counting", profile) if params is None else params
    specs = {label: e.spec for label, e in published().items()}
    n_train = sum(j.n_total for j in jobs_for(3, profile, "train"))
    return Plan(
        "task3-counting", profile, P, specs, {lab: ["none"] for lab in specs}, [n_train],
        list(range(int(P["instances"]))), Budget.from_params(P["budget"]), None, loss="count",
        points=("eta", "mu", "n_worms"), groups=None,
    )  # fmt: skip


_PLANS: dict[str, Callable[..., Plan]] = {
    "task1-comparison": plan_task1_comparison,
    "task1-phases": plan_task1_phases,
    "task2-detection": plan_task2_detection,
    "task3-counting": plan_task3_counting,
}


def _known(experiment: str) -> None:
    if experiment not in _PLANS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {sorted(_PLANS)}")


def _plan(experiment: str, profile: str) -> Plan:
    _known(experiment)
    return _PLANS[experiment](profile)


# --------------------------------------------------------------------------------------------
# Keys and provenance
# --------------------------------------------------------------------------------------------


def data_keys(task: int, profile: str) -> dict[str, str]:
    """``{split: digest of the content keys of its dataset files}`` (no data needed)."""
    from .datasets.jobs import jobs_for

    out = {}
    for split in ("train", "val", "test"):
        out[split] = keys.digest(sorted(j.content_key() for j in jobs_for(task, profile, split)))
    return out


def training_range(task: int, profile: str) -> tuple[str, float, float]:
    """``(lattice, mu_min, mu_max)`` of the training split of ``task`` in ``profile``."""
    from .datasets.jobs import jobs_for

    jobs = jobs_for(task, profile, "train")
    lattices = sorted({j.lattice for j in jobs})
    if len(lattices) != 1:
        raise ValueError(f"task {task} trains on several lattices {lattices}")
    mus = [j.mu for j in jobs]
    return lattices[0], min(mus), max(mus)


def recipe_keys(plan: Plan) -> dict:
    """What an entry's validity depends on besides its data: code, budget, libraries (and
    for one-phase instances the onset's definition)."""
    out = {
        "code": experiments.code_digest(),
        "budget": plan.budget.key(),
        "val_fraction": plan.val_fraction,
        "libraries": {"torch": torch.__version__, "numpy": np.__version__},
    }
    if plan.phases:
        out["phases"] = {"charged_fraction": plan.charged_fraction}
    return out


def phase_splits(plan: Plan, train, val) -> tuple[dict, float | None]:
    """``({side: (train, val)}, onset)``: the splits each label of ``plan`` trains on. One
    pair under ``None`` (the whole splits, onset ``None``) unless the plan trains on one
    phase; then each phase's part of both splits, cut at the onset of ``train``
    (:func:`qftml.tasks.regression.onset` at ``plan.charged_fraction``)."""
    if not plan.phases:
        return {None: (train, val)}, None
    from .tasks.regression import onset, split_phases

    mu_c, _ = onset(train.meta["mu"], train.meta["n"], plan.charged_fraction)
    return split_phases(train, val, mu_c), mu_c


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the platform's machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def _device_name() -> str:
    """What trains here (:func:`qftml.training.pick_device`): ``"cpu"``, or e.g.
    ``"cuda: NVIDIA H100 80GB HBM3"``."""
    dev = pick_device()
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return dev.type


def machine() -> dict:
    """The commit and the machine a result is made with (part of every provenance)."""
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "commit": commit + ("+dirty" if dirty else ""),
        "device": _device_name(),
        "cpu": _cpu_model(),
        "host": platform.node(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def provenance(plan: Plan, command: str | None = None) -> dict:
    """Where and how the entries of a run are made."""
    return {
        **machine(),
        "profile": plan.profile,
        "params": plan.params,
        "command": command or " ".join(["python -m qftml", *sys.argv[1:]]),
    }


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------


def _round(v):
    """Floats to 7 significant digits (float32's precision): smaller files, same numbers."""
    if isinstance(v, float):
        return float(f"{v:.7g}") if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_round(x) for x in v]
    return v


def _write_json(path: Path, record: dict) -> None:
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    instances._write_atomic(path, lambda tmp: tmp.write_text(text))  # unique temporary


def _entry_digest(record: dict) -> str:
    return keys.digest({k: v for k, v in record.items() if k != "checksum"})


def current_entries(experiment: str, profile: str = "paper", root: Path | None = None):
    """The entries of ``experiment`` that match today's code, recipe and data keys of
    ``profile`` (the ones a page may show; ``results verify`` lists the others)."""
    found = entries(experiment, root)
    if not found:  # nothing to judge (the profile need not define the experiment)
        return []
    plan = _plan(experiment, profile)
    dkeys = data_keys(EXPERIMENTS[experiment][0], profile)
    return [e for e in found if _is_current(e, plan, dkeys)]


def _check_declared(experiment: str) -> None:
    """Inside a page started by :func:`qftml.profiles.setup`, refuse to read an experiment
    the page does not list under ``store:``: its content key would not cover the entries,
    and the page would go stale when they change."""
    from . import profiles

    if profiles._PAGE is None:
        return
    page, profile = profiles._PAGE
    declared = profiles.notebook_params(page, profile).get("store") or []
    if experiment not in declared:
        raise KeyError(
            f"page {page!r} reads the results store {experiment!r} without declaring it: add "
            f"it to {profile}.{page}.store in profiles.yml (declared: {declared})"
        )


def entries(experiment: str, root: Path | None = None) -> list[dict]:
    """Every intact entry of ``experiment`` (a damaged one raises, naming the file)."""
    _check_declared(experiment)
    return read_entries((root or store_dir()) / experiment)


def read_entries(folder: Path) -> list[dict]:
    """The JSON entries of a store folder, each checked against its checksum and given its
    ``_path`` (a damaged one raises, naming the file); shared with :mod:`qftml.search_store`."""
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not a results entry ({exc})") from None
        if record.get("checksum") != _entry_digest(record):
            raise ValueError(f"{path}: checksum mismatch (edited or damaged entry)")
        record["_path"] = str(path)
        out.append(record)
    return out


def checksums(folder: Path) -> list[list[str]]:
    """``[file name, checksum]`` of every JSON entry of a store folder, as read (an
    unreadable one as such): what a page showing the folder depends on."""
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append([path.name, json.loads(path.read_text()).get("checksum")])
        except ValueError:
            out.append([path.name, "unreadable"])
    return out


def _test_sets(plan: Plan) -> dict[str, tuple]:
    """Every test file (lattice and ``plan.points``) of the plan's task as its own test set,
    named ``"LxT@v1,v2"``: ``{name: (lattice, {point: value}, (X, y))}``."""
    from . import datasets

    task = EXPERIMENTS[plan.experiment][0]
    out = {}
    for lat in datasets.lattices(task, plan.profile, "test"):
        data = datasets.load(task, plan.profile, "test", lat, log=lambda *_: None)
        for values, part in data.groups(*plan.points):
            name = f"{lat}@{','.join(f'{float(v):.6g}' for v in values)}"
            out[name] = (lat, dict(zip(plan.points, map(float, values), strict=True)), part.xy)
    return out


def _entry(plan, row: dict, inst, tests, metrics, outputs, prov, dkeys, onset=None) -> dict:
    """One store entry: the instance, its keys and history, and per test lattice the
    loss (per output where there are several, accuracy for ``"bce"``) at every point;
    ``metrics`` are :func:`qftml.experiments.evaluate_instance`'s on ``tests`` and ``"val"``;
    a one-phase instance also records its phase and the ``onset`` it was cut at."""
    spec = plan.specs[row["label"]]
    by_lattice: dict[str, dict] = {}
    for name, (lat, point, _) in tests.items():
        m = metrics[name]
        t = by_lattice.setdefault(lat, {p: [] for p in plan.points} | {"loss": []})
        for p, v in point.items():
            t[p].append(v)
        t["loss"].append(m["loss"])
        for j, out in enumerate(outputs if len(outputs) > 1 else []):
            t.setdefault(f"loss_{out}", []).append(m.get(f"loss_{j}", math.nan))
        if plan.loss == "bce":
            t.setdefault("accuracy", []).append(m.get("accuracy", math.nan))
        if plan.loss == "count":  # exact rounded counts, and the file's size (for weights)
            t.setdefault("exact", []).append(m.get("exact", math.nan))
            t.setdefault("n", []).append(m.get("n"))
    record = {
        "schema": SCHEMA,
        "experiment": plan.experiment,
        "instance": {
            "label": row["label"], "family": row["family"], "spec": spec,
            "augment": row["augment"], "n_train": int(row["n_train"]), "n_val": int(row["n_val"]),
            "seed": int(row["seed"]), "n_params": nets.spec_params(spec),
        } | ({"phase": plan.phases[row["label"]], "onset": onset} if plan.phases else {}),
        "keys": {"model": inst.key, "data": dkeys, **recipe_keys(plan)},
        "history": {k: inst.history.get(k) for k in ("epoch", "train_loss", "val_loss")},
        "best_epoch": inst.history.get("best_epoch"),
        "best_val_loss": inst.history.get("best_val_loss"),
        "train_seconds": inst.history.get("seconds"),
        "tests": by_lattice,
        "provenance": {**prov, "wall_s": row["seconds"], "date": _now()},
    }  # fmt: skip
    if plan.loss == "bce":
        record["val_accuracy"] = metrics["val"]["accuracy"]
    if plan.loss == "count":
        record["val_exact"] = metrics["val"]["exact"]
    record = _round(record)
    record["checksum"] = _entry_digest(record)
    return record


def run(
    experiment: str = "task1-comparison",
    profile: str = "paper",
    *,
    sizes: Sequence[int] | None = None,
    hours: float | None = None,
    workers: int | None = None,
    scheduler=None,
    root: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train every missing instance of ``experiment`` and store it; returns counts.

    Chunks of one ``(N_train, seed)`` (all models) run in order of ``N_train``; each instance
    is written to the store as soon as it is trained, so a stopped run keeps every finished
    one. ``sizes`` restricts the sizes; ``hours`` stops after the chunk that crosses that
    much wall time.
    """
    from . import datasets

    plan = _plan(experiment, profile)
    task = EXPERIMENTS[experiment][0]
    folder = (root or store_dir()) / experiment
    folder.mkdir(parents=True, exist_ok=True)
    done = _current_instances(experiment, plan, root)
    wanted = [i for i in plan.instances() if sizes is None or i[2] in set(sizes)]
    todo = [i for i in wanted if i not in done]
    log(f"{experiment} ({profile}): {len(wanted)} planned, {len(wanted) - len(todo)} stored")
    if not todo:
        return {"planned": len(wanted), "stored": len(wanted), "trained": 0}
    train = datasets.load(task, profile, "train", log=lambda *_: None)
    val = datasets.load(task, profile, "val", log=lambda *_: None)
    splits, mu_c = phase_splits(plan, train, val)
    tests = _test_sets(plan)
    dkeys = data_keys(task, profile)
    prov = provenance(plan)
    if grid.scheduler_address(scheduler) is not None:
        prov["threads"] = 1  # a cluster's workers: one thread each (book/reproduce.md)
    elif grid.local_workers(workers) > 0:  # local workers get cores // workers threads
        prov["threads"] = max(1, grid.cores() // grid.local_workers(workers))
    lattice = tuple(train.x.shape[-2:])
    tk = Task(n_out=len(train.target_names), lattice=lattice, loss=plan.loss)
    test_xy = {name: xy for name, (_, _, xy) in tests.items()}
    start, trained = time.perf_counter(), 0

    def store(row, inst):  # as each instance finishes: a stopped run keeps it
        nonlocal trained
        # the grid's own evaluations, from the instance's cache (and the validation set)
        metrics = experiments.evaluate_instance(inst, {**test_xy, "val": val.xy}, task=tk)
        record = _entry(plan, row, inst, tests, metrics, train.target_names, prov, dkeys, mu_c)
        shutil.copyfile(inst.path, folder / f"{inst.key}.pt")
        _write_json(folder / f"{inst.key}.json", record)
        trained += 1

    chunks = sorted({(m, s) for _, _, m, s in todo})
    for m, s in chunks:
        for aug, (side, (tr, va)) in itertools.product(("none", "translations"), splits.items()):
            labels = [lab for lab, a, mm, ss in todo
                      if (a, mm, ss) == (aug, m, s) and plan.phases.get(lab) == side]  # fmt: skip
            if not labels:
                continue
            experiments.run_grid(
                {lab: plan.specs[lab] for lab in labels}, tr.xy, va.xy, test_xy, sizes=[m],
                seeds=[s], augment=[None if aug == "none" else aug], task=tk, budget=plan.budget,
                subset_seed=plan.subset_seed, groups=_groups(plan, tr),
                val_fraction=plan.val_fraction, val_groups=_groups(plan, va),
                output_names=train.target_names,
                desc=f"N={m} seed {s} {aug}" + (f" {side}" if side else ""),
                scheduler=scheduler, workers=workers, on_instance=store,
            )  # fmt: skip
        elapsed = (time.perf_counter() - start) / 3600
        log(f"  N_train={m} seed {s}: stored ({trained} instances, {elapsed:.2f} h)")
        if hours is not None and elapsed >= hours:
            log(f"stopping after {elapsed:.2f} h (--hours {hours}); run again to continue")
            break
    return {"planned": len(wanted), "stored": len(wanted) - len(todo) + trained, "trained": trained}


# --------------------------------------------------------------------------------------------
# Reading the store
# --------------------------------------------------------------------------------------------


def _groups(plan: Plan, data):
    """The metadata column ``plan.groups`` of ``data`` (None: subsets not balanced)."""
    return None if plan.groups is None else data.meta[plan.groups]


def _points(entry: dict, plan: Plan) -> list[tuple[str, int, dict]]:
    """``(lattice, index, {point: value})`` of every test file with a stored loss."""
    return [
        (lat, j, {p: t[p][j] for p in plan.points})
        for lat, t in entry["tests"].items() for j, v in enumerate(t["loss"]) if v is not None
    ]  # fmt: skip


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _current_instances(experiment: str, plan: Plan, root) -> set[tuple]:
    """``(label, augment, n_train, seed)`` of every entry that matches today's recipe."""
    out = set()
    for e in current_entries(experiment, plan.profile, root):
        i = e["instance"]
        out.add((i["label"], i["augment"], i["n_train"], i["seed"]))
    return out


def _is_current(entry: dict, plan: Plan, dkeys: dict | None) -> bool:
    return not _stale_reasons(entry, plan, dkeys)


def _stale_reasons(entry: dict, plan: Plan, dkeys: dict | None) -> list[str]:
    """Why ``entry`` does not match today's code, budget, libraries and data keys."""
    if entry.get("schema") != SCHEMA:
        return [f"schema {entry.get('schema')} != {SCHEMA}"]
    out = []
    k = entry["keys"]
    for name, value in recipe_keys(plan).items():
        if _round(value) != k.get(name):
            out.append(f"{name} changed")
    inst = entry["instance"]
    if plan.specs.get(inst["label"]) != inst["spec"]:
        out.append("spec changed")
    if dkeys is not None and k.get("data") != dkeys:
        out.append("data keys changed")
    return out


def load_table(experiment: str = "task1-comparison", profile: str = "paper", root=None):
    """The store's entries as one table, one row per instance and test lattice.

    Columns: ``label, family, augment, n_train, seed, val, epochs, best_epoch, lattice,
    test`` (the mean test loss over the lattice's chemical potentials) and ``test[n]``,
    ``test[phi2]``; per-mu losses are in :func:`point_table`.
    """
    import pandas as pd

    rows = []
    for e in current_entries(experiment, profile, root):
        inst = e["instance"]
        base = {
            "label": inst["label"], "family": inst["family"], "augment": inst["augment"],
            "n_train": inst["n_train"], "seed": inst["seed"], "val": e["best_val_loss"],
            "epochs": (e["history"]["epoch"] or [0])[-1], "best_epoch": e["best_epoch"],
            "train_seconds": e["train_seconds"], "key": e["keys"]["model"],
        }  # fmt: skip
        for lat, t in e["tests"].items():
            loss = np.array(t["loss"], dtype=float)
            rows.append({
                **base, "lattice": lat,
                "test": float(np.mean(loss)) if np.all(np.isfinite(loss)) else math.nan,
                "test[n]": float(np.mean(np.array(t["loss_n"], dtype=float))),
                "test[phi2]": float(np.mean(np.array(t["loss_phi2"], dtype=float))),
            })  # fmt: skip
    return pd.DataFrame(rows)


def point_table(experiment: str = "task1-comparison", profile: str = "paper", root=None):
    """One row per instance, test lattice and test file: ``label, family, augment, n_train,
    seed, lattice``, the file's point (``mu``; ``eta, mu`` for task 2), ``loss``, and the
    loss per output (``loss_n, loss_phi2``) or the ``accuracy`` where the entries hold them."""
    import pandas as pd

    rows = []
    for e in current_entries(experiment, profile, root):
        inst = e["instance"]
        base = {k: inst[k] for k in ("label", "family", "augment", "n_train", "seed")}
        base |= {k: inst[k] for k in ("phase", "onset") if k in inst}
        for lat, t in e["tests"].items():
            for j in range(len(t["loss"])):
                rows.append({**base, "lattice": lat, **{c: v[j] for c, v in t.items()}})
    return pd.DataFrame(rows, dtype=object).infer_objects()


def coverage(experiment: str = "task1-comparison", profile: str = "paper", root=None):
    """``(stored, planned, complete)``: current entries against the plan of ``profile``."""
    plan = _plan(experiment, profile)
    have = _current_instances(experiment, plan, root)
    planned = set(plan.instances())
    stored = len(have & planned)
    return stored, len(planned), stored == len(planned)


def complete_sizes(experiment: str = "task1-comparison", profile: str = "paper", root=None):
    """The ``N_train`` at which the store holds every planned instance (models x seeds)."""
    plan = _plan(experiment, profile)
    have = _current_instances(experiment, plan, root)
    return [
        m for m in plan.sizes
        if all(i in have for i in plan.instances() if i[2] == m)
    ]  # fmt: skip


def complete_seeds(experiment: str = "task1-comparison", profile: str = "paper", root=None):
    """``{N_train: [seeds]}``: the seeds at which the store holds every planned model (the
    finished chunks of :func:`run`, which a partial store shows)."""
    plan = _plan(experiment, profile)
    have = _current_instances(experiment, plan, root)
    out = {}
    for m in plan.sizes:
        seeds = [s for s in plan.seeds if all(
            i in have for i in plan.instances() if i[2] == m and i[3] == s
        )]  # fmt: skip
        if seeds:
            out[m] = seeds
    return out


def select_complete(table, chunks: dict, *, min_seeds: int = MIN_SEEDS):
    """Rows of ``table`` in finished chunks (``chunks`` from :func:`complete_seeds`) at the
    sizes with at least ``min_seeds`` finished seeds: every model with the same instances."""
    if not len(table):
        return table
    keep = {(m, s) for m, seeds in chunks.items() if len(seeds) >= min_seeds for s in seeds}
    mask = [(int(m), int(s)) in keep for m, s in zip(table["n_train"], table["seed"], strict=True)]
    return table[np.array(mask, dtype=bool)]


def store_line(stored: int, planned: int, provenance: dict) -> str:
    """How much of its plan an experiment's store holds, and where and when it was made
    (``provenance`` from :func:`provenance_summary`): one line for a page."""
    p, state = provenance, "complete" if stored == planned else "PARTIAL"
    return (
        f"results store: {stored} of {planned} planned instances ({state}), "
        f"{p['train_hours']:.2f} h of training on {', '.join(p['machines']) or '-'}, "
        f"{p['first'] or '-'} .. {p['last'] or '-'}"
    )


def provenance_summary(experiment: str = "task1-comparison", profile="paper", root=None) -> dict:
    """Where the current entries came from: commits, dates, machines, threads, training time."""
    found = current_entries(experiment, profile, root)
    prov = [e["provenance"] for e in found]
    return {
        "entries": len(found),
        "commits": sorted({p["commit"] for p in prov}),
        "first": min((p["date"] for p in prov), default=None),
        "last": max((p["date"] for p in prov), default=None),
        "machines": sorted({f"{p['cpu']} ({p['threads']} thread/instance)" for p in prov}),
        "train_hours": sum(e["train_seconds"] or 0.0 for e in found) / 3600,
    }


def store_digest(experiments_: Sequence[str], profile: str = "paper", root=None) -> str:
    """Digest of what a page showing these experiments depends on: every entry's checksum,
    and the plan, recipe and dataset keys of ``profile`` it is judged against."""
    from . import search_store

    payload = []
    for experiment in experiments_:
        if experiment in search_store.EXPERIMENTS:  # a stored architecture search
            payload.append([experiment, search_store.digest(profile, root, experiment=experiment)])
            continue
        _known(experiment)
        try:
            plan = _PLANS[experiment](profile)
            params, recipe = plan.params, recipe_keys(plan)
        except (ValueError, TypeError, KeyError) as exc:  # a malformed value still hashes
            params = notebook_params(EXPERIMENTS[experiment][1], profile)
            recipe = f"no plan: {type(exc).__name__}: {exc}"
        sums = checksums((root or store_dir()) / experiment)
        from .datasets.jobs import code_digest as data_code

        data = notebook_params("datasets", profile)  # raw: a malformed value still hashes
        payload.append([experiment, sums, params, recipe, data, data_code()])
    return keys.digest(payload)


def summary(profile: str = "paper", root: Path | None = None) -> dict:
    """What the store covers (current entries of ``profile``): per task, one row per model
    and size with its instance count (task 3 names the model, e.g. ``"1st EQ"``: a family
    has three); ``task1_phases``: the one-phase instances, with their ``phase``;
    ``task1_search``, ``task2_search``: per family, the finished trials of the
    stored architecture searches and their store budget (:mod:`qftml.search_store`;
    ``n_train`` None: the whole training set); ``pages``: per
    stored chapter run (:mod:`qftml.verdicts`), its verdicts, how many are confirmed, and
    whether it is current."""
    from . import search_store, verdicts

    out: dict[str, list] = {"task1": [], "task2": [], "task3": [], "task1_phases": [],
                            "task1_search": [], "task2_search": [], "pages": []}  # fmt: skip
    for stem, rec in verdicts.stored(None, profile, root).items():
        if rec is not None:
            out["pages"].append({
                "page": stem, "verdicts": len(rec["verdicts"]),
                "confirmed": sum(bool(v.confirmed) for v in rec["verdicts"]),
                "current": bool(rec["current"]),
            })  # fmt: skip
    for experiment in search_store.EXPERIMENTS:
        if not search_store.entries(root, experiment):
            continue
        found = search_store.load(profile, root, experiment=experiment)
        for fam, e in found.entries.items():
            out[experiment.replace("-", "_")].append({
                "family": fam, "n_train": found.plan.n_train, "trials": e["trials"]["finished"],
                "planned": found.plan.n_trials,
            })  # fmt: skip
    for experiment, (task, _) in EXPERIMENTS.items():
        counts: dict[tuple, int] = {}
        for e in current_entries(experiment, profile, root):
            i = e["instance"]
            key = (i["label"] if task == 3 else i["family"], i.get("phase"), i["n_train"],
                   i["augment"])  # fmt: skip
            counts[key] = counts.get(key, 0) + 1
        for (name, side, n_train, augment), n in sorted(counts.items()):
            head = {"model": name, "family": name.split()[-1]} if task == 3 else {"family": name}
            head |= {"phase": side} if side else {}
            out[SUMMARY_KEYS.get(experiment, f"task{task}")].append(
                {**head, "n_train": n_train, "augment": augment, "instances": n}
            )
    return out


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def verify(
    sample: int = 2,
    *,
    retrain: int = 1,
    seed: int = 0,
    root: Path | None = None,
    log: Callable[[str], None] = print,
    retrain_max_seconds: float | None = None,
) -> bool:
    """Check the store against today's code and data; returns True when everything holds.

    1. Every entry's keys (code digest, budget, libraries, spec, dataset content keys) are
       today's, and its checksum and weights file are intact.
    2. ``sample`` random entries are re-evaluated, each on one random (lattice, mu) test file
       regenerated from its seed, against the stored loss within :data:`EVAL_RTOL`.
    3. ``retrain`` entries (the cheapest made on this CPU model with today's libraries) are
       retrained from scratch; the weights must be bitwise the stored ones, or the test
       loss within :data:`RETRAIN_RTOL` (reported as such); for a detector (``"bce"``),
       whose cross-entropy near zero is set by its smallest margins, else the accuracy
       within one configuration of the test file. Entries made on another CPU are
       not retrained: its vector units round differently, and training amplifies that (a
       task-2 detector whose cross-entropy is 5e-5 on one CPU ends at 6e-9 on another,
       both at accuracy 1). With ``retrain_max_seconds`` only entries
       whose stored training took at most that long are candidates (CI's time is bounded);
       an experiment without one says so.
    """
    from . import datasets

    rng = random.Random(seed)
    ok = True
    for experiment, (task, _) in EXPERIMENTS.items():
        found = entries(experiment, root)
        if not found:
            log(f"{experiment}: no entries")
            continue
        profile = found[0]["provenance"]["profile"]
        plan = _plan(experiment, profile)
        dkeys = data_keys(task, profile)
        stale = 0
        for e in found:
            reasons = _stale_reasons(e, plan, dkeys)
            pt = Path(e["_path"]).with_suffix(".pt")
            if not pt.exists():
                reasons.append(f"weights file {pt.name} missing")
            if reasons:
                stale += 1
                log(f"  STALE {Path(e['_path']).name}: {', '.join(reasons)}")
        log(f"{experiment}: {len(found)} entries, {len(found) - stale} current, {stale} stale")
        ok &= stale == 0
        for e in rng.sample(found, min(sample, len(found))):
            model = load_model(Path(e["_path"]).with_suffix(".pt"))
            lat, j, point = rng.choice(_points(e, plan))
            data = datasets.load(task, profile, "test", lat, log=lambda *_: None, **point)
            got = evaluate(model, data.xy, loss=plan.loss)["loss"]
            want = e["tests"][lat]["loss"][j]
            good = abs(got - want) <= EVAL_RTOL * abs(want)
            ok &= good
            log(
                f"  re-evaluated {e['instance']['label']} N={e['instance']['n_train']} seed "
                f"{e['instance']['seed']} on {lat} {_where(point)}: {got:.7g} vs stored "
                f"{want:.7g} ({'ok' if good else 'MISMATCH'}, rtol {EVAL_RTOL:g})"
            )
        ok &= _verify_retrain(found, plan, retrain, log, retrain_max_seconds)
    return ok


def _verify_retrain(found, plan: Plan, n: int, log, max_seconds: float | None = None) -> bool:
    """Retrain the ``n`` cheapest matching entries; compare weights, else test losses."""
    from . import datasets

    libs = {"torch": torch.__version__, "numpy": np.__version__}
    here = {"cpu": _cpu_model(), "device": _device_name()}
    candidates = sorted(
        (e for e in found if e["keys"]["libraries"] == libs
         and all(e["provenance"].get(k) == v for k, v in here.items())),
        key=lambda e: (e["instance"]["n_train"], e["train_seconds"] or 0),
    )  # fmt: skip
    if n and not candidates:
        log(f"  retrain: no entry was made on this CPU ({here['cpu']}) and device "
            f"({here['device']}) with today's library versions; skipped (another device "
            "rounds differently, and training amplifies it)")  # fmt: skip
        return True
    if n and max_seconds is not None:
        cheap = [e for e in candidates if (e["train_seconds"] or 0) <= max_seconds]
        if not cheap:
            least = min(e["train_seconds"] or 0 for e in candidates)
            log(f"  retrain: skipped, the cheapest entry trained {least:.0f} s > "
                f"--retrain-max-seconds {max_seconds:g}")  # fmt: skip
            return True
        candidates = cheap
    task = EXPERIMENTS[plan.experiment][0]
    ok = True
    for e in candidates[:n]:
        i = e["instance"]
        full = [datasets.load(task, plan.profile, s, log=lambda *_: None) for s in ("train", "val")]
        train, val = phase_splits(plan, *full)[0][plan.phases.get(i["label"])]
        lattice = tuple(train.x.shape[-2:])
        tk = Task(n_out=len(train.target_names), lattice=lattice, loss=plan.loss)
        lat, j, point = _points(e, plan)[0]
        test = datasets.load(task, plan.profile, "test", lat, log=lambda *_: None, **point)
        with _threads(int(e["provenance"].get("threads") or 1)):
            table, insts = experiments.run_grid(
                {i["label"]: i["spec"]}, train.xy, val.xy, {"t": test.xy}, sizes=[i["n_train"]],
                seeds=[i["seed"]], augment=[None if i["augment"] == "none" else i["augment"]],
                task=tk, budget=plan.budget, subset_seed=plan.subset_seed,
                groups=_groups(plan, train), val_fraction=plan.val_fraction,
                val_groups=_groups(plan, val), cache=False, workers=0, desc="retrain",
            )  # fmt: skip
        stored = load_model(Path(e["_path"]).with_suffix(".pt"))
        same = instances._weights_digest(stored) == instances._weights_digest(insts[0].model)
        got, want = float(table["t"].iloc[0]), e["tests"][lat]["loss"][j]
        close, how = abs(got - want) <= RETRAIN_RTOL * abs(want), f"rtol {RETRAIN_RTOL:g}"
        if plan.loss == "bce" and not (same or close):  # a detector: compare its decisions
            acc = evaluate(insts[0].model, test.xy, loss="bce")["accuracy"]
            want_acc = e["tests"][lat]["accuracy"][j]
            close = abs(acc - want_acc) <= 1.0 / len(test) + 1e-12
            how += (f"; accuracy {acc:.6g} vs stored {want_acc:.6g}, within one of "
                    f"{len(test)} configurations: {close}")  # fmt: skip
        ok &= same or close
        log(
            f"  retrained {i['label']} N={i['n_train']} seed {i['seed']}: weights "
            f"{'bitwise equal' if same else 'differ'}; test loss on {lat} {_where(point)} "
            f"{got:.7g} vs stored {want:.7g} ({'ok' if same or close else 'MISMATCH'}, {how})"
        )
    return ok


def _where(point: dict) -> str:
    return " ".join(f"{p}={v:g}" for p, v in point.items())


class _threads:
    def __init__(self, n: int):
        self.n, self.old = n, torch.get_num_threads()

    def __enter__(self):
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)
