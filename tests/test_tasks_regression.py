"""Task 1's verdicts on constructed tables whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qftml.tasks import regression

SIZES = (50, 200, 2000, 20000)


def _table(law, seeds=10, augmented=None, seed=0):
    """Instances with loss ``law[label](n) * lognormal(0.2)``; ``augmented`` likewise."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, laws in (("none", law), ("translations", augmented or {})):
        for label, f in laws.items():
            for n in SIZES:
                for s in range(seeds):
                    loss = f(n) * np.exp(0.2 * rng.standard_normal())
                    rows.append(dict(label=label, family=label, augment=kind, n_train=n, seed=s,
                                     test=loss))  # fmt: skip
    return pd.DataFrame(rows)


ORDERED = {
    "EQ": lambda n: 1e-2 * n**-0.5,  # improves
    "ST": lambda n: 3e-3,  # flat, above EQ everywhere
    "FL": lambda n: 1e-2,
}


def test_a_known_ordering_confirms_all_three_statements():
    t = _table(ORDERED, augmented={"ST": ORDERED["ST"], "FL": ORDERED["FL"]})
    v = regression.compare_families(t)
    assert v.eq_lowest and v.eq_established
    assert v.improving == ["EQ"] and v.only_eq_improves
    assert v.augmentation_helps == {"ST": [], "FL": []} and v.augmentation_never_helps
    assert v.p_min == pytest.approx(1 / 184756)  # 1 / binom(20, 10)
    assert len(v.lines()) == 5


def test_equal_families_establish_nothing_beyond_the_error_rate():
    """Over 200 tables of identical families, each false verdict occurs at a rate <= alpha
    (binomial: within 3 standard errors of 5 %)."""
    same = {f: (lambda n: 1e-3) for f in ("EQ", "ST", "FL")}
    trials, alpha = 200, 0.05
    false = {"eq_established": 0, "improving": 0, "augmentation_helps": 0}
    for seed in range(trials):
        v = regression.compare_families(
            _table(same, augmented={"ST": same["ST"], "FL": same["FL"]}, seed=seed), alpha=alpha
        )
        false["eq_established"] += v.eq_established
        false["improving"] += "EQ" in v.improving  # one family's slope test: level alpha
        false["augmentation_helps"] += not v.augmentation_never_helps  # Holm: family-wise
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)
    for name, count in false.items():
        assert count / trials <= bound, (name, count)
    assert false["eq_established"] == 0  # all 8 tests at once: probability << alpha


def test_augmentation_that_helps_is_detected():
    better = {"ST": lambda n: 3e-4, "FL": ORDERED["FL"]}
    v = regression.compare_families(_table(ORDERED, augmented=better))
    assert v.augmentation_helps["ST"] == list(SIZES) and v.augmentation_helps["FL"] == []
    assert not v.augmentation_never_helps


def test_two_instances_cannot_establish_an_ordering():
    v = regression.compare_families(_table(ORDERED, seeds=2))
    assert v.eq_lowest and not v.eq_established  # p >= 1/6 with 2 instances per family
    assert v.p_min == pytest.approx(1 / 6)


def test_all_equal_losses_are_handled_without_a_zero_error():
    t = _table({f: (lambda n: 1e-3) for f in ("EQ", "ST", "FL")})
    t["test"] = 1e-3  # every instance identical: no spread at all
    v = regression.compare_families(t)
    assert not v.eq_lowest and not v.eq_established
    assert v.improving == []  # slope 0 with no scatter is not an improvement
    assert (v.versus["p_superior"] == 0.5).all()


def test_bad_input_is_named():
    t = _table(ORDERED)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['test'\]"):
        regression.compare_families(t.drop(columns="test"))
    with pytest.raises(ValueError, match=r"no plain instances of \['FL'\]"):
        regression.compare_families(t[t.label != "FL"])
    with pytest.raises(ValueError, match="alpha must lie"):
        regression.compare_families(t, alpha=1.5)


def test_in_range_averages_the_losses_of_the_training_range():
    rows = [
        dict(label="EQ", family="EQ", augment="none", n_train=50, seed=0, mu=mu, loss=loss,
             loss_n=2 * loss, loss_phi2=0.0)
        for mu, loss in ((0.9, 10.0), (0.95, 1.0), (1.0, 3.0), (1.1, 100.0))
    ]  # fmt: skip
    out = regression.in_range(pd.DataFrame(rows), 0.91, 1.05)
    assert out["test"].tolist() == [2.0] and out["test[n]"].tolist() == [4.0]
    with pytest.raises(ValueError, match="no test mu"):
        regression.in_range(pd.DataFrame(rows), 2.0, 3.0)


