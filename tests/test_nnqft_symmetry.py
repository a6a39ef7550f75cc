"""Tests of symmetry via duality (Haar sampling, invariance tests), training, data loaders."""

import numpy as np
import pytest

from qftml.nnqft import (
    Ensemble,
    haar_orthogonal,
    haar_unitary,
    invariance_test,
    nngp_kernel,
    npoint,
    rotate_outputs,
)
from qftml.nnqft.data import (
    blobs,
    digits,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
    write_idx,
)
from qftml.nnqft.training import symmetry_breaking_scan, train_output_ensemble

N_NETS = 100_000
ALPHA = 1e-3  # false-alarm probability of each invariance test under the null


# --------------------------------------------------------------------------- Haar measure


def test_haar_orthogonal_is_special_orthogonal_with_haar_moments():
    rng = np.random.default_rng(0)
    d, n = 3, 20_000
    rs = np.stack([haar_orthogonal(d, rng) for _ in range(n)])
    assert np.allclose(rs @ rs.transpose(0, 2, 1), np.eye(d), atol=1e-12)
    assert np.allclose(np.linalg.det(rs), 1.0)
    # Haar: E[R_ij] = 0 and E[R_ij^2] = 1/d for every entry
    sq = rs**2
    z = (sq.mean(0) - 1 / d) / (sq.std(0) / np.sqrt(n))
    assert np.all(np.abs(z) < 4.5)
    assert np.all(np.abs(rs.mean(0)) < 4.5 * rs.std(0) / np.sqrt(n))


def test_haar_unitary_is_unitary_with_uniform_phase():
    rng = np.random.default_rng(1)
    n = 20_000
    us = np.stack([haar_unitary(2, rng) for _ in range(n)])
    assert np.allclose(us @ us.conj().transpose(0, 2, 1), np.eye(2), atol=1e-12)
    # E[U_11^2] = 0 (phase uniform) and E|U_11|^2 = 1/2
    u11 = us[:, 0, 0]
    assert abs(np.mean(u11**2)) < 4.5 * np.std(u11**2) / np.sqrt(n)
    assert abs(np.mean(np.abs(u11) ** 2) - 0.5) < 4.5 * np.std(np.abs(u11) ** 2) / np.sqrt(n)
    su = haar_unitary(3, rng, special=True)
    assert np.linalg.det(su) == pytest.approx(1.0)


# --------------------------------------------------------------------------- the four examples
X1 = np.array([[-0.5], [0.7]])


def _output_test(ens, g, seed, orders=(1, 2, 3, 4)):
    f = ens.sample(X1, N_NETS, seed=seed)
    return invariance_test(f, rotate_outputs(f, g), orders=orders)


def test_so_output_invariant_and_counterexample_detected():
    rng = np.random.default_rng(2)
    ens = Ensemble("erf", (4,), d_out=2)
    r = haar_orthogonal(2, rng)
    assert _output_test(ens, r, 3).p_value > ALPHA
    broken = _output_test(ens.with_(output_scale=(1.0, 1.3)), r, 3)
    assert broken.p_value < 1e-8 and broken.max_z > 10


def test_so_input_invariant_and_counterexample_detected():
    rng = np.random.default_rng(4)
    x = np.array([[1.0, 0.2], [-0.3, 0.8]])
    q = haar_orthogonal(2, rng)
    xx = np.vstack([x, x @ q.T])
    ens = Ensemble("relu", (4,))
    f = ens.sample(xx, N_NETS, seed=5)
    assert invariance_test(f[:, :2], f[:, 2:]).p_value > ALPHA
    fb = ens.with_(input_scale=(1.0, 1.5)).sample(xx, N_NETS, seed=5)
    assert invariance_test(fb[:, :2], fb[:, 2:]).p_value < 1e-8


def test_translation_invariant_and_counterexample_detected():
    x = np.array([[0.1], [0.35]])
    xx = np.vstack([x, x + 0.37])
    ens = Ensemble("cos", (4,), input_bias="circle", fixed_input_weights=True)
    f = ens.sample(xx, N_NETS, seed=6)
    assert invariance_test(f[:, :2], f[:, 2:]).p_value > ALPHA
    fb = ens.with_(bias_range=0.25).sample(xx, N_NETS, seed=6)
    assert invariance_test(fb[:, :2], fb[:, 2:]).p_value < 1e-8


