"""The results store's architecture searches: chapter 06's optuna studies, run once.

The ``paper`` search of chapter 06 (100 trials per family on 10 000 configurations) costs
tens of CPU-hours, so the store keeps a search made by ``python -m qftml results run
task1-search``, at the budget of the section's ``store_search`` (the ``search`` it
overrides, e.g. fewer trials on fewer configurations; the cost is in ``book/reproduce.md``):

    results/task1-search/<family>.journal   the optuna study (journal file; a run resumes it)
    results/task1-search/<family>.json      its key, budget, provenance, the journal's checksum

The key holds what determines the trials: the content keys of the training and validation
files, the subset size and seed, the budget and pruner, and the code of the search space,
the objective, the subset and the training loop (as syntax, :func:`qftml.keys.code_digest`).
The number of trials is not in it: a larger ``n_trials`` continues the study. The trials
themselves are reproducible: the sampler is seeded by ``(seed, trials so far)`` and every
network by ``seed + trial number`` (:mod:`qftml.search`), so an interrupted run that is
resumed proposes what an uninterrupted one would.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import instances, keys, results
from .profiles import notebook_params
from .training import Budget

__all__ = ["EXPERIMENT", "SECTION", "SearchPlan", "Stored", "digest", "entries", "key", "load",
           "plan", "run", "verify"]  # fmt: skip

#: The store's name of the searches and the profile section they follow.
EXPERIMENT = "task1-search"
SECTION = "06_task1_search"
SCHEMA = 1
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SearchPlan:
    """One study per family: ``n_trials`` finished trials, each trained on a balanced subset
    of ``n_train`` training configurations with ``budget`` and scored on the validation set."""

    profile: str
    families: tuple
    n_train: int
    n_trials: int
    budget: Budget
    seed: int
    pruner: str
    top_k: int
    params: dict  # the search section as run (``search`` updated by ``store_search``)


def plan(profile: str = "paper", params: dict | None = None) -> SearchPlan:
    """The store's search in ``profile``: its section's ``search``, updated by
    ``store_search`` (``params`` replaces the section; tests use it)."""
    P = notebook_params(SECTION, profile) if params is None else params
    if "store_search" not in P:
        raise KeyError(f"profile {profile!r} defines no {SECTION}.store_search (the store's "
                       "search)")  # fmt: skip
    S = {**P["search"], **P["store_search"]}
    for name in ("n_train", "n_trials", "top_k"):
        if not (isinstance(S.get(name), int) and S[name] >= 1):
            raise ValueError(f"{SECTION}.store_search: {name} must be an integer >= 1; "
                             f"got {S.get(name)!r}")  # fmt: skip
    return SearchPlan(profile, tuple(P["families"]), S["n_train"], S["n_trials"],
                      Budget.from_params(S["budget"]), int(P["seed"]), S["pruner"], S["top_k"],
                      S)  # fmt: skip


def _code() -> dict:
    """Digests of the code a trial runs: the training loop and networks, the search space
    and objective, the balanced subset."""
    return {
        "training": instances.code_digest(),
        "search": keys.code_digest([_HERE / "search.py"], roots=("run", "top_specs")),
        "subset": keys.code_digest(
            [_HERE / "tasks" / "regression.py"], roots=("search_subset", "prepare", "Data")
        ),  # fmt: skip
        "nested_subsets": keys.code_digest([_HERE / "instances.py"], roots=("nested_subsets",)),
    }


def key(p: SearchPlan, family: str) -> dict:
    """What determines the trials of ``family``'s study (everything but their number)."""
    import optuna

    dk = results.data_keys(1, p.profile)
    return {
        "family": family,
        "data": {"train": dk["train"], "val": dk["val"]},
        "n_train": p.n_train,
        "seed": p.seed,
        "pruner": p.pruner,
        "budget": p.budget.key(),
        "code": _code(),
        "libraries": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "optuna": optuna.__version__,
        },  # fmt: skip
    }


