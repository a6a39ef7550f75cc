"""The results store's architecture search: a resumable, reproducible, verifiable study per
family, and the verdict on the size of the networks optuna favoured."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import optuna
import pytest
from conftest import use_profile
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from qftml import results, search_store
from qftml.tasks import regression, statements
from qftml.training import Task

PROFILE = """\
tiny:
  datasets:
    seed: 11
    jobs: 1
    sampler: {n_therm: 20, pilot: 60, tau_factor: 2.0}
    task1:
      eta: 4.01
      lam: 1.0
      train: {lattices: [60x4], mu: [0.95, 1.05], n: 12}
      val: {lattices: [60x4], mu: [0.95, 1.05], n: 4}
      test: {lattices: [60x4], mu: [1.0], n: 4}
    task2:
      lam: 1.0
      violated_worms: 1
      worm_length: [1, 6]
      train: {lattices: [8x8], points: [[4.25, 1.0], [4.01, 1.5]], n: 8}
      val: {lattices: [8x8], points: [[4.25, 1.0], [4.01, 1.5]], n: 4}
      test: {lattices: [8x8], eta: [4.01], mu: [1.0], n: 4}
  09_task2_detection:
    reads: [datasets]
    seed: 5
    instances: 2
    budget: {max_epochs: 2, patience: 2, batch_size: 8, lr: 0.003, optimizer: adam,
             amsgrad: false, min_epochs: 0}
    search: {n_trials: 50, jobs: 2, budget: {max_epochs: 2, patience: 1}}
    store_search: {n_trials: 2, jobs: 1, top_k: 1}
  06_task1_search:
    reads: [datasets]
    seed: 3
    families: [EQ, ST, FL]
    search:
      {n_train: 20, n_trials: 50, jobs: 2, pruner: median, top_k: 1,
       budget: {max_epochs: 2, patience: 1, min_epochs: 0, batch_size: 8}}
    store_search: {n_train: 8, n_trials: 3, jobs: 1}
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    use_profile(PROFILE, tmp_path, monkeypatch)
    return tmp_path


def _trials(study):
    return [(t.number, t.state.name, t.user_attrs.get("spec"), t.value) for t in study.trials]


def test_plan_takes_the_search_with_the_store_budget_and_names_bad_values(tiny):
    p = search_store.plan("tiny")
    assert (p.n_train, p.n_trials, p.top_k, p.seed) == (8, 3, 1, 3)
    assert p.budget.max_epochs == 2 and p.params["jobs"] == 1
    section = {"seed": 0, "families": ["EQ"], "search": {"n_train": 5, "n_trials": 2,
               "pruner": "median", "top_k": 1, "budget": {}}}  # fmt: skip
    with pytest.raises(KeyError, match="store_search"):
        search_store.plan("tiny", section)
    with pytest.raises(ValueError, match="n_trials must be an integer >= 1; got 0"):
        search_store.plan("tiny", {**section, "store_search": {"n_trials": 0}})


