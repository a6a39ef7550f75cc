"""Task 2's analysis and verdicts (qftml.tasks.detection) on constructed inputs whose answer
is known, and one tiny real pipeline (one epoch per instance) through every entry point."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from flux_loops import plaquette_loops

from qftml import experiments, figures, nets
from qftml.datasets import TaskData, insert_worms
from qftml.tasks import detection

PARAMS = dict(
    reads=["datasets"], seed=7, torch_threads=1, instances=1,
    budget=dict(max_epochs=1, patience=1, batch_size=8, lr=0.003, optimizer="adam",
                amsgrad=False, min_epochs=0),
    search=dict(n_trials=1, jobs=1, budget=dict(max_epochs=1, patience=1)),
    curve_sizes=[8, 1000], example_worm_length=[2, 4], feature_channels=3,
)  # fmt: skip


def _task_data(n_per_point, lattice, points, split, seed=0):
    """Task-2 data: per point ``n_per_point`` configurations, the odd ones with one worm."""
    rng = np.random.default_rng(seed)
    ks, ls, meta = [], [], {k: [] for k in ("eta", "lam", "mu", "n", "phi2", "n_worms")}
    for eta, mu in points:
        k, l = plaquette_loops(n_per_point, lattice, rng)
        worms = np.arange(n_per_point) % 2
        ins = insert_worms(k, worms, rng, length=(1, 4))
        ks.append(ins.k)
        ls.append(l)
        for name, v in (("eta", eta), ("lam", 1.0), ("mu", mu), ("n", 0.0), ("phi2", 0.0)):
            meta[name].append(np.full(n_per_point, v))
        meta["n_worms"].append(worms)
    meta = {name: np.concatenate(v) for name, v in meta.items()}
    k = np.concatenate(ks)
    meta["n_violations"] = 2 * meta["n_worms"]
    targets = (meta["n_worms"] > 0).astype(np.float64)[:, None]
    name = f"{lattice[0]}x{lattice[1]}"
    return TaskData(2, split, name, k, np.concatenate(ls), targets, meta)


TRAIN_POINTS = [(4.25, 1.0), (4.01, 1.5)]
TEST_POINTS = [(4.01, 1.5), (4.25, 1.0)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    train = _task_data(8, (8, 8), TRAIN_POINTS, "train", seed=1)
    val = _task_data(4, (8, 8), TRAIN_POINTS, "val", seed=2)
    by_lat = {
        "8x8": _task_data(4, (8, 8), TEST_POINTS, "test", seed=3),
        "16x16": _task_data(4, (16, 16), TEST_POINTS, "test", seed=4),
    }
    return detection.prepare(train, val, by_lat)


@pytest.fixture(scope="module")
def params():
    return detection.Params.from_dict(PARAMS)


@pytest.fixture(scope="module")
def pipeline(data, params, tiny_cache):
    """The chapter's path on the tiny data: search, retrain, data-size curve (real training,
    one epoch each, in this process, cached in a temporary folder)."""
    found = detection.run_search(data, params)
    retrained = detection.retrain(data, found.specs, params)
    curve = detection.data_size_curve(data, retrained, params)
    return found, retrained, curve


# --- parameters and data ---------------------------------------------------------------------


def test_params_from_a_profile_section(params):
    assert params.seed == 7 and params.instances == 1 and params.curve_sizes == (8, 1000)
    assert params.example_worm_length == (2, 4) and params.alpha == 0.05
    assert params.train_budget.max_epochs == 1 and params.train_budget.batch_size == 8
    assert params.search_budget.patience == 1 and params.search_budget.lr == 0.003
    with pytest.raises(ValueError, match="unknown budget key"):
        detection.Params.from_dict({**PARAMS, "budget": {"epochs": 3}}).train_budget  # noqa: B018


def test_prepare_names_one_test_set_per_lattice_and_point(data):
    assert list(data.tests) == [
        "8x8 eta=4.01 mu=1.5", "8x8 eta=4.25 mu=1", "16x16 eta=4.01 mu=1.5",
        "16x16 eta=4.25 mu=1",
    ]  # fmt: skip
    assert data.points["n"].tolist() == [4, 4, 4, 4]
    assert data.lattices == ["8x8", "16x16"]
    assert data.train_points == [(4.01, 1.5), (4.25, 1.0)]
    assert data.task.lattice == (8, 8) and data.task.loss == "bce"
    lines = data.lines()
    assert "16 configurations (0.50 violated)" in lines[0]
    assert "4 sets (2 lattices x 2 points), 16 configurations, 4 to 4 per set" in lines[2]


def test_readable_writes_three_significant_digits():
    t = pd.DataFrame({"a": [0.123456, np.nan, 3], "b": ["x", "y", "z"], "c": [True, False, True],
                      "d": [2657, 0, 12345678]})  # fmt: skip
    out = detection.readable(t)
    assert out["a"].tolist() == ["0.123", "n/a", "3"]
    assert out["d"].tolist() == ["2657", "0", "12345678"]  # whole numbers in full
    assert out["b"].tolist() == ["x", "y", "z"] and out["c"].tolist() == [True, False, True]


# --- what a network has to compute -------------------------------------------------------------


def test_stencil_is_the_divergence(data):
    s = detection.stencil_check(data.train)
    assert s.exact and s.max_error == 0
    assert s.violations == [2]  # one worm: its two ends
    assert s.kernel.shape == (2, 2, 2)
    assert s.lines()[-1].endswith("True")
    half = detection.stencil_check(data.train, nets.divergence_kernel() / 2)
    assert not half.exact and half.max_error > 0.4  # half the divergence where it is 1


def test_shuffle_blinds_a_one_by_one_network_only(data):
    s = detection.shuffle_check(data.train, seed=3)
    assert s.n_valid == 8
    assert s.violated_fraction > 0.7  # shuffling 64 sites breaks the law almost surely
    assert s.blind and s.change < 1e-9
    two = detection.shuffle_check(data.train, seed=3, spec=nets.published(2, "EQ").spec)
    assert not two.blind and two.change > 1e-6  # a 2x2 kernel sees neighbours
    assert two.violated_fraction == s.violated_fraction  # same permutations
    assert "1x1" in detection.one_by_one_spec() and "2x2" not in detection.one_by_one_spec()
    assert s.lines()[-1].endswith("True") and two.lines()[-1].endswith("False")


def test_hand_detector_is_exact_and_a_wrong_label_is_seen(data):
    h = detection.hand_detector(data)
    assert h.exact and (h.table["accuracy"] == 1).all()
    assert h.lines() == ["hand-set detector exact on every test set: True"]
    assert list(h.by_lattice.index) == ["8x8", "16x16"]
    X, y = data.tests["16x16 eta=4.25 mu=1"]
    y = y.clone()
    y[0] = 1 - y[0]
    wrong = detection.Data(
        **{**data.__dict__, "tests": {**data.tests, "16x16 eta=4.25 mu=1": (X, y)}}
    )
    h2 = detection.hand_detector(wrong)
    assert not h2.exact
    assert h2.table.set_index("test").loc["16x16 eta=4.25 mu=1", "accuracy"] == 0.75


# --- search ------------------------------------------------------------------------------------


def test_kernels_and_global_pooling():
    spec = nets.published(2, "ST").spec
    assert detection.kernels(spec) == [2, 1, 1]
    assert detection.global_pooling(spec) == "GlobalMaxPool"
    assert detection.global_pooling(nets.published(2, "FL").spec) == "Flatten"
    with pytest.raises(ValueError, match="no global pooling"):
        detection.global_pooling("Conv(1x1, 4, 1)")


def _study(trials):
    """An in-memory study holding completed trials ``(value, spec, enqueued)``."""
    study = optuna.create_study()
    for value, spec, enq in trials:
        attrs = {"spec": spec, "n_params": nets.spec_params(spec)}
        if enq:
            attrs["enqueued"] = True
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs=attrs))
    return study


ONE = "Conv(1x1, 4, 8) LeakyReLU GlobalMaxPool Linear(8, 1) Sigmoid"
TWO = "Conv(2x2, 4, 8) LeakyReLU GlobalMaxPool Linear(8, 1) Sigmoid"


def test_search_result_tables_and_the_kernel_verdict():
    pub = {f: nets.published(2, f).spec for f in detection.FAMILIES}
    studies = {
        "EQ": _study([(0.5, pub["EQ"], True), (0.6, ONE, False), (0.1, TWO, False)]),
        "ST": _study([(0.2, pub["ST"], True), (0.05, ONE, False)]),  # 1x1 wins here
        "FL": _study([(0.3, pub["FL"], True)]),  # no all-1x1 trial
    }
    r = detection.search_result(studies)
    assert r.counts == {"EQ": 3, "ST": 2, "FL": 1}
    assert r.larger_kernel_wins == {"EQ": True, "ST": False, "FL": None}
    assert r.best.loc["EQ", "spec"] == TWO and bool(r.best.loc["FL", "published"])
    assert r.specs == {
        "EQ published": pub["EQ"], "ST published": pub["ST"], "FL published": pub["FL"],
        "EQ search": TWO, "ST search": ONE,
    }  # fmt: skip
    assert r.by_kernel.loc["EQ", ("count", "all 1x1")] == 1
    assert len(r.lines()) == 2
    with pytest.raises(ValueError, match="no completed trial"):
        detection.search_result({"EQ": optuna.create_study()})


def test_run_search_enqueues_the_published_winners(pipeline):
    found, _, _ = pipeline
    assert found.counts == {"EQ": 1, "ST": 1, "FL": 1}
    assert found.trials["published"].all()  # one trial each: the enqueued winner
    assert list(found.specs) == ["EQ published", "ST published", "FL published"]


# --- instances, accuracy, verdicts --------------------------------------------------------------


def test_retrain_without_the_search_winners_keeps_the_published_ones(pipeline, data, params):
    found, retrained, _ = pipeline
    only = detection.retrain(data, found.specs, replace(params, retrain_search=False))
    assert only.labels == [lab for lab in retrained.labels if lab.endswith(" published")]
    assert len(only.labels) == 3 and only.table["cached"].all()  # the same instances


def test_retrain_and_assess_give_accuracy_per_instance_and_test_set(pipeline, data):
    _, r, _ = pipeline
    assert r.labels == ["EQ published", "ST published", "FL published"]
    assert len(r.instances) == 3 and r.table["val accuracy"].between(0, 1).all()
    assert len(r.accuracy) == 3 * len(data.tests)
    fl = r.accuracy[r.accuracy["family"] == "FL"].set_index("lattice")["accuracy"]
    assert fl.loc["8x8"].notna().all() and fl.loc["16x16"].isna().all()  # FL: 8x8 only
    s = r.summary()
    assert s.loc["FL published", ("count", "16x16")] == 0
    assert math.isnan(s.loc["FL published", ("mean", "16x16")])
    mean, lo = r.accuracy_grid("EQ published")
    assert list(mean.index) == ["8x8", "16x16"] and (lo <= mean).all().all()
    v = r.validation()
    assert list(v.index) == r.labels and ("val accuracy", "median") in v.columns
    assert "3 instances (0 from the cache)" in r.lines()[0]
    again = detection.retrain(data, r.specs, detection.Params.from_dict(PARAMS))
    assert again.table["cached"].all()  # the second call loads the instances
    pd.testing.assert_frame_equal(again.accuracy, r.accuracy)


def _accuracy(law, seeds, lattices=("8x8", "64x64"), seed=0):
    """A long accuracy table: ``law[label](lattice, rng)`` per instance and test point."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, f in law.items():
        for s in range(seeds):
            for lat in lattices:
                for p in range(3):
                    rows.append({"label": label, "family": label.split()[0], "seed": s,
                                 "test": f"{lat} {p}", "lattice": lat,
                                 "accuracy": f(lat, rng)})  # fmt: skip
    return pd.DataFrame(rows)


