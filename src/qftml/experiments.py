"""Orchestration of the task chapters: many trained instances, cached, summarised, compared.

The comparisons of {cite}`Bulusu:2021njs` retrain each winning architecture from scratch
several times (*instances*, one per seed) for several training-set sizes and judge a family
by the spread of its instances. This module runs such grids with
:func:`qftml.training.train` and keeps every trained model on disk:

- **Cache.** An instance is stored under ``<data>/experiments/<key>.pt`` (see
  :func:`qftml.paths.data_dir`), where ``key`` hashes everything its weights depend on: the
  spec, the training lattice, the seed, the content of the training and validation data
  (:func:`fingerprint`), the loss and budget, the augmentation, and the source of the code
  that builds and trains networks (:func:`code_digest`). Re-running a chapter after a change
  to a figure loads the models instead of retraining them; a change to any input trains
  anew. Test losses are cached next to the model, keyed by the test data's content. Both
  files carry a SHA-256 checksum of their content (the weights; the results) and are
  written to a temporary unique to the writer, then renamed: a truncated or corrupt file is
  reported by name and retrained (re-evaluated), and two processes training one instance
  do not collide.
- **Training-set sizes.** :func:`nested_subsets` draws the subsets of a training set once,
  nested (a larger set contains every smaller one) and, given per-sample groups (e.g. the
  chemical potential), balanced over the groups.
- **Augmentation.** :class:`RandomTranslations` shifts every configuration of a mini-batch
  by its own random lattice translation: for a translation-invariant target this is the
  symmetry that an equivariant network has built in.
- **Statistics.** :func:`summarize` (mean, median, spread), :func:`compare` (one-sided
  Mann-Whitney test and probability of superiority between two groups of instances),
  :func:`scaling` (slope of ``log loss`` against ``log N_train``) and
  :func:`prediction_curves` (predicted and true targets against a parameter such as
  ``mu``).

Nothing here is specific to one task: the task enters through :class:`qftml.search.Task`
(outputs, lattice, loss) and the data passed in.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import keys
from .keys import fingerprint, normalized_source
from .nets import SpecNet, from_spec
from .paths import data_dir
from .processes import temporary_path
from .search import Task, run
from .training import Budget, as_tensors, evaluate, load_model, predict, save_model, train

__all__ = [
    "AUGMENTATIONS",
    "Instance",
    "RandomTranslations",
    "cache_dir",
    "code_digest",
    "compare",
    "fingerprint",
    "instance_key",
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


#: Defaults of :class:`qftml.search.Task` and :class:`qftml.training.Budget` (both frozen).
DEFAULT_TASK = Task()
DEFAULT_BUDGET = Budget()

# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


#: What builds, trains and tests a network: the roots of :func:`code_digest`.
CODE_ROOTS = ("from_spec", "train", "evaluate", "predict", "Budget")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of the code that determines trained weights and test losses.

    The definitions reachable from :data:`CODE_ROOTS` in the network and training modules,
    as code, not text (:func:`qftml.keys.code_digest`): a docstring edit, moving a function
    between these modules, or adding code that training never runs retrains nothing.
    """
    here = Path(__file__).resolve().parent
    files = [here / "training.py", here / "nets.py", *sorted((here / "nets").glob("*.py"))]
    return keys.code_digest((p for p in files if p.exists()), roots=CODE_ROOTS)


def cache_dir() -> Path:
    """Folder of cached instances: ``<data>/experiments``."""
    path = data_dir() / "experiments"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# Augmentation and subsets
# --------------------------------------------------------------------------------------------


def translate(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift sample ``b`` of ``x`` (shape ``(B, C, N_t, N_x)``) periodically by ``shifts[b]``.

    ``shifts`` has shape ``(B, 2)`` (``a_t, a_x``); the result equals
    ``torch.roll(x[b], tuple(shifts[b]), dims=(-2, -1))`` for every ``b``, computed for the
    whole batch at once with two gathers.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, N_t, N_x); got {tuple(x.shape)}")
    shifts = torch.as_tensor(shifts, device=x.device).long()
    if shifts.shape != (x.shape[0], 2):
        raise ValueError(f"shifts must have shape ({x.shape[0]}, 2); got {tuple(shifts.shape)}")
    b, c, nt, nx = x.shape
    t = (torch.arange(nt, device=x.device)[None, :] - shifts[:, :1]) % nt  # (B, N_t)
    s = (torch.arange(nx, device=x.device)[None, :] - shifts[:, 1:]) % nx  # (B, N_x)
    x = x.gather(2, t[:, None, :, None].expand(b, c, nt, nx))
    return x.gather(3, s[:, None, None, :].expand(b, c, nt, nx))


