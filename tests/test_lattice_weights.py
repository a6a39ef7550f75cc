"""log W(f): closed form, high-precision quadrature, the exact recurrence, bad input."""

import math

import mpmath
import numpy as np
import pytest

from qftml.lattice import log_weights
from qftml.lattice.weights import _log_w_quad, ratio_tables

EPS = np.finfo(float).eps


def _mp_log_w(f: int, eta: float, lam: float) -> float:
    """log W(f) with 40 significant digits (mpmath tanh-sinh quadrature around the peak)."""
    with mpmath.workdps(40):
        eta_m, lam_m = mpmath.mpf(eta), mpmath.mpf(lam)
        a = f + 1
        r0 = mpmath.sqrt(a / (eta_m + mpmath.sqrt(eta_m**2 + 4 * lam_m * a)))

        def g(r):
            return r ** (f + 1) * mpmath.exp(-eta_m * r**2 - lam_m * r**4)

        val = mpmath.quad(g, [0, r0 / 2, r0, 2 * r0, 4 * r0, mpmath.inf])
        return float(mpmath.log(val))


@pytest.mark.parametrize("eta,lam", [(4.01, 1.0), (4.01, 1e-3), (0.1, 1.0), (8.0, 0.2), (4.5, 0.0)])
def test_log_weights_match_40_digit_quadrature(eta, lam):
    lw = log_weights(eta, lam, 500)
    for f in (0, 1, 2, 7, 50, 201, 400, 500):
        ref = _mp_log_w(f, eta, lam)
        # machine precision of log W: a few ulp of max(1, |log W|)
        assert abs(lw[f] - ref) <= 16 * EPS * max(1.0, abs(ref)), (f, lw[f], ref)


def test_free_field_closed_form_and_quadrature_agree():
    eta = 5.0
    lw = log_weights(eta, 0.0, 300)
    f = np.arange(301)
    closed = [math.lgamma(v / 2 + 1) - (v / 2 + 1) * math.log(eta) - math.log(2) for v in f]
    scale = np.maximum(1.0, (f / 2 + 1) * math.log(eta))  # size of the cancelling terms
    assert np.all(np.abs(lw - closed) <= 8 * EPS * scale)
    for v in (0, 3, 40, 300):  # the generic quadrature path, run at lambda = 0
        assert abs(_log_w_quad(v, eta, 0.0) - lw[v]) <= 16 * EPS * max(1, abs(lw[v]))


@pytest.mark.parametrize("eta,lam", [(4.01, 1.0), (2.0, 3.0), (6.0, 0.05)])
def test_integration_by_parts_recurrence(eta, lam):
    """eta W(f) + 2 lam W(f+2) = (f/2) W(f-2): exact, and independent of how W was computed.

    Ratios exp(log W(f') - log W(f)) carry the rounding of log W, eps |log W| relatively.
    """
    lw = log_weights(eta, lam, 600)
    f = np.arange(2, 599)
    lhs = eta + 2 * lam * np.exp(lw[f + 2] - lw[f])
    rhs = f / 2 * np.exp(lw[f - 2] - lw[f])
    assert np.all(np.abs(lhs / rhs - 1) <= 16 * EPS * np.maximum(1.0, np.abs(lw[f])))


def test_large_f_stays_finite_and_ratio_tables():
    lw = log_weights(4.01, 1.0, 5000)
    assert np.all(np.isfinite(lw)) and np.all(np.diff(lw[200:]) > 0)
    tab = ratio_tables(lw[:50])
    np.testing.assert_allclose(tab["up1"][:-1] * tab["dn1"][1:], 1.0, rtol=1e-15)
    np.testing.assert_allclose(tab["up2"][:-2], np.exp(lw[2:50] - lw[:48]), rtol=1e-15)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"eta": 0.0, "lam": 1.0, "f_max": 5}, "eta=0.0"),
        ({"eta": -1.0, "lam": 1.0, "f_max": 5}, "eta=-1.0"),
        ({"eta": 4.0, "lam": -0.5, "f_max": 5}, "lam=-0.5"),
        ({"eta": 4.0, "lam": float("nan"), "f_max": 5}, "lam=nan"),
        ({"eta": 4.0, "lam": 1.0, "f_max": -1}, "f_max=-1"),
        ({"eta": 4.0, "lam": 1.0, "f_max": 2.5}, "f_max=2.5"),
    ],
)
def test_bad_input_names_the_value(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        log_weights(**kwargs)
