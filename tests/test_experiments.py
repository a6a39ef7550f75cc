"""Tests of qftml.experiments: augmentation, subsets, the instance cache, grids, statistics."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from qftml import experiments as ex
from qftml import processes
from qftml.search import Budget, Task

LATTICE = (4, 6)
TASK = Task(n_out=2, lattice=LATTICE, loss="mse")
BUDGET = Budget(max_epochs=3, patience=3, batch_size=16, lr=3e-3)
EQ = "Conv(1x1, 4, 8) LeakyReLU Conv(2x2, 8, 8) LeakyReLU GlobalAvgPool Linear(8, 2)"
ST = "Conv(1x1, 4, 8) LeakyReLU AvgPool(2x2, 2) Conv(1x1, 8, 8) GlobalAvgPool Linear(8, 2)"
FL = "Conv(1x1, 4, 4) LeakyReLU AvgPool(2x2, 2) Flatten Linear(24, 2)"


def synthetic(n, seed, lattice=LATTICE):
    """Integer-valued inputs and two translation-invariant targets (site means)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, *lattice), generator=g).float()
    y = torch.stack([X[:, 0].mean(dim=(1, 2)), (X[:, 1] ** 2).mean(dim=(1, 2))], dim=1)
    return X, y


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QFTML_DATA", str(tmp_path))
    monkeypatch.setenv("QFTML_WORKERS", "0")  # grids in this process (tests/test_grid.py: cluster)
    return tmp_path


def test_translate_matches_roll_per_sample():
    X, _ = synthetic(5, 0)
    shifts = torch.tensor([[0, 0], [1, 2], [3, 5], [-1, 7], [4, -6]])
    out = ex.translate(X, shifts)
    for b in range(len(X)):
        ref = torch.roll(X[b], tuple(int(s) for s in shifts[b]), dims=(-2, -1))
        assert torch.equal(out[b], ref)


def test_translate_rejects_bad_shapes():
    X, _ = synthetic(3, 0)
    with pytest.raises(ValueError, match="shifts must have shape"):
        ex.translate(X, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        ex.translate(X[0], torch.zeros(1, 2))


def test_random_translations_seeded_and_sum_preserving():
    X, _ = synthetic(32, 1)
    a, b, c = ex.RandomTranslations(7)(X), ex.RandomTranslations(7)(X), ex.RandomTranslations(8)(X)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, X)
    # a translation permutes the sites: per-sample, per-channel sums are unchanged
    assert torch.equal(a.sum(dim=(-2, -1)), X.sum(dim=(-2, -1)))


