"""The results store: a resumable run, its entries, and a verification that can fail."""

from __future__ import annotations

import dataclasses
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from conftest import use_profile

from qftml import figures, results

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
    use_profile(PROFILE, tmp_path, monkeypatch)
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


def test_verify_passes_on_a_true_store_and_fails_on_an_altered_one(store, monkeypatch):
    results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lambda *_: None)
    lines = []
    assert results.verify(sample=3, retrain=1, log=lines.append), lines
    assert any("bitwise equal" in line for line in lines)
    lines = []  # entries made on another CPU are not retrained, and it says so
    with monkeypatch.context() as m:
        m.setattr(results, "_cpu_model", lambda: "another CPU x64")
        assert results.verify(sample=0, retrain=1, log=lines.append)
    assert any("no entry was made on this CPU (another CPU x64)" in line for line in lines)
    lines = []  # ... nor those made on another device (a GPU, say)
    with monkeypatch.context() as m:
        m.setattr(results, "_device_name", lambda: "cuda: a GPU")
        assert results.verify(sample=0, retrain=1, log=lines.append)
    assert any("and device (cuda: a GPU)" in line for line in lines)
    assert not any("retrained" in line for line in lines)
    lines = []  # no entry cheap enough: the retraining is skipped, and says so
    assert results.verify(sample=0, retrain=1, retrain_max_seconds=0, log=lines.append)
    assert any("retrain: skipped, the cheapest entry trained" in line for line in lines)
    assert not any("retrained" in line for line in lines)
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
    per_mu = results.point_table("task1-comparison", "tiny")
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


PROFILE_TASK2 = """\
tiny2:
  datasets:
    seed: 12
    jobs: 1
    sampler: {n_therm: 20, pilot: 60, tau_factor: 2.0}
    task2:
      lam: 1.0
      violated_worms: 1
      worm_length: [1, 6]
      train: {lattices: [8x8], points: [[4.25, 1.0], [4.01, 1.5]], n: 24}
      val: {lattices: [8x8], points: [[4.25, 1.0], [4.01, 1.5]], n: 8}
      test: {lattices: [8x8, 12x12], eta: [4.01, 4.25], mu: [1.0, 1.5], n: 6}
  09_task2_detection:
    reads: [datasets]
    seed: 5
    instances: 2
    budget: {max_epochs: 2, patience: 2, batch_size: 8, lr: 0.003, optimizer: adam,
             amsgrad: false, min_epochs: 0}
    search: {n_trials: 1, jobs: 1}
"""


