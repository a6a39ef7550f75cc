"""Task 3's analysis and verdicts on constructed inputs whose answer is known."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from qftml import figures, nets
from qftml.datasets import TaskData, insert_worms, parse_lattice
from qftml.tasks import counting

POINTS = ((4.25, 1.0), (4.01, 1.5))
COLUMNS = pd.MultiIndex.from_product(
    [["validation 8x8", "test 8x8", "test up to 64x64"], ["mean", "median"]]
)
LINEAR = {"1st EQ", "2nd EQ", "3rd EQ", "2nd ST"}  # the winners with a linear head


def _data(lattice="8x8", worms=(0, 1, 3), n=3, seed=0, split="test") -> TaskData:
    """``n`` configurations per parameter point and worm count: ``W`` worms on ``k = 0``."""
    nt, nx = parse_lattice(lattice)
    rng = np.random.default_rng(seed)
    w = np.tile(np.repeat(np.asarray(worms, dtype=np.int64), n), len(POINTS))
    ins = insert_worms(np.zeros((len(w), 2, nt, nx), dtype=np.int32), w, rng, length=(1, 4))
    eta = np.repeat([p[0] for p in POINTS], len(worms) * n)
    mu = np.repeat([p[1] for p in POINTS], len(worms) * n)
    meta = dict(eta=eta, mu=mu, lam=np.ones(len(w)), n=np.zeros(len(w)), phi2=np.zeros(len(w)),
                n_worms=w, n_violations=np.asarray(ins.n_violations))  # fmt: skip
    return TaskData(3, split, lattice, ins.k, np.zeros_like(ins.k), w[:, None].astype(float), meta)


def _tests():
    return {"8x8": _data("8x8", seed=1), "16x8": _data("16x8", seed=2)}


# --------------------------------------------------------------------------------------------
# formatting, data, the hand-set counter, the architectures
# --------------------------------------------------------------------------------------------


def test_fmt_three_significant_digits_and_missing_values():
    assert counting.fmt(0.000123456) == "0.000123"
    assert counting.fmt(12345.0) == "1.23e+04"
    assert counting.fmt(99) == "99"
    assert counting.fmt(1.0 / 3, digits=2) == "0.33"
    assert counting.fmt(math.nan) == counting.fmt(None) == counting.fmt(np.float32("nan")) == "n/a"


def test_check_data_confirms_constructed_worm_labels():
    train, val = _data(worms=(0, 5), split="train"), _data(worms=(0, 5), n=1, split="val")
    check = counting.check_data(train, val, _tests())
    assert check.ok and check.label_ok and check.max_abs_div == 1
    assert check.train_worms == [0, 5] and check.train_labels == [0, 5]
    assert check.n_train == 12 and check.n_val == 4 and check.n_test == 2 * 18
    assert check.n_combinations == 2 * len(POINTS) * 3  # lattices x points x worms
    assert check.n_checked == 12 + 4 + 36 and check.lattices == ["8x8", "16x8"]
    assert len(check.lines()) == 4


def test_check_data_flags_a_wrong_label_and_a_double_violation():
    train, val = _data(worms=(0, 5), split="train"), _data(worms=(0, 5), n=1, split="val")
    bad = _data()
    bad.targets[-1, 0] += 1  # one label off by one
    check = counting.check_data(train, val, {"8x8": bad})
    assert not check.label_ok and not check.ok and check.max_abs_div == 1
    double = _data(worms=(0,))
    double.k[0, 0, 0, 0] = 2  # div = +2 and -2 on two neighbours: sum |div| / 2 = 2 != 0
    check = counting.check_data(train, val, {"8x8": double})
    assert check.max_abs_div == 2 and not check.label_ok and not check.ok


def test_hand_set_counter_counts_exactly_on_every_combination():
    res = counting.counter_losses(_tests())
    assert len(res.losses) == 12 and list(res.losses.columns)[:4] == [
        "lattice",
        "eta",
        "mu",
        "worms",
    ]
    assert res.exact and res.worst < 1e-20
    assert res.by_lattice["count"].tolist() == [6, 6] and list(res.by_lattice.index) == [
        "8x8",
        "16x8",
    ]
    assert "True" in res.lines()[0]


def test_a_miscalibrated_counter_is_not_exact():
    model = nets.flux_network("counter", dtype=torch.float64)
    with torch.no_grad():
        model.net[3].weight.mul_(1.1)  # counts 1.1 W
    res = counting.counter_losses({"8x8": _data()}, model=model)
    expected = (0.1 * res.losses["worms"]) ** 2
    np.testing.assert_allclose(res.losses["MSE"], expected, rtol=1e-9, atol=1e-24)
    assert not res.exact and res.worst == pytest.approx(0.09)


def test_published_winners_and_their_heads():
    pub = counting.published()
    assert list(pub) == [f"{r} {f}" for f in counting.FAMILIES for r in ("1st", "2nd", "3rd")]
    arch = counting.architectures()
    assert list(arch.index) == list(pub)
    assert set(arch.index[arch["linear head after the sum"]]) == LINEAR
    assert arch["params"].tolist() == [e.stated_params for e in pub.values()]
    assert arch.loc["1st EQ", "first kernel"] == 1 and arch.loc["2nd EQ", "first kernel"] == 2
    assert set(counting.SOURCE) == set(pub)


# --------------------------------------------------------------------------------------------
# instances: constructed predictions
# --------------------------------------------------------------------------------------------

OFFSET = {("1st EQ", 0): 0.1, ("1st EQ", 1): 0.3, ("1st FL", 0): 0.6, ("1st FL", 1): 0.2}


def _retrained():
    """Two EQ and two FL instances whose predictions are ``true + offset`` (EQ: offset
    doubled on 16x8; FL: 8x8 only)."""
    tests = _tests()
    table = pd.DataFrame([
        dict(label=lab, family=lab.split()[1], seed=s, val=v, epochs=3 + s, train_seconds=1.0,
             cached=bool(s)) for (lab, s), v in zip(OFFSET, (0.2, 0.1, 0.05, 0.4), strict=True)
    ])  # fmt: skip
    rows = []
    for (lab, s), off in OFFSET.items():
        for lat, d in tests.items():
            if lab.endswith("FL") and lat != "8x8":
                continue
            f = 2 if lat == "16x8" else 1
            rows.append(pd.DataFrame(dict(
                label=lab, family=lab.split()[1], seed=s, lattice=lat, eta=d.meta["eta"],
                mu=d.meta["mu"], worms=d.meta["n_worms"], true=d.targets[:, 0],
                pred=d.targets[:, 0] + f * off,
            )))  # fmt: skip
    preds = pd.concat(rows, ignore_index=True)
    preds["se"] = (preds["pred"] - preds["true"]) ** 2
    return counting.assemble(table, preds, lattices=list(tests), train_lattice="8x8",
                             train_worms=[0, 5], n_train=12)  # fmt: skip


def test_instance_losses_per_lattice_and_over_all():
    run = _retrained()
    t = run.table.set_index(["label", "seed"])
    assert t.loc[("1st EQ", 0), "8x8"] == pytest.approx(0.01)
    assert t.loc[("1st EQ", 0), "16x8"] == pytest.approx(0.04)
    assert t.loc[("1st EQ", 1), "all"] == pytest.approx((0.09 + 0.36) / 2)  # equal counts
    assert t.loc[("1st FL", 0), "8x8"] == pytest.approx(0.36)
    assert t[["16x8", "all"]].loc["1st FL"].isna().all().all()  # FL: not on 16x8
    again = counting.instance_losses(run.table, run.preds, run.lattices)  # idempotent
    pd.testing.assert_frame_equal(again, run.table)


def test_retrained_tables_from_known_predictions():
    run = _retrained()
    assert run.labels == ["1st EQ", "1st FL"] and run.combos_per_instance == 12
    assert len(run.per_combo) == 2 * 12 + 2 * 6
    ours = run.loss_table()
    assert list(ours.columns.get_level_values(0).unique()) == [
        "validation 8x8", "test 8x8", "test up to 16x8"
    ]  # fmt: skip
    assert ours.loc["1st EQ", ("validation 8x8", "mean")] == pytest.approx(0.15)
    assert ours.loc["1st EQ", ("test 8x8", "median")] == pytest.approx((0.01 + 0.09) / 2)
    assert ours.loc["1st EQ", ("test up to 16x8", "median")] == pytest.approx((0.025 + 0.225) / 2)
    assert np.isnan(ours.loc["1st FL", ("test up to 16x8", "mean")])
    by_lat = run.loss_by("lattice")
    assert list(by_lat.index) == ["8x8", "16x8"]
    assert by_lat.loc["16x8", "1st EQ"] == pytest.approx((0.04 + 0.36) / 2)
    assert by_lat.loc["8x8", "1st FL"] == pytest.approx((0.36 + 0.04) / 2)
    assert np.isnan(by_lat.loc["16x8", "1st FL"])
    by_w = run.loss_by("worms")
    assert list(by_w.index) == [0, 1, 3] and by_w.loc[3, "1st FL"] == pytest.approx(0.2)
    best = run.best()
    assert (best["EQ"]["seed"], best["FL"]["seed"]) == (1, 0) and "ST" not in best
    ex = run.example("16x8", 4.25, 1.0)
    assert list(ex) == ["EQ"] and len(ex["EQ"][1]) == 9  # FL does not run on 16x8
    assert len(run.example("8x8", 4.01, 1.5)["FL"][1]) == 9
    hits = run.exact_fractions()
    assert hits.loc["1st EQ", "8x8"] == 1.0 and hits.loc["1st EQ", "16x8"] == 0.5  # 0.6 rounds
    assert hits.loc["1st FL", "8x8"] == 0.5 and np.isnan(hits.loc["1st FL", "16x8"])
    assert run.lines() == ["4 instances (2 from the cache), 4 s of training; epochs per "
                           "instance: 3 to 4"]  # fmt: skip


def test_figures_draw_one_panel_each():
    run = _retrained()
    fig, axes = plt.subplots(1, 5)
    figures.count_test_vs_val(axes[0], run, "8x8")
    figures.count_test_vs_val(axes[1], run, "all")
    figures.count_loss_vs_volume(axes[2], run)
    figures.count_loss_vs_worms(axes[3], run)
    figures.count_predictions(axes[4], run, "8x8", 4.25, 1.0, rng=np.random.default_rng(0))
    labels = [[h.get_label() for h in ax.get_lines()] for ax in axes]
    assert {"1st EQ", "1st FL"} <= set(labels[0]) and "1st FL" not in labels[1]
    assert axes[1].get_title(loc="right") == "FL: not applicable" and axes[0].get_title() == ""
    assert axes[0].get_xlabel() == "validation loss (8x8, 0 and 5 worms)"
    assert axes[1].get_ylabel() == "test loss, all lattices up to 16x8"
    assert axes[2].get_lines()[0].get_xdata().tolist() == [64, 128]
    assert {"1st EQ (seed 1)", "1st FL (seed 0)"} <= set(labels[4])
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# verdicts against the source's table
# --------------------------------------------------------------------------------------------


def _tables(scale):
    source = counting.source_table(COLUMNS)
    return source * scale, source


def test_losses_within_a_factor_10_of_the_source():
    ours, source = _tables(2.0)
    arch = counting.architectures()["linear head after the sum"]
    c = counting.compare_with_source(ours, source, arch)
    assert c.within == [m for m in counting.SOURCE if not m.endswith("FL")]  # FL: n/a
    assert c.above == c.below == []
    assert c.ratio.to_numpy() == pytest.approx(2.0)
    assert c.linear_head_lower == {"source": True, "ours": True} and c.same_ordering
    s = c.summary.loc["source"]
    assert s["best"] == "2nd EQ" and s["best loss"] == pytest.approx(7.936e-4)
    assert s["linear head"] == pytest.approx((8.308e-4 + 1.171e-3) / 2)
    assert s["nonlinear head"] == pytest.approx((3.026 + 0.958) / 2)
    assert (s["EQ"], s["ST"], s["FL"]) == pytest.approx((8.783e-5, 9.340e-5, 1.285e-3))
    assert c.summary.loc["ours", "best loss"] == pytest.approx(2 * 7.936e-4)
    assert (c.largest, c.small) == ("64x64", "8x8") and len(c.lines()) == 8
    assert "within a factor 10 of the source: ['1st EQ'" in c.factor_line()


def test_losses_outside_a_factor_10_and_a_reversed_ordering():
    ours, source = _tables(20.0)
    arch = counting.architectures()["linear head after the sum"]
    c = counting.compare_with_source(ours, source, arch)
    assert c.within == [] and c.below == [] and len(c.above) == 6
    ours, _ = _tables(0.05)
    assert len(counting.compare_with_source(ours, source, arch).below) == 6
    big = ("test up to 64x64", "median")
    ours = source.copy()
    ours[big] = [1.0 if m in LINEAR else 1e-4 for m in ours.index]  # linear heads now worse
    ours.loc[[m for m in ours.index if m.endswith("FL")], big] = np.nan
    c = counting.compare_with_source(ours, source, arch)
    assert c.linear_head_lower == {"source": True, "ours": False} and not c.same_ordering
    assert "same ordering as the source: False" in c.lines()[-1]
    with pytest.raises(ValueError, match="factor"):
        counting.compare_with_source(ours, source, arch, factor=1.0)


@pytest.mark.filterwarnings("error")
def test_zero_losses_without_division_by_zero():
    r = counting.ratio(pd.Series([0.0, 0.0, 1.0, np.nan], index=list("abcd")),
                       pd.Series([0.0, 1.0, 0.0, 1.0], index=list("abcd")))  # fmt: skip
    assert r.to_dict() == {"a": 1.0, "b": 0.0, "c": math.inf}
    source = counting.source_table(COLUMNS) * 0.0
    arch = counting.architectures()["linear head after the sum"]
    c = counting.compare_with_source(source.copy(), source, arch)
    assert len(c.within) == 6 and c.above == c.below == []
    assert c.linear_head_lower == {"source": False, "ours": False} and c.same_ordering
    assert c.summary.loc["ours", "best loss"] == 0.0
    empty = counting.source_table(COLUMNS) * np.nan  # nothing to compare: no error
    c = counting.compare_with_source(empty, empty, arch)
    assert c.ratio.empty and c.summary.loc["ours", "best"] is None and c.within == []


@pytest.mark.filterwarnings("error")
def test_explained_variance_and_the_learnt_models():
    table = pd.DataFrame(dict(label=["A", "A", "A", "B", "B"], val=[0.1, 0.2, 0.9, 1.0, 1.2]))
    e = counting.explained_variance(table, 2.0, labels=["B", "A"])
    assert e.explained.to_dict() == pytest.approx({"B": 1 - 1.1 / 2, "A": 0.9})
    assert e.learnt == [] and len(e.lines()) == 5  # 0.9 is not more than 90 %
    assert counting.explained_variance(table, 4.0).learnt == ["A"]
    flat = counting.explained_variance(table, 0.0)  # constant labels: nothing to explain
    assert flat.explained.isna().all() and flat.learnt == []


# --------------------------------------------------------------------------------------------
# real (tiny) training
# --------------------------------------------------------------------------------------------


def test_retrain_trains_predicts_and_skips_fl_beyond_its_lattice(tmp_path, monkeypatch):
    monkeypatch.setenv("QFTML_DATA", str(tmp_path))
    monkeypatch.setenv("QFTML_WORKERS", "0")
    train, val = _data(worms=(0, 5), n=4, split="train"), _data(worms=(0, 5), n=2, split="val")
    models = {
        "1st EQ": "Conv*(2x2, 4, 2) LeakyReLU GlobalSumPool Linear*(2, 1)",
        "1st FL": "Conv(1x1, 4, 1) LeakyReLU AvgPool(2x2, 2) Flatten Linear(16, 1)",
    }
    budget = dict(max_epochs=2, patience=2, batch_size=8, lr=1e-3, optimizer="adam", min_epochs=0)
    params = {"instances": 2, "budget": budget}
    run = counting.retrain(params, train, val, _tests(), models=models, cache=False)
    assert len(run.table) == 4 and run.labels == list(models)
    assert run.train_lattice == "8x8" and run.train_worms == [0, 5] and run.n_train == 16
    assert set(run.preds.loc[run.preds["family"] == "FL", "lattice"]) == {"8x8"}
    assert set(run.preds.loc[run.preds["family"] == "EQ", "lattice"]) == {"8x8", "16x8"}
    fl = run.table[run.table["family"] == "FL"]
    assert fl["all"].isna().all() and fl["8x8"].notna().all()
    assert run.table.loc[run.table["family"] == "EQ", "all"].notna().all()
    assert np.isfinite(run.preds["pred"]).all()
