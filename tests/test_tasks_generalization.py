"""Chapter 08's analysis (qftml.tasks.regression, generalization section) on constructed
inputs whose answer is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from qftml import datasets as ds
from qftml import nets
from qftml.tasks import regression


def test_runs_on_is_false_for_fl_off_its_lattice_only():
    eq = nets.from_spec(nets.published(1, "EQ").spec)
    fl = nets.from_spec(nets.published(1, "FL").spec, (60, 4))
    assert regression.runs_on(eq, (60, 4)) and regression.runs_on(eq, (100, 5))
    assert regression.runs_on(fl, (60, 4)) and not regression.runs_on(fl, (100, 5))


def test_onset_is_the_first_mu_reaching_the_fraction():
    mu = np.repeat([0.9, 0.95, 1.0, 1.05], 10)
    charged = np.r_[np.zeros(10), [1] * 3 + [0] * 7, [1] * 6 + [0] * 4, np.ones(10)]
    mu_c, frac = regression.onset(mu, charged, 0.5)
    assert mu_c == 1.0
    assert frac.to_dict() == {0.9: 0.0, 0.95: 0.3, 1.0: 0.6, 1.05: 1.0}
    assert regression.onset(mu, charged, 0.3)[0] == 0.95
    with pytest.raises(ValueError, match="no onset inside the training range"):
        regression.onset(mu, np.ones_like(mu), 0.5)  # charged from the first mu on
    with pytest.raises(ValueError, match="no onset"):
        regression.onset(mu, 0 * mu, 0.5)  # never charged
    with pytest.raises(ValueError, match="charged_fraction must be in"):
        regression.onset(mu, charged, 0.0)


def test_phase_masks_split_at_the_onset():
    mu = np.array([0.9, 0.95, 1.0, 1.05])
    assert regression.phase(mu, 1.0, "below").tolist() == [True, True, False, False]
    assert regression.phase(mu, 1.0, "above").tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="'sideways'"):
        regression.phase(mu, 1.0, "sideways")


def _curves(loss):
    """A :func:`regression.curves` table: ``loss(family, seed, mu)`` per row (two outputs)."""
    rows = []
    for fam in ("EQ", "ST"):
        for seed in (0, 1, 2):
            for mu in (0.9, 1.0, 1.1, 1.2, 1.3):
                for out in ("n", "phi2"):
                    rows.append(dict(family=fam, seed=seed, group=mu, output=out,
                                     mse=loss(fam, seed, mu)))  # fmt: skip
    return pd.DataFrame(rows)


def test_silver_blaze_averages_each_side_of_the_onset_up_to_the_training_range():
    # below-trained instances: loss 1 on their side, 10 (EQ) or 100 (ST) across, and a huge
    # loss beyond the training range (mu = 1.3 > mu_max = 1.2) that must not enter
    def below(fam, seed, mu):
        if mu > 1.2:
            return 1e9
        return (1.0 + seed) if mu < 1.0 else {"EQ": 10.0, "ST": 100.0}[fam] * (1 + seed)

    def above(fam, seed, mu):
        return 2.0 if mu >= 1.0 else {"EQ": 50.0, "ST": 5.0}[fam]

    sb = regression.silver_blaze({"below": _curves(below), "above": _curves(above)}, 1.0, 1.2)
    t = sb.table
    assert t.loc[("below", "same phase", "EQ"), "median loss"] == 2.0  # seeds 1, 2, 3
    assert t.loc[("below", "other phase", "EQ"), "median loss"] == 20.0
    assert t.loc[("below", "other phase", "ST"), "max"] == 300.0
    assert t.loc[("below", "other phase", "EQ"), "test mu"] == [1.0, 1.1, 1.2]
    assert t.loc[("above", "other phase", "ST"), "median loss"] == 5.0
    assert t.loc[("above", "same phase", "EQ"), "instances"] == 3
    lines = sb.lines()
    assert lines[0].startswith("trained above: lowest median loss on the other phase: ST (5)")
    assert lines[1].startswith("trained below: lowest median loss on the other phase: EQ (20)")


def test_pooling_coverage_drops_a_column_of_an_odd_axis():
    st = nets.from_spec(nets.published(1, "ST").spec)
    assert regression.pooling_coverage(st, (60, 4)) == 1.0
    assert regression.pooling_coverage(st, (100, 5)) == pytest.approx(400 / 500)
    assert regression.pooling_coverage(st, (7, 5)) == pytest.approx(6 * 4 / 35)
    eq = nets.from_spec(nets.published(1, "EQ").spec)
    assert regression.pooling_coverage(eq, (100, 5)) == 1.0  # no strided pooling


def test_odd_extent_lines_compare_with_both_neighbours():
    lats = ["60x4", "100x5", "200x10"]
    lines = regression.odd_extent_lines({"ST": [1.0, 5.0, 2.0], "EQ": [1.0, 1.0, 0.5]}, lats)
    assert lines[0].endswith("(1, 2): True")
    assert lines[1] == "median loss ST / EQ per lattice (training mu): 60x4 1, 100x5 5, 200x10 4"
    flat = regression.odd_extent_lines({"ST": [1.0, 1.5, 2.0], "EQ": [1.0] * 3}, lats)
    assert flat[0].endswith(": False")


def test_extrapolation_ratio_of_beyond_to_inside():
    df = _curves(lambda fam, seed, mu: (1.0 if mu <= 1.1 else 8.0) * (1 if fam == "EQ" else 3))
    ex = regression.extrapolation(df, (0.9, 1.1))
    assert ex.loc["EQ", "inside"] == 1.0 and ex.loc["EQ", "beyond"] == 8.0
    assert ex.loc["ST", "ratio"] == pytest.approx(8.0)


class _Constant(torch.nn.Module):
    """Predicts the same two numbers for every configuration."""

    def __init__(self, value):
        super().__init__()
        self.value = torch.tensor(value, dtype=torch.float32)

    def forward(self, x):
        return self.value.expand(len(x), 2)


def test_best_worst_ranks_by_the_column_and_scores_predictions():
    n = 6
    k = np.zeros((n, 2, 4, 4), dtype=np.int64)
    mu = np.array([1.0, 1.0, 1.0, 1.5, 1.5, 1.5])
    targets = np.c_[np.full(n, 0.5), np.full(n, 2.0)]
    meta = {"mu": mu, "n": targets[:, 0], "phi2": targets[:, 1]}
    data = ds.TaskData(1, "test", "4x4", k, k.copy(), targets, meta)
    instances = [SimpleNamespace(model=_Constant(v)) for v in ([0.5, 2.0], [0.5, 3.0], [1.5, 2.0])]
    table = pd.DataFrame({"label": ["EQ", "EQ", "ST"], "seed": [0, 1, 0],
                          "4x4": [0.0, 0.5, 0.5]})  # fmt: skip
    picks, mse = regression.best_worst(table, instances, data, "4x4", (1.0, 1.5), ("n", "phi2"))
    seed, true, pred = picks[("EQ", "worst", 1.5)]
    assert seed == 1 and true.shape == (3, 2) and np.allclose(pred, [[0.5, 3.0]] * 3)
    assert picks[("EQ", "best", 1.0)][0] == 0
    assert mse.loc[("EQ", "best"), ("phi2", 1.0)] == 0.0
    assert mse.loc[("EQ", "worst"), ("phi2", 1.5)] == pytest.approx(1.0)
    assert mse.loc[("ST", "best"), ("n", 1.0)] == pytest.approx(1.0)


def test_architectures_refuses_an_unknown_choice():
    with pytest.raises(ValueError, match="'best'"):
        regression.architectures("best")
    with pytest.raises(ValueError, match="search_params"):
        regression.architectures("search")
    specs = regression.architectures("published")
    assert specs == {f: nets.published(1, f).spec for f in ("EQ", "ST", "FL")}