def test_cos_kernel_with_circle_bias():
    x = np.array([[0.0], [0.1], [0.25]])
    ens = Ensemble("cos", (3,), input_bias="circle", sigma_w=0.8, sigma_b=0.5)
    tuples, est, _ = npoint(ens.sample(x, 200_000, seed=7), 2)
    k = nngp_kernel("cos", x, sigma_w=0.8, sigma_b=0.5)
    assert np.all(np.abs(est.z([k[a, b] for a, b in tuples])) < 4.5)


def test_unitary_output_invariant_and_real_layer_is_not():
    rng = np.random.default_rng(8)
    u = haar_unitary(2, rng)
    ens = Ensemble("erf", (4,), d_out=2, complex_output=True)
    assert _output_test(ens, u, 9, orders=(1, 2, 3)).p_value > ALPHA
    real = Ensemble("erf", (4,), d_out=2)
    f = real.sample(X1, N_NETS, seed=9).astype(complex)
    res = invariance_test(f, rotate_outputs(f, u), orders=(1, 2))
    assert res.p_value < 1e-8  # SO(2)-invariant but not U(2)-invariant


def test_complex_output_two_point_structure():
    """E[f_i conj f_j] = delta_ij K and E[f_i f_j] = 0 for the complex last layer."""
    ens = Ensemble("relu", (3,), d_out=2, complex_output=True)
    f = ens.sample(X1[:1], 200_000, seed=10)[:, 0, :]
    k = nngp_kernel("relu", X1[:1])[0, 0]
    hermitian = (f[:, :, None] * f[:, None, :].conj()).reshape(len(f), -1)
    holo = (f[:, :, None] * f[:, None, :]).reshape(len(f), -1)
    checks = [
        (hermitian.real, np.eye(2).ravel() * k),
        (hermitian.imag, np.zeros(4)),
        (holo.real, np.zeros(4)),
        (holo.imag, np.zeros(4)),
    ]
    for part, exact in checks:
        mean, err = part.mean(0), part.std(0) / np.sqrt(len(f))
        ok = err > 0  # the imaginary part of |f_i|^2 vanishes identically
        assert np.all(np.abs(mean - exact)[ok] < 4.5 * err[ok])
        assert np.all(mean[~ok] == exact[~ok])


def test_invariance_test_rejects_bad_shapes():
    f = np.zeros((100, 2, 1))
    with pytest.raises(ValueError, match="differ"):
        invariance_test(f, np.zeros((100, 3, 1)))
    with pytest.raises(ValueError, match="n_blocks"):
        invariance_test(f, f)  # too few networks for the blocks


# --------------------------------------------------------------------------- training


def test_training_preserves_or_breaks_so2():
    rng = np.random.default_rng(11)
    x = np.linspace(-1, 1, 4)[:, None]
    y = np.tile([0.8, -0.6], (4, 1))
    x_eval = np.array([[0.3]])
    r = haar_orthogonal(2, rng)
    kw = dict(n_nets=20_000, width=6, steps=60, lr=0.05, seed=12)
    inv = train_output_ensemble(x, y, x_eval, loss="invariant", **kw)
    mse = train_output_ensemble(x, y, x_eval, loss="mse", **kw)
    assert inv.loss[-1] < inv.loss[0] and mse.loss[-1] < mse.loss[0]
    assert invariance_test(inv.after, rotate_outputs(inv.after, r), orders=(1, 2)).p_value > ALPHA
    res = invariance_test(mse.after, rotate_outputs(mse.after, r), orders=(1, 2))
    assert res.p_value < 1e-8
    # same initial networks in both runs (same seed)
    assert np.array_equal(inv.before, mse.before)


def test_symmetry_breaking_scan_shapes_and_k0_is_mu_independent():
    x_tr, y_tr, x_te, y_te, _ = blobs(300, 200, n_classes=4, dim=5, seed=0)
    res = symmetry_breaking_scan(
        x_tr, y_tr, x_te, y_te, ks=[0, 2], mus=[0.0, 0.5], n_seeds=2, width=8, epochs=1
    )
    assert res.accuracy.shape == (2, 2, 2, 2)
    assert res.curves.shape == (2, 2, 2, 2, 2)
    # k = 0 or mu = 0: no breaking, identical networks -> identical accuracies
    for p in range(2):
        assert np.array_equal(res.accuracy[p, 0, 0], res.accuracy[p, 0, 1])
        assert np.array_equal(res.accuracy[p, 0, 0], res.accuracy[p, 1, 0])
    with pytest.raises(ValueError, match="k must be"):
        symmetry_breaking_scan(x_tr, y_tr, x_te, y_te, ks=[5], mus=[0.0], n_seeds=2)
    with pytest.raises(ValueError, match="'bogus'"):
        symmetry_breaking_scan(
            x_tr, y_tr, x_te, y_te, ks=[1], mus=[0.0], n_seeds=2, patterns=("bogus",)
        )


