"""Networks from a spec: parsing, parameter counts, lattice checks, translation symmetry."""

import pytest
import torch

from qftml import nets
from qftml.nets import PUBLISHED, equivariance_error, from_spec, parse_spec, published

IDS = [e.name for e in PUBLISHED]


def _configs(n, lattice, seed=0):
    """Integer-valued fields like the dual k, l variables (float64 for tight tolerances)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, (n, 4, *lattice), generator=g).double()


# ---------------------------------------------------------------- published architectures


def test_fifteen_published_architectures():
    assert len(PUBLISHED) == 15
    count = {}
    for e in PUBLISHED:
        count[(e.task, e.family)] = count.get((e.task, e.family), 0) + 1
    assert count == {(t, f): (3 if t == 3 else 1) for t in (1, 2, 3) for f in ("EQ", "ST", "FL")}


@pytest.mark.parametrize("entry", PUBLISHED, ids=IDS)
def test_published_parameter_count(entry):
    model = entry.build(seed=0)
    assert model.n_params == entry.stated_params
    assert nets.spec_params(entry.spec) == entry.stated_params  # layer formulas agree
    assert model.family == entry.family


@pytest.mark.parametrize("entry", PUBLISHED, ids=IDS)
def test_published_readings_are_documented(entry):
    """A row is changed only where its printed form misses the stated count, and says why."""
    if entry.spec == nets.format_spec(parse_spec(entry.transcribed)):
        assert entry.reading == ""
    else:
        assert entry.reading, f"{entry.name}: changed reading without a note"
        assert nets.spec_params(entry.transcribed) != entry.stated_params


def test_known_transcription_fixes():
    assert nets.spec_params(published(2, "EQ").transcribed) == 2688  # star misplaced
    for e in PUBLISHED:
        if e.task == 3:
            assert all(not la.bias for la in parse_spec(e.spec) if la.kind in ("Conv", "Linear"))
    with pytest.raises(ValueError, match=r"expects 8 inputs, but Flatten gives 32"):
        from_spec(published(3, "FL", 1).transcribed, (8, 8))


# ---------------------------------------------------------------- parsing and round trip


def test_spec_syntax_variants():
    a = from_spec("Conv(2x2, 4, 32) LeakyReLU GlobalMaxPool Linear*(32, 1) Sigmoid")
    b = from_spec("conv( 2 × 2 ,4,32)\n  leakyrelu\n\tGlobalMaxPool Linear *( 32 , 1 )   Sigmoid ")
    c = from_spec("Conv( $2 \\times 2$ , 4, 32) LeakyReLU GlobalMaxPool Linear*(32, 1) Sigmoid")
    assert a.spec == b.spec == c.spec
    assert a.spec == "Conv(2x2, 4, 32) LeakyReLU GlobalMaxPool Linear*(32, 1) Sigmoid"
    assert from_spec("Conv(1x1, 4, 2) Flattening Linear(32, 1)", (4, 4)).spec.count("Flatten ") == 1


@pytest.mark.parametrize("entry", PUBLISHED, ids=IDS)
def test_spec_round_trip(entry):
    model = entry.build(seed=3)
    again = from_spec(model.spec, model.lattice, seed=3)
    assert again.spec == model.spec == entry.spec
    assert model.spec in repr(model)
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("Conv(2x2, 4, 8) Foo", "unknown layer 'Foo'"),
        ("Conv(2x3, 4, 8)", "only square kernels"),
        ("Conv(2x2, 4)", "Conv takes 3 arguments, got 2"),
        ("LeakyReLU*", "meaningless for LeakyReLU"),
        ("Conv(2x2, 4, 0) GlobalSumPool", "must be a positive integer; got 0"),
        ("Conv(2x2, 4, 8) Conv(1x1, 4, 8)", "expects 4 input channels, receives 8"),
        ("Conv(2x2, 4, 8) GlobalSumPool Linear(4, 1)", "expects 4 inputs, receives 8"),
        ("Conv(2x2, 4, 8) Linear(8, 1)", "needs a global pooling or Flatten"),
        ("Conv(2x2, 4, 8) GlobalSumPool Conv(1x1, 8, 8)", "already flattened"),
        ("Conv(1x1, 4, 8) Flatten Linear(8, 1)", "needs the lattice"),
        ("", "empty spec"),
        ("Conv(2x2, 4, 8) )", "cannot parse spec"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_spec(spec)


def test_family_classification():
    assert nets.spec_family("Conv(3x3, 4, 4) AvgPool(3x3, 1) GlobalAvgPool") == "EQ"
    assert nets.spec_family("Conv(3x3, 4, 4) MaxPool(2x2, 2) GlobalAvgPool") == "ST"
    assert nets.spec_family("Conv(3x3, 4, 4) Flatten Linear(64, 1)") == "FL"
    assert (
        from_spec("Conv(1x1, 4, 4) AvgPool(2x2, 2) MaxPool(3x3, 3) GlobalSumPool").total_stride == 6
    )


def test_seed_controls_initialisation_without_global_state():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    m1 = published(1, "EQ").build(seed=7)
    after = torch.rand(1)
    m2 = published(1, "EQ").build(seed=7)
    m3 = published(1, "EQ").build(seed=8)
    assert torch.equal(before, after)  # from_spec(seed=...) leaves the global RNG alone
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    assert not torch.equal(next(m1.parameters()), next(m3.parameters()))


# ---------------------------------------------------------------- lattice sizes


def test_fl_model_rejects_other_lattice():
    model = published(1, "FL").build()
    assert model(torch.zeros(2, 4, 60, 4)).shape == (2, 2)
    msg = (
        r"built for the lattice \(N_t, N_x\) = \(60, 4\) .* cannot run on \(N_t, N_x\) = \(100, 5\)"
    )
    with pytest.raises(ValueError, match=msg):
        model(torch.zeros(2, 4, 100, 5))


def test_eq_and_st_models_run_on_other_lattices():
    for family in ("EQ", "ST"):
        model = published(1, family).build()
        for lattice in [(60, 4), (100, 5), (200, 10), (8, 8), (2, 2)]:
            assert model(torch.zeros(3, 4, *lattice)).shape == (3, 2)


def test_st_model_says_when_a_lattice_is_too_small():
    model = published(1, "ST").build()
    with pytest.raises(
        ValueError, match=r"AvgPool\(2x2, 2\).* needs at least 2 sites .*= \(1, 5\)"
    ):
        model(torch.zeros(1, 4, 1, 5))


def test_input_shape_is_checked():
    model = published(2, "EQ").build()
    with pytest.raises(ValueError, match=r"\(batch, 4, N_t, N_x\); got \(2, 3, 8, 8\)"):
        model(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got \(4, 8, 8\)"):
        model(torch.zeros(4, 8, 8))


def test_even_kernel_conv_is_periodic_same_padding():
    """A 2x2 periodic convolution equals the explicit sum over x, x+t_hat, x+x_hat, x+both."""
    conv = from_spec("Conv*(2x2, 1, 1)", seed=0).double().net[0]
    x = _configs(2, (5, 6))[:, :1]
    w = conv.weight[0, 0]
    expect = sum(
        w[a, b] * torch.roll(x, shifts=(-a, -b), dims=(-2, -1)) for a in range(2) for b in range(2)
    )
    assert torch.allclose(conv(x), expect, atol=1e-12)


# ---------------------------------------------------------------- translation symmetry


@pytest.mark.parametrize("entry", [e for e in PUBLISHED if e.family == "EQ"], ids=lambda e: e.name)
def test_eq_models_invariant_under_every_translation(entry):
    model = entry.build(seed=1).double()
    for lattice in {entry.lattice, (6, 10)}:
        x = _configs(4, lattice)
        err = equivariance_error(model, x)
        assert len(err) == lattice[0] * lattice[1]
        assert max(err.values()) < 1e-12


@pytest.mark.parametrize("entry", [e for e in PUBLISHED if e.family == "ST"], ids=lambda e: e.name)
def test_st_models_invariant_only_under_multiples_of_the_stride(entry):
    model = entry.build(seed=1).double()
    s = model.total_stride
    assert s == 2
    x = _configs(4, (8, 8))
    err = equivariance_error(model, x)
    on = [v for (a, b), v in err.items() if a % s == 0 and b % s == 0]
    off = [v for (a, b), v in err.items() if a % s or b % s]
    assert max(on) < 1e-12
    assert min(off) > 1e-6  # every other translation changes the output
    # the seed's 100 × 5 lattice: 5 is not a multiple of 2, the last column is dropped and
    # even shifts by the stride along x break the invariance
    err5 = equivariance_error(model, _configs(2, (10, 5)), shifts=[(2, 0), (0, 2)])
    assert err5[(2, 0)] < 1e-12 and err5[(0, 2)] > 1e-6


@pytest.mark.parametrize("entry", [e for e in PUBLISHED if e.family == "FL"], ids=lambda e: e.name)
def test_fl_models_not_invariant(entry):
    model = entry.build(seed=1).double()
    err = equivariance_error(model, _configs(4, entry.lattice))
    assert err[(0, 0)] == 0
    assert sum(v > 1e-6 for v in err.values()) >= len(err) - 1 - 3  # nearly every shift


def test_equivariance_error_of_a_field_output():
    """Fully convolutional: f(T x) = T f(x) for periodic convs; a strided pool breaks it."""
    x = _configs(2, (6, 6))
    eq = from_spec("Conv(3x3, 4, 3) LeakyReLU Conv(2x2, 3, 2)", seed=0).double()
    assert max(equivariance_error(eq, x).values()) < 1e-12
    st = from_spec("Conv(3x3, 4, 3) AvgPool(2x2, 2)", seed=0).double()
    assert max(equivariance_error(st, x, shifts=[(1, 0)]).values()) > 1e-6
