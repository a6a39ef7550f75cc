"""Effective action of network ensembles (qftml.nnqft.effective) and correlated parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf as sp_erf

from qftml.nnqft import (
    correlated_outputs,
    ensemble_outputs,
    exact_m_n,
    fit_quartic,
    fourpt_ratio,
    fourpt_ratio_first_order,
    haar_orthogonal,
    invariance_test,
    m_n,
    quartic_coupling,
    quartic_design,
    radial_moment,
    relu_quartic_exact,
    relu_vertex_integral_exact,
    rotate_outputs,
    sample_radius,
    sixpt_test,
    vertex_integrals,
)
from qftml.nnqft.correlators import index_tuples

X_POS = np.array([[0.3], [0.7], [1.0]])
TOL = 4.0  # statistical tolerance, in standard errors


def test_relu_vertex_integral_matches_closed_form_for_both_signs():
    x = np.array([[-0.8], [-0.3], [0.4], [1.1]])
    tuples = index_tuples(4, 4) + index_tuples(4, 6)
    quad = vertex_integrals("relu", x, tuples, cutoff=1.7, sigma_w=1.3)
    exact = [relu_vertex_integral_exact(x, t, cutoff=1.7, sigma_w=1.3) for t in tuples]
    assert np.any(np.array(exact) == 0) and np.any(np.array(exact) > 0)
    np.testing.assert_allclose(quad, exact, rtol=1e-10, atol=1e-14)


def test_quadrature_reproduces_separable_gaussian_kernel_in_two_dimensions():
    # K(y, x) = exp(-a |y - x|^2) is separable over axes; each axis integral is an erf
    a, cut = 0.7, 1.3
    x = np.array([[0.2, -0.5], [0.9, 0.1], [-0.4, 0.6]])

    def kernel(y, xx):
        return np.exp(-a * ((y[:, None, :] - xx[None, :, :]) ** 2).sum(-1))

    def exact(t):
        pts = x[list(t)]
        n = len(t)
        out = 1.0
        for k in range(2):
            m = pts[:, k].mean()
            pref = math.exp(a * (n * m**2 - (pts[:, k] ** 2).sum()))
            s = math.sqrt(n * a)
            out *= (
                pref
                * math.sqrt(math.pi)
                / (2 * s)
                * (sp_erf(s * (cut - m)) - sp_erf(s * (-cut - m)))
            )
        return out

    tuples = index_tuples(3, 4)
    quad = vertex_integrals("relu", x, tuples, cutoff=cut, kernel=kernel, n_quad=40)
    np.testing.assert_allclose(quad, [exact(t) for t in tuples], rtol=1e-10)


def test_relu_quartic_exact_scaling():
    lam = relu_quartic_exact(np.array([10.0, 20.0]), cutoff=2.0, sigma_w=1.0)
    assert lam[0] == pytest.approx(-25 / (2 * 10 * 32))
    assert lam[1] / lam[0] == pytest.approx(0.5)
    ratio = relu_quartic_exact(10, cutoff=4.0) / relu_quartic_exact(10, cutoff=2.0)
    assert ratio == pytest.approx(2.0**-5)
    with pytest.raises(ValueError, match="cutoff"):
        relu_quartic_exact(10, cutoff=-1.0)


def test_quartic_coupling_agrees_with_closed_form():
    width, cut = 8, 1.5
    lam, err = quartic_coupling("relu", X_POS, width, 40000, cutoff=cut, seed=11)
    exact = relu_quartic_exact(width, cutoff=cut)
    assert err > 0
    assert abs(lam - exact) < TOL * err, (lam, err, exact)
    assert abs(lam - exact) < 0.2 * abs(exact)  # resolved, not just noisy


def test_fit_rejects_a_design_that_constrains_nothing():
    f = np.random.default_rng(0).standard_normal((1000, 3))
    with pytest.raises(ValueError, match="no four-point tuple"):
        fit_quartic(f, np.zeros(len(index_tuples(3, 4))), n_blocks=10)


def test_sixpt_first_order_holds_at_large_width_and_fails_at_small():
    design = quartic_design("relu", X_POS, cutoff=1.0)
    exact = {n: exact_m_n("relu", X_POS, 6, n, sigma_b=0.0) for n in (3, 200)}
    small = sixpt_test(ensemble_outputs("relu", 3, X_POS, 40000, sigma_b=0.0, seed=5), design)
    # at N = 3 the 1/N^2 cumulant (44/N^2 of the Wick value) is resolved ...
    assert small.z > TOL
    # ... and the measurement agrees with the exact (all-order) value
    assert abs(small.measured.value[0] - exact[3]) < TOL * small.measured.error[0]
    assert abs(small.predicted.value[0] - 15 / 3) < TOL * small.predicted.error[0]
    large = sixpt_test(ensemble_outputs("relu", 200, X_POS, 40000, sigma_b=0.0, seed=6), design)
    assert abs(large.z) < TOL


def test_radial_moments_and_sampler_at_zero_and_nonzero_coupling():
    m_dim, sigma = 6, 0.5
    # chi distribution: E r^2 = M sigma^2, E r^4 = M (M + 2) sigma^4
    assert radial_moment(2, m_dim, sigma, 0.0) == pytest.approx(m_dim * sigma**2, rel=1e-9)
    assert fourpt_ratio(m_dim, sigma, 0.0) == pytest.approx(1.0, rel=1e-9)
    rng = np.random.default_rng(1)
    for lam in (0.0, 3.0):
        r = sample_radius(m_dim, sigma, lam, 200000, rng)
        for k in (2, 4):
            se = (r**k).std() / math.sqrt(len(r))
            assert abs((r**k).mean() - radial_moment(k, m_dim, sigma, lam)) < TOL * se
    with pytest.raises(ValueError, match="lam_theta"):
        sample_radius(m_dim, sigma, -1.0, 10, rng)


def test_fourpt_ratio_first_order_is_the_derivative():
    sigma, h = 0.5, 1e-4
    slope = (fourpt_ratio(8, sigma, h) - 1.0) / h
    assert slope == pytest.approx(-8 * sigma**4, rel=2e-3)
    assert fourpt_ratio_first_order(sigma, h) == pytest.approx(1 - 8 * sigma**4 * h)


def test_correlated_parameters_keep_symmetry_and_shift_the_fourpt():
    x = np.array([[0.5], [1.0]])
    width, lam = 4, 1.0
    f = correlated_outputs(x, width, 20000, lam_theta=lam, d_out=2, seed=3)
    g = haar_orthogonal(2, np.random.default_rng(2))
    assert invariance_test(f, rotate_outputs(f, g)).p_value > 1e-3
    fb = correlated_outputs(x, width, 20000, lam_theta=lam, d_out=2, seed=3, broken=True)
    assert invariance_test(fb, rotate_outputs(fb, g)).p_value < 1e-6
    # exact four-point deviation rho (1 + Delta_0) - 1, on output 0
    est = m_n(correlated_outputs(x, width, 60000, lam_theta=lam, seed=4), 4)
    m0 = exact_m_n("erf", x, 4, width, sigma_b=0.0)
    expected = fourpt_ratio(width, 1 / math.sqrt(width), lam) * (1 + m0) - 1
    assert abs(est.value - expected) < TOL * est.error
    assert abs(est.value - m0) > TOL * est.error  # the shift is resolved
