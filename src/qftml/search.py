"""Architecture search with optuna :cite:p:`Akiba:2019optuna`, as in :cite:p:`Bulusu:2021njs`.

**Search space** (per family, :func:`suggest_spec`). A network is ``n_conv`` blocks
``Conv(KxK, in, w)`` ``[LeakyReLU]`` ``[pool]``, then a global pooling (EQ, ST) or
``Flatten`` (FL), then ``n_linear`` dense layers (``[LeakyReLU]`` after each hidden one),
then ``Sigmoid`` when the task's loss is ``"bce"``. Per block the kernel ``K`` in {1, 2, 3},
the width ``w``, the bias and the activation are chosen; ST and FL blocks may end with a
2 × 2 average or max pooling of stride 2 (ST needs at least one); EQ/ST choose the global
pooling (avg, max, sum); each dense layer chooses width and bias. This space contains all 15
winners of the source's backup tables (:func:`params_for_spec` maps a spec to its point in the
space; the tests check all 15).

**Trials** train with :func:`qftml.training.train` under a :class:`~qftml.training.Budget`
and report the validation loss after every epoch, so a median or Hyperband pruner stops bad
trials early.

**Persistence and parallelism.** A study lives in a storage: by default optuna's journal
file ``<data>/optuna/<study>.journal`` (safe for several processes on one machine); an
``sqlite:///...`` URL; or a ``postgresql://user:pw@host/db`` URL, which spreads one study
over many machines: run :func:`run` (or ``python -m qftml.search ...``) with the same
``storage`` and ``study_name`` on each, each with its own ``jobs``. ``n_trials`` is the target
number of finished (complete or pruned) trials of the *study*, so an interrupted search is
resumed by running the same call again: trials of worker processes that died are marked
failed (local processes by their process id; on PostgreSQL also by optuna's heartbeat) and
replaced, and the study ends with exactly ``n_trials`` finished trials.

**Resuming without repeating.** Before every trial the sampler is seeded from the search
seed, the worker and the number of trials already in the study, so a resumed or chunked
search continues the sequence instead of replaying TPE's random start-up (same calls, same
study). A proposed architecture that the study has already evaluated (or is evaluating) is
not trained again: the trial is marked failed with ``duplicate_of`` and does not count.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from .nets import from_spec, parse_spec, spec_family
from .paths import data_dir
from .processes import exit_with_parent, pid_alive
from .training import DEFAULT_TASK, Budget, Task, as_tensors, train  # Task, Budget: re-exported

__all__ = [
    "WIDTHS",
    "KERNELS",
    "InvalidSpec",
    "suggest_spec",
    "params_for_spec",
    "default_storage",
    "make_storage",
    "repair_journal",
    "run",
    "finished_trials",
    "top_specs",
    "main",
]

#: Channel / feature widths and kernel sizes the search chooses from.
WIDTHS = (4, 8, 16, 24, 32, 48, 64, 80)
KERNELS = (1, 2, 3)
POOLS = ("none", "avg", "max")
GLOBAL_POOLS = ("avg", "max", "sum")
_GP_NAME = {"avg": "GlobalAvgPool", "max": "GlobalMaxPool", "sum": "GlobalSumPool"}
_POOL_NAME = {"avg": "AvgPool", "max": "MaxPool"}
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class InvalidSpec(ValueError):
    """A sampled point of the search space that does not make a valid network."""


def _b(x) -> str:
    return "" if x else "*"


def suggest_spec(trial: optuna.trial.BaseTrial, family: str, task: Task = DEFAULT_TASK) -> str:
    """Sample an architecture of ``family`` from ``trial``; returns its spec string.

    Raises :class:`InvalidSpec` when the sample is not a valid network for ``task``
    (ST without strided pooling, pooling below one site on the training lattice).
    """
    family = family.upper()
    if family not in ("EQ", "ST", "FL"):
        raise ValueError(f"unknown family {family!r}; choose EQ, ST or FL")
    n_conv = trial.suggest_int("n_conv", 1, task.max_conv)
    n_linear = trial.suggest_int("n_linear", 1 if family == "FL" else 0, task.max_linear)
    tokens, chans = [], task.n_in
    pooled = False
    for i in range(n_conv):
        k = trial.suggest_categorical(f"conv{i}_kernel", KERNELS)
        last_is_output = i == n_conv - 1 and n_linear == 0
        w = task.n_out if last_is_output else trial.suggest_categorical(f"conv{i}_width", WIDTHS)
        bias = trial.suggest_categorical(f"conv{i}_bias", (True, False))
        tokens.append(f"Conv{_b(bias)}({k}x{k}, {chans}, {w})")
        if trial.suggest_categorical(f"conv{i}_act", (True, False)):
            tokens.append("LeakyReLU")
        if family in ("ST", "FL"):
            pool = trial.suggest_categorical(f"conv{i}_pool", POOLS)
            if pool != "none":
                tokens.append(f"{_POOL_NAME[pool]}(2x2, 2)")
                pooled = True
        chans = w
    if family == "ST" and not pooled:
        raise InvalidSpec("an ST network needs at least one strided pooling")
    if family == "FL":
        tokens.append("Flatten")
        t, x = task.lattice
        for tok in tokens:
            if tok.endswith("(2x2, 2)"):
                t, x = (t - 2) // 2 + 1, (x - 2) // 2 + 1
                if min(t, x) < 1:
                    raise InvalidSpec(f"too many poolings for the {task.lattice} lattice")
        features = chans * t * x
    else:
        tokens.append(_GP_NAME[trial.suggest_categorical("global_pool", GLOBAL_POOLS)])
        features = chans
    for j in range(n_linear):
        last = j == n_linear - 1
        w = task.n_out if last else trial.suggest_categorical(f"lin{j}_width", WIDTHS)
        bias = trial.suggest_categorical(f"lin{j}_bias", (True, False))
        tokens.append(f"Linear{_b(bias)}({features}, {w})")
        if not last and trial.suggest_categorical(f"lin{j}_act", (True, False)):
            tokens.append("LeakyReLU")
        features = w
    if task.loss == "bce":
        tokens.append("Sigmoid")
    spec = " ".join(tokens)
    try:
        from_spec(spec, task.lattice if family == "FL" else None).check_lattice(task.lattice)
    except ValueError as exc:
        raise InvalidSpec(str(exc)) from exc
    return spec


def params_for_spec(spec: str, task: Task = DEFAULT_TASK) -> dict:
    """The point of the search space that :func:`suggest_spec` turns into ``spec``.

    Raises ``ValueError`` if ``spec`` is outside the space. Use it to show that the space
    expresses a given architecture, or to enqueue known architectures into a study.
    """
    layers = parse_spec(spec)
    family = spec_family(layers)
    params: dict = {}
    i, n_conv = 0, 0
    convs = []  # (layer, act, pool)
    while i < len(layers) and layers[i].kind == "Conv":
        conv, act, pool = layers[i], False, "none"
        i += 1
        if i < len(layers) and layers[i].kind == "LeakyReLU":
            act, i = True, i + 1
        if i < len(layers) and layers[i].kind in ("AvgPool", "MaxPool"):
            if (layers[i].kernel, layers[i].stride) != (2, 2) or family == "EQ":
                raise ValueError(f"{layers[i]} is outside the search space")
            pool, i = layers[i].kind[:3].lower(), i + 1
        convs.append((conv, act, pool))
    n_conv = len(convs)
    if i >= len(layers):
        raise ValueError(f"{spec!r} has no global pooling or Flatten after its convolutions")
    head = layers[i]
    i += 1
    linears = []
    while i < len(layers) and layers[i].kind == "Linear":
        lin, act = layers[i], False
        i += 1
        if i < len(layers) and layers[i].kind == "LeakyReLU":
            act, i = True, i + 1
        linears.append((lin, act))
    rest = [la.kind for la in layers[i:]]
    if rest not in ([], ["Sigmoid"]) or (rest == ["Sigmoid"]) != (task.loss == "bce"):
        raise ValueError(f"the tail {rest} of {spec!r} is outside the space for loss {task.loss!r}")
    params["n_conv"] = n_conv
    params["n_linear"] = len(linears)
    for n, (conv, act, pool) in enumerate(convs):
        params[f"conv{n}_kernel"] = conv.kernel
        if not (n == n_conv - 1 and not linears):
            if conv.n_out not in WIDTHS:
                raise ValueError(f"width {conv.n_out} of {conv} is not in {WIDTHS}")
            params[f"conv{n}_width"] = conv.n_out
        params[f"conv{n}_bias"] = conv.bias
        params[f"conv{n}_act"] = act
        if family in ("ST", "FL"):
            params[f"conv{n}_pool"] = pool
    if head.kind.startswith("Global"):
        params["global_pool"] = head.kind[len("Global") : -len("Pool")].lower()
    elif head.kind != "Flatten":
        raise ValueError(f"expected a global pooling or Flatten, found {head}")
    for n, (lin, act) in enumerate(linears):
        if n < len(linears) - 1:
            if lin.n_out not in WIDTHS:
                raise ValueError(f"width {lin.n_out} of {lin} is not in {WIDTHS}")
            params[f"lin{n}_width"] = lin.n_out
            params[f"lin{n}_act"] = act
        elif act:
            raise ValueError(f"the output layer {lin} is followed by an activation")
        params[f"lin{n}_bias"] = lin.bias
    return params


# --------------------------------------------------------------------------------------------
# Storage and workers
# --------------------------------------------------------------------------------------------


def default_storage(study_name: str) -> str:
    """Journal file for ``study_name`` under the data folder."""
    folder = data_dir() / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{study_name}.journal")


def repair_journal(path: str | os.PathLike) -> list[str]:
    """Repair a journal file damaged by a partial write; return what was done (empty: intact).

    optuna appends one JSON record per line and cannot load a journal with a torn line (its
    issue 5138): a write cut short (full disk, killed writer) leaves a last line without its
    newline, and the next append lands behind it. Under the journal's own lock, a torn last
    line is cut off, and a line that does not parse is replaced by the complete record that
    was appended behind the torn part (or dropped if there is none). The damaged file is kept
    as ``<path>.damaged-<time>``.
    """
    from optuna.storages.journal import JournalFileOpenLock

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    lock = JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        lines, done = data.split(b"\n"), []
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            done.append(f"cut a torn last record of {len(tail)} bytes")
        kept = []
        for number, line in enumerate(lines, 1):
            try:
                json.loads(line)
                kept.append(line)
                continue
            except ValueError:
                pass
            for start in (i for i in range(1, len(line)) if line.startswith(b'{"', i)):
                try:
                    record = json.loads(line[start:])
                except ValueError:
                    continue
                if isinstance(record, dict) and "op_code" in record:
                    kept.append(line[start:])
                    done.append(f"line {number}: dropped a torn record of {start} bytes")
                    break
            else:
                done.append(f"line {number}: dropped an unreadable line of {len(line)} bytes")
        if done:
            backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            backup.write_bytes(data)
            tmp = path.with_name(f"{path.name}.repair-{os.getpid()}")
            tmp.write_bytes(b"".join(line + b"\n" for line in kept))
            os.replace(tmp, path)
            print(
                f"repaired {path} ({'; '.join(done)}; original kept as {backup.name})",
                file=sys.stderr,
            )
        return done
    finally:
        lock.release()


def make_storage(storage: str | os.PathLike) -> optuna.storages.BaseStorage:
    """An optuna storage from a URL (``sqlite:///``, ``postgresql://``, ...) or a journal path.

    Database servers get optuna's heartbeat (60 s; a trial silent for 180 s is failed), so
    a study spread over machines recovers from a worker that died anywhere.
    """
    s = str(storage)
    if "://" not in s:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        Path(s).parent.mkdir(parents=True, exist_ok=True)
        repair_journal(s)
        return optuna.storages.JournalStorage(
            JournalFileBackend(s, lock_obj=JournalFileOpenLock(s))
        )
    try:
        if s.startswith("sqlite"):
            return optuna.storages.RDBStorage(s, engine_kwargs={"connect_args": {"timeout": 60}})
        return optuna.storages.RDBStorage(s, heartbeat_interval=60, grace_period=180)
    except Exception as exc:  # sqlalchemy: unknown dialect, missing driver, no server, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"cannot open the optuna storage {s!r}: {first}") from exc


@dataclass
class _Config:
    family: str
    task: Task
    budget: Budget
    n_trials: int
    storage: str
    study_name: str
    seed: int
    pruner: str
    max_new_trials: int | None
    tune_lr: bool
    data: dict = field(default_factory=dict)  # "train" / "val": (X, y) tensors


def _pruner(name: str, budget: Budget) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=2, max_resource=budget.max_epochs)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; choose median, hyperband or none")


def _sampler(cfg: _Config, worker: int, n_existing: int) -> optuna.samplers.TPESampler:
    """TPE seeded by (seed, worker, trials so far): a resumed study does not replay."""
    seq = np.random.SeedSequence([int(cfg.seed), int(worker), int(n_existing)])
    return optuna.samplers.TPESampler(seed=int(seq.generate_state(1)[0]))


def _study(cfg: _Config, worker: int = 0) -> optuna.Study:
    return optuna.create_study(
        study_name=cfg.study_name,
        storage=make_storage(cfg.storage),
        direction="minimize",
        load_if_exists=True,
        sampler=_sampler(cfg, worker, 0),
        pruner=_pruner(cfg.pruner, cfg.budget),
    )


def _fail_dead_trials(study: optuna.Study) -> int:
    """Mark failed the RUNNING trials whose worker process on this host no longer exists."""
    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("worker")
        if owner is None:
            age = time.time() - t.datetime_start.timestamp() if t.datetime_start else 0
            dead = age > 120  # died between ask() and recording its owner
        else:
            dead = owner["host"] == host and not pid_alive(owner["pid"])
        if dead:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "failed", "worker died")
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                n += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
    return n


class _Cancelled(Exception):
    """The study reached its target while this trial was being created."""


class _Duplicate(Exception):
    """The proposed architecture was already evaluated in this study."""


#: Consecutive duplicate proposals after which a worker gives up (the space is exhausted).
MAX_DUPLICATES = 50


def _point(spec: str, params: dict, cfg: _Config) -> tuple:
    return (spec, params.get("lr")) if cfg.tune_lr else (spec,)


def _evaluated(study: optuna.Study, trial: optuna.Trial, cfg: _Config, point: tuple) -> int | None:
    """Number of an earlier live trial of ``study`` at the same point, or ``None``."""
    for t in study.get_trials(deepcopy=False, states=_LIVE):
        if t.number != trial.number and "spec" in t.user_attrs:
            if _point(t.user_attrs["spec"], t.params, cfg) == point:
                return t.number
    return None


def _objective(cfg: _Config, study: optuna.Study, trial: optuna.Trial) -> float:
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    before = sum(
        1 for t in study.get_trials(deepcopy=False, states=_LIVE) if t.number < trial.number
    )
    if before >= cfg.n_trials:
        trial.set_user_attr("failed", "cancelled: the study reached its target")
        raise _Cancelled
    try:
        spec = suggest_spec(trial, cfg.family, cfg.task)
    except InvalidSpec as exc:
        trial.set_user_attr("invalid", str(exc))
        raise optuna.TrialPruned(f"invalid architecture: {exc}") from None
    lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True) if cfg.tune_lr else cfg.budget.lr
    same = _evaluated(study, trial, cfg, _point(spec, trial.params, cfg))
    if same is not None:
        trial.set_user_attr("duplicate_of", same)
        trial.set_user_attr("failed", f"duplicate of trial {same}: not trained again")
        raise _Duplicate
    model = from_spec(spec, cfg.task.lattice, seed=cfg.seed + trial.number)
    trial.set_user_attr("spec", spec)
    trial.set_user_attr("n_params", model.n_params)

    def report(epoch, train_loss, val_loss):
        trial.report(val_loss, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    try:
        hist = train(
            model,
            cfg.data["train"],
            cfg.data["val"],
            loss=cfg.task.loss,
            **{**cfg.budget.train_kwargs(len(cfg.data["train"][0])), "lr": lr},
            seed=cfg.seed + trial.number,
            on_epoch=report,
            desc=f"trial {trial.number}",
        )
    except FloatingPointError as exc:  # a diverging network is a bad architecture
        raise optuna.TrialPruned(str(exc)) from None
    if not math.isfinite(hist.best_val_loss):
        raise optuna.TrialPruned("the validation loss is not finite")
    trial.set_user_attr("best_epoch", hist.best_epoch)
    return hist.best_val_loss


def _run_trial(cfg: _Config, study: optuna.Study, duplicate: list, trial: optuna.Trial):
    """:func:`_objective`, noting in ``duplicate`` a trial refused as already evaluated."""
    try:
        return _objective(cfg, study, trial)
    except _Duplicate:
        duplicate.append(trial.number)
        raise


def _worker(cfg: _Config, worker: int = 0) -> None:
    """Run trials until the study has ``n_trials`` finished ones (or this worker's quota)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    study = _study(cfg, worker)
    done_here, duplicates = 0, 0
    while cfg.max_new_trials is None or done_here < cfg.max_new_trials:
        _fail_dead_trials(study)
        if len(study.get_trials(deepcopy=False, states=_LIVE)) >= cfg.n_trials:
            break
        study.sampler = _sampler(cfg, worker, len(study.get_trials(deepcopy=False)))
        duplicate: list[int] = []
        study.optimize(
            functools.partial(_run_trial, cfg, study, duplicate),
            n_trials=1,
            catch=(_Cancelled, _Duplicate, RuntimeError, ValueError, FloatingPointError),
            gc_after_trial=False,
            show_progress_bar=False,
        )
        if duplicate:
            duplicates += 1
            if duplicates >= MAX_DUPLICATES:
                print(
                    f"search {cfg.study_name}: {duplicates} proposals in a row were already "
                    "evaluated; stopping (the search space looks exhausted)",
                    file=sys.stderr,
                )
                break
            continue
        duplicates = 0
        done_here += 1


def _worker_main(cfg_path: str, worker: int, threads: int) -> None:
    """Entry point of a worker process started by :func:`run` (``--worker``)."""
    exit_with_parent()  # a killed search leaves no worker behind
    with open(cfg_path, "rb") as fh:
        cfg = pickle.load(fh)
    torch.set_num_threads(threads)
    _worker(cfg, worker)


def run(
    family: str,
    train_data,
    val_data,
    *,
    task: Task = DEFAULT_TASK,
    n_trials: int = 100,
    budget: Budget | None = None,
    study_name: str | None = None,
    storage: str | os.PathLike | None = None,
    jobs: int = 1,
    seed: int = 0,
    pruner: str = "median",
    tune_lr: bool = False,
    max_new_trials: int | None = None,
    enqueue: list[str] | None = None,
) -> optuna.Study:
    """Search architectures of ``family`` until the study has ``n_trials`` finished trials.

    ``jobs`` worker processes share the study through ``storage`` (default: a journal file
    under the data folder, see :func:`default_storage`); each uses ``cores / jobs`` torch
    threads. Calling ``run`` again with the same ``study_name`` resumes the study.
    ``max_new_trials`` caps the trials each worker runs in this call (to search in chunks).
    ``enqueue`` adds specs (e.g. the published winners) as the first trials. Returns the
    study, loaded from its storage. The result is reproducible for ``jobs=1``; parallel
    workers interleave in an order set by timing.
    """
    budget = Budget() if budget is None else budget
    family = family.upper()
    if family not in ("EQ", "ST", "FL"):
        raise ValueError(f"unknown family {family!r}; choose EQ, ST or FL")
    if n_trials < 1 or jobs < 1:
        raise ValueError(f"n_trials and jobs must be >= 1; got n_trials={n_trials}, jobs={jobs}")
    study_name = study_name or f"{family}-search"
    storage = str(storage) if storage is not None else default_storage(study_name)
    cfg = _Config(
        family=family,
        task=task,
        budget=budget,
        n_trials=n_trials,
        storage=storage,
        study_name=study_name,
        seed=seed,
        pruner=pruner,
        max_new_trials=max_new_trials,
        tune_lr=tune_lr,
        data={"train": as_tensors(train_data), "val": as_tensors(val_data)},
    )
    study = _study(cfg)
    study.set_user_attr("family", family)
    study.set_user_attr("task", asdict(task))
    for spec in enqueue or []:
        if not any(t.user_attrs.get("spec") == spec for t in study.get_trials(deepcopy=False)):
            study.enqueue_trial(params_for_spec(spec, task), user_attrs={"enqueued": True})
    if jobs == 1:
        _worker(cfg)
    else:
        # Workers are fresh interpreters (not fork: torch is not fork-safe; not spawn: it
        # re-imports the caller's __main__); they read the configuration from a file.
        threads = max(1, torch.get_num_threads() // jobs)
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path = Path(tmp) / "config.pkl"
            with open(cfg_path, "wb") as fh:
                pickle.dump(cfg, fh)
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "qftml.search", "--worker", str(cfg_path), str(w)]
                    + ["--threads", str(threads)]
                )
                for w in range(jobs)
            ]
            codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"search workers exited with codes {codes}")
    return optuna.load_study(study_name=study_name, storage=make_storage(storage))


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Complete and pruned trials (the ones that count toward ``n_trials``)."""
    return study.get_trials(deepcopy=False, states=_FINISHED)


def top_specs(study: optuna.Study, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` best distinct specs of completed trials, with their validation loss."""
    best: dict[str, float] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        spec = t.user_attrs.get("spec")
        if spec is not None and (spec not in best or t.value < best[spec]):
            best[spec] = t.value
    return sorted(best.items(), key=lambda kv: kv[1])[:k]


