"""One trained instance: its content key, its cache on disk, its data subsets and augmentation.

An *instance* is one architecture trained from scratch with one seed on one training set by
:func:`qftml.training.train` (:func:`train_instance`); :func:`qftml.experiments.run_grid`
trains and tests grids of them. Every trained model is kept on disk:

- **Cache.** An instance is stored under ``<data>/experiments/<key>.pt`` (see
  :func:`qftml.paths.data_dir`), where ``key`` hashes everything its weights depend on: the
  spec, the training lattice, the seed, the content of the training and validation data
  (:func:`~qftml.keys.fingerprint`), the loss and budget, the augmentation, and the source
  of the code that builds and trains networks (:func:`code_digest`). Re-running a chapter
  after a change to a figure loads the models instead of retraining them; a change to any
  input trains anew. Test losses are cached next to the model, keyed by the test data's
  content. Both files carry a SHA-256 checksum of their content (the weights; the results)
  and are written to a temporary unique to the writer, then renamed: a truncated or corrupt
  file is reported by name and retrained (re-evaluated), and two processes training one
  instance do not collide.
- **Training-set sizes.** :func:`nested_subsets` draws the subsets of a training set once,
  nested (a larger set contains every smaller one) and, given per-sample groups (e.g. the
  chemical potential), balanced over the groups.
- **Augmentation.** :class:`RandomTranslations` shifts every configuration of a mini-batch
  by its own random lattice translation: for a translation-invariant target this is the
  symmetry that an equivariant network has built in.

Every instance a grid trains is recorded in :func:`training_log`.
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

from . import keys, training
from .keys import fingerprint, normalized_source
from .nets import SpecNet, from_spec
from .paths import data_dir
from .processes import temporary_path
from .training import (
    Budget,
    Task,
    as_tensors,
    evaluate,
    load_model,
    save_model,
    train,
)

__all__ = [
    "AUGMENTATIONS",
    "CODE_ROOTS",
    "Instance",
    "RandomTranslations",
    "cache_dir",
    "code_digest",
    "evaluate_instance",
    "instance_key",
    "nested_subsets",
    "train_instance",
    "training_log",
    "translate",
]


#: Defaults of :class:`qftml.training.Task` and :class:`qftml.training.Budget` (both frozen).
DEFAULT_TASK = training.DEFAULT_TASK
DEFAULT_BUDGET = Budget()

# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


#: What builds, trains and tests a network: the roots of :func:`code_digest`.
CODE_ROOTS = ("from_spec", "train", "evaluate", "predict", "Budget")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of the code that determines trained weights and test losses.

    The definitions reachable from :data:`~qftml.instances.CODE_ROOTS` in the network and
    training modules, as code, not text (:func:`qftml.keys.code_digest`): a docstring edit,
    moving a function between these modules, or adding code that training never runs
    retrains nothing.
    """
    here = Path(__file__).resolve().parent
    files = [here / "training.py", *sorted((here / "nets").glob("*.py"))]
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

    ``augment`` names an entry of :data:`~qftml.instances.AUGMENTATIONS` (seeded with
    ``seed``). With ``cache`` an instance already on disk under the same key is loaded, not
    retrained.
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
# Training log
# --------------------------------------------------------------------------------------------


def training_log() -> Path:
    """``<data>/experiments/trained.jsonl``: one line per instance trained by a grid.

    Each line, written by :func:`qftml.experiments.run_grid`, holds the instance key, what it
    is, the training's wall time in seconds, the host and process that trained it and when
    (UTC): the record of the work a grid cost (its CPU time, summed over instances) and of
    where it ran.
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