def _clip(v):
    return float(min(1.0, max(0.0, v)))


CLEAR = {
    "EQ published": lambda lat, rng: _clip(0.99 + 0.005 * rng.standard_normal()),
    "EQ search": lambda lat, rng: 0.9,
    "ST published": lambda lat, rng: 0.7 + 0.05 * rng.random() if lat == "64x64" else 0.95,
    "FL published": lambda lat, rng: 0.8 if lat == "8x8" else np.nan,
}


def test_a_clearly_better_eq_is_ahead():
    acc = _accuracy(CLEAR, seeds=8)
    v = detection.family_verdict(acc, ["8x8", "64x64"])
    assert v.eq_ahead and v.comparison["p_value"] < 1e-3
    assert v.best["EQ"][0] == "EQ published" and v.best["ST"][0] == "ST published"
    assert v.best["ST"][2] == pytest.approx(0.95) and v.fl_small == pytest.approx(0.8)
    assert v.comparison["p_superior"] == 1.0
    assert len(v.lines()) == 4 and "EQ ahead at the 5 % level: True" in v.lines()[-1]
    assert not v.st_ahead and v.p_st > 0.99 and v.lines()[-1].endswith("ST ahead: False")
    worse = detection.family_verdict(
        _accuracy({**CLEAR, "EQ published": CLEAR["ST published"],
                   "ST published": CLEAR["EQ published"]}, seeds=8), ["8x8", "64x64"])  # fmt: skip
    assert worse.st_ahead and not worse.eq_ahead and worse.p_st < 1e-3


