"""Tests of qftml.nnqft: ensembles, kernels, exact finite-width correlators, estimators.

Statistical tests compare Monte Carlo estimates with exact results in units of their
standard error (block errors over independent networks); seeds are fixed.
"""

import math

import numpy as np
import pytest

from qftml.nnqft import (
    Ensemble,
    connected_4pt,
    deviations,
    ensemble_outputs,
    even_partitions,
    exact_m_n,
    exact_npoint,
    fit_power_law,
    index_tuples,
    jackknife,
    m_n,
    neuron_moment,
    nngp_kernel,
    npoint,
    product_block_means,
    wick,
)

X1 = np.array([[-1.0], [-0.3], [0.4], [1.1]])
X3 = np.array([[0.5, -1.0, 0.2], [0.0, 0.3, 1.2], [-0.7, 0.1, -0.4]])


# --------------------------------------------------------------------------- ensembles


def test_shapes_and_dtypes():
    f = ensemble_outputs("erf", 7, X3, 11, d_out=2, seed=1)
    assert f.shape == (11, 3, 2) and f.dtype == np.float64
    c = Ensemble("relu", (4, 5), d_out=3, complex_output=True).sample(X1, 6, seed=2)
    assert c.shape == (6, 4, 3) and np.iscomplexobj(c)


def test_same_seed_same_networks_whatever_the_request():
    a = ensemble_outputs("erf", 50, X1, 25000, seed=7, n_jobs=1)
    b = ensemble_outputs("erf", 50, X1[:2], 300, seed=7, n_jobs=2)  # fewer nets and inputs
    assert np.array_equal(a[:300, :2], b)
    c = ensemble_outputs("erf", 50, X1, 300, seed=8)
    assert not np.allclose(a[:300], c)


def test_float64_stream_is_reproducible_and_consistent():
    """float64 draws its own stream (documented); it is reproducible and has the same law."""
    a = ensemble_outputs("gauss", 20, X3 * 0.5, 50_000, seed=3, dtype="float64")
    b = ensemble_outputs("gauss", 20, X3 * 0.5, 50_000, seed=3, dtype="float64")
    assert np.array_equal(a, b)
    tuples, est, _ = npoint(a, 2)
    k = nngp_kernel("gauss", X3 * 0.5)
    assert np.all(np.abs(est.z([k[i, j] for i, j in tuples])) < 4.5)


def test_single_network_matches_explicit_formula():
    """A width-1 network by hand: f = W1 erf(W0 x + b0) + b1 (recover params via inputs)."""
    x = np.array([[0.0], [1.0], [-2.0]])
    f = Ensemble("relu", (1,), sigma_b=0.0).sample(x, 5, seed=4, dtype="float64")[:, :, 0]
    # with sigma_b = 0: f(x) = W1 relu(W0 x), so f(0) = 0 and f(1), f(-2) have W1 W0 signs
    assert np.allclose(f[:, 0], 0.0)
    assert np.all((f[:, 1] == 0) | (f[:, 2] == 0))
    slope = np.where(f[:, 1] != 0, f[:, 1], -f[:, 2] / 2)
    assert np.allclose(np.where(f[:, 1] != 0, f[:, 1], f[:, 2] / -2), slope)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(arch="sigmoid"),
        dict(arch="erf", widths=(0,)),
        dict(arch="erf", sigma_w=-1.0),
        dict(arch="gauss", widths=(3, 3)),
        dict(arch="cos"),
        dict(arch="erf", output_scale=(1.0, 2.0)),
    ],
)
def test_bad_ensembles_raise(kwargs):
    with pytest.raises(ValueError):
        Ensemble(**kwargs)


def test_bad_inputs_raise_with_value():
    with pytest.raises(ValueError, match="shape"):
        ensemble_outputs("erf", 3, np.zeros(4), 10)
    with pytest.raises(ValueError, match="'softplus'"):
        ensemble_outputs("softplus", 3, X1, 10)
    with pytest.raises(ValueError, match="n_nets"):
        ensemble_outputs("erf", 3, X1, 0)


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("arch", ["erf", "relu", "gauss"])
@pytest.mark.parametrize("x", [X1, X3], ids=["d1", "d3"])
def test_kernel_equals_quadrature_of_neuron_moments(arch, x):
    """The closed forms against an independent computation of E[phi phi'] (quadrature)."""
    kw = dict(sigma_w=1.3, sigma_b=0.7)
    k = nngp_kernel(arch, x, **kw)
    n = len(x)
    m = np.array([[neuron_moment(arch, x[[a, b]], **kw) for b in range(n)] for a in range(n)])
    assert np.allclose(k, 0.7**2 + 1.3**2 * m, rtol=1e-8, atol=1e-10)


