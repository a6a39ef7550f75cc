"""Gamma-method statistics against exactly known autocorrelations (AR(1) processes)."""

import math

import numpy as np
import pytest

from qftml.lattice import (
    autocorrelation,
    autocorrelation_time,
    binning_error,
    mean_error,
    summarize,
)


def _ar1(rho: float, n: int, seed: int) -> np.ndarray:
    """x_i = rho x_{i-1} + sqrt(1 - rho^2) e_i: unit variance, tau_int = (1+rho)/(2(1-rho))."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n) * math.sqrt(1 - rho**2)
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + e[i]
    return x


@pytest.mark.parametrize("rho,seed", [(0.0, 1), (0.5, 2), (0.9, 3), (0.97, 4)])
def test_tau_int_of_ar1_within_4_errors(rho, seed):
    x = _ar1(rho, 200_000, seed)
    exact = (1 + rho) / (2 * (1 - rho))
    r = autocorrelation(x)
    assert abs(r["tau_int"] - exact) < 4 * r["tau_int_error"], (r, exact)
    assert autocorrelation_time(x) == r["tau_int"]
    # the error bar of the mean is sqrt(2 tau Gamma(0) / N) with the exact tau and Gamma(0)=1
    true_err = math.sqrt(2 * exact / len(x))
    # relative uncertainty: half that of tau, plus that of Gamma(0), ~sqrt(4 tau / N)
    rel = r["tau_int_error"] / r["tau_int"] / 2 + math.sqrt(4 * exact / len(x))
    assert abs(r["error"] / true_err - 1) < 4 * rel


def test_error_bars_cover_the_true_mean():
    """Over 200 independent AR(1) chains, |mean| < err holds ~68% and < 2 err ~95% of the time."""
    z = []
    for seed in range(200):
        m, e = mean_error(_ar1(0.8, 4000, 100 + seed))
        z.append(m / e)
    z = np.abs(np.array(z))
    # binomial standard errors: 200 trials, p = 0.683 -> 0.033; p = 0.954 -> 0.015
    assert abs(np.mean(z < 1) - 0.683) < 4 * 0.033
    assert abs(np.mean(z < 2) - 0.954) < 4 * 0.015


def test_binning_agrees_with_gamma_method():
    x = _ar1(0.9, 100_000, 7)
    m1, e1 = mean_error(x)
    m2, e2 = binning_error(x, n_bins=25)  # blocks of 4000 >> tau = 9.5
    assert m1 == pytest.approx(m2)
    # the binned error has relative statistical uncertainty ~ 1/sqrt(2 (n_bins - 1)) = 0.144
    assert abs(e2 / e1 - 1) < 4 * 0.144


def test_constant_series_and_dicts():
    r = autocorrelation(np.full(50, 3.0))
    assert r["mean"] == 3.0 and r["error"] == 0.0 and r["tau_int"] == 0.5
    out = summarize({"a": _ar1(0.5, 1000, 1), "b": np.ones(10)})
    assert set(out) == {"a", "b"} and out["b"]["error"] == 0.0


@pytest.mark.parametrize("bad", [np.ones((3, 3)), np.ones(1), np.array([1.0, np.nan, 2.0])])
def test_bad_series(bad):
    with pytest.raises(ValueError):
        mean_error(bad)