def _folder(root: Path | None = None) -> Path:
    return (root or results.store_dir()) / EXPERIMENT


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entries(root: Path | None = None) -> dict[str, dict]:
    """``{family: entry}`` of the stored searches (an edited entry raises, naming its file)."""
    results._check_declared(EXPERIMENT)
    out = {}
    for path in sorted(_folder(root).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: not a search entry ({exc})") from None
        if record.get("checksum") != results._entry_digest(record):
            raise ValueError(f"{path}: checksum mismatch (edited or damaged entry)")
        record["_path"] = str(path)
        out[record["family"]] = record
    return out


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

    def line(self) -> str:
        """Where the searches came from, and how far they are."""
        if not self.entries:
            return "no stored search yet"
        prov = [e["provenance"] for e in self.entries.values()]
        done = ", ".join(f"{f} {e['trials']['finished']}/{self.plan.n_trials}"
                         for f, e in self.entries.items())  # fmt: skip
        hours = sum(e["cpu_seconds"] for e in self.entries.values()) / 3600
        return (
            f"stored search ({self.plan.profile} profile, store budget: {self.plan.n_trials} "
            f"trials per family on N_train = {self.plan.n_train}): {done} finished trials"
            f"{'' if self.complete else ' (PARTIAL)'}; {hours:.1f} CPU-hours on "
            f"{', '.join(sorted({p['cpu'] for p in prov}))}; commits "
            f"{', '.join(sorted({p['commit'][:10] for p in prov}))}; "
            f"{min(p['first'] for p in prov)[:10]} .. {max(p['last'] for p in prov)[:10]}"
        )


def load(profile: str = "paper", root: Path | None = None) -> Stored:
    """The stored searches that match today's code, data and ``profile``'s store budget."""
    p = plan(profile)
    studies, current, stale = {}, {}, {}
    found = entries(root)
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


def digest(profile: str = "paper", root: Path | None = None) -> str:
    """Digest of what a page showing the stored searches depends on: every entry's checksum
    and the key it is judged against (a malformed profile section still hashes)."""
    sums = []
    for path in sorted(_folder(root).glob("*.json")):
        try:
            sums.append([path.name, json.loads(path.read_text()).get("checksum")])
        except ValueError:
            sums.append([path.name, "unreadable"])
    try:
        p = plan(profile)
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
        "experiment": EXPERIMENT,
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


def run(
    profile: str = "paper",
    *,
    families: Sequence[str] | None = None,
    hours: float | None = None,
    root: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the store's search of each family, one trial at a time.

    The study runs in a working journal under the data folder
    (:func:`qftml.search.default_storage`); after each finished trial its copy replaces the
    store's journal and the family's entry is rewritten, so the store always holds a
    consistent pair and a run stopped at any point keeps every finished trial. A fresh clone
    resumes from the store's journal. A stale study (changed code, data or budget) is
    replaced by a new one. With ``hours`` the run stops after the trial that crosses the
    limit. Returns ``{family: finished trials}``.
    """
    from . import datasets, search
    from .tasks import regression

    p = plan(profile)
    fams = [f.upper() for f in (families or p.families)]
    unknown = sorted(set(fams) - set(p.families))
    if unknown:
        raise ValueError(f"unknown family {unknown}; the search has {list(p.families)}")
    train = datasets.load_task1(profile, "train")
    data = regression.Data(train, datasets.load_task1(profile, "val"), {})  # no test split needed
    sub = regression.search_subset(data, p.n_train, p.seed)
    folder = _folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    have = entries(root)
    command = " ".join(["python -m qftml", *sys.argv[1:]])
    start, done = time.monotonic(), {}
    for fam in fams:
        k = key(p, fam)  # once: the code that runs is the code loaded now
        name = f"{EXPERIMENT}-{fam}-{keys.digest(k)[:12]}"
        stored, work = folder / f"{fam}.journal", Path(search.default_storage(name))
        prev = have.get(fam)
        if prev is not None and prev["key"] != k:
            log(f"{fam}: the stored study is stale ({', '.join(stale_reasons(prev, p))}); "
                "starting a new one")  # fmt: skip
            prev = None
        if prev is not None and not work.exists():  # a fresh clone: resume the stored study
            shutil.copyfile(stored, work)
        n = prev["trials"]["finished"] if prev else 0
        while n < p.n_trials:
            t0 = time.monotonic()
            study = search.run(fam, sub.xy, data.val.xy, task=data.task, n_trials=p.n_trials,
                               budget=p.budget, study_name=name, storage=work, jobs=1,
                               seed=p.seed, pruner=p.pruner, max_new_trials=1)  # fmt: skip
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


def verify(root: Path | None = None, log: Callable[[str], None] = print) -> bool:
    """Every stored search is current (its key is today's, its journal the one its entry
    names, by checksum) and its study loads with the trials its entry counts."""
    found = entries(root)
    if not found:
        log(f"{EXPERIMENT}: no entries")
        return True
    profile = next(iter(found.values()))["provenance"]["profile"]
    p, ok = plan(profile), True
    for fam, e in found.items():
        reasons = stale_reasons(e, p)
        if not reasons:
            study = _study(Path(e["_path"]).with_name(e["journal"]["file"]), e["study"])
            if _counts(study) != e["trials"]:
                reasons.append(f"the journal holds {_counts(study)}, the entry {e['trials']}")
        ok &= not reasons
        log(f"{EXPERIMENT} {fam}: {e['trials']['finished']}/{p.n_trials} finished trials, "
            + ("current" if not reasons else "STALE: " + "; ".join(reasons)))  # fmt: skip
    return ok