def test_nested_subsets_nested_reproducible_balanced():
    groups = np.repeat([0.9, 1.0, 1.1], [10, 10, 10])
    s1 = ex.nested_subsets(30, [6, 12, 30], seed=3, groups=groups)
    s2 = ex.nested_subsets(30, [6, 12, 30], seed=3, groups=groups)
    assert all(np.array_equal(s1[m], s2[m]) for m in s1)
    assert set(s1[6]) <= set(s1[12]) <= set(s1[30]) == set(range(30))
    for m in (6, 12):
        counts = np.unique(groups[s1[m]], return_counts=True)[1]
        assert counts.tolist() == [m // 3] * 3
    other = ex.nested_subsets(30, [6], seed=4, groups=groups)[6]
    assert not np.array_equal(other, s1[6])
    with pytest.raises(ValueError, match="outside 1..30"):
        ex.nested_subsets(30, [31], seed=0)
    with pytest.raises(ValueError, match="labels for 30 samples"):
        ex.nested_subsets(30, [3], seed=0, groups=groups[:5])


def test_fingerprint_sees_content_dtype_and_shape():
    x = torch.arange(12.0).reshape(3, 4)
    assert ex.fingerprint(x) == ex.fingerprint(x.clone().numpy())
    assert ex.fingerprint(x) != ex.fingerprint(x + 1)
    assert ex.fingerprint(x) != ex.fingerprint(x.double())
    assert ex.fingerprint(x) != ex.fingerprint(x.reshape(4, 3))


def test_train_instance_cache_hit_and_keys(data_dir):
    train, val = synthetic(48, 1), synthetic(16, 2)
    first = ex.train_instance(EQ, train, val, task=TASK, budget=BUDGET, seed=0)
    assert not first.cached and first.path.exists()
    assert first.path.parent == data_dir / "experiments"
    again = ex.train_instance(EQ, train, val, task=TASK, budget=BUDGET, seed=0)
    assert again.cached and again.key == first.key
    for p, q in zip(first.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert again.history["best_val_loss"] == first.history["best_val_loss"]
    # every input of the run is part of the key
    keys = {
        first.key,
        ex.train_instance(EQ, train, val, task=TASK, budget=BUDGET, seed=1).key,
        ex.train_instance(EQ, train, synthetic(16, 3), task=TASK, budget=BUDGET, seed=0).key,
        ex.train_instance(
            EQ, train, val, task=TASK, budget=Budget(max_epochs=2, batch_size=16), seed=0
        ).key,
        ex.train_instance(
            EQ, train, val, task=TASK, budget=BUDGET, seed=0, augment="translations"
        ).key,
    }
    assert len(keys) == 5


def test_train_instance_deterministic_without_cache(data_dir):
    train, val = synthetic(48, 1), synthetic(16, 2)
    a = ex.train_instance(FL, train, val, task=TASK, budget=BUDGET, seed=5, cache=False)
    b = ex.train_instance(FL, train, val, task=TASK, budget=BUDGET, seed=5, cache=False)
    assert not a.path.exists()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_translation_augmentation_is_a_no_op_for_eq_but_not_for_fl(data_dir):
    """An EQ network's loss is translation invariant, so training on translated batches gives
    the same weights (up to rounding); an FL network learns something else."""
    train, val = synthetic(48, 1), synthetic(16, 2)
    kw = dict(task=TASK, budget=BUDGET, seed=2, cache=False)

    def max_diff(spec):
        plain = ex.train_instance(spec, train, val, **kw).model
        aug = ex.train_instance(spec, train, val, augment="translations", **kw).model
        return max(
            (p - q).abs().max().item()
            for p, q in zip(plain.parameters(), aug.parameters(), strict=True)
        )

    assert max_diff(EQ) < 1e-5
    assert max_diff(FL) > 1e-3
    with pytest.raises(ValueError, match="unknown augmentation 'mirror'"):
        ex.train_instance(EQ, train, val, augment="mirror", **kw)


def test_evaluate_instance_fl_on_other_lattice_is_nan_and_cached(data_dir):
    train, val = synthetic(48, 1), synthetic(16, 2)
    inst = ex.train_instance(FL, train, val, task=TASK, budget=BUDGET, seed=0)
    tests = {"same": synthetic(8, 4), "bigger": synthetic(8, 5, lattice=(6, 8))}
    res = ex.evaluate_instance(inst, tests, task=TASK)
    assert math.isnan(res["bigger"]["loss"])
    with torch.no_grad():
        direct = float(((inst.model(tests["same"][0]) - tests["same"][1]) ** 2).mean())
    assert res["same"]["loss"] == pytest.approx(direct, rel=1e-5)
    assert inst.path.with_suffix(".eval.json").exists()
    assert ex.evaluate_instance(inst, tests, task=TASK)["same"] == res["same"]


def test_run_grid_rows_subsets_and_cache(data_dir):
    train, val = synthetic(60, 1), synthetic(16, 2)
    groups = np.repeat([0, 1, 2], 20)
    tests = {"test": synthetic(16, 3), "big": synthetic(8, 4, lattice=(6, 8))}
    kw = dict(
        sizes=[15, 60], seeds=[0, 1], task=TASK, budget=BUDGET, groups=groups,
        output_names=("a", "b"), subset_seed=9,
    )  # fmt: skip
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a writer killed mid-write left its temporary; a live one is writing
    killed = ex.cache_dir() / f"k.pt.tmp-{dead.pid}@{processes.hostname()}.0123abcd"
    live = processes.temporary_path(ex.cache_dir() / "l.pt")
    for tmp in (killed, live):
        tmp.write_bytes(b"partial")
    table, insts = ex.run_grid({"EQ": EQ, "FL": FL}, train, val, tests, **kw)
    assert not killed.exists() and live.exists()
    assert len(table) == len(insts) == 2 * 2 * 2
    assert set(table["n_train"]) == {15, 60} and table["cached"].sum() == 0
    assert [i.n_train for i in insts] == table["n_train"].tolist()
    fl = table[table["family"] == "FL"]
    assert fl["big"].isna().all() and table.loc[table["family"] == "EQ", "big"].notna().all()
    # the per-output losses average to the total loss
    avg = (table["test[a]"] + table["test[b]"]) / 2
    np.testing.assert_allclose(avg, table["test"], rtol=1e-5)
    again, _ = ex.run_grid({"EQ": EQ, "FL": FL}, train, val, tests, **kw)
    assert again["cached"].all()
    cols = ["val", "test", "big", "key"]
    pd.testing.assert_frame_equal(again[cols], table[cols])


def test_summarize_values_and_nan():
    t = pd.DataFrame(
        {"fam": ["A", "A", "A", "B", "B"], "loss": [1.0, 2.0, 6.0, 4.0, np.nan], "n": 1}
    )
    s = ex.summarize(t, ["fam"], ["loss"])
    assert s.loc["A", ("loss", "mean")] == 3.0
    assert s.loc["A", ("loss", "median")] == 2.0
    assert s.loc["A", ("loss", "min")] == 1.0 and s.loc["A", ("loss", "max")] == 6.0
    assert s.loc["A", ("loss", "std")] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert s.loc["A", ("loss", "sem")] == pytest.approx(np.std([1, 2, 6], ddof=1) / np.sqrt(3))
    assert s.loc["B", ("loss", "count")] == 1 and s.loc["B", ("loss", "mean")] == 4.0
    with pytest.raises(KeyError, match="'nope'"):
        ex.summarize(t, ["fam"], ["nope"])


def test_compare_orders_and_p_values():
    t = pd.DataFrame(
        {
            "n": [10] * 6 + [20] * 6,
            "fam": ["EQ", "EQ", "EQ", "ST", "ST", "ST"] * 2,
            "loss": [1, 2, 3, 10, 20, 30, 5, 1, 3, 2, 4, 6],
        }
    )
    c = ex.compare(t, ["n"], "fam", "EQ", "ST", "loss").set_index("n")
    assert c.loc[10, "p_superior"] == 1.0
    assert c.loc[10, "p_value"] == pytest.approx(1 / 20)
    assert c.loc[10, "p_min"] == pytest.approx(1 / 20)
    assert c.loc[10, "ratio"] == pytest.approx(10.0)
    assert 0 < c.loc[20, "p_superior"] < 1 and c.loc[20, "p_value"] > 0.05


def test_compare_with_zero_medians():
    """A perfect detector (error 0) against a worse one: infinite ratio, not a crash; both
    perfect: undefined ratio and no evidence (p = 1)."""
    t = pd.DataFrame({"fam": ["EQ"] * 3 + ["ST"] * 3, "err": [0, 0, 0, 0.1, 0.2, 0.0]})
    c = ex.compare(t, [], "fam", "EQ", "ST", "err").iloc[0]
    assert c["ratio"] == np.inf and c["median_a"] == 0.0
    both = ex.compare(t.assign(err=0.0), [], "fam", "EQ", "ST", "err").iloc[0]
    assert np.isnan(both["ratio"]) and both["p_value"] == 1.0 and both["p_superior"] == 0.5


def test_scaling_recovers_a_power_law():
    rng = np.random.default_rng(0)
    n = np.repeat([100, 300, 1000, 3000], 3)
    t = pd.DataFrame(
        {
            "fam": ["EQ"] * 12 + ["ST"] * 12,
            "n": np.concatenate([n, n]),
            "loss": np.concatenate([5 / n, 0.1 * np.exp(0.01 * rng.standard_normal(12))]),
        }
    )
    s = ex.scaling(t, ["fam"], "n", "loss").set_index("fam")
    assert s.loc["EQ", "slope"] == pytest.approx(-1.0, abs=1e-9)
    assert abs(s.loc["ST", "slope"]) < 0.05 and s.loc["ST", "p_value"] > 1e-3
    assert s.loc["EQ", "points"] == 12 and s.loc["EQ", "sizes"] == 4


def test_scaling_improving_uses_the_t_quantile_of_the_fit():
    """Four points (2 degrees of freedom) whose slope is 2 to 4.3 standard errors below zero:
    the old criterion (slope + 2 s.e. < 0) calls it improving, the t test at 95 % does not;
    with 12 points of the same scatter it is improving by both."""
    from scipy.stats import linregress

    x = np.array([100.0, 300.0, 1000.0, 3000.0])
    lx = np.log10(x)
    resid = np.array([1.0, -1.0, -1.0, 1.0])  # orthogonal to the line: slope unchanged
    slope = -0.2
    fit = linregress(lx, slope * lx + 0.1 * resid)
    k = (-slope / fit.stderr) / 3.0  # rescale the scatter: slope = -3.0 standard errors
    loss = 10 ** (slope * lx + 0.1 * k * resid)
    t = pd.DataFrame({"fam": "EQ", "n": x, "loss": loss})
    s = ex.scaling(t, ["fam"], "n", "loss").set_index("fam").loc["EQ"]
    assert s["dof"] == 2 and s["slope"] == pytest.approx(slope)
    assert s["slope"] / s["stderr"] == pytest.approx(-3.0)
    assert s["slope"] + 2 * s["stderr"] < 0  # the old criterion: "improving"
    assert s["upper"] == pytest.approx(s["slope"] + 4.3027 * s["stderr"], rel=1e-4)
    assert not s["improving"]
    # many points: the t quantile approaches the normal one
    t12 = pd.DataFrame({"fam": "EQ", "n": np.repeat(x, 3), "loss": np.repeat(loss, 3)})
    s12 = ex.scaling(t12, ["fam"], "n", "loss").set_index("fam").loc["EQ"]
    assert s12["dof"] == 10 and s12["improving"]
    assert s12["upper"] == pytest.approx(s12["slope"] + 2.2281 * s12["stderr"], rel=1e-4)
    with pytest.raises(ValueError, match="level must lie in"):
        ex.scaling(t, ["fam"], "n", "loss", level=1.5)


class _ChannelMeans(torch.nn.Module):
    """A fixed 'model': the site means of channels 0 and 1."""

    def forward(self, x):
        return x[:, :2].mean(dim=(-2, -1))


def test_prediction_curves_group_means():
    X, y = synthetic(12, 0)
    groups = np.repeat([1.0, 2.0, 3.0], 4)
    df = ex.prediction_curves({"m": _ChannelMeans()}, X, y, groups, output_names=("a", "b"))
    assert len(df) == 3 * 2
    pred = X[:, :2].mean(dim=(-2, -1)).numpy()
    row = df[(df["group"] == 2.0) & (df["output"] == "b")].iloc[0]
    assert row["pred"] == pytest.approx(pred[4:8, 1].mean(), rel=1e-6)
    assert row["true"] == pytest.approx(y[4:8, 1].mean().item(), rel=1e-6)
    assert row["mse"] == pytest.approx(((pred[4:8, 1] - y[4:8, 1].numpy()) ** 2).mean(), rel=1e-5)
    # output "a" is exactly the target: zero error
    assert df.loc[df["output"] == "a", "mse"].max() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="output names"):
        ex.prediction_curves({"m": _ChannelMeans()}, X, y, groups, output_names=("a",))


def test_search_studies_resume_by_content(data_dir):
    from qftml.search import finished_trials

    train, val = synthetic(32, 1), synthetic(8, 2)
    kw = dict(task=TASK, budget=Budget(max_epochs=1, batch_size=16), n_trials=2, pruner="none")
    first = ex.search_studies(["EQ"], train, val, seed=0, **kw)["EQ"]
    assert first.study_name.startswith("search-EQ-") and len(finished_trials(first)) == 2
    again = ex.search_studies(["EQ"], train, val, seed=0, **kw)["EQ"]
    assert again.study_name == first.study_name and len(again.trials) == len(first.trials)
    other = ex.search_studies(["EQ"], train, val, seed=1, **{**kw, "n_trials": 1})["EQ"]
    assert other.study_name != first.study_name


def test_median_interval_coverage_exact_and_simulated():
    """[x_(3), x_(8)] of 10 values covers the median with probability 912/1024; a
    simulation (4000 samples of an exponential, median ln 2) agrees within 3 s.e."""
    lo, hi, cov = ex.median_interval(np.arange(10.0), 0.683)
    assert (lo, hi) == (2.0, 7.0) and cov == pytest.approx(912 / 1024)
    rng = np.random.default_rng(5)
    hits = [
        lo <= math.log(2) <= hi
        for lo, hi, _ in map(ex.median_interval, rng.exponential(size=(4000, 10)))
    ]
    se = math.sqrt(cov * (1 - cov) / 4000)
    assert abs(np.mean(hits) - cov) < 3 * se
    assert ex.median_interval([3.0, 1.0]) == (1.0, 3.0, 0.5)  # too few for 68 %: [min, max]
    assert ex.median_interval([2.0, np.nan]) == (2.0, 2.0, 0.0)
    assert all(math.isnan(v) for v in ex.median_interval([np.nan]))
    with pytest.raises(ValueError, match="level must be in"):
        ex.median_interval([1.0], 1.0)