def test_three_instances_cannot_establish_the_ordering():
    v = detection.family_verdict(_accuracy(CLEAR, seeds=3), ["8x8", "64x64"])
    assert v.comparison["p_superior"] == 1.0 and not v.eq_ahead  # p >= 1 / binom(6, 3)
    assert v.comparison["p_min"] == pytest.approx(0.05)


def test_equal_families_are_not_ahead_beyond_the_error_rate():
    same = {lab: (lambda lat, rng: 0.9 + 0.02 * rng.standard_normal())
            for lab in ("EQ published", "ST published")}  # fmt: skip
    trials = 100
    ahead = sum(
        detection.family_verdict(_accuracy(same, 8, seed=s), ["8x8", "64x64"]).eq_ahead
        for s in range(trials)
    )
    assert ahead / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)


def test_perfect_accuracy_everywhere_is_a_tie_without_division_by_zero():
    perfect = {lab: (lambda lat, rng: 1.0) for lab in ("EQ published", "ST published")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = detection.family_verdict(_accuracy(perfect, 5), ["8x8", "64x64"])
        s = detection.accuracy_summary(_accuracy(perfect, 5), list(perfect), ["8x8", "64x64"])
    c = v.comparison
    assert not v.eq_ahead and c["p_value"] == 1.0 and c["p_superior"] == 0.5
    assert not v.st_ahead and v.p_st == 1.0
    assert c["median_a"] == 0 and math.isnan(c["ratio"])  # both errors zero: no ratio
    assert math.isnan(v.fl_small)  # no FL instances
    assert (s.xs("std", axis=1, level=0) == 0).all().all()
    assert "EQ ahead at the 5 % level: False" in v.lines()[-1]


def test_family_verdict_rejects_bad_input():
    acc = _accuracy(CLEAR, 3)
    with pytest.raises(ValueError, match="alpha must lie"):
        detection.family_verdict(acc, ["8x8", "64x64"], alpha=0)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['family'\]"):
        detection.family_verdict(acc.drop(columns="family"), ["8x8", "64x64"])
    with pytest.raises(ValueError, match="no instances of ST"):
        detection.family_verdict(acc[acc["family"] != "ST"], ["8x8", "64x64"])


def test_accuracy_summary_statistics():
    acc = _accuracy({"EQ published": lambda lat, rng: 1.0 if lat == "8x8" else 0.5,
                     "FL published": CLEAR["FL published"]}, seeds=2)  # fmt: skip
    acc.loc[(acc["label"] == "EQ published") & (acc["seed"] == 1), "accuracy"] -= 0.1
    s = detection.accuracy_summary(acc, ["FL published", "EQ published"], ["8x8", "64x64"])
    assert list(s.index) == ["FL published", "EQ published"]
    assert s.loc["EQ published", ("mean", "8x8")] == pytest.approx(0.95)
    assert s.loc["EQ published", ("std", "8x8")] == pytest.approx(0.1 / math.sqrt(2))
    assert s.loc["EQ published", ("best instance", "64x64")] == pytest.approx(0.5)
    assert s.loc["EQ published", ("worst set", "64x64")] == pytest.approx(0.4)
    assert s.loc["FL published", ("count", "64x64")] == 0


# --- data-size curve and pooling --------------------------------------------------------------


def test_solved_needs_both_accuracies():
    curve = pd.DataFrame(
        {"label": ["EQ"] * 4, "n_train": [10, 10, 20, 20], "val": [1.0, 0.995, 1.0, 0.5],
         "large": [0.99, 0.98, 1.0, 1.0]}
    )  # fmt: skip
    s = detection.solved_counts(curve)
    assert s.loc[("EQ", 10), "sum"] == 1 and s.loc[("EQ", 20), "sum"] == 1
    assert s["count"].tolist() == [2, 2]
    d = detection.DataSizeCurve(curve, "64x64", 0.99)
    assert d.sizes == [10, 20]
    assert d.lines()[0] == (
        "EQ, N_train = 10: 1 of 2 instances reach accuracy >= 0.99 on 8x8 validation and on 64x64"
    )
    assert d.summary().loc[("EQ", 20), ("val", "median")] == 0.75


def test_data_size_curve_adds_the_full_set(pipeline, data):
    _, _, curve = pipeline
    assert curve.sizes == [8, 16]  # 1000 > the training set: left out; 16 = the full set
    assert set(curve.table["label"]) == {"EQ published", "ST published"}
    assert curve.table[["val", "large"]].stack().between(0, 1).all()
    assert curve.largest == "16x16" and len(curve.lines()) == 4


def _retraining(families_models, val_acc, lattices=("8x8", "16x16")):
    """A Retraining of hand-made instances: ``{label: (family, model)}``."""
    specs, rows, insts, acc = {}, [], [], []
    for i, (label, (fam, model)) in enumerate(families_models.items()):
        specs[label] = model.spec
        rows.append({"label": label, "family": fam, "seed": 0, "val": 0.1 * (i + 1),
                     "val accuracy": val_acc[i], "cached": True, "train_seconds": 0.0})  # fmt: skip
        insts.append(experiments.Instance(f"k{i}", Path(f"k{i}.pt"), model.spec, fam, 0, 16,
                                          "none", {}, True, model))  # fmt: skip
        for j, lat in enumerate(lattices):
            acc.append({"label": label, "family": fam, "seed": 0, "test": lat, "lattice": lat,
                        "eta": 4.25, "mu": 1.0, "accuracy": val_acc[i] - 0.1 * j})  # fmt: skip
    return detection.Retraining(specs, pd.DataFrame(rows), insts, pd.DataFrame(acc), list(lattices))


def test_pooling_check_lists_the_instances_that_learnt():
    st = nets.from_spec(nets.published(2, "ST").spec, seed=0)
    eq_avg = nets.from_spec(ONE.replace("GlobalMaxPool", "GlobalAvgPool"), seed=0)
    r = _retraining({"EQ search": ("EQ", eq_avg), "ST published": ("ST", st)}, [0.97, 0.6])
    p = detection.pooling_check(r)
    assert p.pooling == {"EQ search": "GlobalAvgPool", "ST published": "GlobalMaxPool"}
    assert p.has_avg and p.has_max
    assert p.good["label"].tolist() == ["EQ search"]
    assert p.good["16x16"].iloc[0] == pytest.approx(0.87)
    assert p.lines()[-1].endswith("test accuracy 8x8 0.970, 16x16 0.870")
    none = detection.pooling_check(r, threshold=0.99)
    assert none.good.empty and "no instance reached" in none.lines()[-1]


def test_feature_maps_of_the_hand_set_detector_sit_on_the_ends(data, params):
    detector = nets.flux_network("detector")
    st = nets.from_spec(nets.published(2, "ST").spec, seed=0)
    r = _retraining({"EQ published": ("EQ", detector), "ST published": ("ST", st)}, [1.0, 0.5])
    assert detection.best_instance(r, "ST")[:2] == ("ST published", 0)
    with pytest.raises(ValueError, match="no instance of FL"):
        detection.best_instance(r, "FL")
    m = detection.feature_maps(data, r, params, TEST_POINTS[0])
    assert m.hand_share == pytest.approx(1.0)
    assert m.models["EQ"].end_share == pytest.approx(1.0)  # the detector is the divergence
    assert 0 <= m.models["ST"].end_share < 1  # a random 2x2 filter responds along the path
    assert len(m.models["ST"].order) == params.feature_channels
    assert m.divergence[m.ends[0]] == 1 and m.divergence[m.ends[1]] == -1
    assert m.marks == [((t - 1) % 8, (x - 1) % 8) for t, x in m.ends]
    assert m.models["EQ"].maps.shape == (2, 8, 8)
    assert len(m.lines()) == 3
    with pytest.raises(ValueError, match="no valid test configuration"):
        detection.feature_maps(data, r, params, (9.0, 9.0))


def test_first_maps_and_end_share():
    model = nets.flux_network("detector")
    x = np.zeros((1, 4, 8, 8), dtype=np.float32)
    assert (detection.first_maps(model, torch.from_numpy(x)) == 0).all()
    delta = np.zeros((2, 4, 4))
    assert math.isnan(detection.end_share(delta, [(0, 0)]))  # no change: undefined, not 0/0
    delta[0, 1, 2], delta[1, 3, 3] = 3.0, 1.0
    assert detection.end_share(delta, [(1, 2), (1, 2)]) == pytest.approx(0.75)  # set of sites


def test_figures_of_task_two_draw(pipeline, data, params):
    _, r, curve = pipeline
    m = detection.feature_maps(data, r, params, TEST_POINTS[0])
    fig, axes = plt.subplots(2, 4)
    figures.val_loss_curves(axes[0, 0], r)
    im = figures.accuracy_map(axes[0, 1], r, "FL published", TRAIN_POINTS)
    assert im.get_array().mask.any()  # FL cannot run on 16x16
    assert len(axes[0, 1].patches) == 2  # both training points framed
    figures.data_size_panel(axes[0, 2], curve, "val", "validation")
    figures.divergence_panel(axes[1, 0], m, "EQ")
    figures.feature_map_panel(axes[1, 1], m, "ST", 0)
    figures.feature_map_panel(axes[1, 2], m, "ST", 99)  # beyond the channels shown: blank
    assert len(axes[1, 1].patches) == 2 and not axes[1, 2].axison
    plt.close(fig)
