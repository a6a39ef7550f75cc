"""One seeded training loop for every model, evaluation, and models saved with their spec.

Every comparison in the book trains with this loop, so EQ, ST and FL results differ only in
the architecture (cf. d2l's shared trainer). The loop is Adam :cite:p:`Kingma:2014adam` on
mini-batches, with early stopping on a validation split and the best weights restored, as in
:cite:p:`Bulusu:2021njs`. Losses by task:

- ``"mse"``: mean squared error, task 1 (regression of ``n`` and ``|phi|^2``);
- ``"bce"``: binary cross-entropy on a sigmoid output, task 2 (is there a flux violation?);
- ``"count"``: mean squared error of the predicted number of flux violations, task 3; its
  evaluation also reports the fraction of configurations whose rounded prediction is exact.

Data are ``(X, y)`` pairs of arrays/tensors, ``X`` of shape ``(N, C, N_t, N_x)`` and ``y`` of
shape ``(N, n_out)`` (or ``(N,)``), or any ``torch.utils.data.Dataset`` of such pairs; they are
held in memory as float32 tensors (the datasets of the book are a few MB).

Determinism: the weights are initialised by :func:`qftml.nets.from_spec` from its ``seed``;
the mini-batch order comes from a ``torch.Generator`` seeded with the ``seed`` of
:func:`train`, and deterministic algorithms are switched on for the loop. Same seeds, same
weights and history, on the same device and thread count.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .nets import SpecNet, from_spec
from .progress import progress

__all__ = [
    "Budget",
    "LOSSES",
    "Task",
    "History",
    "pick_device",
    "native_bf16",
    "resolve_precision",
    "as_tensors",
    "train",
    "SOURCE_RECIPE",
    "source_batch_size",
    "evaluate",
    "predict",
    "save_model",
    "load_model",
]

#: Loss name -> factory of the (mean-reduced) loss module.
LOSSES: dict[str, Callable[[], nn.Module]] = {
    "mse": nn.MSELoss,
    "bce": nn.BCELoss,
    "count": nn.MSELoss,
}


def _loss_fn(loss: str) -> nn.Module:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[loss]()


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``device`` if given, else ``$QFTML_DEVICE``, else a GPU if one
    is present, else the CPU."""
    device = device or os.environ.get("QFTML_DEVICE")
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    return torch.device(device)


def _real(name: str, a) -> torch.Tensor:
    """``a`` as a tensor of real numbers (any integer or float dtype; cast later to float32).

    Complex values (whose imaginary part a cast would drop) and non-numbers are refused."""
    try:
        t = a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be an array of real numbers; {exc}") from None
    if t.is_complex():
        raise TypeError(f"{name} must be real; got complex dtype {t.dtype}")
    return t


