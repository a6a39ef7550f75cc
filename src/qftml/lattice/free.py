r"""Closed forms for the free lattice field (λ = 0) at chemical potential μ.

With λ = 0 the lattice action of the model chapter is a quadratic form,
:math:`S = \phi^\dagger M(\mu)\phi`, diagonal in momentum space on the periodic
:math:`N_t\times N_x` lattice with :math:`p_\nu = 2\pi n_\nu/N_\nu`:

.. math::
    M(p) = \eta - 2\cos p_x - e^{\mu} e^{i p_t} - e^{-\mu} e^{-i p_t}
         = \eta - 2\cos p_x - 2\cosh\mu\cos p_t - 2i\sinh\mu\sin p_t .

Its hermitian part (the phase-quenched action, :math:`\operatorname{Re} S`) replaces
:math:`e^{\pm\mu}` by :math:`\cosh\mu`. The Gaussian integral converges iff that part is
positive, i.e. :math:`\eta > 2 + 2\cosh\mu` in two dimensions.
"""

from __future__ import annotations

import numpy as np


def _check(eta: float, mu: float, nt: int, nx: int) -> None:
    if nt < 2 or nx < 2:
        raise ValueError(f"lattice extents must be >= 2, got nt={nt}, nx={nx}")
    bound = 2.0 + 2.0 * np.cosh(mu)
    if not eta > bound:
        raise ValueError(
            f"free field diverges: need eta > 2 + 2 cosh(mu) = {bound:.6g}, got eta={eta}"
        )


def momenta(nt: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Lattice momenta ``(p_t, p_x)`` on an ``nt × nx`` grid, each of shape (nt, nx)."""
    pt = 2.0 * np.pi * np.arange(nt) / nt
    px = 2.0 * np.pi * np.arange(nx) / nx
    return np.meshgrid(pt, px, indexing="ij")


def eigenvalues(eta: float, mu: float, nt: int, nx: int) -> np.ndarray:
    """Complex eigenvalues ``M(p)`` of the free lattice operator (see module docstring)."""
    _check(eta, mu, nt, nx)
    pt, px = momenta(nt, nx)
    return eta - 2.0 * np.cos(px) - 2.0 * np.cosh(mu) * np.cos(pt) - 2.0j * np.sinh(mu) * np.sin(pt)


def log_average_phase(eta: float, mu: float, nt: int, nx: int) -> float:
    r"""``log <e^{iθ}>_pq = log Z(μ) - log Z_pq(μ)`` for the free field.

    Since ``Z = π^V / det M``, the average phase of the phase-quenched ensemble is
    ``det M_pq / det M = Π_p Re M(p) / M(p)``; it is real because p_t and -p_t pair up.
    Its logarithm is extensive: the sign problem grows exponentially with the volume.
    """
    m = eigenvalues(eta, mu, nt, nx)
    return float(np.sum(np.log(m.real) - np.log(np.abs(m))))
