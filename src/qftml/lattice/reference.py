r"""Slow, obviously correct pure-Python twin of the worm sampler, and the dual weight itself.

:func:`log_weight` evaluates the logarithm of the full dual weight of a configuration
(closed or open),

.. math::
    \log w[k, l] = \sum_{x,\nu}\Bigl[\mu\,\delta_{\nu,t}\,k_{x,\nu}
        - \log(|k_{x,\nu}| + l_{x,\nu})! - \log l_{x,\nu}!\Bigr] + \sum_x \log W(f_x),

from scratch. :func:`chain` runs the same Markov chain as :func:`qftml.lattice.sample`,
drawing the same uniforms from ``numpy.random.RandomState(seed)`` (the Mersenne Twister that
numba uses, so the streams coincide), but accepts every proposal with
``exp(log w' - log w)`` recomputed over the whole lattice: no incremental bookkeeping of
``f``, no ratio tables. The tests require the compiled kernel to reproduce it exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from .weights import log_weights
from .worm import check_parameters


def site_f(k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
    r"""``f_x = sum_nu [|k_{x,nu}| + |k_{x-nu,nu}| + 2 (l_{x,nu} + l_{x-nu,nu})]``."""
    k, l = np.asarray(k), np.asarray(l)  # noqa: E741
    n = np.abs(k) + 2 * l  # the power of r contributed by a link to each of its two ends
    return (
        n[..., 0, :, :]
        + np.roll(n[..., 0, :, :], 1, axis=-1)
        + n[..., 1, :, :]
        + np.roll(n[..., 1, :, :], 1, axis=-2)
    )


def log_weight(k, l, mu: float, log_w: np.ndarray) -> float:  # noqa: E741
    """Log of the dual weight of one configuration (module docstring); ``log_w`` = log W table."""
    k, l = np.asarray(k, dtype=np.int64), np.asarray(l, dtype=np.int64)  # noqa: E741
    if np.any(l < 0):
        return -math.inf
    f = site_f(k, l)
    if f.max() >= len(log_w):
        raise ValueError(f"f = {f.max()} beyond the weight table (f_max = {len(log_w) - 1})")
    links = mu * k[1].sum() - gammaln(np.abs(k) + l + 1).sum() - gammaln(l + 1).sum()
    return float(links + log_w[f].sum())


def _accept(u: float, k, l, k_new, l_new, mu, log_w) -> bool:  # noqa: E741
    return u < math.exp(log_weight(k_new, l_new, mu, log_w) - log_weight(k, l, mu, log_w))


def chain(
    nt: int,
    nx: int,
    eta: float,
    lam: float,
    mu: float,
    n_configs: int,
    *,
    seed: int,
    n_therm: int,
    n_skip: int = 1,
    worms_per_sweep: int | None = None,
    f_max: int = 256,
) -> dict[str, np.ndarray]:
    """The chain of :func:`qftml.lattice.sample` in plain Python (small lattices only).

    Returns ``k``, ``l``, ``n``, ``phi2`` (as in :class:`~qftml.lattice.Ensemble`) and
    ``worms_per_sweep``.
    """
    nt, nx, eta, lam, mu = check_parameters(nt, nx, eta, lam, mu)
    log_w = log_weights(eta, lam, f_max)
    rng = np.random.RandomState(seed)
    k = np.zeros((2, nt, nx), np.int64)
    l = np.zeros((2, nt, nx), np.int64)  # noqa: E741
    vol = nt * nx

    def l_sweep():
        for nu in (1, 0):
            for t in range(nt):
                for x in range(nx):
                    u = 2.0 * rng.random_sample()
                    step, a = (1, u) if u < 1.0 else (-1, u - 1.0)
                    if step == -1 and l[nu, t, x] == 0:
                        continue
                    l_new = l.copy()
                    l_new[nu, t, x] += step
                    if _accept(a, k, l, k, l_new, mu, log_w):
                        l[nu, t, x] += step

    def worm() -> int:
        x0 = int(rng.random_sample() * vol)
        tail = (x0 // nx, x0 % nx)
        ht, hx = tail
        steps = 0
        while True:
            u = 4.0 * rng.random_sample()
            d = int(u)
            a = u - d
            steps += 1
            # direction d: the link changed, the change of k on it, and the new head
            nu, (lt, lx), dk, new = [
                (0, (ht, hx), +1, (ht, (hx + 1) % nx)),
                (0, (ht, (hx - 1) % nx), -1, (ht, (hx - 1) % nx)),
                (1, (ht, hx), +1, ((ht + 1) % nt, hx)),
                (1, ((ht - 1) % nt, hx), -1, ((ht - 1) % nt, hx)),
            ][d]
            k_new = k.copy()
            k_new[nu, lt, lx] += dk
            if _accept(a, k, l, k_new, l, mu, log_w):
                k[nu, lt, lx] += dk
                ht, hx = new
                if (ht, hx) == tail:
                    return steps
            elif steps == 1:
                return steps

    steps_late = worms_late = 0
    for i in range(n_therm):
        l_sweep()
        done = 0
        while done < 2 * vol:
            s = worm()
            done += s
            if 2 * i >= n_therm:
                steps_late += s
                worms_late += 1
    if worms_per_sweep is None:
        worms_per_sweep = max(1, round(2 * vol * worms_late / steps_late)) if worms_late else vol
    out = {"k": [], "l": [], "n": [], "phi2": []}
    for _ in range(n_configs):
        for _s in range(n_skip):
            l_sweep()
            for _w in range(worms_per_sweep):
                worm()
        f = site_f(k, l)
        out["k"].append(k.copy())
        out["l"].append(l.copy())
        out["n"].append(k[1].sum() / vol)
        out["phi2"].append(np.exp(log_w[f + 2] - log_w[f]).mean())
    res = {name: np.array(v) for name, v in out.items()}
    res["worms_per_sweep"] = worms_per_sweep
    return res
