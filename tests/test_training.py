"""The shared training loop: learning, determinism, early stopping, evaluation, save/load."""

import math
import subprocess
import sys

import pytest
import torch

from qftml import training
from qftml.nets import from_spec

SPEC = "Conv(1x1, 4, 16) LeakyReLU Conv(1x1, 16, 16) LeakyReLU GlobalAvgPool Linear(16, 2)"


def _synthetic(n, lattice=(6, 6), seed=0):
    """Integer fields and two translation-invariant targets: <x_0^2> and <x_1 x_2> over sites."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, *lattice), generator=g).float()
    y = torch.stack([(X[:, 0] ** 2).mean(dim=(-2, -1)), (X[:, 1] * X[:, 2]).mean(dim=(-2, -1))], 1)
    return X, y


@pytest.fixture(scope="module")
def data():
    return _synthetic(384, seed=1), _synthetic(128, seed=2)


def _fit(data, seed=0, model_seed=0, **kw):
    model = from_spec(SPEC, seed=model_seed)
    kw = {"max_epochs": 6, "patience": 3, "lr": 3e-3, "batch_size": 32} | kw
    hist = training.train(model, data[0], data[1], seed=seed, **kw)
    return model, hist


def test_short_training_lowers_the_loss(data):
    model = from_spec(SPEC, seed=0)
    before = training.evaluate(model, data[1])["loss"]
    model, hist = _fit(data, max_epochs=25, patience=5)
    after = training.evaluate(model, data[1])["loss"]
    assert after < 0.1 * before
    assert len(hist.epoch) == len(hist.train_loss) == len(hist.val_loss)
    assert hist.samples_per_second > 0 and hist.device == "cpu"


def test_same_seed_same_weights_and_history(data):
    m1, h1 = _fit(data, seed=5, model_seed=3)
    m2, h2 = _fit(data, seed=5, model_seed=3)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    _, h3 = _fit(data, seed=6, model_seed=3)  # another mini-batch order
    assert h3.train_loss != h1.train_loss


def test_best_weights_are_restored(data):
    model, hist = _fit(data, max_epochs=8, lr=0.05)  # a large step: the loss jumps around
    assert hist.best_val_loss == min(hist.val_loss)
    assert hist.val_loss[hist.best_epoch - 1] == hist.best_val_loss
    again = training.evaluate(model, data[1])["loss"]
    assert again == pytest.approx(hist.best_val_loss, rel=1e-5)


def test_early_stopping_and_callback(data):
    # nothing improves by more than min_delta after the first epoch -> stop after `patience`
    _, hist = _fit(data, max_epochs=20, patience=2, min_delta=1e9)
    assert hist.stopped == "early stopping" and hist.epoch == [1, 2, 3] and hist.best_epoch == 1
    seen = []
    _, hist = _fit(data, max_epochs=20, on_epoch=lambda e, t, v: seen.append(e) or e == 2)
    assert hist.stopped == "callback" and seen == [1, 2]
    _, hist = _fit(data, max_epochs=2, patience=5)
    assert hist.stopped == "max_epochs"


def test_dataset_input_equals_tensor_input(data):
    ds = torch.utils.data.TensorDataset(*data[0])
    _, h1 = _fit(data, max_epochs=2)
    _, h2 = _fit((ds, data[1]), max_epochs=2)
    assert h1.val_loss == h2.val_loss


def test_evaluate_is_batched_and_exact():
    """A hand-set counting model: Conv*(1x1) with weight 1 + GlobalSumPool counts the ones."""
    model = from_spec("Conv*(1x1, 1, 1) GlobalSumPool")
    with torch.no_grad():
        model.net[0].weight.fill_(1.0)
    g = torch.Generator().manual_seed(0)
    X = (torch.rand(101, 1, 5, 7, generator=g) < 0.3).float()
    count = X.sum(dim=(1, 2, 3))[:, None]
    for bs in (1, 7, 4096):
        out = training.evaluate(model, (X, count), loss="count", batch_size=bs)
        assert out["loss"] == 0 and out["exact"] == 1 and out["n"] == 101
    out = training.evaluate(model, (X, count + 1), loss="count", batch_size=13)
    assert out["loss"] == pytest.approx(1.0) and out["exact"] == 0
    mse = training.evaluate(model, (X, 2 * count), loss="mse", batch_size=10)["loss"]
    assert mse == pytest.approx(float((count**2).mean()), rel=1e-6)


def test_bce_accuracy():
    model = from_spec("Conv*(1x1, 1, 1) GlobalMaxPool Sigmoid")
    with torch.no_grad():
        model.net[0].weight.fill_(50.0)
    X = torch.zeros(4, 1, 3, 3)
    X[:2, 0, 1, 1] = 1.0  # a "violation" in the first two
    y = torch.tensor([[1.0], [1.0], [0.0], [1.0]])
    out = training.evaluate(model, (X, y), loss="bce")
    assert out["accuracy"] == 0.75
    # the first two: p = 1 - e^{-50} (loss ~0); the last two: p = 1/2, loss log 2 each
    assert out["loss"] == pytest.approx(math.log(2) / 2, rel=1e-4)


def test_save_and_load(tmp_path, data):
    model, hist = _fit(data, max_epochs=2)
    metrics = training.evaluate(model, data[1])
    path = training.save_model(tmp_path / "m.pt", model, seed=0, metrics=metrics, history=hist)
    loaded = training.load_model(path)
    assert loaded.spec == model.spec and loaded.meta["seed"] == 0
    assert loaded.meta["metrics"]["loss"] == metrics["loss"]
    assert loaded.meta["history"]["val_loss"] == hist.val_loss
    X = data[1][0][:5]
    assert torch.equal(loaded(X), model(X))
    fl = from_spec("Conv(1x1, 4, 2) AvgPool(2x2, 2) Flatten Linear(18, 2)", (6, 6), seed=0)
    assert training.load_model(training.save_model(tmp_path / "fl.pt", fl)).lattice == (6, 6)


def test_bad_input_raises(data):
    model = from_spec(SPEC)
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        training.train(model, *data, loss="l1")
    with pytest.raises(ValueError, match="batch_size must be >= 1; got 0"):
        training.train(model, *data, batch_size=0)
    X, y = data[0]
    with pytest.raises(ValueError, match=r"output has shape \(N, 2\) but the targets .* \(N, 1\)"):
        training.train(model, (X, y[:, 0]), data[1])
    with pytest.raises(ValueError, match=r"y must have shape \(N, n_out\) with N = 384"):
        training.as_tensors((X, y[:10]))


def test_device_choice(monkeypatch):
    assert training.pick_device("cpu").type == "cpu"
    monkeypatch.setenv("QFTML_DEVICE", "cpu")
    assert training.pick_device().type == "cpu"
    monkeypatch.delenv("QFTML_DEVICE")
    # the automatic choice, on any machine: a GPU when torch reports one, else the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training.pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert training.pick_device().type == "cpu"


def test_training_vocabulary_does_not_import_optuna():
    """Task and Budget live in training: training a grid imports no optuna; search re-exports."""
    code = (
        "import sys; import qftml.experiments, qftml.results, qftml.training; "
        "print('optuna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
    from qftml import search, training

    assert search.Task is training.Task and search.Budget is training.Budget


def test_precision_auto_takes_bf16_only_where_it_is_native():
    amx = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n"
    avx512 = "flags\t\t: fpu avx2 avx512f avx512_bf16\n"
    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
    assert training.native_bf16(amx) and training.native_bf16(avx512)
    assert not training.native_bf16(avx2) and not training.native_bf16("")
    auto = {"max_epochs": 3, "precision": "auto"}
    assert training.resolve_precision(auto, amx) == {"max_epochs": 3, "precision": "bf16"}
    assert training.resolve_precision(auto, avx2)["precision"] == "fp32"
    assert training.resolve_precision({"precision": "fp32"}, amx) == {"precision": "fp32"}
    assert auto["precision"] == "auto"  # the profile's section is not changed
    with pytest.raises(ValueError, match="unknown precision 'auto'"):
        training.Budget.from_params(auto)  # unresolved: refused by name