def test_a_stopped_search_resumes_to_the_same_study_and_verifies(tiny, monkeypatch):
    root = tiny / "results"
    lines = []
    assert search_store.run("tiny", families=["EQ"], hours=0, log=lines.append) == {"EQ": 1}
    first = search_store.entries()["EQ"]
    assert first["trials"]["finished"] == 1 and first["provenance"]["profile"] == "tiny"
    assert not search_store.load("tiny").complete  # one family of three, one trial of three
    work = next((tiny / "data" / "optuna").glob("*.journal"))
    work.write_bytes(b"")  # a working journal that is not the store's: the store's wins
    assert search_store.run("tiny", families=["EQ"], hours=0, log=lines.append) == {"EQ": 2}
    shutil.rmtree(tiny / "data" / "optuna")  # a fresh clone: resumes from the store's journal
    assert search_store.run("tiny", families=["EQ"], log=lines.append) == {"EQ": 3}
    found = search_store.load("tiny")
    assert found.stale == {} and len(found.studies["EQ"].trials) >= 3
    assert search_store.verify(log=lines.append), lines
    lines = []  # a completed trial trained again reaches its stored loss, bitwise
    assert search_store.verify(log=lines.append, retrain=1, max_seconds=600), lines
    assert sum("bitwise equal" in line for line in lines) == 1, lines
    with monkeypatch.context() as m:  # ... and a different loss fails
        m.setattr(search_store, "retrain_trial", lambda p, t: 2 * t.value)
        assert not search_store.verify(log=lines.append, retrain=1)
    assert "MISMATCH" in lines[-1]
    lines = []
    assert search_store.verify(log=lines.append, retrain=1, max_seconds=0)
    assert "search retrain: no completed trial" in lines[-1]
    # the same search without the interruption, in another store, proposes the same trials
    monkeypatch.setenv("QFTML_RESULTS", str(tiny / "other"))
    monkeypatch.setenv("QFTML_DATA", str(tiny / "data2"))
    search_store.run("tiny", families=["EQ"], log=lines.append)
    assert _trials(search_store.load("tiny").studies["EQ"]) == _trials(found.studies["EQ"])
    monkeypatch.setenv("QFTML_RESULTS", str(root))
    # a finished search runs nothing more and leaves its entry as it is
    before = (root / "task1-search" / "EQ.json").read_text()
    search_store.run("tiny", families=["EQ"], log=lines.append)
    assert (root / "task1-search" / "EQ.json").read_text() == before
    summary = results.summary("tiny", root)
    assert summary["task1_search"] == [{"family": "EQ", "n_train": 8, "trials": 3, "planned": 3}]
    assert summary["pages"] == []  # no stored chapter run in this store


def test_a_changed_journal_budget_or_entry_is_reported(tiny):
    search_store.run("tiny", families=["EQ"], hours=0, log=lambda *_: None)
    folder = tiny / "results" / "task1-search"
    journal = folder / "EQ.journal"
    text = journal.read_bytes()
    journal.write_bytes(text + b"\n")
    lines = []
    assert not search_store.verify(log=lines.append)
    assert any("STALE" in line and "EQ.journal changed" in line for line in lines), lines
    journal.write_bytes(text)
    entry = folder / "EQ.json"
    record = json.loads(entry.read_text())
    record["trials"]["finished"] += 1  # an edit that keeps the old checksum
    entry.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="checksum mismatch"):
        search_store.entries()
    record["checksum"] = results._entry_digest(record)  # ... and one that recomputes it
    entry.write_text(json.dumps(record))
    lines = []
    assert not search_store.verify(log=lines.append)
    assert any("the journal holds" in line for line in lines), lines
    record["trials"]["finished"] -= 1
    record["checksum"] = results._entry_digest(record)
    entry.write_text(json.dumps(record))
    assert search_store.verify(log=lambda *_: None)
    prof = tiny / "profiles.yml"
    prof.write_text(prof.read_text().replace("max_epochs: 2", "max_epochs: 3"))
    lines = []
    assert not search_store.verify(log=lines.append)
    assert any("budget differs" in line for line in lines), lines
    assert search_store.load("tiny").studies == {}  # a stale search is not shown
    lines = []  # and a new run replaces it
    search_store.run("tiny", families=["EQ"], hours=0, log=lines.append)
    assert any("stale" in line for line in lines)
    assert search_store.verify(log=lambda *_: None)


TASK1 = Task(n_out=2, lattice=(60, 4), loss="mse")


def _study(sizes_values, pruned=()):
    """An in-memory study of completed trials ``(n_params, value)``, numbered in order, then
    pruned ones of ``pruned`` parameters, on the task-1 lattice (as
    :func:`qftml.search.run` records it)."""
    study = optuna.create_study()
    study.set_user_attr("task", dataclasses.asdict(TASK1))
    rows = [(TrialState.COMPLETE, n, v) for n, v in sizes_values]
    rows += [(TrialState.PRUNED, n, None) for n in pruned]
    for i, (state, n, v) in enumerate(rows):
        study.add_trial(create_trial(
            state=state, value=v, params={"x": float(i)},
            distributions={"x": FloatDistribution(0, 100)},
            user_attrs={"spec": f"net{i}", "n_params": n},
            intermediate_values={1: 10.0},
        ))  # fmt: skip
    return study