def test_task2_store_holds_the_chapters_instances_and_verifies(tmp_path, monkeypatch):
    """The task-2 experiment trains the instances chapter 09-task2 trains (same keys), stores
    accuracy per (lattice, eta, mu), reads back into the chapter's tables and verifies."""
    from qftml import datasets
    from qftml.tasks import detection

    use_profile(PROFILE_TASK2, tmp_path, monkeypatch, in_process=True)
    out = results.run("task2-detection", "tiny2", log=lambda *_: None)
    assert out == {"planned": 6, "stored": 6, "trained": 6}  # EQ, ST, FL x 2 seeds
    found = results.entries("task2-detection")
    e = next(x for x in found if x["instance"]["family"] == "EQ")
    assert e["instance"]["n_train"] == 48 and set(e["tests"]) == {"8x8", "12x12"}
    t = e["tests"]["12x12"]
    assert (t["eta"], t["mu"]) == ([4.01, 4.01, 4.25, 4.25], [1.0, 1.5, 1.0, 1.5])
    assert all(0 <= a <= 1 for a in t["accuracy"]) and 0 <= e["val_accuracy"] <= 1
    fl = next(x for x in found if x["instance"]["family"] == "FL")
    assert fl["tests"]["12x12"]["accuracy"] == [None] * 4  # FL runs on 8x8 only

    # the chapter's own retraining of the same winners: the same keys and accuracies
    lats = datasets.lattices(2, "tiny2", "test")
    data = detection.prepare(
        datasets.load_task2("tiny2", "train"), datasets.load_task2("tiny2", "val"),
        {lat: datasets.load_task2("tiny2", "test", lat) for lat in lats},
    )  # fmt: skip
    par = detection.Params.from_dict(results.plan_task2_detection("tiny2").params)
    specs = results.plan_task2_detection("tiny2").specs
    live = detection.retrain(data, specs, par)
    assert set(live.table["key"]) == {x["keys"]["model"] for x in found}
    assert int(live.table["cached"].sum()) == 6  # nothing retrained: the store's instances
    S = detection.stored(profile="tiny2")
    assert (S.n, S.planned, S.complete, S.labels) == (6, 6, True, list(specs))
    key = ["label", "seed", "lattice", "eta", "mu"]
    a = live.accuracy.sort_values(key).reset_index(drop=True)
    b = S.accuracy.sort_values(key).reset_index(drop=True)
    pd.testing.assert_series_equal(a["accuracy"], b["accuracy"], rtol=1e-6)
    pd.testing.assert_frame_equal(S.summary(), live.summary(), rtol=1e-6)
    assert S.verdict() is None  # 2 instances per model: below results.MIN_SEEDS = 4
    assert S.verdict(min_seeds=2).lines() == detection.family_verdict(live.accuracy, lats).lines()
    assert S.train_points == [(4.01, 1.5), (4.25, 1.0)]
    fig, ax = plt.subplots()
    figures.accuracy_map(ax, S, "EQ published", S.train_points)  # the chapter's figure
    assert ax.get_title() == "EQ published (2 instances)"
    plt.close(fig)
    from qftml.tasks import statements  # the 2x2 statement: structural check and the store

    table = statements.table("tiny2", min_seeds=2, flux_data=data.val, seed=0)
    row = table.loc["t2-2x2"]
    assert row["verdict"] == "confirmed" and "published EQ (2x2) on 12x12" in row["evidence"]
    assert "task-2 store 6/6" in row["coverage"]
    assert statements.table("tiny2").loc["t2-2x2", "verdict"] == "no full-statistics run yet"
    summary = results.summary("tiny2")["task2"]
    assert {(r["family"], r["instances"]) for r in summary} == {("EQ", 2), ("ST", 2), ("FL", 2)}
    lines = []
    assert results.verify(sample=2, retrain=1, log=lines.append), lines
    assert any("bitwise equal" in line for line in lines)
    assert any("re-evaluated" in line and "eta=" in line for line in lines)

    # weights that differ (another CPU): a detector is judged by its decisions, not by a
    # cross-entropy near zero; a changed decision on the test file is a mismatch
    from qftml import instances

    monkeypatch.setattr(instances, "_weights_digest", lambda model: str(id(model)))
    cheapest = min(results.entries("task2-detection"), key=lambda x: x["train_seconds"])
    path = cheapest["_path"]
    record = {k: v for k, v in cheapest.items() if k != "_path"}
    lat, j, _ = results._points(record, results.plan_task2_detection("tiny2"))[0]  # retrained on
    record["tests"][lat]["loss"][j] *= 100  # far outside the 5 % of the loss
    record["checksum"] = results._entry_digest(record)
    with open(path, "w") as fh:
        json.dump(record, fh)
    lines = []
    assert results.verify(sample=0, retrain=1, log=lines.append), lines
    assert any("weights differ" in line and "within one of" in line for line in lines)
    record["tests"][lat]["accuracy"][j] -= 0.5  # a stored accuracy the model does not reach
    record["checksum"] = results._entry_digest(record)
    with open(path, "w") as fh:
        json.dump(record, fh)
    lines = []
    assert not results.verify(sample=0, retrain=1, log=lines.append)
    assert any("MISMATCH" in line for line in lines)


PROFILE_TASK3 = """\
tiny3:
  datasets:
    seed: 13
    jobs: 1
    sampler: {n_therm: 20, pilot: 60, tau_factor: 2.0}
    task3:
      lam: 1.0
      worm_length: [1, 6]
      train: {lattices: [8x8], points: [[4.25, 1.0], [4.01, 1.5]], worms: [0, 5], n: 6}
      val: {lattices: [8x8], points: [[4.25, 1.0]], worms: [0, 5], n: 4}
      test: {lattices: [8x8, 16x16], eta: [4.01], mu: [1.0, 1.5], worms: [0, 1, 5], n: 3}
  09_task3_counting:
    reads: [datasets]
    seed: 5
    instances: 2
    budget: {max_epochs: 2, patience: 2, batch_size: 8, lr: 0.003, optimizer: adam,
             amsgrad: false, min_epochs: 0}
"""


