"""Networks built from a spec: periodic convolutions and poolings, :class:`SpecNet`,
:func:`from_spec` (the translation properties of each family are in :mod:`qftml.nets`)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .spec import (
    _GLOBAL_POOLS,
    _LOCAL_POOLS,
    _WEIGHTED,
    Layer,
    format_spec,
    parse_spec,
    spec_family,
)


def _fmt_lattice(shape) -> str:
    """``(N_t, N_x) = (60, 4)``: unambiguous, whatever order a text writes sizes in."""
    return f"(N_t, N_x) = ({int(shape[0])}, {int(shape[1])})"


def _pool_out(n: int, k: int, s: int) -> int:
    return n if s == 1 else (n - k) // s + 1


class _GlobalPool(nn.Module):
    """Mean / max / sum over the two lattice axes."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        # Low-precision inputs (bf16 autocast) are summed in float32 and give float32.
        acc = torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else None
        if self.mode == "GlobalAvgPool":
            return x.mean(dim=(-2, -1), dtype=acc)
        if self.mode == "GlobalSumPool":
            return x.sum(dim=(-2, -1), dtype=acc)
        out = x.amax(dim=(-2, -1))
        return out if acc is None else out.to(acc)

    def extra_repr(self):
        return self.mode


class _PeriodicPool(nn.Module):
    """Stride-1 pooling with periodic padding: keeps the lattice size and is equivariant."""

    def __init__(self, kind: str, k: int):
        super().__init__()
        self.kind, self.k = kind, k
        left = (k - 1) // 2
        self.pad = (left, k - 1 - left, left, k - 1 - left)
        pool = nn.AvgPool2d if kind == "AvgPool" else nn.MaxPool2d
        self.pool = pool(k, 1)

    def forward(self, x):
        return self.pool(nn.functional.pad(x, self.pad, mode="circular"))


class _CircularPad(torch.autograd.Function):
    """Periodic padding ``(left, right, top, bottom)`` with a folding backward pass.

    The forward pass is ``F.pad(x, pad, mode="circular")``. The backward pass adds the
    gradient of each padded strip onto the sites it copies, in place on one clone of the
    interior, instead of autograd's chain of slice and copy-slice nodes (the profile of the
    task-1 winner spent ~18 % of a step in copies). The sums and their order are the same:
    each site receives its own gradient plus those of its periodic images, rows first.
    """

    @staticmethod
    def forward(ctx, x, pad):
        ctx.pad = pad
        return nn.functional.pad(x, pad, mode="circular")

    @staticmethod
    def backward(ctx, g):
        left, right, top, bottom = ctx.pad
        t, n = g.shape[-2] - top - bottom, g.shape[-1] - left - right

        def fold_rows(h):  # (..., top + t + bottom, w) -> (..., t, w)
            r = h[..., top : top + t, :].clone()
            if top:
                r[..., t - top :, :] += h[..., :top, :]
            if bottom:
                r[..., :bottom, :] += h[..., top + t :, :]
            return r

        # The rows are folded first, then the columns: the order of PyTorch's own circular
        # padding backward, so the sums are bitwise the same.
        gi = fold_rows(g[..., :, left : left + n])
        if left:
            gi[..., :, n - left :] += fold_rows(g[..., :, :left])
        if right:
            gi[..., :, :right] += fold_rows(g[..., :, left + n :])
        return gi, None


class PeriodicConv2d(nn.Conv2d):
    """``nn.Conv2d(..., padding="same", padding_mode="circular")`` without needless copies.

    A 1 × 1 kernel needs no padding, so none is made (PyTorch's circular mode copies the
    input even for zero padding); larger kernels pad with ``_CircularPad``. Same
    parameters, state-dict keys and initialisation as ``nn.Conv2d``; for even ``K`` the
    padding is ``(K-1)//2`` before and ``K//2`` after each axis, as PyTorch's "same".
    """

    def __init__(self, n_in: int, n_out: int, kernel: int, bias: bool = True):
        super().__init__(n_in, n_out, kernel, padding="same", padding_mode="circular", bias=bias)
        self._pad = tuple(self._reversed_padding_repeated_twice)

    def _conv_forward(self, x, weight, bias):
        if any(self._pad):
            x = _CircularPad.apply(x, self._pad)
        return nn.functional.conv2d(x, weight, bias)