def test_gauss_kernel_is_translation_invariant_closed_form():
    x = X3
    sw, sb = 1.3, 0.6
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    expected = sb**2 + sw**2 * np.exp(-(sw**2) * d2 / (2 * x.shape[1]))
    assert np.allclose(nngp_kernel("gauss", x, sigma_w=sw, sigma_b=sb), expected)


def test_relu_and_gauss_fourth_moments_closed_form():
    c = 0.6**2 + 1.2**2 * 0.8**2  # C(x, x) at x = 0.8, d_in = 1
    x4 = np.full((4, 1), 0.8)
    assert neuron_moment("relu", x4, sigma_w=1.2, sigma_b=0.6) == pytest.approx(1.5 * c**2)
    # lognormal: E[phi^4] = exp(8C - 4C) = exp(4C)
    assert neuron_moment("gauss", x4, sigma_w=1.2, sigma_b=0.6) == pytest.approx(np.exp(4 * c))


@pytest.mark.parametrize("arch", ["erf", "relu", "gauss"])
@pytest.mark.parametrize("width", [2, 30])
def test_two_point_function_equals_kernel_at_every_width(arch, width):
    x = X1 * 0.5 if arch == "gauss" else X1
    f = ensemble_outputs(arch, width, x, 200_000, seed=11)
    tuples, est, _ = npoint(f, 2)
    k = nngp_kernel(arch, x)
    exact = np.array([k[a, b] for a, b in tuples])
    z = est.z(exact)
    assert np.all(np.abs(z) < 4.5), z  # 10 correlated components, |z| < 4.5 each


def test_two_point_function_d_in_3_and_sigmas():
    kw = dict(sigma_w=1.4, sigma_b=0.5)
    f = ensemble_outputs("erf", 3, X3, 200_000, seed=12, **kw)
    tuples, est, _ = npoint(f, 2)
    k = nngp_kernel("erf", X3, **kw)
    assert np.all(np.abs(est.z([k[a, b] for a, b in tuples])) < 4.5)


def test_deep_relu_diagonal_two_point_function_is_exact_at_finite_width():
    """For ReLU, E[z_{l+1}(x)^2] = sb^2 + sw^2 E[z_l(x)^2]/2 holds at every width."""
    f = Ensemble("relu", (3, 4)).sample(X1, 200_000, seed=13)[:, :, 0]
    k = nngp_kernel("relu", X1, depth=2)
    est = jackknife(product_block_means(f, [(a, a) for a in range(4)], 50))
    assert np.all(np.abs(est.z(np.diag(k))) < 4.5)


def test_deep_kernel_depth_one_is_single_layer():
    assert np.allclose(nngp_kernel("erf", X3, depth=1), nngp_kernel("erf", X3))
    with pytest.raises(ValueError, match="depth"):
        nngp_kernel("erf", X3, depth=0)
    with pytest.raises(ValueError, match="'softplus'"):
        nngp_kernel("softplus", X3)


# --------------------------------------------------------------------------- exact finite width


def test_even_partitions_counts():
    assert len(even_partitions(tuple(range(4)))) == 4  # 1 + 3 pairings
    assert len(even_partitions(tuple(range(6)))) == 31  # 1 + 15 (4,2) + 15 pairings
    pairings = [p for p in even_partitions(tuple(range(8))) if all(len(b) == 2 for b in p)]
    assert len(pairings) == 105  # 7!!


def test_exact_npoint_infinite_width_is_wick():
    k = nngp_kernel("erf", X1)
    for t in [(0, 1, 2, 3), (0, 0, 1, 2, 3, 3), (1, 1)]:
        assert exact_npoint("erf", X1, t, math.inf) == pytest.approx(wick(k, t))


def test_exact_relu_connected_four_point_closed_form():
    """G_c(x,x,x,x) = (sw^4/N)(3 E[relu^4] - 3 E[relu^2]^2) = (15/4) sw^4 C^2 / N."""
    c = 1.0 + 0.49
    for n in (1, 3, 10):
        got = exact_npoint("relu", np.array([[0.7]]), (0, 0, 0, 0), n, connected=True)
        assert got == pytest.approx(15 / 4 * c**2 / n)