def test_task3_store_holds_the_chapters_instances_and_verifies(tmp_path, monkeypatch):
    """The task-3 experiment trains the instances chapter 09-task3 trains (same keys), stores
    the MSE and exact fraction per (lattice, eta, mu, worms), reads back into the chapter's
    tables (the same numbers as the live retraining) and verifies."""
    from qftml import datasets
    from qftml.tasks import counting

    use_profile(PROFILE_TASK3, tmp_path, monkeypatch, in_process=True)
    out = results.run("task3-counting", "tiny3", log=lambda *_: None)
    assert out == {"planned": 18, "stored": 18, "trained": 18}  # nine winners x 2 seeds
    found = results.entries("task3-counting")
    e = next(x for x in found if x["instance"]["label"] == "1st EQ")
    assert e["instance"]["n_train"] == 24 and set(e["tests"]) == {"8x8", "16x16"}
    t = e["tests"]["16x16"]
    assert t["n_worms"] == [0, 1, 5, 0, 1, 5] and t["mu"] == [1.0] * 3 + [1.5] * 3
    assert t["n"] == [3] * 6 and all(0 <= a <= 1 for a in t["exact"])
    fl = next(x for x in found if x["instance"]["family"] == "FL")
    assert fl["tests"]["16x16"]["loss"] == [None] * 6  # FL runs on 8x8 only

    # the chapter's own retraining: the same keys, nothing retrained, the same tables
    train, val = datasets.load_task3("tiny3", "train"), datasets.load_task3("tiny3", "val")
    test = {lat: datasets.load_task3("tiny3", "test", lat) for lat in ("8x8", "16x16")}
    params = results.plan_task3_counting("tiny3").params
    live = counting.retrain(params, train, val, test)
    assert set(live.table["key"]) == {x["keys"]["model"] for x in found}
    assert int(live.table["cached"].sum()) == 18
    S = counting.stored(profile="tiny3")
    assert (S.n_stored, S.planned, S.complete, S.labels) == (18, 18, True, live.labels)
    pd.testing.assert_frame_equal(S.loss_table(), live.loss_table(), rtol=1e-5)
    pd.testing.assert_frame_equal(S.loss_by("worms"), live.loss_by("worms"), rtol=1e-5)
    pd.testing.assert_frame_equal(S.exact_fractions(), live.exact_fractions(), rtol=1e-6)
    assert S.var_val == pytest.approx(float(val.targets.var()))  # from the plan alone
    # the chapter's full-statistics verdicts, on the stored tables as on the live ones
    heads = counting.architectures()["linear head after the sum"]
    ours = S.loss_table()
    full = counting.compare_with_source(ours, counting.source_table(ours.columns), heads)
    live_cmp = counting.compare_with_source(
        live.loss_table(), counting.source_table(ours.columns), heads
    )
    assert full.lines() == live_cmp.lines()
    expl = counting.explained_variance(S.table, S.var_val, labels=S.labels)
    assert (
        expl.lines()
        == counting.explained_variance(
            live.table, float(val.targets.var()), labels=live.labels
        ).lines()
    )
    fig, ax = plt.subplots()
    figures.count_test_vs_val(ax, S, "all")  # the chapter's figures take the stored run
    figures.count_loss_vs_volume(ax, S)
    one = dataclasses.replace(  # a partial store: one model has instances, eight have none
        S, table=S.table[S.table.label == "1st EQ"], combos=S.combos[S.combos.label == "1st EQ"]
    )
    for draw in (figures.count_loss_vs_volume, figures.count_loss_vs_worms):
        draw(ax, one)
    figures.count_test_vs_val(ax, one, "all")
    plt.close(fig)
    summary = results.summary("tiny3")["task3"]
    assert {(r["model"], r["family"], r["instances"]) for r in summary} == {
        (m, m.split()[-1], 2) for m in live.labels
    }
    # the summary statements take task 3's part from the store (task 1 and 2: none here)
    from qftml.tasks import statements

    table = statements.table("tiny3", min_seeds=2)
    assert table.loc["all-eq", "coverage"] == "task 3 stored"
    ours = S.loss_table()
    best = ours[ours.columns[-1]].idxmin()
    want = "not confirmed" if not best.endswith("EQ") else "open (task 1, 2 not stored yet)"
    assert table.loc["all-eq", "verdict"] == want and best in table.loc["all-eq", "evidence"]
    assert statements.table("tiny3").loc["all-eq", "verdict"] == "no full-statistics run yet"
    lines = []
    assert results.verify(sample=2, retrain=1, log=lines.append), lines
    assert any("re-evaluated" in line and "n_worms=" in line for line in lines)


def test_a_statement_on_all_tasks_is_confirmed_only_by_every_part():
    from qftml.tasks.statements import _across

    yes, no = (True, ""), (False, "")
    assert _across({}) == "no full-statistics run yet"
    assert _across({1: yes}) == "open (task 2, 3 not stored yet)"
    assert _across({1: yes, 3: no}) == "not confirmed"  # one failing part decides
    assert _across({1: yes, 2: yes, 3: yes}) == "confirmed"


