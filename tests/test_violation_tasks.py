"""Tasks 2 and 3 (flux violations): what a 2 × 2 kernel can see, and what makes a count extensive.

The hand-set networks of :func:`qftml.nets.flux_network` are checked against
:func:`qftml.lattice.divergence` on configurations with inserted open worms; the properties the
chapters rely on (1 × 1 networks are blind to site permutations, bias-free networks are
positively homogeneous, sum-pooled EQ networks are extensive under tiling) are checked exactly.
"""

import numpy as np
import pytest
import torch
from flux_loops import plaquette_loops

from qftml import datasets as ds
from qftml import nets
from qftml.datasets import encode, insert_worms
from qftml.lattice import divergence, n_violations


def _valid(n, lattice, seed=0):
    """Plaquette-loop configurations and the generator that made them (for the worms)."""
    rng = np.random.default_rng(seed)
    return (*plaquette_loops(n, lattice, rng), rng)


@pytest.mark.parametrize("lattice", [(8, 8), (5, 12), (16, 16)])
def test_divergence_kernel_is_the_lattice_divergence(lattice):
    rng = np.random.default_rng(1)
    k = rng.integers(-3, 4, size=(6, 2, *lattice)).astype(np.int32)  # any k, valid or not
    l = rng.integers(0, 3, size=k.shape).astype(np.int32)
    conv = nets.from_spec("Conv*(2x2, 4, 1)")
    with torch.no_grad():
        conv.net[0].weight.copy_(nets.divergence_kernel())
        out = conv(encode(k, l))[:, 0].numpy()
    expected = np.roll(divergence(k), (-1, -1), axis=(-2, -1))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("lattice", [(8, 8), (16, 32), (64, 64)])
def test_detector_classifies_every_configuration(lattice):
    k, l, rng = _valid(40, lattice)
    worms = np.arange(40) % 4  # 0 to 3 worms
    ins = insert_worms(k, worms, rng)
    detector = nets.flux_network("detector").double()
    p = detector(encode(ins.k, l).double())[:, 0].detach().numpy()
    violated = ins.n_violations > 0
    assert violated.sum() >= 25 and (~violated).sum() >= 10
    assert (p[~violated] < 1e-8).all()
    assert (p[violated] > 1 - 1e-8).all()


@pytest.mark.parametrize("lattice", [(8, 8), (5, 12), (32, 32)])
def test_worms_never_share_an_end(lattice):
    """W worms give exactly 2 W sites with |div k| = 1 and none with |div k| >= 2."""
    k, _, rng = _valid(300, lattice, seed=5)
    worms = np.arange(300) % 11
    ins = insert_worms(k, worms, rng, length=(1, 3))  # short walks: ends are often close
    absdiv = np.abs(divergence(ins.k))
    assert absdiv.max() == 1
    np.testing.assert_array_equal(absdiv.sum(axis=(-2, -1)), 2 * worms)
    np.testing.assert_array_equal(ins.n_violations, 2 * worms)
    np.testing.assert_array_equal(ins.n_worms, worms)


def test_worm_ends_avoid_sites_that_already_violate():
    """On an input that already violates at two sites, no end lands there and the old
    divergence is kept: div(out) = div(in) + the worms' ends, with |div| <= 1 throughout."""
    k, _, rng = _valid(200, (4, 4), seed=6)
    k[:, 0, 0, 0] += 1  # a source at (0, 0) and a sink at (0, 1)
    before = divergence(k)
    ins = insert_worms(k, 6, rng, length=(1, 2))  # 12 of the 14 free sites
    after = divergence(ins.k)
    assert np.abs(after).max() == 1
    np.testing.assert_array_equal(after[:, 0, :2], before[:, 0, :2])
    np.testing.assert_array_equal(after - before, ds.endpoint_divergence(ins, after.shape))
    with pytest.raises(ValueError, match="8 worms need 16 free sites.*has 14"):
        insert_worms(k, 8, rng)


def test_counter_counts_the_worms():
    """The hand-set bias-free counter outputs sum_x |div k| / 2 = W on every configuration."""
    k, l, rng = _valid(66, (8, 8), seed=2)
    worms = np.arange(66) % 11
    ins = insert_worms(k, worms, rng)
    counter = nets.flux_network("counter", dtype=torch.float64)
    out = counter(encode(ins.k, l).double())[:, 0].detach().numpy()
    np.testing.assert_allclose(out, worms, rtol=0, atol=1e-12)
    assert nets.is_extensive(counter)
    assert not any(name.endswith("bias") for name, _ in counter.named_parameters())


def test_counter_has_zero_loss_on_every_test_combination():
    """4 lattices x 11 worm counts (the three eta and mu only change the valid background,
    which the counter sees as div k = 0): the MSE against the worm count is zero up to
    round-off (double precision)."""
    counter = nets.flux_network("counter", dtype=torch.float64)
    for lattice in [(8, 8), (16, 16), (32, 32), (64, 64)]:
        k, l, rng = _valid(22, lattice, seed=7)
        worms = np.arange(22) % 11
        ins = insert_worms(k, worms, rng)
        out = counter(encode(ins.k, l).double())[:, 0].detach().numpy()
        assert np.mean((out - worms) ** 2) < 1e-24, lattice


def test_flux_network_rejects_bad_input():
    with pytest.raises(ValueError, match="'sorter'"):
        nets.flux_network("sorter")
    with pytest.raises(ValueError, match="sharpness"):
        nets.flux_network("detector", sharpness=0.0)


