"""Network input: the dual fields as a 4-channel image on the lattice.

A configuration ``(k, l)`` of the dual formulation :cite:p:`Gattringer:2012df` becomes a float
tensor of shape ``(4, N_t, N_x)`` with the channels

    0: k_space = k_{x,1},  1: k_time = k_{x,2},  2: l_space = l_{x,1},  3: l_time = l_{x,2},

exactly the input of the networks of :cite:p:`Bulusu:2021njs` (``Conv(·, 4, ·)`` first
layers). Channel ``c`` at pixel ``(t, x)`` holds the link variable that starts at site
``(t, x)`` (periodic lattice).

**Normalization.** By default the integers are passed unchanged (``scale = 1``): they are
O(1) numbers already, and three properties the tasks rely on survive only without a shift.
(i) The flux constraint ``div k = 0`` is a linear combination of neighbouring ``k`` with
integer coefficients; a network sees a violation as a nonzero such combination only if no
offset is added. (ii) A constant offset ``c`` would add ``c`` times the volume to a
global-sum-pooled output, so predictions would no longer carry over between lattice sizes.
(iii) The observables are per-site averages, which a per-channel scale leaves linear. A
per-channel *scale* is therefore the only normalization offered: ``scale = s`` divides
channel ``c`` by ``s[c]``; :func:`channel_rms` gives the root mean square of each channel
over a training set (no centering) for that purpose. It is a fixed constant, computed once
on the training data and reused unchanged for every test set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Names of the four input channels, in order.
CHANNELS = ("k_space", "k_time", "l_space", "l_time")


def _check(k: np.ndarray, l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k, l = np.asarray(k), np.asarray(l)
    if k.shape != l.shape or k.ndim < 3 or k.shape[-3] != 2:
        raise ValueError(
            f"k and l must have one shape (..., 2, nt, nx); got k {k.shape}, l {l.shape}"
        )
    return k, l


def stack_channels(k: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Integer array ``(..., 4, nt, nx)`` with channels
    :data:`~qftml.datasets.encoding.CHANNELS`."""
    k, l = _check(k, l)
    return np.concatenate([k, l], axis=-3)


def encode(
    k: np.ndarray, l: np.ndarray, scale: float | Sequence[float] | None = None
) -> torch.Tensor:
    """Float32 tensor ``(N, 4, nt, nx)`` (or ``(4, nt, nx)``) for the networks.

    ``scale``: ``None`` or 1 keeps the integers; a number or 4 numbers divide the channels
    (see the module docstring for why there is no shift).
    """
    x = stack_channels(k, l).astype(np.float32)
    if scale is not None:
        s = np.broadcast_to(np.asarray(scale, dtype=np.float32), (4,))
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"scale must be positive and finite; got {scale!r}")
        x /= s[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(x))


def channel_rms(k: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Root mean square of each channel over configurations and sites, shape ``(4,)``.

    A channel that is zero everywhere gets 1 (nothing to scale).
    """
    x = stack_channels(k, l).astype(np.float64)
    axes = tuple(i for i in range(x.ndim) if i != x.ndim - 3)
    rms = np.sqrt(np.mean(x**2, axis=axes))
    return np.where(rms > 0, rms, 1.0)


def decode(x: torch.Tensor | np.ndarray, scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode`: integer arrays ``(k, l)`` from an encoded tensor."""
    x = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    if x.ndim < 3 or x.shape[-3] != 4:
        raise ValueError(f"x must have shape (..., 4, nt, nx); got {x.shape}")
    if scale is not None:
        x = x * np.broadcast_to(np.asarray(scale, dtype=np.float64), (4,))[:, None, None]
    ints = np.rint(x).astype(np.int64)
    return ints[..., :2, :, :], ints[..., 2:, :, :]