def test_uniform_mean_on_all_rows_is_a_softmax_symmetry():
    """k = C with the uniform pattern shifts every logit equally: predictions unchanged."""
    x_tr, y_tr, x_te, y_te, _ = blobs(200, 100, n_classes=3, dim=4, seed=1)
    res = symmetry_breaking_scan(
        x_tr,
        y_tr,
        x_te,
        y_te,
        ks=[3],
        mus=[0.0, 0.7],
        patterns=("uniform",),
        n_seeds=2,
        width=8,
        epochs=0,
    )
    assert np.array_equal(res.accuracy[0, 0, 0], res.accuracy[0, 0, 1])


def _constructed_scan(aligned_slope, random_slope, noise, seed=0):
    """A scan whose answer is known: gain = slope * k * mu + paired noise, uniform = 0."""
    from qftml.nnqft.training import BreakingScan

    rng = np.random.default_rng(seed)
    ks, mus, n_seeds = np.array([0, 2, 5, 10]), np.array([0.0, 0.1, 0.2, 0.4]), 6
    base = 0.5 + 0.01 * rng.standard_normal(n_seeds)  # seed-to-seed spread, common to cells
    grid = ks[:, None, None] * mus[None, :, None] / 4.0
    acc = np.empty((3, len(ks), len(mus), n_seeds))
    acc[0] = base  # uniform: nothing changes (as k = n_classes with the softmax symmetry)
    for i, slope in ((1, aligned_slope), (2, random_slope)):
        acc[i] = base + slope * grid + noise * rng.standard_normal(acc[i].shape) * (grid > 0)
    return BreakingScan(("uniform", "aligned", "random"), ks, mus, acc, acc[None], 10)


def test_breaking_reading_on_constructed_scans():
    """Known answers: aligned helps and beats random -> the source's conclusion holds;
    all patterns equal -> it does not, and nothing helps or hurts."""
    r = _constructed_scan(aligned_slope=0.2, random_slope=0.0, noise=0.002).reading()
    aligned, uniform = r.patterns["aligned"], r.patterns["uniform"]
    assert aligned.helps == aligned.cells == 9 and aligned.hurts == 0
    assert aligned.rho_k[0] > 0.5 and aligned.rho_mu[0] > 0.5
    assert uniform.helps == uniform.hurts == 0 and np.isnan(uniform.rho_k[0])
    assert r.full_uniform_change == 0.0
    assert r.direction[0] > 0 and r.direction[2] < 1e-3 and r.direction_matters
    assert r.ground_truth_helps and r.lines()[-1].endswith(" reproduced")

    same = _constructed_scan(aligned_slope=0.0, random_slope=0.0, noise=0.002).reading()
    assert not same.direction_matters and not same.ground_truth_helps
    assert same.patterns["aligned"].helps <= 1  # at most a false positive at 5 % of 9 cells
    assert same.lines()[-1].endswith("not reproduced")

    # random better than aligned: the direction test is one-sided and must not fire
    rev = _constructed_scan(aligned_slope=0.0, random_slope=0.2, noise=0.002).reading()
    assert rev.patterns["random"].helps == 9 and not rev.direction_matters


def test_breaking_paired_gain_needs_an_unbroken_reference():
    from qftml.nnqft.training import BreakingScan

    acc = np.zeros((1, 2, 2, 3))
    scan = BreakingScan(("aligned",), np.array([1, 2]), np.array([0.1, 0.2]), acc, acc[None])
    with pytest.raises(ValueError, match="unbroken reference"):
        scan.paired_gain("aligned")
    with pytest.raises(ValueError, match="'random' was not scanned"):
        scan.paired_gain("random")


# --------------------------------------------------------------------------- data


