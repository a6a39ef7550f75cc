"""The worm sampler: held to its pure-Python twin, exact invariants, detailed balance, errors."""

import numpy as np
import pytest

from qftml.lattice import Ensemble, is_conserved, log_weights, mean_error, reference, sample


@pytest.mark.parametrize(
    "nt,nx,eta,lam,mu",
    [(3, 2, 4.5, 0.7, 0.4), (4, 3, 5.0, 0.0, 0.9), (2, 5, 4.01, 1.0, 1.2), (5, 2, 4.01, 1.0, 0.0)],
)
def test_kernel_reproduces_python_twin_exactly(nt, nx, eta, lam, mu):
    """Same seed, same uniforms: the compiled chain equals the from-scratch-weights chain."""
    kw = {"seed": 11, "n_therm": 20, "n_skip": 2}
    twin = reference.chain(nt, nx, eta, lam, mu, 25, **kw)
    ens = sample(nt, nx, eta, lam, mu, 25, **kw)
    assert ens.worms_per_sweep == twin["worms_per_sweep"]
    np.testing.assert_array_equal(ens.k, twin["k"])
    np.testing.assert_array_equal(ens.l, twin["l"])
    np.testing.assert_array_equal(ens.n, twin["n"])
    np.testing.assert_allclose(ens.phi2, twin["phi2"], rtol=1e-13)
    assert np.abs(ens.k).max() > 0 and ens.l.max() > 0  # the chain did move


@pytest.fixture(scope="module")
def ensemble() -> Ensemble:
    return sample(12, 6, 4.01, 1.0, 1.1, 300, seed=3, n_therm=100, n_skip=2)


def test_ensemble_shapes_invariants_and_observables(ensemble):
    e = ensemble
    assert e.k.shape == e.l.shape == (300, 2, 12, 6) and e.k.dtype.kind == "i"
    assert e.n.shape == e.phi2.shape == (300,) and e.n.dtype == np.float64
    assert (e.nt, e.nx, e.eta, e.lam, e.mu, e.seed, e.n_therm, e.n_skip) == (
        12, 6, 4.01, 1.0, 1.1, 3, 100, 2,
    )  # fmt: skip
    assert 0 < e.acceptance_worm < 1 and 0 < e.acceptance_l < 1
    assert np.all(is_conserved(e.k)) and np.all(e.l >= 0)  # exact identities
    np.testing.assert_array_equal(e.n, e.k[:, 1].sum(axis=(1, 2)) / 72)
    lw = log_weights(4.01, 1.0, 400)
    f = reference.site_f(e.k, e.l)
    np.testing.assert_allclose(e.phi2, np.exp(lw[f + 2] - lw[f]).mean(axis=(1, 2)), rtol=1e-12)
    assert len(np.unique(e.n)) > 3  # worms wind around time: the charge fluctuates


def test_seeded_and_reproducible(ensemble):
    again = sample(12, 6, 4.01, 1.0, 1.1, 300, seed=3, n_therm=100, n_skip=2)
    np.testing.assert_array_equal(again.k, ensemble.k)
    np.testing.assert_array_equal(again.l, ensemble.l)
    other = sample(12, 6, 4.01, 1.0, 1.1, 300, seed=4, n_therm=100, n_skip=2)
    assert not np.array_equal(other.k, ensemble.k)


def test_result_does_not_depend_on_initial_table_size():
    """A chain that outgrows the f-table is rerun with a larger one: same configurations."""
    small = sample(6, 4, 4.01, 1.0, 1.0, 50, seed=5, n_therm=50, f_table=8)
    big = sample(6, 4, 4.01, 1.0, 1.0, 50, seed=5, n_therm=50, f_table=512)
    assert small.f_table > 8
    np.testing.assert_array_equal(small.k, big.k)
    np.testing.assert_array_equal(small.l, big.l)


def _keys(e: Ensemble) -> np.ndarray:
    flat = np.ascontiguousarray(np.concatenate([e.k, e.l], axis=1).reshape(len(e.n), -1))
    return flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()


def test_detailed_balance_against_exact_weight_ratios():
    """Relative frequencies of the most frequent configurations = ratios of their weights.

    On a 3 x 2 lattice, the set S of the 20 most frequent configurations is chosen from the
    first half of the chain; on the second half, for each c in S,
    y_i = [C_i = c] - q_c [C_i in S] has mean 0 exactly if P(c | S) = q_c = w_c / sum_S w.
    Each mean must be within 4.5 standard errors (autocorrelations included) of 0.
    """
    nt, nx, eta, lam, mu = 3, 2, 4.6, 0.5, 0.5
    e = sample(nt, nx, eta, lam, mu, 200_000, seed=9, n_therm=500)
    keys = _keys(e)
    half = len(keys) // 2
    uniq, where, counts = np.unique(keys[:half], return_index=True, return_counts=True)
    order = np.argsort(counts)[::-1][:20]
    top, first = uniq[order], where[order]  # the configurations and one index of each
    lw = log_weights(eta, lam, 400)
    logw = np.array([reference.log_weight(e.k[i], e.l[i], mu, lw) for i in first])
    q = np.exp(logw - logw.max())
    q /= q.sum()
    test = keys[half:]
    in_s = np.isin(test, top).astype(float)
    z = []
    for c, qc in zip(top, q, strict=True):
        y = (test == c).astype(float) - qc * in_s
        m, err = mean_error(y)
        z.append(m / err)
    assert np.max(np.abs(z)) < 4.5, np.round(z, 2)
    # the set contains winding (mu-dependent) configurations, so mu is tested too
    assert any(e.k[i, 1].sum() != 0 for i in first)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"eta": 0.0}, "eta=0.0"),
        ({"eta": -2}, "eta=-2"),
        ({"lam": -1.0}, "lam=-1.0"),
        ({"nt": 1}, "nt=1"),
        ({"nx": 1}, "nx=1"),
        ({"mu": float("inf")}, "mu=inf"),
        ({"n_configs": 0}, "n_configs=0"),
        ({"seed": -1}, "seed=-1"),
        ({"n_skip": 0}, "n_skip=0"),
        ({"n_therm": 1.5}, "n_therm=1.5"),
    ],
)
def test_bad_input_is_rejected_with_the_value(kwargs, needle):
    args = {"nt": 4, "nx": 4, "eta": 4.5, "lam": 1.0, "mu": 0.5, "n_configs": 2}
    args.update(kwargs)
    kw = {"seed": 1, "n_therm": 1, "n_skip": 1}
    for name in ("seed", "n_therm", "n_skip"):
        if name in args:
            kw[name] = args.pop(name)
    with pytest.raises(ValueError, match=needle):
        sample(**args, **kw)


def test_scan_is_independent_of_the_number_of_processes():
    from qftml.lattice import scan

    pts = [(4, 4, 4.5, 1.0, 0.3), (6, 2, 4.01, 1.0, 1.0)]
    one = scan(pts, 200, seed=5, n_therm=20, jobs=1)
    two = scan(pts, 200, seed=5, n_therm=20, jobs=2)
    for key, v in one.items():
        np.testing.assert_array_equal(v, two[key], err_msg=key)
    with pytest.raises(ValueError, match="eta=-1"):
        scan([(4, 4, -1, 1.0, 0.0)], 10, seed=1, n_therm=1, jobs=1)
