r"""Monte Carlo error analysis: integrated autocorrelation times and error bars.

For a stationary series :math:`x_1..x_N` with autocorrelation function
:math:`\Gamma(t) = \langle (x_i - \bar x)(x_{i+t} - \bar x)\rangle`, the variance of the
mean is :math:`2\tau_{\rm int}\,\Gamma(0)/N` with

.. math::
    \tau_{\rm int} = \tfrac12 + \sum_{t=1}^{W} \Gamma(t)/\Gamma(0),

(``tau_int = 1/2`` for independent samples). The window :math:`W` is chosen by Wolff's
automatic windowing :cite:p:`Wolff:2003sm`: the first :math:`W` where
:math:`g(W) = e^{-W/\tau(W)} - \tau(W)/\sqrt{W N}` turns negative, with
:math:`\tau(W) = S/\ln\frac{2\tau_{\rm int}(W)+1}{2\tau_{\rm int}(W)-1}` and ``S = 1.5``;
it balances the exponentially small truncation bias against the statistical noise of the
summed tail. :math:`\Gamma` is computed by FFT and corrected for the bias of the estimated
mean, :math:`\Gamma(t) \to \Gamma(t) + C(W)/N` with :math:`C = \Gamma(0) + 2\sum_1^W \Gamma`.
The statistical error of :math:`\tau_{\rm int}` is
:math:`\tau_{\rm int}\sqrt{2(2W+1)/N}` (Madras–Sokal, Wolff's Eq. (42)).
"""

from __future__ import annotations

import math

import numpy as np


def _series(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D series; got shape {x.shape}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 samples for an error estimate; got {len(x)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the series contains non-finite values")
    return x


def _autocov(x: np.ndarray) -> np.ndarray:
    """``Gamma(t)`` for ``t = 0..N-1`` (normalized by ``N - t``), by FFT."""
    n = len(x)
    d = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(d, size)
    acf = np.fft.irfft(spec * np.conj(spec), size)[:n]
    return acf / (n - np.arange(n))


def autocorrelation(x, S: float = 1.5) -> dict[str, float]:
    """Wolff's Γ-method for one series (module docstring).

    Returns ``mean``, ``error`` (of the mean, autocorrelations included), ``tau_int``,
    ``tau_int_error``, ``window`` and ``variance``. A constant series has ``error = 0``
    and ``tau_int = 0.5`` (no fluctuations, nothing to correlate).
    """
    x = _series(x)
    n = len(x)
    mean = float(x.mean())
    gamma = _autocov(x)
    if gamma[0] <= 0:
        return {"mean": mean, "error": 0.0, "tau_int": 0.5, "tau_int_error": 0.0,
                "window": 0, "variance": 0.0}  # fmt: skip
    rho = gamma / gamma[0]
    tau_cum = 0.5 + np.cumsum(rho[1:])  # tau_int(W) for W = 1..N-1
    window = n - 1
    for w in range(1, n):
        t = tau_cum[w - 1]
        tau_w = S / math.log((2 * t + 1) / (2 * t - 1)) if t > 0.5 else 1e-300
        g = math.exp(-w / tau_w) - tau_w / math.sqrt(w * n)
        if g < 0:
            window = w
            break
    c_f = gamma[0] + 2.0 * gamma[1 : window + 1].sum()
    gamma = gamma + c_f / n  # bias of the estimated mean
    c_f = gamma[0] + 2.0 * gamma[1 : window + 1].sum()
    tau = c_f / (2.0 * gamma[0])
    tau = max(tau, 0.5 / n)  # C_F can come out <= 0 for strongly anticorrelated noise
    return {
        "mean": mean,
        "error": math.sqrt(max(c_f, 0.0) / n),
        "tau_int": float(tau),
        "tau_int_error": float(tau * math.sqrt(2.0 * (2 * window + 1) / n)),
        "window": int(window),
        "variance": float(gamma[0]),
    }


def autocorrelation_time(x, S: float = 1.5) -> float:
    """Integrated autocorrelation time ``tau_int`` of a series (Γ-method, automatic window).

    In units of the series' spacing; ``0.5`` means uncorrelated.
    """
    return autocorrelation(x, S)["tau_int"]


def mean_error(x, S: float = 1.5) -> tuple[float, float]:
    """Mean of a series and its error, ``sqrt(2 tau_int Gamma(0) / N)`` (Γ-method)."""
    r = autocorrelation(x, S)
    return r["mean"], r["error"]


def binning_error(x, n_bins: int = 20) -> tuple[float, float]:
    """Mean and the error from ``n_bins`` equal blocks (an independent cross-check).

    Valid when the blocks are much longer than ``tau_int``.
    """
    x = _series(x)
    if n_bins < 2 or len(x) < n_bins:
        raise ValueError(f"need 2 <= n_bins <= len(x); got n_bins={n_bins}, len(x)={len(x)}")
    size = len(x) // n_bins
    blocks = x[: size * n_bins].reshape(n_bins, size).mean(axis=1)
    return float(x.mean()), float(blocks.std(ddof=1) / math.sqrt(n_bins))


def summarize(observables: dict, S: float = 1.5) -> dict[str, dict[str, float]]:
    """:func:`autocorrelation` of every series in a dict (e.g. ``Ensemble.observables()``)."""
    return {name: autocorrelation(series, S) for name, series in observables.items()}