def test_one_by_one_networks_cannot_see_a_divergence():
    """1 × 1 convolutions and a global pooling give a function of the *set* of site values:
    shuffling the sites leaves the output unchanged but destroys the flux constraint."""
    k, l, _ = _valid(8, (8, 8), seed=3)
    x = encode(k, l).double()
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    shuffled = x.flatten(-2)[..., perm].reshape(x.shape)
    k_shuf = shuffled[:, :2].round().long().numpy()
    assert (n_violations(k_shuf) > 0).all() and (n_violations(k) == 0).all()
    model = nets.from_spec(
        "Conv(1x1, 4, 32) LeakyReLU Conv(1x1, 32, 32) LeakyReLU GlobalMaxPool Linear(32, 1) "
        "Sigmoid",
        seed=0,
    ).double()
    torch.testing.assert_close(model(shuffled), model(x), rtol=1e-12, atol=1e-12)
    detector = nets.flux_network("detector").double()
    assert (detector(shuffled) > 0.5).all() and (detector(x) < 0.5).all()


@pytest.mark.parametrize("entry", [e for e in nets.PUBLISHED if e.task == 3], ids=lambda e: e.name)
def test_task3_winners_are_positively_homogeneous(entry):
    """Bias-free LeakyReLU networks satisfy f(c x) = c f(x) for c > 0: f(0) = 0 exactly."""
    model = entry.build(seed=0).double()
    x = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(model(2.5 * x), 2.5 * model(x), rtol=1e-10, atol=1e-12)
    assert model(torch.zeros(1, 4, 8, 8).double()).abs().max() == 0


_T3_SUM = [e for e in nets.PUBLISHED if e.task == 3 and e.family != "FL"]


@pytest.mark.parametrize("entry", _T3_SUM, ids=lambda e: e.name)
def test_sum_pooled_networks_scale_with_tiling(entry):
    """Tiling a configuration 2 × 2 times (4 times the volume and the violations) multiplies
    the output of every bias-free sum-pooled winner by exactly 4 (homogeneity of the head)."""
    k, l, rng = _valid(6, (8, 8), seed=4)
    ins = insert_worms(k, np.arange(6) % 4, rng)
    x = encode(ins.k, l).double()
    assert (n_violations(np.tile(ins.k, (1, 1, 2, 2))) == 4 * ins.n_violations).all()
    model = entry.build(seed=0).double()
    torch.testing.assert_close(model(x.repeat(1, 1, 2, 2)), 4 * model(x), rtol=1e-10, atol=1e-10)


def _short_worm(lattice, t, x, nu, sign):
    """k = 0 except one link: a source and a sink next to each other (l = 0)."""
    k = np.zeros((1, 2, *lattice), dtype=np.int32)
    k[0, nu, t, x] = sign
    return encode(k, np.zeros_like(k)).double()


@pytest.mark.parametrize("entry", _T3_SUM, ids=lambda e: e.name)
def test_separated_violations_add_up_only_with_a_linear_head(entry):
    """On an empty background, violations farther apart than the receptive field contribute
    independently: f(A + B) = f(A) + f(B) for the networks with a linear head after the sum
    (:func:`qftml.nets.is_extensive`), but not through a nonlinear head."""
    lattice = (16, 32)
    a = _short_worm(lattice, 4, 4, 0, 1)
    pairs = [_short_worm(lattice, 10, 20, nu, s) for nu in (0, 1) for s in (1, -1)]
    model = entry.build(seed=3).double()
    with torch.no_grad():
        gaps = [(model(a + b) - model(a) - model(b)).abs().item() for b in pairs]
        scale = model(a).abs().item() + 1e-30
    if nets.is_extensive(model):
        assert max(gaps) < 1e-12 * max(1.0, scale)
    else:
        assert max(gaps) > 1e-6 * scale


def test_is_extensive():
    assert nets.is_extensive("Conv*(2x2, 4, 2) LeakyReLU GlobalSumPool Linear*(2, 1)")
    assert nets.is_extensive("Conv*(3x3, 4, 1) LeakyReLU GlobalSumPool")
    assert not nets.is_extensive("Conv(3x3, 4, 1) LeakyReLU GlobalSumPool")  # conv bias
    assert not nets.is_extensive("Conv*(3x3, 4, 1) Sigmoid GlobalSumPool")  # sigmoid(0) = 1/2
    assert not nets.is_extensive("Conv(2x2, 4, 2) LeakyReLU GlobalSumPool Linear(2, 1)")
    assert not nets.is_extensive("Conv(2x2, 4, 2) GlobalSumPool Linear*(2, 2) LeakyReLU")
    assert not nets.is_extensive("Conv(2x2, 4, 2) LeakyReLU GlobalAvgPool Linear*(2, 1)")
    assert [e.rank for e in nets.PUBLISHED if e.task == 3 and nets.is_extensive(e.spec)] == [
        1, 2, 3, 2  # EQ 1-3 and ST 2
    ]  # fmt: skip


def test_is_extensive_matches_additivity_on_a_constructed_input():
    """A conv bias before the sum adds a constant per site: f(A + B) - f(A) - f(B) = -f(0) != 0,
    and is_extensive says so; the same network without the bias adds up exactly."""
    lattice = (16, 32)
    a = _short_worm(lattice, 4, 4, 0, 1)
    b = _short_worm(lattice, 10, 20, 1, -1)
    for spec in ("Conv(2x2, 4, 3) LeakyReLU GlobalSumPool Linear*(3, 1)",
                 "Conv*(2x2, 4, 3) LeakyReLU GlobalSumPool Linear*(3, 1)"):  # fmt: skip
        model = nets.from_spec(spec, seed=1).double()
        if model.net[0].bias is not None:
            with torch.no_grad():
                model.net[0].bias.fill_(0.3)
        with torch.no_grad():
            gap = (model(a + b) - model(a) - model(b)).abs().item()
        assert nets.is_extensive(spec) == (gap < 1e-12), (spec, gap)