def _module(layer: Layer) -> nn.Module:
    if layer.kind == "Conv":
        # "same" periodic padding: (K-1)//2 before and K//2 after each axis, also for even K,
        # so the lattice size is kept and the convolution commutes with shifts.
        return PeriodicConv2d(layer.n_in, layer.n_out, layer.kernel, bias=layer.bias)
    if layer.kind in _LOCAL_POOLS:
        if layer.stride == 1:
            return _PeriodicPool(layer.kind, layer.kernel)
        pool = nn.AvgPool2d if layer.kind == "AvgPool" else nn.MaxPool2d
        return pool(layer.kernel, layer.stride)
    if layer.kind in _GLOBAL_POOLS:
        return _GlobalPool(layer.kind)
    if layer.kind == "Flatten":
        return nn.Flatten()
    if layer.kind == "Linear":
        return nn.Linear(layer.n_in, layer.n_out, bias=layer.bias)
    if layer.kind == "LeakyReLU":
        return nn.LeakyReLU()
    if layer.kind == "Sigmoid":
        return nn.Sigmoid()
    raise AssertionError(layer.kind)


def _trace(layers: list[Layer], lattice: tuple[int, int] | None, family: str) -> list:
    """Propagate ``(C, T, X)`` through the layers, checking every shape on the way.

    ``lattice`` may be None: then only channel counts are checked (``T, X`` unknown).
    Raises ``ValueError`` naming the layer and the sizes that do not fit.
    """
    first = next((la for la in layers if la.kind in _WEIGHTED), None)
    if first is None:
        raise ValueError("a spec needs at least one Conv or Linear layer")
    if first.kind == "Linear" and not any(la.kind in _GLOBAL_POOLS | {"Flatten"} for la in layers):
        raise ValueError("a spec whose first weighted layer is Linear needs a global pooling first")
    t, x = lattice if lattice is not None else (None, None)
    chans: int | None = first.n_in if first.kind == "Conv" else None
    flat: int | None = None  # number of features once flat
    shapes = []
    for i, layer in enumerate(layers, 1):
        where = f"layer {i} ({layer})"
        on_lattice = flat is None
        if layer.kind in ("Conv", *_LOCAL_POOLS, *_GLOBAL_POOLS, "Flatten") and not on_lattice:
            raise ValueError(f"{where} needs a lattice input, but the data was already flattened")
        if layer.kind == "Conv":
            if chans is not None and layer.n_in != chans:
                raise ValueError(f"{where} expects {layer.n_in} input channels, receives {chans}")
            if t is not None and min(t, x) < layer.kernel // 2:
                raise ValueError(
                    f"{where}: a periodic {layer.kernel}x{layer.kernel} convolution needs at "
                    f"least {layer.kernel // 2} sites per axis; the lattice is "
                    f"{_fmt_lattice((t, x))} at this point"
                )
            chans = layer.n_out
        elif layer.kind in _LOCAL_POOLS:
            if t is not None:
                if layer.stride > 1 and min(t, x) < layer.kernel:
                    raise ValueError(
                        f"{where} needs at least {layer.kernel} sites per axis, but the "
                        f"lattice {_fmt_lattice(lattice)} is reduced to {_fmt_lattice((t, x))} "
                        f"there"
                    )
                t = _pool_out(t, layer.kernel, layer.stride)
                x = _pool_out(x, layer.kernel, layer.stride)
        elif layer.kind in _GLOBAL_POOLS:
            flat = chans
        elif layer.kind == "Flatten":
            if t is None:
                raise ValueError(
                    "an FL spec needs the lattice it is built for, from_spec(spec, "
                    "lattice=(N_t, N_x)): its flattened size depends on it"
                )
            flat = chans * t * x
        elif layer.kind == "Linear":
            if flat is None and on_lattice:
                raise ValueError(f"{where} needs a global pooling or Flatten before it")
            if flat is not None and layer.n_in != flat:
                if family == "FL" and any(la.kind == "Flatten" for la in layers[:i]):
                    raise ValueError(
                        f"{where} expects {layer.n_in} inputs, but Flatten gives {flat} = "
                        f"{chans} channels × {t * x} sites, {_fmt_lattice((t, x))}, on the lattice "
                        f"{_fmt_lattice(lattice)}"
                    )
                raise ValueError(f"{where} expects {layer.n_in} inputs, receives {flat}")
            flat = layer.n_out
        shapes.append((flat,) if flat is not None else (chans, t, x))
    return shapes


