"""The results store's architecture searches: the optuna studies of chapters 06 and 09, run once.

The ``paper`` searches (100 trials per family) cost CPU-hours, so the store keeps searches
made by ``python -m qftml results run <experiment>``, at the budget of the section's
``store_search`` (the ``search`` it overrides, e.g. fewer configurations; the cost is in
``book/reproduce.md``):

    results/<experiment>/<family>.journal   the optuna study (journal file; a run resumes it)
    results/<experiment>/<family>.json      its key, budget, provenance, the journal's checksum

Experiments (:data:`EXPERIMENTS`): ``task1-search`` (chapter 06: the regression of task 1,
on a balanced subset of ``n_train`` training configurations) and ``task2-search`` (chapter
09-task2: the detection of flux violations, on the whole training set, the published winner
of each family enqueued as its first trial, as the chapter does).

The key holds what determines the trials: the content keys of the training and validation
files, the subset, the budget and pruner, and the code of the search space, the objective,
the data preparation and the training loop (as syntax, :func:`qftml.keys.code_digest`).
The number of trials is not in it: a larger ``n_trials`` continues the study. The trials
themselves are reproducible: the sampler is seeded by ``(seed, trials so far)`` and every
network by ``seed + trial number`` (:mod:`qftml.search`), so an interrupted run that is
resumed proposes what an uninterrupted one would.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import instances, keys, results
from .profiles import notebook_params
from .training import Budget

__all__ = ["EXPERIMENTS", "SearchPlan", "Stored", "digest", "entries", "key", "load", "plan",
           "retrain_trial", "run", "verify"]  # fmt: skip

#: Experiment -> (task, the profile section whose search it stores).
EXPERIMENTS = {"task1-search": (1, "06_task1_search"), "task2-search": (2, "09_task2_detection")}
SCHEMA = 1
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SearchPlan:
    """One study per family: ``n_trials`` finished trials, each trained with ``budget`` on
    a balanced subset of ``n_train`` training configurations (``None``: all of them) and
    scored on the validation set; ``enqueue`` names each family's first trials."""

    profile: str
    families: tuple
    n_train: int | None
    n_trials: int
    budget: Budget
    seed: int
    pruner: str
    top_k: int
    params: dict  # the search section as run (``search`` updated by ``store_search``)
    experiment: str = "task1-search"
    enqueue: dict = field(default_factory=dict)  # family -> specs run first


def _known(experiment: str) -> None:
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown search {experiment!r}; choose one of {sorted(EXPERIMENTS)}")


def plan(profile: str = "paper", params: dict | None = None, *,
         experiment: str = "task1-search") -> SearchPlan:  # fmt: skip
    """The store's search ``experiment`` in ``profile``: its section's ``search``, updated by
    ``store_search`` (``params`` replaces the section; tests use it)."""
    _known(experiment)
    task, section = EXPERIMENTS[experiment]
    P = notebook_params(section, profile) if params is None else params
    if "store_search" not in P:
        raise KeyError(f"profile {profile!r} defines no {section}.store_search (the store's "
                       "search)")  # fmt: skip
    S = {**P["search"], **P["store_search"]}
    needed = ("n_train", "n_trials", "top_k") if task == 1 else ("n_trials", "top_k")
    for name in needed:
        if not (isinstance(S.get(name), int) and S[name] >= 1):
            raise ValueError(f"{section}.store_search: {name} must be an integer >= 1; "
                             f"got {S.get(name)!r}")  # fmt: skip
    if task == 1:
        return SearchPlan(profile, tuple(P["families"]), S["n_train"], S["n_trials"],
                          Budget.from_params(S["budget"]), int(P["seed"]), S["pruner"],
                          S["top_k"], S)  # fmt: skip
    from . import nets
    from .tasks import detection

    par = detection.Params.from_dict(P)
    budget = Budget.from_params({**par.budget, **S.get("budget", {})})
    families = tuple(detection.FAMILIES)
    enqueue = {f: (nets.published(2, f).spec,) for f in families}
    return SearchPlan(profile, families, None, S["n_trials"], budget, par.seed,
                      S.get("pruner", "median"), S["top_k"], S, experiment, enqueue)  # fmt: skip