def test_holm_controls_the_family_wise_error():
    assert regression.holm([0.01, 0.04, 0.03], 0.05).tolist() == [True, False, False]
    assert regression.holm([0.001, 0.012, 0.03], 0.05).tolist() == [True, True, True]
    assert regression.holm([np.nan, 0.001], 0.05).tolist() == [False, True]


def _per_mu(law, seeds=10, seed=0):
    """Per-mu rows of plain instances at N_train = 2000 with loss ``law[(label, lattice)]``."""
    rng = np.random.default_rng(seed)
    rows = []
    for (label, lat), loss in law.items():
        for s in range(seeds):
            base = loss * np.exp(0.2 * rng.standard_normal())
            for mu in (0.9, 0.95, 1.0, 1.2):
                rows.append(dict(label=label, family=label, augment="none", n_train=2000,
                                 seed=s, lattice=lat, mu=mu, loss=base, loss_n=base,
                                 loss_phi2=base))  # fmt: skip
    return pd.DataFrame(rows)


LATS = ("50x2", "60x4", "100x5", "125x8", "200x10")


def test_generalization_finds_a_kink_and_the_ordering_where_they_are():
    law = {("EQ", lat): 1e-5 for lat in LATS}
    law |= {("ST", lat): (1e-3 if lat == "100x5" else 1e-4) for lat in LATS}
    law |= {("FL", "60x4"): 1e-4}
    v = regression.generalization(
        _per_mu(law), train_lattice="60x4", mu_range=(0.91, 1.05), n_train=2000
    )
    assert v.eq_beats_st and v.st_kink and not v.eq_kink
    assert set(v.kink["neighbour"]) == {"60x4", "125x8"}  # neighbours by volume
    assert v.losses.loc[("ST", "100x5"), "median"] > 5e-4
    assert len(v.lines()) == 2


def test_generalization_without_differences_finds_neither():
    law = {(f, lat): 1e-4 for f in ("EQ", "ST") for lat in LATS}
    v = regression.generalization(
        _per_mu(law, seed=3), train_lattice="60x4", mu_range=(0.91, 1.05), n_train=2000
    )
    assert not v.eq_beats_st and not v.st_kink and not v.eq_kink
    with pytest.raises(ValueError, match="no plain instances at N_train = 50"):
        regression.generalization(_per_mu(law), train_lattice="60x4", mu_range=(0.9, 1), n_train=50)


def test_lattice_size_tests_use_the_largest_size_with_the_most_instances():
    chunks = {50: list(range(10)), 200: list(range(10)), 2000: [0, 1, 2]}
    assert regression.generalization_size(chunks) == 200  # 3 seeds at 2000: p >= 0.05
    chunks[2000] = list(range(10))
    assert regression.generalization_size(chunks) == 2000
    with pytest.raises(ValueError, match="no finished size"):
        regression.generalization_size({})


def _extrapolation_losses(beyond_eq: float, beyond_st_worst: float):
    """Per-mu losses of 3 EQ and 3 ST instances on 60x4: 1e-6 inside mu <= 1.05; beyond it
    EQ seed 2 has ``beyond_eq`` and ST seed 1 ``beyond_st_worst``, the others 1e-4."""
    rows = []
    for fam in ("EQ", "ST"):
        for seed in range(3):
            for mu in (0.95, 1.0, 1.05, 1.2, 1.5):
                loss = 1e-6 if mu <= 1.05 else 1e-4
                if mu > 1.05 and (fam, seed) == ("EQ", 2):
                    loss = beyond_eq
                if mu > 1.05 and (fam, seed) == ("ST", 1):
                    loss = beyond_st_worst
                rows.append(dict(label=fam, family=fam, augment="none", n_train=200,
                                 seed=seed, lattice="60x4", mu=mu, loss=loss))  # fmt: skip
    return pd.DataFrame(rows)


def test_worst_st_behaviour_is_looked_for_in_every_eq_instance():
    kw = dict(train_lattice="60x4", mu_range=(0.95, 1.05), n_train=200)
    w = regression.worst_st(_extrapolation_losses(1e-4, 0.03), **kw)
    assert w.worst_st_seed == 1 and w.st_beyond == pytest.approx(0.03)
    assert w.st_inside == pytest.approx(1e-6) and w.n_eq == 3 and w.no_eq_like_worst_st
    w = regression.worst_st(_extrapolation_losses(0.02, 0.03), **kw)  # one EQ instance fails alike
    assert w.eq_beyond_max == pytest.approx(0.02) and not w.no_eq_like_worst_st
    assert "ratio 0.67" in w.line()
    with pytest.raises(ValueError, match="no plain instances at N_train = 50"):
        regression.worst_st(_extrapolation_losses(1e-4, 0.03), **{**kw, "n_train": 50})
