"""Flux conservation of the dual k-field.

Layout used throughout the package: ``k[..., nu, t, x]`` with direction ``nu = 0`` space
(lattice axis ``x``, the last array axis) and ``nu = 1`` time (axis ``t``, the one before).
The constraint of the dual formulation :cite:p:`Gattringer:2012df` is

    div k (x) = sum_nu (k_{x,nu} - k_{x-nu_hat,nu}) = 0   at every site x.
"""

from __future__ import annotations

import numpy as np


def divergence(k: np.ndarray) -> np.ndarray:
    """Lattice divergence ``sum_nu (k_{x,nu} - k_{x-nu_hat,nu})`` on the periodic lattice.

    ``k`` has shape ``(..., 2, nt, nx)``; the result has shape ``(..., nt, nx)``.
    """
    k = np.asarray(k)
    if k.ndim < 3 or k.shape[-3] != 2:
        raise ValueError(f"k must have shape (..., 2, nt, nx); got {k.shape}")
    ks, kt = k[..., 0, :, :], k[..., 1, :, :]
    return (ks - np.roll(ks, 1, axis=-1)) + (kt - np.roll(kt, 1, axis=-2))


def n_violations(k: np.ndarray) -> np.ndarray | int:
    """Number of sites with nonzero divergence (per configuration if ``k`` is batched)."""
    nonzero = divergence(k) != 0
    return np.count_nonzero(nonzero, axis=(-2, -1))


def is_conserved(k: np.ndarray) -> bool | np.ndarray:
    """True where the configuration satisfies the flux constraint at every site."""
    return n_violations(k) == 0