def main(argv: list[str] | None = None) -> int:
    """``python -m qftml.search FAMILY DATA.pt --n-trials N --jobs J [--storage URL]``.

    ``DATA.pt`` is a ``torch.save``d dict with ``"train"`` and ``"val"`` ``(X, y)`` pairs and
    optionally a ``"task"`` dict (``n_out``, ``lattice``, ``loss``). Run the same command on
    several machines with a PostgreSQL ``--storage`` URL to spread one study over them.
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:  # internal: a worker process started by run()
        _worker_main(argv[1], int(argv[2]), int(argv[4]))
        return 0
    p = argparse.ArgumentParser(prog="python -m qftml.search", description=main.__doc__)
    p.add_argument("family", choices=["EQ", "ST", "FL"])
    p.add_argument("data", help="torch.save'd dict with 'train', 'val' (and 'task')")
    p.add_argument("--n-trials", type=int, default=100, help="target finished trials of the study")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--storage", default=None, help="journal path or database URL")
    p.add_argument("--study", default=None, help="study name (default FAMILY-search)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    p.add_argument("--epochs", type=int, default=50, help="max epochs per trial")
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--tune-lr", action="store_true")
    args = p.parse_args(argv)
    try:
        return _main(args)
    except (OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"qftml.search: error: {' '.join(str(text).split())}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    try:
        data = torch.load(args.data, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{args.data}: not a torch.save'd dict of data ({exc})") from None
    t = data.get("task", {})
    task = Task(
        n_out=int(t.get("n_out", 1)),
        lattice=tuple(t.get("lattice", data["train"][0].shape[-2:])),
        loss=t.get("loss", "mse"),
    )
    budget = Budget(
        max_epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr
    )
    study = run(
        args.family,
        data["train"],
        data["val"],
        task=task,
        n_trials=args.n_trials,
        budget=budget,
        study_name=args.study,
        storage=args.storage,
        jobs=args.jobs,
        seed=args.seed,
        pruner=args.pruner,
        tune_lr=args.tune_lr,
    )
    print(f"study {study.study_name}: {len(finished_trials(study))} finished trials")
    for spec, value in top_specs(study, 5):
        print(f"  {value:.4g}  {spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