class RandomTranslations:
    """Augmentation: every sample of a batch shifted by a uniformly random lattice translation.

    Holds its own seeded generator, so a training run with it is reproducible and the
    mini-batch order of :func:`qftml.training.train` is the same as without it. Create a new
    instance for every training run.
    """

    name = "translations"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        nt, nx = x.shape[-2:]
        a_t = torch.randint(0, nt, (x.shape[0],), generator=self.generator)
        a_x = torch.randint(0, nx, (x.shape[0],), generator=self.generator)
        return translate(x, torch.stack([a_t, a_x], dim=1))


#: Augmentations by name (``None`` or ``"none"``: no augmentation).
AUGMENTATIONS = {"translations": RandomTranslations}


def _augmentation(name: str | None, seed: int):
    if name in (None, "none"):
        return None
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](seed)


def nested_subsets(n_total: int, sizes: Sequence[int], seed: int, groups=None) -> dict:
    """Indices of training subsets of the given ``sizes``, nested and reproducible.

    One random order of the ``n_total`` samples is drawn from ``seed``; a subset of size
    ``m`` is its first ``m`` entries, so every subset contains the smaller ones. With
    ``groups`` (one label per sample, e.g. the chemical potential) the order interleaves
    the groups, so each subset holds the groups as equally as their sizes allow.
    Returns ``{size: sorted index array}``.
    """
    n_total = int(n_total)
    sizes = [int(m) for m in sizes]
    for m in sizes:
        if not 1 <= m <= n_total:
            raise ValueError(f"subset size {m} is outside 1..{n_total} (the training set size)")
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n_total)
    else:
        groups = np.asarray(groups)
        if len(groups) != n_total:
            raise ValueError(f"groups has {len(groups)} labels for {n_total} samples")
        rank = np.empty(n_total)
        for g in np.unique(groups):
            members = np.flatnonzero(groups == g)
            rank[members[rng.permutation(len(members))]] = np.arange(len(members))
        # order by rank within the group, ties (same rank, different groups) at random
        order = np.lexsort((rng.random(n_total), rank))
    return {m: np.sort(order[:m]) for m in sizes}


# --------------------------------------------------------------------------------------------
# One instance
# --------------------------------------------------------------------------------------------


@dataclass
class Instance:
    """A trained instance: its cache key and file, what it is, and its training record."""

    key: str
    path: Path
    spec: str
    family: str
    seed: int
    n_train: int
    augment: str
    history: dict = field(default_factory=dict)
    cached: bool = False
    _model: SpecNet | None = field(default=None, repr=False)

    @property
    def model(self) -> SpecNet:
        """The trained network (loaded from disk on first use)."""
        if self._model is None:
            self._model = load_model(self.path)
        return self._model


def instance_key(
    spec: str, seed: int, data_key: str, task: Task, budget: Budget, augment: str | None
) -> str:
    """Content key of a training run (see the module docstring)."""
    aug = AUGMENTATIONS.get(augment) if augment not in (None, "none") else None
    payload = {
        "spec": from_spec(spec, task.lattice).spec,  # canonical spelling
        "lattice": list(task.lattice),
        "seed": int(seed),
        "data": data_key,
        "loss": task.loss,
        "budget": budget.key(),
        "augment": None if aug is None else [augment, normalized_source(inspect.getsource(aug))],
        "code": code_digest(),
        "libraries": {"torch": torch.__version__, "numpy": np.__version__},
    }
    return keys.digest(payload)