class SpecNet(nn.Module):
    """A network built from a spec; knows its ``spec``, ``family`` and (FL) ``lattice``.

    ``forward`` checks the input: 4 dimensions, the right number of channels, and a lattice
    the network admits (FL: exactly the one it was built for; EQ/ST: any size on which every
    pooling window fits). The checks run once per lattice size.
    """

    def __init__(self, layers: list[Layer], lattice: tuple[int, int] | None = None):
        super().__init__()
        self.layers = list(layers)
        self.family = spec_family(self.layers)
        if self.family == "FL":
            if lattice is None:
                _trace(self.layers, None, self.family)  # raises the "needs the lattice" error
            self.lattice = (int(lattice[0]), int(lattice[1]))
        else:
            self.lattice = None
        _trace(self.layers, self.lattice, self.family)
        first = next(la for la in self.layers if la.kind in _WEIGHTED)
        self.in_channels = first.n_in
        self.total_stride = math.prod(
            la.stride for la in self._before_global() if la.kind in _LOCAL_POOLS
        )
        self.net = nn.Sequential(*[_module(layer) for layer in self.layers])
        # Index of the first layer after the lattice part (global pooling or Flatten): under
        # mixed precision the head runs in float32 (see forward).
        self._head = next(
            (i for i, la in enumerate(self.layers) if la.kind in _GLOBAL_POOLS | {"Flatten"}),
            len(self.layers),
        )
        self._admitted: set[tuple[int, int]] = set()

    def _before_global(self):
        for layer in self.layers:
            if layer.kind in _GLOBAL_POOLS or layer.kind == "Flatten":
                return
            yield layer

    @property
    def spec(self) -> str:
        """Canonical spec string; ``from_spec(model.spec)`` rebuilds the same architecture."""
        return format_spec(self.layers)

    @property
    def n_params(self) -> int:
        return n_params(self)

    def check_lattice(self, lattice) -> list[tuple[int, ...]]:
        """Raise ``ValueError`` unless the network admits ``lattice = (N_t, N_x)``.

        Returns the shape after each layer.
        """
        lattice = tuple(int(s) for s in lattice)
        if len(lattice) != 2 or min(lattice) < 1:
            raise ValueError(f"lattice must be (N_t, N_x) with positive sizes; got {lattice}")
        if self.family == "FL" and lattice != self.lattice:
            raise ValueError(
                f"this FL model was built for the lattice {_fmt_lattice(self.lattice)} and "
                f"cannot run on {_fmt_lattice(lattice)}: its Flatten/Linear sizes fix the "
                f"lattice size (EQ and ST models run on any admissible size)"
            )
        return _trace(self.layers, lattice, self.family)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must have shape (batch, {self.in_channels}, N_t, N_x); got {tuple(x.shape)}"
            )
        lattice = (int(x.shape[-2]), int(x.shape[-1]))
        if lattice not in self._admitted:
            self.check_lattice(lattice)
            self._admitted.add(lattice)
        if self._head < len(self.net) and torch.is_autocast_enabled(x.device.type):
            # Mixed precision (e.g. bf16 autocast on CPU): the convolutions run in low
            # precision, the pooling over sites accumulates in float32, and the dense head
            # runs in float32, so the output is not rounded to bf16's 8 significant bits.
            x = self.net[: self._head](x)
            with torch.autocast(x.device.type, enabled=False):
                x = self.net[self._head](x).float()
                return self.net[self._head + 1 :](x)
        return self.net(x)

    def extra_repr(self) -> str:
        lat = f", lattice={_fmt_lattice(self.lattice)}" if self.lattice else ""
        return f"family={self.family}, params={self.n_params}{lat},\nspec={self.spec!r}"


def from_spec(
    spec: str, lattice: tuple[int, int] | None = None, *, seed: int | None = None
) -> SpecNet:
    """Build the network described by ``spec`` (see the module docstring for the notation).

    ``lattice = (N_t, N_x)`` is required for FL specs (their flattened size depends on it)
    and ignored otherwise. ``seed`` makes the weight initialisation reproducible without
    touching the global random state (PyTorch's default initialisation is used).
    """
    layers = parse_spec(spec)
    if seed is None:
        return SpecNet(layers, lattice)
    if isinstance(seed, bool) or not float(seed).is_integer() or seed < 0:  # as the sampler
        raise ValueError(f"seed must be an integer >= 0; got seed={seed!r}")
    seed = int(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpecNet(layers, lattice)


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