def test_pages_compare_models_from_the_fewest_instances_that_can_reject():
    assert results.MIN_SEEDS == results.fewest_instances(0.05) == 4  # 1/70 < 0.05 <= 1/20
    assert results.fewest_instances(0.01) == 5  # 1/252 < 0.01 <= 1/70
    with pytest.raises(ValueError, match="alpha must lie in"):
        results.fewest_instances(0.0)


PHASES = """\
  08_task1_generalization:
    reads: [datasets]
    seed: 3
    seeds: [0, 1, 2, 3]
    val_fraction: 0.5
    charged_fraction: 0.9
    phase_n_train: 10
    train: {max_epochs: 2, min_epochs: 0}
"""


def test_one_phase_instances_are_stored_verified_and_judged(store, tmp_path):
    from qftml import datasets
    from qftml.tasks import regression, statements

    prof = tmp_path / "profiles.yml"  # four seeds (the fewest that can reject), and chapter 08
    text = prof.read_text().replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]")
    # a test mu on each side of the onset (1.05) inside the training range [0.95, 1.05]
    prof.write_text(text.replace("mu: [0.9, 1.0, 1.1], n: 6", "mu: [0.9, 1.0, 1.05, 1.1], n: 6")
                    + PHASES)  # fmt: skip
    out = results.run("task1-phases", "tiny", workers=0, log=lambda *_: None)
    assert out == {"planned": 24, "stored": 24, "trained": 24}  # 3 families x 2 phases x 4
    plan = results.plan_task1_phases("tiny")
    train, val = (datasets.load(1, "tiny", s, log=lambda *_: None) for s in ("train", "val"))
    splits, onset = results.phase_splits(plan, train, val)
    assert onset == 1.05  # the first training mu where 90 % carry charge
    assert set(splits["below"][0].meta["mu"]) == set(splits["below"][1].meta["mu"]) == {0.95}
    assert set(splits["above"][0].meta["mu"]) == {1.05}
    found = results.entries("task1-phases")
    assert {(e["instance"]["label"], e["instance"]["phase"]) for e in found} == {
        (f"{f} {side}", side) for f in ("EQ", "ST", "FL") for side in ("below", "above")
    }
    assert all(e["instance"]["onset"] == 1.05 and e["instance"]["n_train"] == 10 for e in found)
    assert all(e["keys"]["phases"] == {"charged_fraction": 0.9} for e in found)
    summary = results.summary("tiny")["task1_phases"]
    rows = {(r["family"], r["phase"]): r["instances"] for r in summary}
    assert rows == {(f, side): 4 for f in ("EQ", "ST", "FL") for side in ("below", "above")}
    lines = []  # the retrained one-phase instance is trained on its phase: bitwise equal
    assert results.verify(sample=2, retrain=1, log=lines.append), lines
    assert any("retrained" in x and ("below" in x or "above" in x) and "bitwise equal" in x
               for x in lines)  # fmt: skip
    # a changed onset definition makes every one-phase entry stale
    prof.write_text(prof.read_text().replace("charged_fraction: 0.9", "charged_fraction: 0.95"))
    lines = []
    assert not results.verify(sample=0, retrain=0, log=lines.append)
    assert sum("STALE" in x and "phases changed" in x for x in lines) == 24
    prof.write_text(prof.read_text().replace("charged_fraction: 0.95", "charged_fraction: 0.9"))
    # the verdict needs the reference (both phases, the same N_train and seeds)
    assert regression.stored_phases("tiny").verdict is None
    results.run("task1-comparison", "tiny", sizes=[10], workers=0, log=lambda *_: None)
    ph = regression.stored_phases("tiny")
    v = ph.verdict
    assert v.n_train == 10 and v.onset == 1.05 and set(v.holds) == {"EQ", "ST", "FL"}
    assert (v.table["n one phase"] == 4).all() and (v.table["n both"] == 4).all()
    assert set(ph.losses["trained"]) == {"below", "above", "both"}
    assert set(ph.losses["mu"]) == {0.9, 1.0, 1.05, 1.1}  # every test mu (for the figure)
    tested = v.table["tested mu"].xs("EQ", level="family").to_dict()
    assert tested == {"below": 1, "above": 2}  # the other phase up to the range's top: 1.05
    row = statements.table("tiny").loc["t1-phases"]
    assert row["verdict"] == ("confirmed" if v.not_necessary else "not confirmed")
    assert row["coverage"] == "24/24 instances"
    fig, axes = plt.subplots(1, 3)
    figures.phase_losses(axes, ph.losses, v.onset, ph.phases.mu_range)
    assert all(len(ax.lines) >= 3 for ax in axes)  # three medians and the onset, per family
    plt.close(fig)