def test_size_verdict_compares_the_best_trials_with_the_bound():
    # best two of five (values 1, 2) are small; one large network was trained
    a = _study([(5e4, 3.0), (2e5, 4.0), (1e3, 1.0), (3e4, 2.0), (9e4, 5.0)])
    v = regression.size_verdict({"EQ": a}, top_k=2, bound=100_000, startup=2, n_space=20)
    assert v.confirmed and v.largest == 30000
    assert list(v.best.index) == [("EQ", 1), ("EQ", 2)]
    assert v.large_random == (1, 2) and v.large_guided == (0, 3)
    assert math.isclose(v.p_value, math.comb(4, 2) / math.comb(5, 2))  # 0.6
    assert "2 of the 2 best trials have < 1e+05 parameters" in v.line()
    assert set(v.space) == {"EQ"} and 0 <= v.space["EQ"] < 0.05  # EQ: rarely that large
    # pruned networks were trained and ranked below the median: they count, not as best
    d = _study([(1e3, 1.0), (2e3, 2.0)], pruned=[5e5, 6e5, 3e3])
    v = regression.size_verdict({"FL": d}, top_k=2, n_space=20)
    assert v.confirmed and v.large_random == (2, 5)
    assert math.isclose(v.p_value, math.comb(3, 2) / math.comb(5, 2))  # 0.3
    # a large network among the best: not confirmed
    b = _study([(5e4, 3.0), (2e5, 0.5), (1e3, 1.0)])
    assert not regression.size_verdict({"EQ": a, "ST": b}, top_k=2, n_space=20).confirmed
    # nothing large was ever trained: the statement would hold by the space alone
    c = _study([(5e4, 3.0), (1e3, 1.0)])
    assert not regression.size_verdict({"EQ": c}, top_k=1, n_space=20).confirmed
    with pytest.raises(ValueError, match="no completed trial"):
        regression.size_verdict({"EQ": _study([])}, top_k=1, n_space=20)


def test_the_share_of_large_networks_in_the_search_space():
    """Flattening networks on 60x4 reach 10^5 parameters often, the others rarely: the
    statement can only be tested where the space holds large networks."""
    fl = regression.space_share("FL", TASK1, n=300)
    assert 0.05 < fl < 0.5
    assert regression.space_share("FL", TASK1, n=300) == fl  # seeded
    assert regression.space_share("ST", TASK1, bound=10**9, n=50) == 0.0
    assert regression.space_share("EQ", TASK1, bound=0, n=20) == 1.0


def test_the_statement_table_judges_the_optuna_statement_from_the_stored_search(tiny):
    def row():
        return statements.table("tiny").loc["t1-optuna"]

    assert row()["verdict"] == "no full-statistics run yet"
    before = results.store_digest(["task1-search"], "tiny")
    search_store.run("tiny", families=["EQ", "ST", "FL"], log=lambda *_: None)
    assert results.store_digest(["task1-search"], "tiny") != before  # pages showing it rerun
    found = search_store.load("tiny")
    assert found.complete
    want = regression.size_verdict(found.studies, found.plan.top_k)  # as the table judges
    got = row()
    assert got["verdict"] == ("confirmed" if want.confirmed else "not confirmed")
    assert got["evidence"] == f"task 1: {want.line()}"
    assert "task-1 search, trials EQ 3/3, ST 3/3, FL 3/3 on N_train = 8" in got["coverage"]
    assert "PARTIAL" not in got["coverage"]
    # the task-2 search enters as a second part; the statement holds only if both do
    search_store.run("tiny", experiment="task2-search", log=lambda *_: None)
    two = search_store.load("tiny", experiment="task2-search")
    v2 = regression.size_verdict(two.studies, two.plan.top_k)
    got = row()
    assert got["evidence"] == f"task 1: {want.line()}; task 2: {v2.line()}"
    assert got["verdict"] == ("confirmed" if want.confirmed and v2.confirmed else "not confirmed")
    two_cover = "task-2 search, trials EQ 2/2, ST 2/2, FL 2/2 on the whole training set"
    assert two_cover in got["coverage"]


