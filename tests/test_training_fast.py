"""The fast path of the training loop and the source's recipe options (issue 14, 13).

The periodic convolution without the pad copy must change no arithmetic: bitwise the same
outputs and gradients as ``nn.Conv2d(padding_mode="circular")``, and so the same trained
weights. The bf16 path changes the arithmetic; its effect on test losses is measured in
``benchmarks/bench_training.py``, here only that it trains and returns a float32 model.
"""

import copy

import pytest
import torch
from torch import nn

from qftml import training
from qftml.nets import PeriodicConv2d, from_spec, published

SPEC = "Conv(1x1, 4, 8) LeakyReLU Conv(2x2, 8, 8) LeakyReLU Conv(3x3, 8, 4) LeakyReLU " \
    "GlobalAvgPool Linear(4, 2)"  # fmt: skip


def _data(n, seed, lattice=(6, 4)):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, *lattice), generator=g).float()
    y = torch.stack([(X[:, 0] ** 2).mean(dim=(-2, -1)), (X[:, 1] * X[:, 2]).mean(dim=(-2, -1))], 1)
    return X, y


def _reference(model):
    """A copy of ``model`` whose convolutions are PyTorch's own circular ``nn.Conv2d``."""
    ref = copy.deepcopy(model)
    for i, m in enumerate(ref.net):
        if isinstance(m, PeriodicConv2d):
            c = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding="same",
                          padding_mode="circular", bias=m.bias is not None)  # fmt: skip
            c.load_state_dict(m.state_dict())
            ref.net[i] = c
    return ref


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_periodic_conv_is_bitwise_torch_circular_conv(k):
    torch.manual_seed(k)
    fast = PeriodicConv2d(3, 5, k)
    ref = nn.Conv2d(3, 5, k, padding="same", padding_mode="circular")
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 7, 5, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    y, y2 = fast(x), ref(x2)
    g = torch.randn_like(y)
    y.backward(g)
    y2.backward(g)
    assert y.shape == x.shape[:1] + (5,) + x.shape[2:]
    assert torch.equal(y, y2)
    assert torch.equal(x.grad, x2.grad)
    assert torch.equal(fast.weight.grad, ref.weight.grad)
    assert torch.equal(fast.bias.grad, ref.bias.grad)


def test_periodic_conv_pads_periodically():
    """A 2 × 2 kernel reads (t, x), (t+1, x), (t, x+1), (t+1, x+1) on the torus."""
    conv = PeriodicConv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0  # picks x(t+1, x+1)
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    assert torch.equal(conv(x), torch.roll(x, (-1, -1), dims=(-2, -1)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_path_without_bf16_trains_identically_to_the_reference(channels_last):
    train, val = _data(96, 1), _data(32, 2)
    fast = from_spec(SPEC, seed=3)
    ref = _reference(fast)
    kw = dict(max_epochs=3, batch_size=16, lr=3e-3, seed=4, precision="fp32")
    h_ref = training.train(ref, train, val, channels_last=False, **kw)
    h_fast = training.train(fast, train, val, channels_last=channels_last, **kw)
    pairs = list(zip(fast.state_dict().values(), ref.state_dict().values(), strict=True))
    if not channels_last:  # the default fp32 path: bitwise the reference
        assert h_fast.train_loss == h_ref.train_loss and h_fast.val_loss == h_ref.val_loss
        assert all(torch.equal(a, b) for a, b in pairs)
    else:  # other oneDNN kernels: the same arithmetic up to float32 rounding
        assert h_fast.val_loss == pytest.approx(h_ref.val_loss, rel=1e-5)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in pairs)
    assert all(p.is_contiguous() for p in fast.parameters())


def test_min_epochs_delays_early_stopping():
    train, val = _data(64, 1), _data(32, 2)
    kw = dict(max_epochs=12, patience=1, lr=0.05, batch_size=16, seed=0)
    h0 = training.train(from_spec(SPEC, seed=0), train, val, **kw)
    assert h0.stopped == "early stopping" and len(h0.epoch) < 8  # stops early without it
    h = training.train(from_spec(SPEC, seed=0), train, val, min_epochs=8, **kw)
    assert len(h.epoch) >= 8
    assert h.stopped in ("early stopping", "max_epochs")
    assert h.best_val_loss == min(h.val_loss)  # best weights still tracked
    with pytest.raises(ValueError, match="min_epochs"):
        training.train(from_spec(SPEC, seed=0), train, val, min_epochs=-1)


def test_source_recipe_uses_adamw_with_amsgrad(monkeypatch):
    made = []
    real = training._optimizer

    def spy(*args):
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(training, "_optimizer", spy)
    recipe = training.SOURCE_RECIPE | {"max_epochs": 2, "min_epochs": 2}
    h = training.train(from_spec(SPEC, seed=0), _data(32, 1), _data(16, 2), batch_size=16,
                       **recipe)  # fmt: skip
    (opt,) = made
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["amsgrad"] is True and opt.param_groups[0]["lr"] == 1e-2
    assert all("max_exp_avg_sq" in s for s in opt.state.values())  # amsgrad's running max
    assert len(h.epoch) == 2
    assert training.source_batch_size(499) == 50 and training.source_batch_size(500) == 100
    with pytest.raises(ValueError, match="optimizer"):
        training.train(from_spec(SPEC, seed=0), _data(32, 1), _data(16, 2), optimizer="sgd")


def test_bf16_path_trains_a_float32_model():
    train, val = _data(64, 1, lattice=(60, 4)), _data(32, 2, lattice=(60, 4))
    model = published(1, "EQ").build(seed=0)
    before = training.evaluate(model, val)["loss"]
    h = training.train(model, train, val, precision="bf16", max_epochs=4, lr=3e-3, batch_size=16)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert training.evaluate(model, val)["loss"] < before
    with pytest.raises(ValueError, match="precision"):
        training.train(model, train, val, precision="fp8")
    assert h.val_loss[-1] == h.val_loss[-1]  # finite, not NaN