def as_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` as float32 CPU tensors, ``y`` with shape ``(N, n_out)``.

    Accepts a pair of arrays/tensors or a ``Dataset`` whose items are ``(x, y)`` pairs.
    """
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, tuple | list):
        if len(data) == 0:
            raise ValueError("empty dataset")
        items = [data[i] for i in range(len(data))]
        X = torch.stack([torch.as_tensor(x) for x, _ in items])
        y = torch.stack([torch.as_tensor(t).reshape(-1) for _, t in items])
    elif isinstance(data, tuple | list) and len(data) == 2:
        X, y = _real("X", data[0]), _real("y", data[1])
    else:
        raise TypeError(
            f"data must be an (X, y) pair or a torch Dataset; got {type(data).__name__}"
        )
    X, y = X.float(), y.float()
    if y.dim() == 1:
        y = y[:, None]
    if X.dim() != 4:
        raise ValueError(f"X must have shape (N, C, N_t, N_x); got {tuple(X.shape)}")
    if y.dim() != 2 or len(y) != len(X):
        raise ValueError(f"y must have shape (N, n_out) with N = {len(X)}; got {tuple(y.shape)}")
    return X.contiguous(), y.contiguous()


@contextlib.contextmanager
def _deterministic(device: torch.device, on: bool = True):
    """Switch on deterministic algorithms for the duration (restoring the previous mode)."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_prev = torch.is_deterministic_algorithms_warn_only_enabled()
    if on:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_prev)


@dataclass
class History:
    """Per-epoch record of a training run (``epoch`` counts from 1)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    stopped: str = ""  # "early stopping", "max_epochs", "callback" or "time budget"
    seconds: float = 0.0
    samples_per_second: float = 0.0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


def _check_output(model, X, y, loss):
    with torch.no_grad():
        out = model(X[:1])
    if out.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"model output has shape (N, {', '.join(map(str, out.shape[1:]))}) but the "
            f"targets have shape (N, {', '.join(map(str, y.shape[1:]))})"
        )
    if loss == "bce" and ((y < 0) | (y > 1)).any():
        raise ValueError("the bce loss needs targets in [0, 1]")


#: The task-1 training recipe of the source group's public regression code
#: :cite:p:`Ein:scalarmlreflection`: AdamW with amsgrad, lr 1e-2 without schedule and without
#: weight decay, early stopping with patience 25 after at least 100 and at most 1000 epochs,
#: best weights restored; batch 50 below 500 training samples, else 100
#: (:func:`source_batch_size`). These are the defaults of :class:`~qftml.training.Budget`.
SOURCE_RECIPE: dict = dict(
    optimizer="adamw",
    amsgrad=True,
    lr=1e-2,
    weight_decay=0.0,
    patience=25,
    min_epochs=100,
    max_epochs=1000,
)

_PRECISIONS = ("fp32", "bf16")


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16 in the flags of
    ``/proc/cpuinfo``; ``cpuinfo`` replaces its text). Elsewhere bf16 autocast is emulated
    and slower than float32 (``benchmarks/bench_training.py`` measures both)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_precision(params: Mapping, cpuinfo: str | None = None) -> dict:
    """A budget's parameters with ``precision: auto`` replaced by what pays on this CPU:
    ``"bf16"`` where it is native (:func:`native_bf16`), else ``"fp32"``. The resolved value
    enters the instances' keys, so each machine caches what it computed."""
    params = dict(params)
    if params.get("precision") == "auto":
        params["precision"] = "bf16" if native_bf16(cpuinfo) else "fp32"
    return params


@dataclass(frozen=True)
class Task:
    """What the networks are for: input channels, outputs, training lattice and loss, and
    the size of the search space (``max_conv`` convolutions, ``max_linear`` dense layers)."""

    n_out: int = 1
    lattice: tuple[int, int] = (8, 8)
    loss: str = "mse"
    n_in: int = 4
    max_conv: int = 5
    max_linear: int = 3


#: The default task (frozen); :mod:`qftml.search` and :mod:`qftml.experiments` use it.
DEFAULT_TASK = Task()


def source_batch_size(n_train: int) -> int:
    """The source's batch size: 50 below 500 training samples, else 100."""
    return 50 if int(n_train) < 500 else 100


@dataclass(frozen=True)
class Budget:
    """How one network is trained: the optimizer, its schedule of epochs and early stopping.

    The defaults are the source group's recipe (:data:`SOURCE_RECIPE`);
    ``batch_size="source"`` means :func:`source_batch_size` of the training-set size.
    Every field enters the content key of a trained instance.
    """

    max_epochs: int = 1000
    patience: int = 25
    batch_size: int | str = "source"
    lr: float = 1e-2
    optimizer: str = "adamw"
    amsgrad: bool = True
    weight_decay: float = 0.0
    min_epochs: int = 100
    precision: str = "fp32"
    max_seconds: float | None = None

    def __post_init__(self):
        if self.batch_size != "source" and not (
            isinstance(self.batch_size, int) and self.batch_size >= 1
        ):
            raise ValueError(
                f"batch_size must be an integer >= 1 or 'source'; got {self.batch_size!r}"
            )
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose 'adam' or 'adamw'")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {_PRECISIONS}")
        for name in ("max_epochs", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if int(self.min_epochs) < 0:
            raise ValueError(f"min_epochs must be >= 0; got {self.min_epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive; got {self.lr}")

    @classmethod
    def from_params(cls, params: dict) -> Budget:
        """A budget from a profile section (a dict); an unknown key is an error naming it."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown budget key(s) {unknown}; known: {sorted(known)}")
        return cls(**params)

    def train_kwargs(self, n_train: int | None = None) -> dict:
        """The keyword arguments of :func:`train` this budget fixes (for ``n_train`` samples)."""
        kw = asdict(self)
        if kw["batch_size"] == "source":
            if n_train is None:
                raise ValueError("batch_size 'source' needs the training-set size n_train")
            kw["batch_size"] = source_batch_size(n_train)
        return kw

    def key(self) -> dict:
        """The fields as a dict in a fixed order (the budget's part of a content key)."""
        return {k: getattr(self, k) for k in sorted(self.__dataclass_fields__)}


def _optimizer(name: str, params, lr: float, weight_decay: float, amsgrad: bool):
    """Adam or AdamW (decoupled weight decay), optionally with amsgrad."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, amsgrad=amsgrad)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, amsgrad=amsgrad)
    raise ValueError(f"unknown optimizer {name!r}; choose 'adam' or 'adamw'")


def _memory_format(channels_last: bool | None, precision: str) -> torch.memory_format:
    """Channels-last by default only with bf16: it pays there (oneDNN's bf16 kernels prefer
    it) and it changes the float32 rounding (other kernels), so fp32 stays bitwise exact."""
    if channels_last is None:
        channels_last = precision != "fp32"
    return torch.channels_last if channels_last else torch.contiguous_format


def _autocast(device: torch.device, precision: str):
    """A factory of the autocast context for ``precision`` (a no-op for float32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def _val_loss(model, Xv, yv, loss_fn, batch_size, amp) -> float:
    """Mean validation loss in large batches, under the training precision."""
    model.eval()
    if len(Xv) <= batch_size:  # one batch: exactly the mean loss, as evaluate() gives it
        with torch.no_grad(), amp():
            return float(loss_fn(model(Xv).float(), yv))
    total = torch.zeros((), dtype=torch.float32 if Xv.device.type == "mps" else torch.float64,
                        device=Xv.device)  # fmt: skip
    with torch.no_grad():
        for i in range(0, len(Xv), batch_size):
            with amp():
                out = model(Xv[i : i + batch_size])
            total += loss_fn(out.float(), yv[i : i + batch_size]) * len(out)
    return float(total) / len(Xv)


def _check_finite(name: str, X: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse NaN/inf in inputs or targets: they make every loss NaN and nothing is learned."""
    for part, t in (("inputs X", X), ("targets y", y)):
        bad = ~torch.isfinite(t)
        if bad.any():
            rows = torch.nonzero(bad.reshape(len(t), -1).any(dim=1)).flatten()
            raise ValueError(
                f"{name}: {int(bad.sum())} non-finite (NaN or inf) values in the {part}, "
                f"in {len(rows)} samples (first: sample {int(rows[0])})"
            )


def train(
    model: nn.Module,
    train_data,
    val_data,
    *,
    loss: str = "mse",
    lr: float = 1e-3,
    batch_size: int = 64,
    max_epochs: int = 100,
    patience: int = 10,
    min_delta: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    deterministic: bool = True,
    max_seconds: float | None = None,
    on_epoch: Callable[[int, float, float], bool | None] | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eval_batch_size: int = 4096,
    desc: str | None = None,
    optimizer: str = "adam",
    amsgrad: bool = False,
    min_epochs: int = 0,
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> History:
    """Train ``model`` in place with Adam (or AdamW) on mini-batches; return the History.

    After every epoch the validation loss is computed; training stops when it has not
    improved by more than ``min_delta`` for ``patience`` epochs, after ``max_epochs``, after
    ``max_seconds`` of wall time, or when ``on_epoch(epoch, train_loss, val_loss)`` returns
    True (it may also raise, e.g. ``optuna.TrialPruned``). The weights of the best validation
    epoch are restored at the end. The model is left on ``device`` in eval mode.
    ``transform``, if given, maps every training mini-batch input before the forward pass
    (data augmentation, e.g. random lattice translations; validation data are untouched).

    Recipe options: ``optimizer`` ``"adam"`` or ``"adamw"`` (decoupled weight decay
    :cite:p:`Loshchilov:2019adamw`), ``amsgrad`` (the max of past second moments
    :cite:p:`Reddi:2018amsgrad`), ``min_epochs`` (no early stop before that many epochs).
    The source group's task-1 recipe :cite:p:`Ein:scalarmlreflection` is
    ``optimizer="adamw", amsgrad=True, lr=1e-2, patience=25, min_epochs=100,
    max_epochs=1000`` (see :data:`SOURCE_RECIPE`).

    Speed options: ``precision="bf16"`` runs the lattice layers under bfloat16 autocast (the
    head stays float32, see :class:`qftml.nets.SpecNet`); it changes the arithmetic, see
    ``benchmarks/bench_training.py`` for its effect on test losses. ``channels_last``
    (default: with bf16) stores activations as ``(N, T, X, C)``; in float32 it changes
    only the rounding. The per-batch loss is summed on the device (no host synchronisation
    per step) and the validation pass runs in batches of ``eval_batch_size`` under the same
    precision.
    """
    for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")
    if patience < 1:
        raise ValueError(f"patience must be >= 1; got {patience}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr}")
    if int(min_epochs) < 0:
        raise ValueError(f"min_epochs must be >= 0; got {min_epochs}")
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {_PRECISIONS}")
    loss_fn = _loss_fn(loss)
    dev = pick_device(device)
    X, y = as_tensors(train_data)
    Xv, yv = as_tensors(val_data)
    _check_finite("train_data", X, y)
    _check_finite("val_data", Xv, yv)
    model.to(dev)
    X, y = X.to(dev), y.to(dev)
    _check_output(model, X, y, loss)
    n = len(X)
    gen = torch.Generator().manual_seed(int(seed))
    opt = _optimizer(optimizer, model.parameters(), lr, weight_decay, amsgrad)
    fmt = _memory_format(channels_last, precision)
    model.to(memory_format=fmt)
    X, Xv = X.contiguous(memory_format=fmt), Xv.to(dev).contiguous(memory_format=fmt)
    yv = yv.to(dev)
    amp = _autocast(dev, precision)
    acc = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no float64
    hist = History(device=str(dev))
    best_state = copy.deepcopy(model.state_dict())
    since_best = 0
    start = time.perf_counter()
    train_time, seen = 0.0, 0
    bar = progress(range(1, max_epochs + 1), desc=desc or "training", leave=False)
    with _deterministic(dev, deterministic):
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            total = torch.zeros((), dtype=acc, device=dev)  # no host sync per step
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                opt.zero_grad(set_to_none=True)
                xb = X[idx] if transform is None else transform(X[idx])
                with amp():
                    out = model(xb.contiguous(memory_format=fmt))
                batch_loss = loss_fn(out.float(), y[idx])
                batch_loss.backward()
                opt.step()
                total += batch_loss.detach().to(acc) * len(idx)
            train_time += time.perf_counter() - t0
            seen += n
            train_loss = float(total) / n
            val_loss = _val_loss(model, Xv, yv, loss_fn, eval_batch_size, amp)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise FloatingPointError(
                    f"the loss became non-finite in epoch {epoch} (train {train_loss}, "
                    f"validation {val_loss}): lower the learning rate or check the data"
                )
            hist.epoch.append(epoch)
            hist.train_loss.append(train_loss)
            hist.val_loss.append(val_loss)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(train=f"{train_loss:.3g}", val=f"{val_loss:.3g}")
            if val_loss < hist.best_val_loss - min_delta:
                hist.best_val_loss, hist.best_epoch = val_loss, epoch
                best_state = copy.deepcopy(model.state_dict())
                since_best = 0
            else:
                since_best += 1
            if on_epoch is not None and on_epoch(epoch, train_loss, val_loss):
                hist.stopped = "callback"
                break
            if since_best >= patience and epoch >= min_epochs:
                hist.stopped = "early stopping"
                break
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                hist.stopped = "time budget"
                break
        else:
            hist.stopped = "max_epochs"
    model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    hist.seconds = time.perf_counter() - start
    hist.samples_per_second = seen / train_time if train_time > 0 else 0.0
    return hist


def predict(
    model: nn.Module, X, *, batch_size: int = 4096, device: str | torch.device | None = None
) -> torch.Tensor:
    """Model outputs for every row of ``X`` (batched, no gradients), as a CPU tensor."""
    dev = pick_device(device)
    X = _real("X", X).float()
    model.to(dev)
    was_training = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            outs.append(model(X[i : i + batch_size].to(dev)).cpu())
    model.train(was_training)
    return torch.cat(outs)


def evaluate(
    model: nn.Module,
    data,
    *,
    loss: str = "mse",
    batch_size: int = 4096,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Mean loss of ``model`` on ``data`` (any size, batched), plus task metrics.

    Returns ``{"loss", "n"}`` and, for ``"mse"``/``"count"``, the loss per output
    ``"loss_<i>"``; for ``"bce"`` the ``"accuracy"`` at threshold 1/2; for ``"count"`` the
    fraction ``"exact"`` of rounded predictions equal to the true count.
    """
    loss_fn = _loss_fn(loss)
    X, y = as_tensors(data)
    pred = predict(model, X, batch_size=batch_size, device=device)
    if pred.shape != y.shape:
        raise ValueError(f"model output shape {tuple(pred.shape)} != target shape {tuple(y.shape)}")
    out = {"loss": float(loss_fn(pred, y)), "n": len(y)}
    if loss in ("mse", "count") and y.shape[1] > 1:
        for i in range(y.shape[1]):
            out[f"loss_{i}"] = float(((pred[:, i] - y[:, i]) ** 2).mean())
    if loss == "bce":
        out["accuracy"] = float(((pred > 0.5).float() == y).float().mean())
    if loss == "count":
        out["exact"] = float((pred.round() == y.round()).all(dim=1).float().mean())
    return out


def save_model(
    path: str | Path,
    model: SpecNet,
    *,
    seed: int | None = None,
    metrics: dict | None = None,
    history: History | dict | None = None,
    **extra,
) -> Path:
    """Save weights with everything needed to rebuild the model: spec, lattice (FL), seed,
    metrics, history, package version. ``extra`` must hold plain Python values."""
    if not isinstance(model, SpecNet):
        raise TypeError(f"save_model needs a model built by qftml.nets; got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": "qftml.model/1",
        "spec": model.spec,
        "family": model.family,
        "lattice": list(model.lattice) if model.lattice else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "seed": seed,
        "metrics": dict(metrics or {}),
        "history": history.to_dict() if isinstance(history, History) else history,
        "qftml_version": __version__,
        "extra": extra,
    }
    torch.save(record, path)
    return path


def load_model(path: str | Path, *, device: str | torch.device | None = "cpu") -> SpecNet:
    """Rebuild a model saved by :func:`save_model`; its record is in ``model.meta``."""
    record = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != "qftml.model/1":
        raise ValueError(f"{path} is not a model saved by qftml.training.save_model")
    model = from_spec(record["spec"], record["lattice"])
    model.load_state_dict(record["state_dict"])
    model.meta = {k: v for k, v in record.items() if k != "state_dict"}
    model.eval()
    return model.to(pick_device(device))