def test_the_task2_search_starts_from_the_published_winners(tiny):
    from qftml import nets

    p = search_store.plan("tiny", experiment="task2-search")
    assert (p.n_train, p.n_trials, p.top_k, p.seed) == (None, 2, 1, 5)
    assert (p.budget.max_epochs, p.budget.patience, p.budget.optimizer) == (2, 1, "adam")
    search_store.run("tiny", experiment="task2-search", families=["ST"], log=lambda *_: None)
    from qftml.tasks import detection

    study = detection.stored_search("tiny").studies["ST"]  # the chapter's reader
    first = study.trials[0]
    assert first.user_attrs["enqueued"] and first.user_attrs["spec"] == nets.published(2, "ST").spec
    assert search_store.verify(log=lambda *_: None)
    e = search_store.entries(experiment="task2-search")["ST"]
    assert e["key"]["experiment"] == "task2-search" and e["key"]["n_train"] is None
    with pytest.raises(ValueError, match="unknown search 'task9-search'"):
        search_store.plan("tiny", experiment="task9-search")


def _kernel_study(trials):
    """An in-memory study of ``(spec, state, losses per epoch)``."""
    study = optuna.create_study()
    for i, (spec, state, losses) in enumerate(trials):
        study.add_trial(create_trial(
            state=state, value=min(losses) if state == TrialState.COMPLETE else None,
            params={"x": float(i)}, distributions={"x": FloatDistribution(0, 100)},
            user_attrs={"spec": spec, "n_params": 10},
            intermediate_values=dict(enumerate(losses)),
        ))  # fmt: skip
    return study


def test_kernel_comparison_counts_pruned_1x1_networks_and_the_statement_shows_it(monkeypatch):
    """A 1x1 network cannot see the divergence, so the pruner stops it near chance (ln 2):
    the comparison counts it, where one of completed trials alone would miss it."""
    from qftml.tasks import detection

    one = "Conv(1x1, 4, 8) LeakyReLU GlobalMaxPool Linear(8, 1)"
    two = "Conv(2x2, 4, 8) LeakyReLU GlobalMaxPool Linear(8, 1)"
    study = _kernel_study([
        (one, TrialState.PRUNED, [0.70, 0.69]), (two, TrialState.COMPLETE, [0.3, 1e-4]),
        (one, TrialState.PRUNED, [0.68]), (two, TrialState.PRUNED, [0.5]),
    ])  # fmt: skip
    kc = detection.kernel_comparison({"EQ": study})
    a, b = kc.loc[("EQ", "all 1x1")], kc.loc[("EQ", "some kernel >= 2")]
    assert (a["trained"], a["completed"], a["lowest val loss"]) == (2, 0, 0.68)
    assert (b["trained"], b["completed"], b["lowest val loss"]) == (2, 1, 1e-4)
    with pytest.raises(ValueError, match="no trained trial"):
        detection.kernel_comparison({"EQ": optuna.create_study()})
    # the landing page's 2x2 row adds what the stored search trained
    found = search_store.Stored({"EQ": study}, {}, None, {})
    monkeypatch.setattr(search_store, "entries", lambda root=None, experiment="": {"EQ": {}})
    monkeypatch.setattr(detection, "stored_search", lambda profile, root: found)
    monkeypatch.setattr(search_store.Stored, "complete", property(lambda self: True))
    row = {"evidence": "structural", "coverage": "check"}
    statements._add_search_kernels(row, "paper", None)
    assert row["evidence"] == (
        "structural; task-2 search: 2 networks of 1x1 kernels trained, 0 completed, lowest "
        "validation BCE 0.68 (chance ln 2 = 0.69); with a larger kernel 0.0001"
    )
    assert row["coverage"] == "check; task-2 search complete"


def test_the_command_names_every_experiment_it_knows(capsys):
    from qftml.__main__ import main

    assert main(["results", "run", "task9-search"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'task9-search'" in err
    assert "'task1-search', 'task2-search'" in err and "'task1-comparison'" in err
