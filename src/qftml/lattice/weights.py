r"""Site weights of the dual formulation.

Integrating out the modulus :math:`r_x = |\phi_x|` of the field leaves one factor per site
:cite:p:`Gattringer:2012df`

.. math::
    W(f) = \int_0^\infty dr\, r^{f+1} e^{-\eta r^2 - \lambda r^4}
         = \tfrac12 I(f/2), \qquad
    I(\nu) = \int_0^\infty du\, u^{\nu} e^{-\eta u - \lambda u^2} \quad (u = r^2).

For :math:`\lambda = 0` (free field) :math:`I(\nu) = \Gamma(\nu+1)/\eta^{\nu+1}`.
For :math:`\lambda > 0` integration by parts gives the three-term recurrence
:math:`\nu I(\nu-1) = \eta I(\nu) + 2\lambda I(\nu+1)`. Written for the ratio
:math:`R(\nu) = I(\nu)/I(\nu-1)` it is the continued fraction

.. math::
    R(\nu) = \frac{\nu}{\eta + 2\lambda R(\nu+1)},

run *downwards* in :math:`\nu`: every operation adds or divides positive numbers (no
cancellation) and an error in :math:`R(\nu+1)` is damped by the factor
:math:`2\lambda R/(\eta + 2\lambda R) < 1` (Miller's backward recurrence). The start value
at the top and the two anchors :math:`I(0)`, :math:`I(1/2)` (the two parities of ``f``) come
from adaptive quadrature of the integrand scaled by its maximum, so nothing overflows;
:math:`\log W` is then a compensated cumulative sum of :math:`\log R`. The Markov chain only
uses ratios :math:`W(f\pm1)/W(f)` and :math:`W(f\pm 2)/W(f)`, taken as exponentials of
differences of :math:`\log W`, hence accurate to about
:math:`\epsilon\,|\log W| \lesssim 10^{-13}` for ``f`` up to hundreds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special


def check_couplings(eta: float, lam: float) -> tuple[float, float]:
    """Validate ``eta > 0`` and ``lam >= 0`` (finite); return them as floats."""
    eta_f, lam_f = float(eta), float(lam)
    if not (math.isfinite(eta_f) and eta_f > 0):
        raise ValueError(f"eta must be a finite number > 0; got eta={eta!r}")
    if not (math.isfinite(lam_f) and lam_f >= 0):
        raise ValueError(f"lam must be a finite number >= 0; got lam={lam!r}")
    return eta_f, lam_f


def _log_w_quad(f: float, eta: float, lam: float) -> float:
    """``log W(f)`` by quadrature in ``r`` of the integrand divided by its maximum."""
    a = f + 1.0  # g(r) = a log r - eta r^2 - lam r^4, maximal at a = 2 eta r^2 + 4 lam r^4
    s0 = a / (eta + math.sqrt(eta * eta + 4.0 * lam * a))  # r0^2, the stable root
    r0 = math.sqrt(s0)
    g0 = 0.5 * a * math.log(s0) - eta * s0 - lam * s0 * s0
    width = 1.0 / math.sqrt(a / s0 + 2.0 * eta + 12.0 * lam * s0)  # 1/sqrt(-g''(r0))

    def integrand(r: float) -> float:
        if r <= 0.0:
            return 0.0
        return math.exp(a * math.log(r) - eta * r * r - lam * r**4 - g0)

    lo, hi = max(0.0, r0 - 40.0 * width), r0 + 40.0 * width
    pts = [p for p in (r0 - 4.0 * width, r0, r0 + 4.0 * width) if lo < p < hi]
    val, _ = integrate.quad(integrand, lo, hi, points=pts, epsabs=0.0, epsrel=2e-14, limit=500)
    return g0 + math.log(val)


def _log_i_quad(nu: float, eta: float, lam: float) -> float:
    """``log I(nu) = log 2 W(2 nu)``."""
    return math.log(2.0) + _log_w_quad(2.0 * nu, eta, lam)


def _log_i_free(nu: np.ndarray, eta: float) -> np.ndarray:
    return special.gammaln(nu + 1.0) - (nu + 1.0) * math.log(eta)


def _log_ratios(nu_top: float, eta: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """``log R(nu)`` for ``nu = nu_top, nu_top - 1, ..., > 0`` by the backward recurrence."""
    n = int(math.floor(nu_top + 1e-9))
    nus = nu_top - np.arange(n)  # nu_top, nu_top - 1, ..., > 0
    nus = nus[nus > 0]
    r = math.exp(_log_i_quad(nus[0], eta, lam) - _log_i_quad(nus[0] - 1, eta, lam))
    out = np.empty(len(nus))
    out[0] = math.log(r)
    for i in range(1, len(nus)):
        r = nus[i] / (eta + 2.0 * lam * r)
        out[i] = math.log(r)
    return out[::-1], nus[::-1]


def _cumsum_exact(x: np.ndarray) -> np.ndarray:
    """Cumulative sum with compensated (Neumaier) summation."""
    out = np.empty(len(x))
    s = c = 0.0
    for i, v in enumerate(x.tolist()):
        t = s + v
        c += (s - t) + v if abs(s) >= abs(v) else (v - t) + s
        s = t
        out[i] = s + c
    return out


def log_weights(eta: float, lam: float, f_max: int) -> np.ndarray:
    r"""``log W(f)`` for ``f = 0, 1, ..., f_max`` (see the module docstring).

    Parameters
    ----------
    eta : float
        Coefficient of :math:`|\phi|^2` in the lattice action, ``eta = 2D + m^2 > 0``.
    lam : float
        Quartic coupling, ``lam >= 0`` (``0`` is the free field, closed form).
    f_max : int
        Largest ``f`` (``>= 0``).
    """
    eta, lam = check_couplings(eta, lam)
    if int(f_max) != f_max or f_max < 0:
        raise ValueError(f"f_max must be an integer >= 0; got f_max={f_max!r}")
    f_max = int(f_max)
    f = np.arange(f_max + 1)
    if lam == 0.0:
        return _log_i_free(f / 2.0, eta) - math.log(2.0)
    out = np.empty(f_max + 1)
    for parity in (0, 1):
        fs = f[parity::2]
        if len(fs) == 0:
            continue
        nu0 = parity / 2.0
        log_i0 = _log_i_quad(nu0, eta, lam)
        if len(fs) == 1:
            out[fs] = log_i0 - math.log(2.0)
            continue
        nu_top = fs[-1] / 2.0
        log_r, _ = _log_ratios(nu_top, eta, lam)
        out[fs] = np.concatenate([[log_i0], log_i0 + _cumsum_exact(log_r)]) - math.log(2.0)
    return out


def ratio_tables(log_w: np.ndarray) -> dict[str, np.ndarray]:
    """Weight ratios used by the sampler, from ``log W`` of length ``F + 1``.

    ``up1[f] = W(f+1)/W(f)``, ``dn1[f] = W(f-1)/W(f)``, ``up2[f] = W(f+2)/W(f)``,
    ``dn2[f] = W(f-2)/W(f)``; entries that would need ``W`` outside the table are 0.
    """
    lw = np.asarray(log_w, dtype=np.float64)
    size = len(lw)
    up1, dn1, up2, dn2 = (np.zeros(size) for _ in range(4))
    up1[:-1] = np.exp(lw[1:] - lw[:-1])
    dn1[1:] = np.exp(lw[:-1] - lw[1:])
    up2[:-2] = np.exp(lw[2:] - lw[:-2])
    dn2[2:] = np.exp(lw[:-2] - lw[2:])
    return {"up1": up1, "dn1": dn1, "up2": up2, "dn2": dn2}