@pytest.mark.parametrize(
    "arch,x,kw",
    [
        ("relu", X1, {}),
        ("erf", X1, {}),
        ("gauss", X1 * 0.4, dict(sigma_b=0.4)),  # lognormal tails: keep C(x, x) small
    ],
)
def test_connected_four_point_mc_matches_exact(arch, x, kw):
    width = 3
    f = ensemble_outputs(arch, width, x, 300_000, seed=21, **kw)
    tuples, est = connected_4pt(f)
    exact = np.array([exact_npoint(arch, x, t, width, connected=True, **kw) for t in tuples])
    z = est.z(exact)
    assert np.all(np.abs(z) < 4.5), z
    # and the signal is resolved: the connected part is not zero
    assert np.max(np.abs(exact) / est.error) > 5


def test_m4_mc_matches_exact_and_scales_like_one_over_n():
    x = X1
    ests = {}
    for width in (2, 8):
        f = ensemble_outputs("relu", width, x, 300_000, seed=22)
        ests[width] = est = m_n(f, 4, nngp_kernel("relu", x))
        exact = exact_m_n("relu", x, 4, width)
        assert abs(est.value - exact) < 4 * est.error
    # one hidden layer: G4 - G4_GP = kappa_4 ~ 1/N, so the *sampled* m4 at N = 2 is four
    # times that at N = 8, within 4 standard errors of the ratio (resolved: error < 1)
    a, b = ests[2], ests[8]
    ratio = a.value / b.value
    err = abs(ratio) * math.hypot(a.error / a.value, b.error / b.value)
    assert err < 1 and abs(ratio - 4) < 4 * err, (ratio, err)


def test_deviations_with_measured_kernel_is_consistent():
    f = ensemble_outputs("relu", 4, X1[:2], 200_000, seed=23)
    tuples, d_exact = deviations(f, 4, nngp_kernel("relu", X1[:2]))
    _, d_meas = deviations(f, 4, None)
    exact = np.array([exact_npoint("relu", X1[:2], t, 4) for t in tuples])
    gp = np.array([exact_npoint("relu", X1[:2], t, math.inf) for t in tuples])
    assert np.all(np.abs(d_exact.z(exact / gp - 1)) < 4.5)
    assert np.all(np.abs(d_meas.z(exact / gp - 1)) < 4.5)


# --------------------------------------------------------------------------- estimators


def test_jackknife_of_mean_is_standard_error():
    rng = np.random.default_rng(0)
    bm = rng.standard_normal((40, 3))
    est = jackknife(bm)
    assert np.allclose(est.value, bm.mean(0))
    assert np.allclose(est.error, bm.std(0, ddof=1) / np.sqrt(40))


def test_product_block_means_against_direct():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((1001, 3))
    tuples = index_tuples(3, 3) + [(0, 2)]
    bm = product_block_means(f, tuples, n_blocks=7, chunk=64)
    edges = np.linspace(0, 1001, 8).astype(int)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        ref = [np.prod(f[a:b][:, list(t)], axis=1).mean() for t in tuples]
        assert np.allclose(bm[i], ref)


def test_fit_power_law_recovers_slope():
    n = np.array([10, 30, 100, 300, 1000])
    v = 3.0 * n**-1.0
    slope, err, intercept, _ = fit_power_law(n, v, 0.01 * v)
    assert slope == pytest.approx(-1.0) and intercept == pytest.approx(np.log(3.0))
    assert err > 0


def test_moment_table_grid_agrees_with_rank_quadrature():
    """Two independent quadratures of erf moments: shared (w, b) grid vs per-tuple rank."""
    from qftml.nnqft import MomentTable

    x = np.linspace(-1.2, 0.9, 5)[:, None]
    table = MomentTable("erf", x, sigma_w=1.3, sigma_b=0.7)
    for t in [(0, 1), (0, 2, 3, 4), (1, 1, 2, 3, 4, 4)]:
        direct = neuron_moment("erf", x[list(t)], sigma_w=1.3, sigma_b=0.7)
        assert table(t) == pytest.approx(direct, rel=1e-8, abs=1e-12)


def test_exact_npoint_accepts_width_arrays():
    w = np.array([2.0, 20.0, np.inf])
    vals = exact_npoint("relu", X1, (0, 1, 2, 3), w)
    assert vals.shape == (3,)
    assert vals[2] == pytest.approx(wick(nngp_kernel("relu", X1), (0, 1, 2, 3)))
    assert vals[0] == pytest.approx(exact_npoint("relu", X1, (0, 1, 2, 3), 2))
