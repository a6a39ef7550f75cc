r"""Hybrid Monte Carlo in the original field variables at μ = 0 (an independent check).

At :math:`\mu = 0` the lattice action of the model chapter is real,

.. math::
    S[\phi] = \sum_x \Bigl(\eta|\phi_x|^2 + \lambda|\phi_x|^4
              - \sum_{\nu}(\phi_x^*\phi_{x+\hat\nu} + \phi_{x+\hat\nu}^*\phi_x)\Bigr),

so :math:`e^{-S}` can be sampled directly. With :math:`\phi = a + ib` and conjugate momenta
:math:`\pi = \pi_a + i\pi_b`, :math:`H = \frac12\sum_x|\pi_x|^2 + S` is integrated with
the leapfrog scheme and the trajectory accepted with :math:`\min(1, e^{-\Delta H})`
(Duane, Kennedy, Pendleton, Roweth 1987). The force (on ``a`` and ``b`` at once) is
:math:`\partial S/\partial a + i\,\partial S/\partial b = 2\eta\phi + 4\lambda|\phi|^2\phi
- 2\sum_\nu(\phi_{x+\hat\nu} + \phi_{x-\hat\nu})`. This shares no code with the dual
sampler: it checks the dual formulation itself, not only its implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .worm import check_parameters


@njit(cache=True)
def _action(phi, eta, lam):
    nt, nx = phi.shape
    s = 0.0
    for t in range(nt):
        for x in range(nx):
            p = phi[t, x]
            r2 = p.real * p.real + p.imag * p.imag
            hop = p.conjugate() * (phi[(t + 1) % nt, x] + phi[t, (x + 1) % nx])
            s += eta * r2 + lam * r2 * r2 - 2.0 * hop.real
    return s


@njit(cache=True)
def _force(phi, eta, lam, out):
    nt, nx = phi.shape
    for t in range(nt):
        for x in range(nx):
            p = phi[t, x]
            r2 = p.real * p.real + p.imag * p.imag
            nb = phi[(t + 1) % nt, x] + phi[(t - 1) % nt, x] + phi[t, (x + 1) % nx]
            nb += phi[t, (x - 1) % nx]
            out[t, x] = 2.0 * eta * p + 4.0 * lam * r2 * p - 2.0 * nb


@njit(cache=True)
def _trajectory(phi, pi, eps, n_md, eta, lam):
    """Leapfrog from ``(phi, pi)``; returns the end point and ``H_new - H_old``."""
    h_old = 0.5 * np.sum(pi.real**2 + pi.imag**2) + _action(phi, eta, lam)
    x = phi.copy()
    p = pi.copy()
    force = np.empty_like(phi)
    _force(x, eta, lam, force)
    p -= 0.5 * eps * force
    for step in range(n_md):
        x += eps * p
        _force(x, eta, lam, force)
        p -= (eps if step < n_md - 1 else 0.5 * eps) * force
    h_new = 0.5 * np.sum(p.real**2 + p.imag**2) + _action(x, eta, lam)
    return x, h_new - h_old


@dataclass
class HMCResult:
    """``phi2`` (and ``phi4``: mean ``|phi|^4``) per trajectory, and the acceptance rate."""

    phi2: np.ndarray
    phi4: np.ndarray
    acceptance: float


def hmc(
    nt: int,
    nx: int,
    eta: float,
    lam: float,
    n_traj: int,
    *,
    seed: int,
    n_therm: int = 200,
    n_md: int = 10,
    traj_length: float = 1.0,
) -> HMCResult:
    """Sample ``exp(-S)`` at μ = 0 by HMC; measures ``|phi|^2`` after every trajectory.

    Needs ``lam > 0`` or ``eta > 4`` (otherwise ``S`` is unbounded below).
    """
    nt, nx, eta, lam, _ = check_parameters(nt, nx, eta, lam, 0.0)
    if lam == 0 and eta <= 4.0:
        raise ValueError(f"free field at mu = 0 needs eta > 4; got eta={eta}")
    rng = np.random.default_rng(seed)
    eps = traj_length / n_md
    phi = np.zeros((nt, nx), np.complex128)
    phi2 = np.empty(n_traj)
    phi4 = np.empty(n_traj)
    accepted = 0
    for i in range(n_therm + n_traj):
        pi = rng.standard_normal((nt, nx)) + 1j * rng.standard_normal((nt, nx))
        x, dh = _trajectory(phi, pi, eps, n_md, eta, lam)
        if rng.random() < np.exp(min(0.0, -dh)):
            phi = x
            accepted += i >= n_therm
        if i >= n_therm:
            r2 = phi.real**2 + phi.imag**2
            phi2[i - n_therm] = r2.mean()
            phi4[i - n_therm] = (r2 * r2).mean()
    return HMCResult(phi2=phi2, phi4=phi4, acceptance=accepted / n_traj)
