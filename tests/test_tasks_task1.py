"""Chapters 06-08's entry points (qftml.tasks.regression: data, grids, search, store) on a
tiny task-1 data set, with real training (one epoch per instance) in a temporary cache."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from qftml import experiments, figures, nets, training
from qftml.datasets import TaskData
from qftml.tasks import regression

MU = (0.9, 1.0, 1.1)
PARAMS = dict(
    seed=3, seeds=[0, 1], val_fraction=0.5, train=dict(max_epochs=1, patience=1, min_epochs=0),
    search=dict(n_train=12, n_trials=1, jobs=1, pruner="median", top_k=1,
                budget=dict(max_epochs=1, patience=1, min_epochs=0)),
)  # fmt: skip


def _split(split, lattice, mus, n, seed):
    """Task-1 data: random links; targets = mean |k| and mean l (translation invariant)."""
    rng = np.random.default_rng(seed)
    nt, nx = lattice
    m = len(mus) * n
    k = rng.integers(-1, 2, size=(m, 2, nt, nx)).astype(np.int32)
    l = rng.poisson(0.5, size=k.shape).astype(np.int32)
    mu = np.repeat(np.asarray(mus, float), n)
    targets = np.stack([np.abs(k).mean(axis=(1, 2, 3)), l.mean(axis=(1, 2, 3))], 1)
    meta = dict(eta=np.full(m, 4.01), lam=np.ones(m), mu=mu, n=(mu >= 1.0) * 0.25,
                phi2=targets[:, 1].copy())  # fmt: skip
    return TaskData(1, split, f"{nt}x{nx}", k, l, targets.astype(np.float64), meta)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    tests = {
        "60x4": _split("test", (60, 4), (0.8, *MU, 1.3), 4, 3),
        "60x5": _split("test", (60, 5), (0.8, *MU, 1.3), 4, 4),
    }
    return regression.prepare(_split("train", (60, 4), MU, 8, 1), _split("val", (60, 4), MU, 4, 2),
                              tests)  # fmt: skip


@pytest.fixture(scope="module")
def grid(data, tiny_cache):
    specs = regression.architectures("published")
    return specs, regression.train_grid(specs, data, PARAMS, data.test_sets(), sizes=[12, 24])


def test_prepare_and_the_test_sets(data):
    assert data.lattice == "60x4" and data.mu_range == (0.9, 1.1)
    assert data.task == training.Task(n_out=2, lattice=(60, 4), loss="mse")
    assert set(np.unique(data.test.meta["mu"])) == set(MU)  # 0.8 and 1.3 lie outside
    assert len(data.test_all) == 20 and len(data.test) == 12
    assert list(data.test_sets()) == ["60x4", "60x5", "60x4 (training mu)", "60x5 (training mu)"]
    assert data.nearest_mu(1.27) == 1.3 and data.nearest_mu(0.0) == 0.8
    assert data.constant_loss("val") == pytest.approx(data.val.targets.var(axis=0).mean())
    assert len(data.lines()) == 3 and "12 of 20" in data.lines()[1]
    with pytest.raises(ValueError, match="lacks the training lattice '60x4'"):
        regression.prepare(data.train, data.val, {"60x5": data.tests["60x5"]})


def test_train_grid_is_run_grid_with_the_chapters_settings(data, grid):
    specs, (table, instances) = grid
    assert len(table) == 3 * 2 * 2 and len(instances) == len(table)
    assert sorted(table["n_val"].unique()) == [6, 12]  # val_fraction 0.5 of N_train
    assert table["60x5"].notna().sum() == 8  # FL cannot run off its lattice
    same, _ = experiments.run_grid(
        specs, data.train.xy, data.val.xy, sizes=[12, 24], seeds=[0, 1], task=data.task,
        budget=training.Budget.from_params(PARAMS["train"]), subset_seed=3,
        groups=data.train.meta["mu"], val_fraction=0.5, val_groups=data.val.meta["mu"],
    )  # fmt: skip
    assert same["cached"].all() and (same["key"].to_numpy() == table["key"].to_numpy()).all()


def test_invariance_kink_and_yardstick(data, grid):
    specs, (table, instances) = grid
    inv = regression.invariance([(table, instances)], data.test.x[:2], 24)
    assert list(inv.index) == [("EQ", "none"), ("FL", "none"), ("ST", "none")]
    assert inv.loc[("EQ", "none"), "max"] < 1e-5  # global pooling: invariant
    assert inv.loc[("FL", "none"), "max"] > 1e-4  # a dense layer on the lattice is not
    lines = regression.kink_lines(table, specs["ST"], ["60x4", "60x5"])
    assert "60x5: ST pooling covers 80% of the sites" in lines[1]
    assert lines[2].startswith("ST on 60x5 (odd N_x)")
    summary = experiments.summarize(table, ["label"], ["60x4"])
    yard = regression.yardstick_lines(summary, 1.0, value="60x4")
    med = summary[("60x4", "median")]
    assert f"lowest: {med.idxmin()}" in yard[0] and f"EQ {1 / med['EQ']:.3g}" in yard[1]


def test_train_phases_cut_training_and_validation_at_the_onset(data, tiny_cache):
    specs = {"EQ": nets.published(1, "EQ").spec}
    phases = regression.train_phases(specs, data, PARAMS, 1.0)
    (below, cb), (above, ca) = phases["below"], phases["above"]
    assert set(below.meta["mu"]) == {0.9} and set(above.meta["mu"]) == {1.0, 1.1}
    assert set(cb["family"]) == {"EQ"} and sorted(cb["seed"].unique()) == [0, 1]
    assert sorted(ca["group"].unique()) == [0.8, *MU, 1.3]  # the whole test range
    fig, axes = plt.subplots(2, 2)
    figures.phase_predictions(axes, phases, 1.0, data.outputs, families=("EQ",))
    assert all(len(ax.collections) >= 2 for ax in axes.ravel())  # truth and the EQ band
    plt.close(fig)


def test_run_search_ranks_the_published_winners(data, tiny_cache):
    found = regression.run_search(data, PARAMS, prefix="tiny", families=["EQ"])
    assert list(found.studies) == ["EQ"] and len(found.studies["EQ"].trials) == 1
    assert found.published.loc["EQ", "rank among trials"] in ("1 of 2", "2 of 2")
    assert sum(found.states()["EQ"].values()) == 1
    assert len(found.lines()) == 2 and "published winner" in found.lines()[1]
    again = regression.architectures(
        "search", data, search_params=PARAMS["search"], search_seed=PARAMS["seed"],
        prefix="tiny", families=["EQ"],
    )  # fmt: skip
    assert again == {"EQ": found.winners.loc[("EQ", 1), "spec"]}


def test_stored_reads_an_empty_store_as_partial(tmp_path):
    st = regression.stored("task1-comparison", "paper", root=tmp_path)
    assert st.stored == 0 and st.planned > 0 and not st.complete and st.sizes == []
    assert st.comparison() is None and st.generalization() is None
    assert "PARTIAL" in st.lines()[0] and len(st.table()) == 0


def test_stored_reads_the_repository_store_consistently():
    st = regression.stored("task1-comparison", "paper")
    if not st.sizes:
        pytest.skip("no finished chunk in the results store")
    t = st.table()
    per_point = t.groupby(["label", "augment", "n_train"]).size()
    assert sorted(t["n_train"].unique()) == st.sizes
    # every model with the same instances at each size (sizes may differ while a run goes on)
    assert (per_point.groupby(level="n_train").nunique() == 1).all()
    v = st.comparison()
    assert list(v.scaling["sizes"].unique()) == [len(st.sizes)]
    fig, axes = plt.subplots(1, 2)
    figures.store_generalization(axes, st.generalization(), st.per_mu, st.lattice, st.mu_range)
    assert len(axes[0].lines) > 0 and len(axes[1].collections) == 3  # a band per family
    plt.close(fig)


def test_task1_figures_draw(data, grid):
    specs, (table, instances) = grid
    fig, axes = plt.subplots(2, 3)
    figures.ntrain_comparison(axes[0, 0], table, 0.1, value="60x4")
    figures.val_histories(axes[0, 1], table, instances, 0.1)
    curves = {lat: regression.curves(instances, d, data.outputs) for lat, d in data.tests.items()}
    figures.loss_per_mu(axes[1], {**curves, "60x4 again": curves["60x4"]}, data.mu_range)
    assert len(axes[0, 0].lines) >= 4 and len(axes[0, 1].lines) == len(table) + 1
    assert all(len(ax.collections) > 0 for ax in axes[1])
    picks, _ = regression.best_worst(table, instances, data.test_all, "60x4", (1.0, 1.3),
                                     data.outputs)  # fmt: skip
    fig2, grid_axes = plt.subplots(4, 3)
    figures.best_worst_grid(grid_axes, picks, data.outputs, 1.3)
    assert all(len(ax.collections) == 2 for ax in grid_axes.ravel())  # best and worst
    plt.close("all")
