"""Orchestration of the task chapters: many trained instances, cached, summarised, compared.

The comparisons of :cite:p:`Bulusu:2021njs` retrain each winning architecture from scratch
several times (*instances*, one per seed) for several training-set sizes and judge a family
by the spread of its instances. The work is split over three modules; this one re-exports
the names of the other two (``experiments.train_instance``, ``experiments.compare``, ...):

- :mod:`qftml.instances`: one trained instance, its content key and its cache on disk
  (:func:`~qftml.instances.train_instance`, :func:`~qftml.instances.evaluate_instance`),
  nested training subsets, augmentation by random translations, the training log.
- :mod:`qftml.comparison`: statistics over instances (summaries, Mann-Whitney comparisons,
  scaling with ``N_train``, prediction curves).
- here: grids of instances (:func:`run_grid`, every ``label x augment x size x seed``
  instance trained or loaded as an independent job and tested) and architecture searches
  keyed by their inputs (:func:`search_studies`).

Nothing here is specific to one task: the task enters through :class:`qftml.training.Task`
(outputs, lattice, loss) and the data passed in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from . import keys
from .comparison import compare, median_interval, prediction_curves, scaling, summarize
from .instances import (
    AUGMENTATIONS,
    CODE_ROOTS,
    DEFAULT_BUDGET,
    DEFAULT_TASK,
    Instance,
    RandomTranslations,
    _log_training,
    cache_dir,
    code_digest,
    evaluate_instance,
    instance_key,
    nested_subsets,
    train_instance,
    training_log,
    translate,
)
from .keys import fingerprint
from .processes import clean_temporaries
from .training import Budget, Task, as_tensors

__all__ = [
    "AUGMENTATIONS",
    "CODE_ROOTS",
    "Instance",
    "RandomTranslations",
    "cache_dir",
    "code_digest",
    "compare",
    "fingerprint",
    "instance_key",
    "median_interval",
    "nested_subsets",
    "prediction_curves",
    "run_grid",
    "scaling",
    "search_studies",
    "summarize",
    "train_instance",
    "evaluate_instance",
    "training_log",
    "translate",
]


# --------------------------------------------------------------------------------------------
# Grids of instances
# --------------------------------------------------------------------------------------------


def _grid_job(
    item, *, X, y, Xv, yv, tests, task, budget, output_names, cache, device
) -> tuple[dict, Instance]:
    """One instance of :func:`run_grid`: train (or load) it, test it, its table row."""
    label, spec, aug, m, seed, idx, vidx = item
    start = time.perf_counter()
    idx, vidx = torch.from_numpy(idx), torch.from_numpy(vidx)
    inst = train_instance(
        spec, (X[idx], y[idx]), (Xv[vidx], yv[vidx]), task=task, budget=budget, seed=seed,
        augment=aug, cache=cache, device=device,
    )  # fmt: skip
    if cache and not inst.cached:
        _log_training(inst)
    hist = inst.history
    row = {
        "label": label,
        "family": inst.family,
        "augment": aug,
        "n_train": m,
        "n_val": len(vidx),
        "seed": seed,
        "val": hist.get("best_val_loss", math.nan),
        "epochs": (hist.get("epoch") or [0])[-1],
        "best_epoch": hist.get("best_epoch", 0),
        "train_seconds": hist.get("seconds", math.nan),
    }
    for name, metrics in evaluate_instance(inst, tests, task=task, cache=cache).items():
        row[name] = metrics["loss"]
        for j, out in enumerate(output_names or []):
            row[f"{name}[{out}]"] = metrics.get(f"loss_{j}", math.nan)
    row["seconds"] = time.perf_counter() - start
    row["cached"] = inst.cached
    row["key"] = inst.key
    return row, inst


def run_grid(
    specs: Mapping[str, str],
    train_data,
    val_data,
    tests: Mapping[str, tuple] | None = None,
    *,
    sizes: Sequence[int] | None = None,
    seeds: Sequence[int] = (0,),
    augment: Sequence[str | None] = (None,),
    task: Task = DEFAULT_TASK,
    budget: Budget = DEFAULT_BUDGET,
    subset_seed: int = 0,
    groups=None,
    val_fraction: float | None = None,
    val_groups=None,
    output_names: Sequence[str] | None = None,
    cache: bool = True,
    device=None,
    desc: str = "instances",
    scheduler=None,
    workers: int | None = None,
    on_instance=None,
) -> tuple:
    """Train (or load) every ``label x augment x size x seed`` instance; test each one.

    ``specs`` maps a label (e.g. the family) to a spec. ``sizes`` are training-set sizes
    (default: the whole set), drawn by :func:`~qftml.instances.nested_subsets` with
    ``subset_seed`` and ``groups``. The validation set is the whole ``val_data``; with
    ``val_fraction`` an instance of size ``m`` validates on ``int(val_fraction * m)`` samples
    of it (nested, drawn with ``subset_seed + 1``, balanced over ``val_groups``), as the
    source's 10 % of N_train :cite:p:`Ein:scalarmlreflection`. ``tests`` maps a name to an
    ``(X, y)`` pair. Returns ``(table, instances)``: a pandas DataFrame with one row per
    instance (``label, family, augment, n_train, n_val, seed, val, epochs, best_epoch,
    seconds, cached, key``, the loss on each test set under its name and, with
    ``output_names``, the loss per output as ``"<test>[<output>]"``), and the
    :class:`~qftml.instances.Instance` objects in the same order.

    Each instance is an independent job named by its key (:func:`qftml.grid.map_jobs`):
    instances not yet cached train on local worker processes, one per core (``workers``,
    ``$QFTML_WORKERS``; ``0``: in this process, as with a GPU ``device``), or on the Dask
    cluster at ``scheduler`` (``$QFTML_SCHEDULER``). Every finished instance is on disk,
    so after a crash the same call trains only what is missing. Trainings are logged in
    :func:`~qftml.instances.training_log`. ``on_instance(row, instance)`` is called for each
    instance as soon as it is done (``row``: its table row as a dict).
    """
    import pandas as pd

    from . import grid

    X, y = as_tensors(train_data)
    Xv, yv = as_tensors(val_data)
    tests = {name: as_tensors(d) for name, d in (tests or {}).items()}
    sizes = [len(X)] if sizes is None else [int(m) for m in sizes]
    subsets = nested_subsets(len(X), sizes, subset_seed, groups)
    if val_fraction is None:
        vsubsets = {m: np.arange(len(Xv)) for m in sizes}
    else:
        if not 0 < val_fraction:
            raise ValueError(f"val_fraction must be positive; got {val_fraction}")
        vsizes = {m: max(1, int(val_fraction * m)) for m in sizes}
        drawn = nested_subsets(len(Xv), sorted(set(vsizes.values())), subset_seed + 1, val_groups)
        vsubsets = {m: drawn[vsizes[m]] for m in sizes}
    augment = [a or "none" for a in augment]
    seeds = [int(s) for s in seeds]
    jobs = [(lab, a, m, s) for lab in specs for a in augment for m in sizes for s in seeds]
    if device is not None and torch.device(device).type != "cpu":
        if grid.scheduler_address(scheduler) is None:
            workers = 0  # one accelerator: train in this process
    tests_key = keys.digest(
        [task.loss, list(output_names or []), bool(cache)]
        + [[name, fingerprint(*d)] for name, d in tests.items()]
    )
    if cache:  # what killed writers left behind (a live writer's file stays)
        clean_temporaries(cache_dir())
    items, names, inline, slot = [], [], [], []
    for label, aug, m, seed in jobs:
        idx, vidx = subsets[m], vsubsets[m]
        key = instance_key(
            specs[label], seed, fingerprint(X[idx], y[idx], Xv[vidx], yv[vidx]), task, budget, aug
        )
        name = f"instance-{key[:24]}-{tests_key[:8]}"
        if name in names:  # two labels for one spec: one job, one row each
            slot.append((names.index(name), label))
            continue
        slot.append((len(items), label))
        items.append((label, specs[label], aug, m, seed, idx, vidx))
        names.append(name)
        inline.append(cache and (cache_dir() / f"{key}.pt").exists())
    shared = dict(
        X=X, y=y, Xv=Xv, yv=yv, tests=tests, task=task, budget=budget,
        output_names=list(output_names or []), cache=cache, device=device,
    )  # fmt: skip

    def done(j, result):
        for job, label in slot:
            if job == j:
                on_instance({**result[0], "label": label}, result[1])

    results = grid.map_jobs(
        _grid_job, items, keys=names, shared=shared, inline=inline, scheduler=scheduler,
        workers=workers, desc=desc, on_result=done if on_instance is not None else None,
    )  # fmt: skip
    rows = [{**results[j][0], "label": label} for j, label in slot]
    instances = [results[j][1] for j, _ in slot]
    return pd.DataFrame(rows), instances


def search_studies(
    families: Sequence[str],
    train_data,
    val_data,
    *,
    task: Task = DEFAULT_TASK,
    budget: Budget = DEFAULT_BUDGET,
    n_trials: int = 100,
    seed: int = 0,
    jobs: int = 1,
    pruner: str = "median",
    prefix: str = "search",
    enqueue: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """Run (or resume) one :func:`qftml.search.run` study per family; ``{family: study}``.

    The study name is ``<prefix>-<family>-<key>`` with ``key`` a hash of the data's content,
    the task, the budget, the seed, the pruner and :func:`~qftml.instances.code_digest`: a
    changed input starts a new study, while the same call again (from any chapter) loads the
    finished study, and a larger ``n_trials`` continues it. ``enqueue`` maps a family to
    specs (e.g. the published winners) run as its first trials; they enter the key.
    """
    import optuna

    from . import search  # optuna only where a search runs

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # results, not a log of each trial
    X, y = as_tensors(train_data)
    Xv, yv = as_tensors(val_data)
    payload = {
        "data": fingerprint(X, y, Xv, yv),
        "task": {k: getattr(task, k) for k in sorted(task.__dataclass_fields__)},
        "budget": {k: getattr(budget, k) for k in sorted(budget.__dataclass_fields__)},
        "seed": int(seed),
        "pruner": pruner,
        "code": code_digest(),
    }
    if enqueue:
        payload["enqueue"] = {f: list(v) for f, v in sorted(enqueue.items())}
    key = keys.digest(payload)
    studies = {}
    for family in families:
        studies[family] = search.run(
            family, (X, y), (Xv, yv), task=task, n_trials=n_trials, budget=budget,
            study_name=f"{prefix}-{family}-{key[:12]}", jobs=jobs, seed=seed, pruner=pruner,
            enqueue=list((enqueue or {}).get(family, ())),
        )  # fmt: skip
    return studies