def _code(experiment: str = "task1-search") -> dict:
    """Digests of the code a trial runs: the training loop and networks, the search space
    and objective, the data preparation (task 1: the balanced subset)."""
    out = {
        "training": instances.code_digest(),
        "search": keys.code_digest([_HERE / "search.py"], roots=("run", "top_specs")),
    }
    if EXPERIMENTS[experiment][0] == 1:
        out["subset"] = keys.code_digest(
            [_HERE / "tasks" / "regression.py"], roots=("search_subset", "prepare", "Data")
        )
        out["nested_subsets"] = keys.code_digest([_HERE / "instances.py"],
                                                 roots=("nested_subsets",))  # fmt: skip
    else:
        out["data"] = keys.code_digest([_HERE / "tasks" / "detection.py"],
                                       roots=("prepare", "Data"))  # fmt: skip
    return out


def key(p: SearchPlan, family: str) -> dict:
    """What determines the trials of ``family``'s study (everything but their number)."""
    import optuna

    task = EXPERIMENTS[p.experiment][0]
    dk = results.data_keys(task, p.profile)
    out = {
        "family": family,
        "data": {"train": dk["train"], "val": dk["val"]},
        "n_train": p.n_train,
        "seed": p.seed,
        "pruner": p.pruner,
        "budget": p.budget.key(),
        "code": _code(p.experiment),
        "libraries": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "optuna": optuna.__version__,
        },  # fmt: skip
    }
    if task != 1:  # (task 1's keys predate these fields)
        out["experiment"] = p.experiment
        out["enqueue"] = list(p.enqueue.get(family, ()))
    return out


def _folder(root: Path | None, experiment: str) -> Path:
    return (root or results.store_dir()) / experiment


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entries(root: Path | None = None, experiment: str = "task1-search") -> dict[str, dict]:
    """``{family: entry}`` of a stored search (an edited entry raises, naming its file)."""
    _known(experiment)
    results._check_declared(experiment)
    return {e["family"]: e for e in results.read_entries(_folder(root, experiment))}


def stale_reasons(entry: dict, p: SearchPlan) -> list[str]:
    """Why a stored search no longer holds for today's code, data and ``p`` (empty: current)."""
    if entry.get("schema") != SCHEMA:
        return [f"schema {entry.get('schema')} != {SCHEMA}"]
    want = key(p, entry["family"])
    out = [f"{k} differs" for k in sorted(want) if entry["key"].get(k) != want[k]]
    journal = Path(entry["_path"]).with_name(entry["journal"]["file"])
    if not journal.exists():
        out.append(f"journal {journal.name} missing")
    elif _sha256(journal) != entry["journal"]["sha256"]:
        out.append(f"journal {journal.name} changed since its entry was written")
    return out


def _study(path: Path, name: str):
    """The study ``name`` of a stored journal, in memory (read from a copy of the file:
    reading never locks or repairs the store's journal)."""
    import tempfile

    import optuna

    from . import search

    memory = optuna.storages.InMemoryStorage()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_bytes(path.read_bytes())
        optuna.copy_study(from_study_name=name, from_storage=search.make_storage(copy),
                          to_storage=memory)  # fmt: skip
    return optuna.load_study(study_name=name, storage=memory)