def _weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights (name, dtype, shape and bytes of every tensor)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(json.dumps(list(a.shape)).encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _load_checked(path: Path) -> SpecNet | None:
    """The cached model at ``path`` if it loads and matches its checksum, else ``None``
    (with a warning naming the file: the caller retrains)."""
    try:
        model = load_model(path)
        stored = (model.meta.get("extra") or {}).get("weights_sha256")
        problem = None if stored == _weights_digest(model) else "checksum mismatch"
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        problem = f"unreadable: {type(exc).__name__}: {exc}"
    if problem is None:
        return model
    warnings.warn(f"retraining {path} ({problem})", RuntimeWarning, stacklevel=3)
    return None


def _write_atomic(path: Path, write) -> None:
    """``write(tmp)`` to a temporary unique to this writer, then rename it onto ``path``."""
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _results_digest(results: dict) -> str:
    return hashlib.sha256(json.dumps(results, sort_keys=True).encode()).hexdigest()


def _load_results(store: Path) -> dict:
    """Cached test results of ``store`` (``<key>.eval.json``) if intact, else ``{}`` (with a
    warning naming the file: the caller re-evaluates)."""
    try:
        record = json.loads(store.read_text())
        results = record["results"]
        if record.get("checksum") != _results_digest(results):
            raise ValueError("checksum mismatch")
        return results
    except Exception as exc:  # truncated, not JSON, old layout, altered
        warnings.warn(
            f"re-evaluating {store} ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=3
        )
        return {}


def train_instance(
    spec: str,
    train_data,
    val_data,
    *,
    task: Task = DEFAULT_TASK,
    budget: Budget = DEFAULT_BUDGET,
    seed: int = 0,
    augment: str | None = None,
    cache: bool = True,
    device=None,
) -> Instance:
    """Train ``spec`` from scratch with ``seed`` (weights and batch order), or load it.

    ``augment`` names an entry of :data:`AUGMENTATIONS` (seeded with ``seed``). With
    ``cache`` an instance already on disk under the same key is loaded, not retrained.
    """
    X, y = as_tensors(train_data)
    Xv, yv = as_tensors(val_data)
    key = instance_key(spec, seed, fingerprint(X, y, Xv, yv), task, budget, augment)
    path = cache_dir() / f"{key}.pt"
    aug_name = augment or "none"
    model = _load_checked(path) if cache and path.exists() else None
    if model is not None:
        return Instance(
            key, path, model.spec, model.family, int(seed), len(X), aug_name,
            model.meta.get("history") or {}, True, model,
        )  # fmt: skip
    model = from_spec(spec, task.lattice, seed=int(seed))
    hist = train(
        model,
        (X, y),
        (Xv, yv),
        loss=task.loss,
        **budget.train_kwargs(len(X)),
        seed=int(seed),
        transform=_augmentation(augment, seed),
        device=device,
        desc=f"{model.family} seed {seed} N={len(X)}",
    )
    model.cpu()
    if cache:
        digest = _weights_digest(model)
        _write_atomic(  # a killed run leaves no half-written model behind
            path,
            lambda tmp: save_model(
                tmp, model, seed=int(seed), history=hist, n_train=len(X), augment=aug_name,
                weights_sha256=digest,
            ),
        )  # fmt: skip
    return Instance(
        key, path, model.spec, model.family, int(seed), len(X), aug_name, hist.to_dict(), False,
        model,
    )  # fmt: skip


def evaluate_instance(
    inst: Instance, tests: Mapping[str, tuple], *, task: Task = DEFAULT_TASK, cache: bool = True
) -> dict[str, dict]:
    """Metrics of :func:`qftml.training.evaluate` on each test set, ``{name: metrics}``.

    A model that cannot run on a test set's lattice (an FL network on another size) gets
    ``{"loss": nan}``. Results are cached in ``<key>.eval.json`` by the test data's content.
    """
    store = inst.path.with_suffix(".eval.json")
    known = _load_results(store) if cache and store.exists() else {}
    out, changed = {}, False
    for name, data in tests.items():
        X, y = as_tensors(data)
        tkey = f"{task.loss}:{fingerprint(X, y)}"
        if tkey not in known:
            try:
                inst.model.check_lattice(tuple(X.shape[-2:]))
            except ValueError:
                known[tkey] = {"loss": math.nan, "n": len(y)}
            else:
                known[tkey] = evaluate(inst.model, (X, y), loss=task.loss)
            changed = True
        out[name] = known[tkey]
    if cache and changed:
        record = {"results": known, "checksum": _results_digest(known)}
        _write_atomic(store, lambda tmp: tmp.write_text(json.dumps(record)))
    return out


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


def training_log() -> Path:
    """``<data>/experiments/trained.jsonl``: one line per instance trained by :func:`run_grid`.

    Each line holds the instance key, what it is, the training's wall time in seconds, the
    host and process that trained it and when (UTC): the record of the work a grid cost
    (its CPU time, summed over instances) and of where it ran.
    """
    return cache_dir() / "trained.jsonl"


def _log_training(inst: Instance) -> None:
    import os
    import socket

    record = {
        "key": inst.key, "family": inst.family, "n_train": inst.n_train, "seed": inst.seed,
        "augment": inst.augment, "seconds": inst.history.get("seconds", math.nan),
        "host": socket.gethostname(), "pid": os.getpid(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    line = (json.dumps(record) + "\n").encode()
    # one write(2) on an O_APPEND file: lines of concurrent writers do not interleave
    fd = os.open(training_log(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


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
) -> tuple:
    """Train (or load) every ``label x augment x size x seed`` instance; test each one.

    ``specs`` maps a label (e.g. the family) to a spec. ``sizes`` are training-set sizes
    (default: the whole set), drawn by :func:`nested_subsets` with ``subset_seed`` and
    ``groups``. The validation set is the whole ``val_data``; with ``val_fraction`` an
    instance of size ``m`` validates on ``int(val_fraction * m)`` samples of it (nested,
    drawn with ``subset_seed + 1``, balanced over ``val_groups``), as the source's 10 % of
    N_train {cite}`Ein:scalarmlreflection`. ``tests`` maps a name to an ``(X, y)`` pair.
    Returns ``(table, instances)``: a pandas DataFrame with one row per instance (``label,
    family, augment, n_train, n_val, seed, val, epochs, best_epoch, seconds, cached, key``,
    the loss on each test set under its name and, with ``output_names``, the loss per
    output as ``"<test>[<output>]"``), and the :class:`Instance` objects in the same order.

    Each instance is an independent job named by its key (:func:`qftml.grid.map_jobs`):
    instances not yet cached train on local worker processes, one per core (``workers``,
    ``$QFTML_WORKERS``; ``0``: in this process, as with a GPU ``device``), or on the Dask
    cluster at ``scheduler`` (``$QFTML_SCHEDULER``). Every finished instance is on disk,
    so after a crash the same call trains only what is missing. Trainings are logged in
    :func:`training_log`.
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
    results = grid.map_jobs(
        _grid_job, items, keys=names, shared=shared, inline=inline, scheduler=scheduler,
        workers=workers, desc=desc,
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
    the task, the budget, the seed, the pruner and :func:`code_digest`: a changed input
    starts a new study, while the same call again (from any chapter) loads the finished
    study, and a larger ``n_trials`` continues it. ``enqueue`` maps a family to specs (e.g.
    the published winners) run as its first trials; they enter the key.
    """
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
        studies[family] = run(
            family, (X, y), (Xv, yv), task=task, n_trials=n_trials, budget=budget,
            study_name=f"{prefix}-{family}-{key[:12]}", jobs=jobs, seed=seed, pruner=pruner,
            enqueue=list((enqueue or {}).get(family, ())),
        )  # fmt: skip
    return studies


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def summarize(table, by: Sequence[str], values: Sequence[str]):
    """Per group of ``by``: count, mean, median, std, sem, min and max of each of ``values``.

    Missing values (NaN: a model that cannot run on a test set) are left out of every
    statistic, and ``count`` says how many instances remain. Columns are a MultiIndex
    ``(value, statistic)``.
    """
    import pandas as pd

    missing = [c for c in [*by, *values] if c not in table.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the table; it has {list(table.columns)}")
    g = table.groupby(list(by), sort=True)[list(values)]
    stats = {
        "count": g.count(),
        "mean": g.mean(),
        "median": g.median(),
        "std": g.std(ddof=1),
        "sem": g.std(ddof=1) / np.sqrt(g.count()),
        "min": g.min(),
        "max": g.max(),
    }
    out = pd.concat(stats, axis=1).swaplevel(0, 1, axis=1)
    return out[[(v, s) for v in values for s in stats]]


def compare(table, by: Sequence[str], column: str, a, b, value: str):
    """Is ``value`` smaller for ``column == a`` than for ``column == b``, per group of ``by``?

    For each group: the instance counts, the medians, their ratio ``b / a``, the probability
    of superiority ``P(loss_a < loss_b)`` over all pairs of instances (ties count 1/2), and
    the one-sided Mann-Whitney ``p``-value of the hypothesis that ``a`` is not smaller. With
    ``n_a = n_b = n`` instances the smallest attainable ``p`` is ``1 / binom(2n, n)``
    (``p_min`` column), so few instances cannot give a small ``p`` however clear the
    ordering.
    """
    import pandas as pd
    from scipy.stats import mannwhitneyu

    rows = []
    keys = list(by)
    for group, sub in table.groupby(keys, sort=True) if keys else [((), table)]:
        va = sub.loc[sub[column] == a, value].dropna().to_numpy(float)
        vb = sub.loc[sub[column] == b, value].dropna().to_numpy(float)
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        row.update({"a": a, "b": b, "n_a": len(va), "n_b": len(vb)})
        if len(va) and len(vb):
            diff = va[:, None] - vb[None, :]
            row["median_a"], row["median_b"] = float(np.median(va)), float(np.median(vb))
            # a zero median (an error rate of 0, say): the ratio is infinite, or undefined
            # when both are zero
            if row["median_a"] > 0:
                row["ratio"] = row["median_b"] / row["median_a"]
            else:
                row["ratio"] = math.inf if row["median_b"] > 0 else math.nan
            row["p_superior"] = float(((diff < 0) + 0.5 * (diff == 0)).mean())
            row["p_value"] = float(mannwhitneyu(va, vb, alternative="less").pvalue)
            row["p_min"] = 1.0 / math.comb(len(va) + len(vb), len(va))
        rows.append(row)
    return pd.DataFrame(rows)


def scaling(table, by: Sequence[str], x: str, value: str, *, level: float = 0.95):
    """Least-squares slope of ``log10(value)`` against ``log10(x)`` per group of ``by``.

    Every instance is one point, so the scatter of instances sets the error. Returns the
    slope, its standard error, the fit's degrees of freedom ``dof = points - 2``, the
    two-sided ``p``-value of a zero slope, ``upper = slope + t_{(1+level)/2, dof} stderr``
    (the upper end of the two-sided ``level`` confidence interval, Student t since the
    variance is estimated from the fit) and ``improving = upper < 0``, and the number of
    points and of distinct ``x``. With few points the t quantile is much larger than the
    normal one (4.30 for 2 degrees of freedom against 1.96). A negative slope means the loss
    falls with more data; ``-1`` is the rate of averaging out noise.
    """
    import pandas as pd
    from scipy.stats import linregress
    from scipy.stats import t as student_t

    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    rows = []
    for group, sub in table.groupby(list(by), sort=True):
        sub = sub[[x, value]].dropna()
        sub = sub[(sub[x] > 0) & (sub[value] > 0)]
        row = dict(zip(by, group if isinstance(group, tuple) else (group,), strict=True))
        row.update({"points": len(sub), "sizes": sub[x].nunique(), "dof": len(sub) - 2})
        if sub[x].nunique() >= 2 and len(sub) >= 3:
            fit = linregress(np.log10(sub[x].to_numpy(float)), np.log10(sub[value].to_numpy(float)))
            upper = fit.slope + student_t.ppf(0.5 + level / 2, len(sub) - 2) * fit.stderr
            row.update({"slope": fit.slope, "stderr": fit.stderr, "p_value": fit.pvalue})
            row.update({"upper": upper, "improving": bool(upper < 0)})
        else:
            row.update({"slope": math.nan, "stderr": math.nan, "p_value": math.nan})
            row.update({"upper": math.nan, "improving": False})
        rows.append(row)
    return pd.DataFrame(rows)


def prediction_curves(models: Mapping, X, y, groups, *, output_names: Sequence[str] | None = None):
    """Predicted against true targets per group (e.g. per ``mu``), for each model.

    ``models`` maps a label (e.g. ``("EQ", seed)``) to a network. Returns a long pandas
    DataFrame, one row per (model, group, output): ``pred`` and ``true`` means with their
    standard errors over the group's samples, ``mse`` of the group, and ``count``. A model
    that cannot run on the lattice of ``X`` raises ``ValueError``.
    """
    import pandas as pd

    X, y = as_tensors((X, y))
    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} labels for {len(y)} samples")
    names = list(output_names or range(y.shape[1]))
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} output names for {y.shape[1]} outputs")
    yt = y.numpy().astype(np.float64)
    levels = np.unique(groups)
    rows = []
    for label, model in models.items():
        pred = predict(model, X).numpy().astype(np.float64)
        if pred.shape != yt.shape:
            raise ValueError(f"model {label!r} gives shape {pred.shape}, targets {yt.shape}")
        for g in levels:
            sel = groups == g
            k = int(sel.sum())
            for j, name in enumerate(names):
                p, t = pred[sel, j], yt[sel, j]
                rows.append(
                    {
                        "model": label,
                        "group": g,
                        "output": name,
                        "pred": p.mean(),
                        "pred_sem": p.std(ddof=1) / np.sqrt(k) if k > 1 else math.nan,
                        "true": t.mean(),
                        "true_sem": t.std(ddof=1) / np.sqrt(k) if k > 1 else math.nan,
                        "mse": float(((p - t) ** 2).mean()),
                        "count": k,
                    }
                )
    return pd.DataFrame(rows)
