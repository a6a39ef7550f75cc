"""The results store: a resumable run, its entries, and a verification that can fail."""

from __future__ import annotations

import json
import textwrap

import pytest

from qftml import experiments, results

PROFILE = """\
tiny:
  datasets:
    seed: 11
    jobs: 1
    sampler: {n_therm: 20, pilot: 60, tau_factor: 2.0}
    task1:
      eta: 4.01
      lam: 1.0
      train: {lattices: [60x4], mu: [0.95, 1.05], n: 20}
      val: {lattices: [60x4], mu: [0.95, 1.05], n: 5}
      test: {lattices: [60x4, 50x2], mu: [0.9, 1.0, 1.1], n: 6}
  07_task1_comparison:
    reads: [datasets]
    seed: 3
    seeds: [0, 1]
    n_train: [10, 20]
    val_fraction: 0.5
    augment: [ST]
    train: {max_epochs: 2, min_epochs: 0}
"""


@pytest.fixture
def store(tmp_path, monkeypatch):
    prof = tmp_path / "profiles.yml"
    prof.write_text(textwrap.dedent(PROFILE))
    monkeypatch.setenv("QFTML_PROFILES", str(prof))
    monkeypatch.setenv("QFTML_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("QFTML_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("QFTML_QUIET", "1")
    experiments.code_digest.cache_clear()
    return tmp_path / "results"


def test_run_stores_every_instance_in_size_order_and_resumes(store):
    lines = []
    out = results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lines.append)
    # EQ, ST, FL and ST with translations, two seeds, one size
    assert out == {"planned": 8, "stored": 8, "trained": 8}
    found = results.entries("task1-comparison")
    assert len(found) == 8
    e = found[0]
    assert set(e["tests"]) == {"60x4", "50x2"}
    assert e["tests"]["60x4"]["mu"] == [0.9, 1.0, 1.1]
    assert e["instance"]["n_val"] == 5  # int(0.5 * 10)
    assert e["provenance"]["profile"] == "tiny" and e["provenance"]["commit"]
    assert (store / "task1-comparison" / f"{e['keys']['model']}.pt").exists()
    fl = [x for x in found if x["instance"]["family"] == "FL"]
    assert all(x["tests"]["50x2"]["loss"] == [None] * 3 for x in fl)  # FL: one lattice
    again = results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lines.append)
    assert again["trained"] == 0  # resumed: nothing left to do at this size
    summary = results.summary("tiny")
    rows = {(r["family"], r["n_train"], r["augment"]): r["instances"] for r in summary["task1"]}
    assert rows == {
        ("EQ", 10, "none"): 2, ("FL", 10, "none"): 2, ("ST", 10, "none"): 2,
        ("ST", 10, "translations"): 2,
    }  # fmt: skip
    stored, planned, complete = results.coverage("task1-comparison", "tiny")
    assert (stored, planned, complete) == (8, 16, False)
    table = results.load_table("task1-comparison", "tiny")
    assert (
        len(table) == 16
        and table[table.family == "FL"].query("lattice == '50x2'")["test"].isna().all()
    )


def test_verify_passes_on_a_true_store_and_fails_on_an_altered_one(store):
    results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lambda *_: None)
    lines = []
    assert results.verify(sample=3, retrain=1, log=lines.append), lines
    assert any("bitwise equal" in line for line in lines)
    # a stored loss altered by 1 % (checksum recomputed, as a careless edit would) fails
    path = sorted((store / "task1-comparison").glob("*.json"))[0]
    record = json.loads(path.read_text())
    for t in record["tests"].values():
        t["loss"] = [None if v is None else v * 1.01 for v in t["loss"]]
    record["checksum"] = results._entry_digest(record)
    path.write_text(json.dumps(record))
    lines = []  # a sample of all 8 entries includes the altered one
    assert not results.verify(sample=8, retrain=0, log=lines.append)
    assert sum("MISMATCH" in line for line in lines) == 1


def test_an_edited_entry_or_a_changed_budget_is_reported(store, tmp_path, monkeypatch):
    results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lambda *_: None)
    path = sorted((store / "task1-comparison").glob("*.json"))[0]
    text = path.read_text()
    record = json.loads(text)
    record["instance"]["seed"] += 5  # an edit that keeps the old checksum
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="checksum mismatch"):
        results.entries("task1-comparison")
    path.write_text(text)
    prof = tmp_path / "profiles.yml"
    prof.write_text(prof.read_text().replace("max_epochs: 2", "max_epochs: 3"))
    lines = []
    assert not results.verify(sample=0, retrain=0, log=lines.append)
    assert any("STALE" in line and "budget changed" in line for line in lines)


def test_statement_table_takes_its_verdicts_from_the_store(store):
    from qftml.tasks import regression, statements

    before = statements.table("tiny")
    assert (before["verdict"] == "no full-statistics run yet").all()
    results.run("task1-comparison", "tiny", workers=0, log=lambda *_: None)
    t = statements.table("tiny", min_seeds=2)
    per_mu = results.per_mu_table("task1-comparison", "tiny")
    inside = regression.in_range(per_mu[per_mu["lattice"] == "60x4"], 0.95, 1.05)
    v = regression.compare_families(inside)
    want = "confirmed" if v.eq_established else "not confirmed"
    assert t.loc["t1-any-n", "verdict"] == want
    assert t.loc["t1-any-n", "coverage"] == "16/16 instances"
    assert t.loc["t2-2x2", "verdict"] == "no full-statistics run yet"


def test_store_digest_changes_with_every_new_entry(store):
    before = results.store_digest(["task1-comparison"], profile="tiny")
    assert results.store_digest(["task1-comparison"], profile="tiny") == before
    results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lambda *_: None)
    after = results.store_digest(["task1-comparison"], profile="tiny")
    assert after != before
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        results.store_digest(["nope"], profile="tiny")


def test_a_run_stopped_by_a_failure_keeps_the_instances_it_finished(store, monkeypatch):
    """Entries are written as instances finish, not when their chunk ends."""
    from qftml import experiments as ex

    real, calls = ex._grid_job, []

    def second_fails(item, **shared):
        calls.append(item[0])
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(item, **shared)

    monkeypatch.setattr(ex, "_grid_job", second_fails)
    with pytest.raises(RuntimeError, match="killed"):
        results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lambda *_: None)
    found = results.entries("task1-comparison")
    assert [e["instance"]["label"] for e in found] == [calls[0]]  # the first, stored
    assert found[0]["provenance"]["wall_s"] > 0
    monkeypatch.setattr(ex, "_grid_job", real)
    again = results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lambda *_: None)
    assert again["trained"] == 7 and again["stored"] == 8  # the rest; the first is kept