def test_idx_roundtrip_and_fashion_loader(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), imgs)
    monkeypatch.setenv("QFTML_FASHION_MNIST", str(tmp_path))
    assert fashion_mnist_dir() is None  # test files still missing
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs[:3])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:3])
    assert fashion_mnist_dir() == tmp_path
    x_tr, y_tr, x_te, y_te = load_fashion_mnist(tmp_path, n_train=4)
    assert x_tr.shape == (4, 784) and x_te.shape == (3, 784)
    assert np.allclose(x_tr * 255, imgs[:4].reshape(4, -1)) and np.array_equal(y_te, labels[:3])


def test_idx_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(bad)
    short = tmp_path / "short.idx"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(ValueError, match="expected 10"):
        read_idx(short)


def test_digits_split_is_reproducible():
    a, b = digits(seed=3), digits(seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert a[0].shape[1] == 64 and len(a[1]) + len(a[3]) == 1797


def test_source_breaking_scan_tiny_case():
    """Shapes, k = 0 / mu = 0 cells identical, mu* from the targets, bad names rejected."""
    from qftml.nnqft.training import class_targets, source_breaking_scan

    x_tr, y_tr, x_te, y_te, _ = blobs(200, 100, n_classes=3, dim=4, seed=2)
    res = source_breaking_scan(
        x_tr, y_tr, x_te, y_te, ks=[0, 3], mus=[0.0, 0.3], n_seeds=3, width=6, epochs=2
    )
    assert res.loss.shape == res.accuracy.shape == (2, 2, 2, 3)
    for t in range(2):
        assert np.array_equal(res.loss[t, 0, 0], res.loss[t, 0, 1])
        assert np.array_equal(res.loss[t, 0, 0], res.loss[t, 1, 0])
        assert not np.array_equal(res.loss[t, 1, 1], res.loss[t, 0, 0])
    # one-cold targets have mean (C-1)/C, one-hot 1/C: mu* in that ratio
    assert res.mu_star[1] / res.mu_star[0] == pytest.approx(2.0)
    gain, err = res.paired_gain("one-cold")
    assert gain[0, 0] == 0 and err[0, 0] == 0 and not res.helps("one-cold")[0, 0]
    np.testing.assert_array_equal(class_targets([0, 2], 3, "one-cold"), [[0, 1, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="'two-hot'"):
        source_breaking_scan(x_tr, y_tr, x_te, y_te, ks=[0], mus=[0.0], targets=("two-hot",))
    with pytest.raises(ValueError, match="k must be"):
        source_breaking_scan(x_tr, y_tr, x_te, y_te, ks=[4], mus=[0.0])


def test_source_breaking_mean_matching_target_mean_helps_untrained():
    """With no training, a uniform mean mu* on all rows lowers the one-cold MSE (mean matched)."""
    from qftml.nnqft.training import source_breaking_scan

    x_tr, y_tr, x_te, y_te, _ = blobs(300, 300, n_classes=4, dim=6, seed=3)
    res = source_breaking_scan(
        x_tr, y_tr, x_te, y_te, ks=[0, 4], mus=[0.0], n_seeds=4, width=20, epochs=0
    )
    mu = res.mu_star[1]
    res2 = source_breaking_scan(
        x_tr, y_tr, x_te, y_te, ks=[0, 4], mus=[0.0, mu, -mu], n_seeds=4, width=20, epochs=0
    )
    assert res2.helps("one-cold")[1, 1] and not res2.helps("one-cold")[1, 2]


def test_unbroken_reference_and_seed_paired_difference():
    """k = 0 cell, else the mu = 0 column; a scan with neither has no reference."""
    from qftml.nnqft.training import seed_paired, unbroken

    v = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    assert np.array_equal(unbroken(v, [0, 5], [0.1, 0.2, 0.3]), v[:1, :1])
    assert np.array_equal(unbroken(v, [1, 5], [0.0, 0.2, 0.3]), v[:, :1])
    with pytest.raises(ValueError, match="no unbroken reference"):
        unbroken(v, [1, 5], [0.1, 0.2, 0.3])
    mean, se = seed_paired(np.array([[[1.0, 2.0, 3.0, 6.0]]]))
    assert mean[0, 0] == 3.0 and se[0, 0] == pytest.approx(np.std([1, 2, 3, 6], ddof=1) / 2)