@dataclass
class Stored:
    """The current stored searches of a profile: studies by family, their entries, the plan."""

    studies: dict
    entries: dict
    plan: SearchPlan
    stale: dict  # family -> reasons, for the stored searches that are not current

    @property
    def complete(self) -> bool:
        """Every family's study is current and has its planned number of finished trials."""
        return set(self.studies) == set(self.plan.families) and all(
            e["trials"]["finished"] >= self.plan.n_trials for e in self.entries.values()
        )

    def lines(self) -> list[str]:
        """:meth:`line`, then one line per family whose stored search is not current."""
        return [self.line()] + [f"{fam}: stored search not current ({'; '.join(why)}); not shown"
                                for fam, why in self.stale.items()]  # fmt: skip

    def line(self) -> str:
        """Where the searches came from, and how far they are."""
        if not self.entries:
            return f"no stored {self.plan.experiment} yet"
        prov = [e["provenance"] for e in self.entries.values()]
        done = ", ".join(f"{f} {e['trials']['finished']}/{self.plan.n_trials}"
                         for f, e in self.entries.items())  # fmt: skip
        hours = sum(e["cpu_seconds"] for e in self.entries.values()) / 3600
        on = (
            "the whole training set"
            if self.plan.n_train is None
            else f"N_train = {self.plan.n_train}"
        )
        return (
            f"stored {self.plan.experiment} ({self.plan.profile} profile, store budget: "
            f"{self.plan.n_trials} trials per family on {on}): {done} finished trials"
            f"{'' if self.complete else ' (PARTIAL)'}; {hours:.1f} CPU-hours on "
            f"{', '.join(sorted({p['cpu'] for p in prov}))}; commits "
            f"{', '.join(sorted({p['commit'][:10] for p in prov}))}; "
            f"{min(p['first'] for p in prov)[:10]} .. {max(p['last'] for p in prov)[:10]}"
        )


def load(profile: str = "paper", root: Path | None = None, *,
         experiment: str = "task1-search") -> Stored:  # fmt: skip
    """The stored search whose studies match today's code, data and ``profile``'s store
    budget."""
    p = plan(profile, experiment=experiment)
    studies, current, stale = {}, {}, {}
    found = entries(root, experiment)
    for fam, e in sorted(found.items(), key=lambda fe: _order(p, fe[0])):
        reasons = stale_reasons(e, p)
        if reasons:
            stale[fam] = reasons
            continue
        studies[fam] = _study(Path(e["_path"]).with_name(e["journal"]["file"]), e["study"])
        current[fam] = e
    return Stored(studies, current, p, stale)


def _order(p: SearchPlan, family: str) -> tuple:
    """The plan's family order (EQ, ST, FL), families it does not plan last."""
    return (p.families.index(family) if family in p.families else len(p.families), family)


def digest(profile: str = "paper", root: Path | None = None, *,
           experiment: str = "task1-search") -> str:  # fmt: skip
    """Digest of what a page showing a stored search depends on: every entry's checksum
    and the key it is judged against (a malformed profile section still hashes)."""
    _known(experiment)
    sums = results.checksums(_folder(root, experiment))
    try:
        p = plan(profile, experiment=experiment)
        judged = [p.params, list(p.families), [key(p, f) for f in p.families]]
    except (KeyError, ValueError, TypeError) as exc:
        judged = f"no plan: {type(exc).__name__}: {exc}"
    return keys.digest([sums, judged])


def _counts(study) -> dict:
    from . import search

    names = [t.state.name for t in study.trials]
    out = {s.lower(): names.count(s) for s in sorted(set(names))}
    out["finished"] = len(search.finished_trials(study))
    return out


def _store(p: SearchPlan, k: dict, work: Path, stored: Path, name: str, study,
           prev: dict | None, seconds: float, command: str) -> dict:  # fmt: skip
    """Copy the working journal ``work`` (idle between trials) onto the store's ``stored``
    and rewrite the entry that names its checksum. The entry is made first, so the two
    files change within two renames: a reader (or a commit) meets a mismatched pair only in
    that instant, and :func:`verify` reports it."""
    now = results._now()
    prov = {**results.machine(), "profile": p.profile, "command": command,
            "first": (prev or {}).get("provenance", {}).get("first", now), "last": now}  # fmt: skip
    record = {
        "schema": SCHEMA,
        "experiment": p.experiment,
        "family": k["family"],
        "study": name,
        "key": k,
        "search": p.params,
        "trials": _counts(study),
        "journal": {"file": stored.name, "sha256": _sha256(work)},
        "cpu_seconds": round(((prev or {}).get("cpu_seconds") or 0.0) + seconds, 1),
        "provenance": prov,
    }
    record["checksum"] = results._entry_digest(record)
    instances._write_atomic(stored, functools.partial(shutil.copyfile, work))
    results._write_json(stored.with_suffix(".json"), record)
    return record


