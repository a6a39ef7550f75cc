r"""Symmetry-invariant but correlated (non-Gaussian) last-layer parameters.

The talk's example :cite:p:`Maiti:talk,Maiti:2021fpy`: the $M = D\,N$ weights $\theta$ of the
last layer are drawn jointly from

$$ P_\theta\propto\exp\Big(-\frac{|\theta|^2}{2\sigma^2} - \lambda_\theta\,|\theta|^4\Big),
   \qquad |\theta|^2 = \theta_{ab}\theta_{ab}, $$

which depends on $\theta$ only through $|\theta|$: it is invariant under $O(M)\supset SO(D)$
acting on the output index, so $f_i\mapsto R_{ij}f_j$ stays a symmetry, while the entries
are correlated for $\lambda_\theta\ne0$. Sampling: $\theta = r\,\hat u$ with $\hat u$ uniform on
$S^{M-1}$ (a normalized Gaussian vector) and $r$ from its one-dimensional density
$p(r)\propto r^{M-1}e^{-r^2/(2\sigma^2)-\lambda_\theta r^4}$ (inverse CDF on a fine grid).

**Exact four-point function.** Conditional on the hidden layer $g$, $f_i = \theta_{ij}g_j$ is
linear in $\theta$, and a spherically symmetric $\theta$ has
$\mathbb E[\theta_a\theta_b] = \frac{\mathbb E r^2}{M}\delta_{ab}$,
$\mathbb E[\theta_a\theta_b\theta_c\theta_d] = \frac{\mathbb E r^4}{M(M+2)}
(\delta_{ab}\delta_{cd}+\delta_{ac}\delta_{bd}+\delta_{ad}\delta_{bc})$. Hence, relative to
Gaussian weights of the same variance, $G^{(4)}$ is multiplied by
$\rho(\lambda_\theta) = M\,\mathbb E r^4/((M+2)(\mathbb E r^2)^2)$ and the normalized
deviation from Wick's theorem is $\Delta^{(4)} = \rho\,(1+\Delta^{(4)}_0) - 1$, with
$\Delta^{(4)}_0$ the exact finite-width value of Gaussian weights. **First order** in
$\lambda_\theta$ (moments of $\chi^2_M$): $\rho = 1 - 8\sigma^4\lambda_\theta +
\mathcal O(\lambda_\theta^2)$, independent of $M$.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate
from scipy.special import erf

from .ensemble import UNITS_PER_BLOCK, _check_x

_GRID = 20001


def _check(m_dim, sigma, lam):
    if int(m_dim) < 1:
        raise ValueError(f"m_dim must be >= 1; got {m_dim!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0; got {sigma!r}")
    if not lam >= 0:
        raise ValueError(f"lam_theta must be >= 0 (the density must be normalizable); got {lam!r}")
    return int(m_dim), float(sigma), float(lam)


def _log_density(r, m_dim, sigma, lam):
    with np.errstate(divide="ignore"):
        return (m_dim - 1) * np.log(r) - r**2 / (2 * sigma**2) - lam * r**4


def _r_max(m_dim, sigma):
    return sigma * (math.sqrt(m_dim) + 12.0)


def radial_moment(k: float, m_dim: int, sigma: float, lam: float) -> float:
    r"""$\mathbb E[r^k]$ under $p(r)\propto r^{M-1}e^{-r^2/(2\sigma^2)-\lambda r^4}$ (quad)."""
    m_dim, sigma, lam = _check(m_dim, sigma, lam)
    r_max = _r_max(m_dim, sigma)
    # log-density peak, to keep the integrand O(1)
    grid = np.linspace(1e-9 * sigma, r_max, 4001)
    peak = _log_density(grid, m_dim, sigma, lam).max()

    def dens(r, p):
        return r**p * math.exp(_log_density(r, m_dim, sigma, lam) - peak) if r > 0 else 0.0

    opts = dict(limit=200, epsabs=0.0, epsrel=1e-12)
    num = integrate.quad(dens, 0.0, r_max, args=(k,), **opts)[0]
    den = integrate.quad(dens, 0.0, r_max, args=(0,), **opts)[0]
    return num / den


def fourpt_ratio(m_dim: int, sigma: float, lam: float) -> float:
    r"""Exact $\rho = M\,\mathbb E r^4/((M+2)(\mathbb E r^2)^2)$ ($=1$ at $\lambda_\theta=0$)."""
    m2 = radial_moment(2, m_dim, sigma, lam)
    m4 = radial_moment(4, m_dim, sigma, lam)
    return m_dim * m4 / ((m_dim + 2) * m2**2)


def fourpt_ratio_first_order(sigma: float, lam: float) -> float:
    r"""First-order perturbation theory: $\rho \approx 1 - 8\sigma^4\lambda_\theta$."""
    return 1.0 - 8.0 * sigma**4 * lam


def sample_radius(m_dim: int, sigma: float, lam: float, size: int, rng) -> np.ndarray:
    """Radii from $p(r)$ by inverse CDF on a grid of 20001 points (trapezoid CDF)."""
    m_dim, sigma, lam = _check(m_dim, sigma, lam)
    r = np.linspace(0.0, _r_max(m_dim, sigma), _GRID)
    logp = _log_density(r, m_dim, sigma, lam)
    p = np.exp(logp - logp[np.isfinite(logp)].max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(r))])
    cdf /= cdf[-1]
    return np.interp(rng.random(size), cdf, r)


def sample_invariant(n: int, shape, sigma: float, lam: float, rng) -> np.ndarray:
    r"""``n`` draws of an array of ``shape`` from $P_\theta$ over all its entries jointly."""
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    m_dim = int(np.prod(shape))
    u = rng.standard_normal((n, m_dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return (u * sample_radius(m_dim, sigma, lam, n, rng)[:, None]).reshape(n, *shape)


def correlated_outputs(
    x,
    width: int,
    n_nets: int,
    *,
    lam_theta: float,
    d_out: int = 1,
    sigma_w: float = 1.0,
    broken: bool = False,
    seed: int = 0,
) -> np.ndarray:
    r"""Outputs (n_nets, n_points, d_out) of Erf-nets whose last layer is drawn from $P_\theta$.

    $f_i(x) = \sum_j\theta_{ij}\,\mathrm{erf}(W^0_jx)$, $W^0\sim\mathcal N(0,\sigma_w^2/d)$, no
    biases, $\sigma^2 = \sigma_w^2/N$ (so $\lambda_\theta = 0$ is the ordinary Gaussian
    ensemble). ``broken=True`` is the non-invariant counterexample: the quartic term acts on
    the first output row only, $e^{-\lambda_\theta|\theta_{1\cdot}|^4}$. Networks come in
    blocks of ``UNITS_PER_BLOCK // width``, block ``i`` seeded by
    ``SeedSequence(seed, spawn_key=(2, i))``: same seed, same networks for any ``n_nets``.
    """
    x = _check_x(x)
    width, d_out, n_nets = int(width), int(d_out), int(n_nets)
    if width < 1 or d_out < 1 or n_nets < 1:
        raise ValueError(f"width, d_out, n_nets must be >= 1; got {width}, {d_out}, {n_nets}")
    if broken and d_out < 2:
        raise ValueError("the broken counterexample needs d_out >= 2")
    sigma = sigma_w / math.sqrt(width)
    block = max(1, UNITS_PER_BLOCK // (width * max(1, d_out)))
    out = np.empty((n_nets, x.shape[0], d_out))
    for i, n0 in enumerate(range(0, n_nets, block)):
        n = min(block, n_nets - n0)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, i)))
        w0 = rng.standard_normal((block, width, x.shape[1]))[:n] * (sigma_w / math.sqrt(x.shape[1]))
        if broken:
            first = sample_invariant(block, (1, width), sigma, lam_theta, rng)
            rest = rng.standard_normal((block, d_out - 1, width)) * sigma
            theta = np.concatenate([first, rest], axis=1)[:n]
        else:
            theta = sample_invariant(block, (d_out, width), sigma, lam_theta, rng)[:n]
        g = erf(w0 @ x.T)  # (n, N, P)
        out[n0 : n0 + n] = np.transpose(theta @ g, (0, 2, 1))
    return out