def _data(p: SearchPlan):
    """``(task, train (X, y), val (X, y))`` of a plan's search, as its chapter builds them."""
    from . import datasets

    task_number = EXPERIMENTS[p.experiment][0]
    train = datasets.load(task_number, p.profile, "train")
    val = datasets.load(task_number, p.profile, "val")
    if task_number == 1:
        from .tasks import regression

        data = regression.Data(train, val, {})  # no test split needed
        return data.task, regression.search_subset(data, p.n_train, p.seed).xy, val.xy
    from .tasks import detection

    data = detection.prepare(train, val, {})
    return data.task, train.xy, val.xy


def run(
    profile: str = "paper",
    *,
    experiment: str = "task1-search",
    families: Sequence[str] | None = None,
    hours: float | None = None,
    root: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the store's search ``experiment`` of each family, one trial at a time.

    The study runs in a working journal under the data folder
    (:func:`qftml.search.default_storage`); after each finished trial its copy replaces the
    store's journal and the family's entry is rewritten, so the store always holds a
    consistent pair and a run stopped at any point keeps every finished trial. A fresh clone
    resumes from the store's journal. A stale study (changed code, data or budget) is
    replaced by a new one. With ``hours`` the run stops after the trial that crosses the
    limit. Returns ``{family: finished trials}``.
    """
    from . import search

    p = plan(profile, experiment=experiment)
    fams = [f.upper() for f in (families or p.families)]
    unknown = sorted(set(fams) - set(p.families))
    if unknown:
        raise ValueError(f"unknown family {unknown}; the search has {list(p.families)}")
    task, train, val = _data(p)
    folder = _folder(root, experiment)
    folder.mkdir(parents=True, exist_ok=True)
    have = entries(root, experiment)
    command = " ".join(["python -m qftml", *sys.argv[1:]])
    start, done = time.monotonic(), {}
    for fam in fams:
        k = key(p, fam)  # once: the code that runs is the code loaded now
        name = f"{experiment}-{fam}-{keys.digest(k)[:12]}"
        stored, work = folder / f"{fam}.journal", Path(search.default_storage(name))
        prev = have.get(fam)
        if prev is not None and prev["key"] != k:
            log(f"{fam}: the stored study is stale ({', '.join(stale_reasons(prev, p))}); "
                "starting a new one")  # fmt: skip
            prev = None
        if prev is not None and not (
            work.exists() and work.read_bytes().startswith(stored.read_bytes())
        ):  # a fresh clone, or a store that went on elsewhere: resume the stored study
            shutil.copyfile(stored, work)  # (a journal only grows: the store's is a prefix)
        n = prev["trials"]["finished"] if prev else 0
        while n < p.n_trials:
            t0 = time.monotonic()
            study = search.run(fam, train, val, task=task, n_trials=p.n_trials,
                               budget=p.budget, study_name=name, storage=work, jobs=1,
                               seed=p.seed, pruner=p.pruner, max_new_trials=1,
                               enqueue=list(p.enqueue.get(fam, ())))  # fmt: skip
            # the store gets a copy between trials (the working journal may hold a running
            # trial at any moment), with the entry that names its checksum
            prev = _store(p, k, work, stored, name, study, prev, time.monotonic() - t0, command)
            n = prev["trials"]["finished"]
            log(f"{fam}: {n}/{p.n_trials} finished trials ({prev['trials']})")
            if _over(start, hours):
                break
        done[fam] = n
        if _over(start, hours):
            break
    return done


def _over(start: float, hours: float | None) -> bool:
    return hours is not None and time.monotonic() - start > 3600 * hours


def verify(
    root: Path | None = None,
    log: Callable[[str], None] = print,
    *,
    retrain: int = 0,
    max_seconds: float | None = None,
) -> bool:
    """Every stored search is current (its key is today's, its journal the one its entry
    names, by checksum) and its study loads with the trials its entry counts; then
    ``retrain`` completed trials are trained again (:func:`retrain_trial`) and must reach
    their stored validation loss: bitwise on the CPU model and thread count they ran with,
    else within :data:`qftml.results.RETRAIN_RTOL`. Candidates are trials made on this CPU
    and device that took at most ``max_seconds``, of the search whose training and
    validation files are fewest (cheapest to regenerate), shortest first."""
    ok, candidates = True, []
    here = {"cpu": results._cpu_model(), "device": results._device_name()}
    for experiment in EXPERIMENTS:
        found = entries(root, experiment)
        if not found:
            log(f"{experiment}: no entries")
            continue
        profile = next(iter(found.values()))["provenance"]["profile"]
        p = plan(profile, experiment=experiment)
        for fam, e in found.items():
            reasons = stale_reasons(e, p)
            if not reasons:
                study = _study(Path(e["_path"]).with_name(e["journal"]["file"]), e["study"])
                if _counts(study) != e["trials"]:
                    reasons.append(f"the journal holds {_counts(study)}, the entry {e['trials']}")
                elif all(e["provenance"].get(k) == v for k, v in here.items()):
                    candidates += [(_n_files(p), t.duration.total_seconds(), p, e, t)
                                   for t in study.trials if t.state.name == "COMPLETE"]  # fmt: skip
            ok &= not reasons
            log(f"{experiment} {fam}: {e['trials']['finished']}/{p.n_trials} finished trials, "
                + ("current" if not reasons else "STALE: " + "; ".join(reasons)))  # fmt: skip
    if retrain and max_seconds is not None:
        candidates = [c for c in candidates if c[1] <= max_seconds]
    if retrain and not candidates:
        log(f"  search retrain: no completed trial made on this CPU ({here['cpu']}) and device "
            f"within {max_seconds} s; skipped")  # fmt: skip
    for _, _, p, e, t in sorted(candidates, key=lambda c: c[:2])[:retrain]:
        with results._threads(int(e["provenance"].get("threads") or 1)):
            got = retrain_trial(p, t)
        same = got == t.value
        close = abs(got - t.value) <= results.RETRAIN_RTOL * abs(t.value)
        ok &= same or close
        log(
            f"  retrained {p.experiment} {e['family']} trial {t.number} "
            f"({t.user_attrs['spec']}): best validation loss {got:.7g} vs stored {t.value:.7g} "
            f"({'bitwise equal' if same else 'within rtol' if close else 'MISMATCH'})"
        )
    return ok


def _n_files(p: SearchPlan) -> int:
    from .datasets.jobs import jobs_for

    task = EXPERIMENTS[p.experiment][0]
    return sum(len(jobs_for(task, p.profile, split)) for split in ("train", "val"))


def retrain_trial(p: SearchPlan, trial) -> float:
    """Train a completed trial's network again as the search's objective did (the same spec,
    data, budget and seeds, :mod:`qftml.search`); its best validation loss."""
    from .nets import from_spec
    from .training import as_tensors, train

    task, train_data, val_data = _data(p)
    model = from_spec(trial.user_attrs["spec"], task.lattice, seed=p.seed + trial.number)
    X, y = as_tensors(train_data)
    hist = train(model, (X, y), as_tensors(val_data), loss=task.loss,
                 **{**p.budget.train_kwargs(len(X)), "lr": p.budget.lr},
                 seed=p.seed + trial.number)  # fmt: skip
    return float(hist.best_val_loss)
