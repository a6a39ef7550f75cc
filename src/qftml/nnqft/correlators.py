r"""Monte Carlo n-point functions of network ensembles, with statistical errors.

Each network is an independent draw, so the ensemble is split into ``n_blocks`` equal
contiguous blocks; means and standard errors come from the block means, and nonlinear
derived quantities (ratios, connected parts, deviations) from the leave-one-block-out
jackknife :cite:p:`Wolff:2003sm`. The tolerance of every statistical test is then stated in
these standard errors.

Vocabulary (as in :cite:p:`Halverson:2020trp`): $G^{(n)}(x_{i_1},\dots,x_{i_n}) =
\mathbb E[f(x_{i_1})\cdots f(x_{i_n})]$; its Gaussian-process (Wick) prediction
$G^{(n)}_{GP} = \sum_{\text{pairings}}\prod K$; the normalized deviation
$\Delta^{(n)} = (G^{(n)} - G^{(n)}_{GP}) / G^{(n)}_{GP}$ per input tuple and its average over
tuples $m_n$.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np

from .kernels import even_partitions


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: ``value`` and standard ``error`` (arrays of equal shape)."""

    value: np.ndarray
    error: np.ndarray

    def z(self, exact) -> np.ndarray:
        """Deviation from ``exact`` in standard errors."""
        return (self.value - np.asarray(exact)) / self.error


def _blocks(n, n_blocks):
    if not 2 <= n_blocks <= n:
        raise ValueError(f"n_blocks must be in [2, n_samples={n}]; got {n_blocks!r}")
    return np.linspace(0, n, n_blocks + 1).astype(int)


def block_means(samples: np.ndarray, n_blocks: int = 50) -> np.ndarray:
    """Means over ``n_blocks`` contiguous blocks of the first axis (shape (n_blocks, ...))."""
    samples = np.asarray(samples)
    edges = _blocks(samples.shape[0], n_blocks)
    return np.stack([samples[a:b].mean(0) for a, b in zip(edges[:-1], edges[1:], strict=True)])


def jackknife(block_means_: np.ndarray, func=None, weights=None) -> Estimate:
    """Jackknife estimate of ``func(mean)`` from block means (axis 0 = blocks).

    ``func`` maps a mean (shape ``block_means_.shape[1:]``) to an array; identity by
    default, which reproduces the standard error of the mean.
    """
    bm = np.asarray(block_means_)
    b = bm.shape[0]
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=float)
    func = func or (lambda m: m)
    total = np.tensordot(w, bm, axes=1)
    full = np.asarray(func(total / w.sum()))
    loo = np.stack([np.asarray(func((total - w[i] * bm[i]) / (w.sum() - w[i]))) for i in range(b)])
    mean_loo = loo.mean(0)
    err = np.sqrt((b - 1) / b * ((loo - mean_loo) ** 2).sum(0))
    return Estimate(full - (b - 1) * (mean_loo - full), err)  # bias-corrected


def index_tuples(n_points: int, n: int) -> list[tuple[int, ...]]:
    """The distinct (sorted) index tuples of an n-point function of n_points inputs."""
    return list(combinations_with_replacement(range(n_points), n))


def product_block_means(f: np.ndarray, tuples, n_blocks: int = 50, chunk: int = 1 << 14):
    r"""Block means of $\prod_k f_{:, t_k}$ for every index tuple ``t`` (shape (n_blocks, T)).

    ``f`` is (n_nets, n_sites). Consecutive tuples share prefixes (sorted order), whose
    products are kept on a stack; networks are processed in cache-sized chunks, so the cost
    is about one multiply per network and distinct prefix.
    """
    f = np.asarray(f)
    if f.ndim != 2:
        raise ValueError(f"f must have shape (n_nets, n_sites); got {f.shape}")
    n = f.shape[0]
    edges = _blocks(n, n_blocks)
    tuples = [tuple(t) for t in tuples]
    sums = np.zeros((n_blocks, len(tuples)), dtype=np.result_type(f.dtype, np.float64))
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        part = f[c0:c1]
        # segments of this chunk that belong to one block each
        cuts = np.unique(np.clip(edges, c0, c1))
        starts = cuts[:-1][cuts[:-1] < c1]
        block_of = np.searchsorted(edges, starts, side="right") - 1
        prefix: tuple = ()
        stack: list[np.ndarray] = []  # stack[k] = prod of part[:, prefix[:k + 1]]
        for ti, t in enumerate(tuples):
            common = 0
            while common < min(len(prefix), len(t)) and prefix[common] == t[common]:
                common += 1
            del stack[common:]
            for k in range(common, len(t)):
                col = part[:, t[k]]
                stack.append(col if k == 0 else stack[-1] * col)
            prefix = t
            sums[block_of, ti] += np.add.reduceat(stack[-1], starts - c0)
    sums /= np.diff(edges)[:, None]
    return sums


def npoint(f: np.ndarray, n: int, *, n_blocks: int = 50, tuples=None):
    """Monte Carlo $G^{(n)}$ at every distinct index tuple, with block standard errors.

    ``f``: outputs (n_nets, n_points) (a trailing ``d_out = 1`` axis is dropped).
    Returns ``(tuples, Estimate, block_means)``.
    """
    f = _as_sites(f)
    tuples = index_tuples(f.shape[1], n) if tuples is None else [tuple(t) for t in tuples]
    bm = product_block_means(f, tuples, n_blocks)
    return tuples, jackknife(bm), bm


def _as_sites(f):
    f = np.asarray(f)
    if f.ndim == 3 and f.shape[2] == 1:
        f = f[:, :, 0]
    if f.ndim != 2:
        raise ValueError(f"outputs must have shape (n_nets, n_points[, 1]); got {f.shape}")
    return f


def wick(kernel: np.ndarray, t) -> float:
    r"""Gaussian-process n-point function $\sum_{\text{pairings}}\prod K(x_a, x_b)$ at ``t``."""
    t = tuple(t)
    if len(t) % 2:
        return 0.0
    return float(
        sum(
            np.prod([kernel[t[a], t[b]] for a, b in part])
            for part in even_partitions(tuple(range(len(t))))
            if all(len(b) == 2 for b in part)
        )
    )


def _pairings_of(n):
    return [p for p in even_partitions(tuple(range(n))) if all(len(b) == 2 for b in p)]


def deviations(f: np.ndarray, n: int, kernel=None, *, n_blocks: int = 50, tuples=None):
    r"""Normalized deviations $\Delta^{(n)}(t) = G^{(n)}(t)/G^{(n)}_{GP}(t) - 1$ per tuple.

    With ``kernel`` (the exact $K$) the GP prediction is exact and the error is that of
    $G^{(n)}$ alone; with ``kernel=None`` the GP prediction is built from the *measured*
    two-point function and the jackknife propagates both errors (this is what one must do
    when no closed-form kernel is known). Returns ``(tuples, Estimate)``.
    """
    f = _as_sites(f)
    p = f.shape[1]
    tuples = index_tuples(p, n) if tuples is None else [tuple(t) for t in tuples]
    pairs = index_tuples(p, 2)
    bm_n = product_block_means(f, tuples, n_blocks)
    pairings = _pairings_of(n)
    if kernel is not None:
        kernel = np.asarray(kernel)
        gp = np.array([wick(kernel, t) for t in tuples])
        return tuples, jackknife(bm_n, lambda m: m / gp - 1.0)
    bm_2 = product_block_means(f, pairs, n_blocks)
    pos = {t: i for i, t in enumerate(pairs)}

    def ratio(m):
        g_n, g_2 = m[: len(tuples)], m[len(tuples) :]
        out = np.empty(len(tuples))
        for i, t in enumerate(tuples):
            gp = sum(
                np.prod([g_2[pos[tuple(sorted((t[a], t[b])))]] for a, b in part])
                for part in pairings
            )
            out[i] = g_n[i] / gp - 1.0
        return out

    return tuples, jackknife(np.concatenate([bm_n, bm_2], axis=1), ratio)


def m_n(f: np.ndarray, n: int, kernel=None, *, n_blocks: int = 50) -> Estimate:
    r"""$m_n$: the average over distinct input tuples of the normalized deviation $\Delta^{(n)}$.

    A signed average (the $1/N$ terms have one sign for the architectures studied here;
    compare the exact values of :func:`exact_m_n`), with its jackknife error.
    """
    f = _as_sites(f)
    tuples = index_tuples(f.shape[1], n)
    bm_n = product_block_means(f, tuples, n_blocks)
    if kernel is not None:
        gp = np.array([wick(np.asarray(kernel), t) for t in tuples])
        return jackknife(bm_n, lambda m: np.mean(m / gp - 1.0))
    pairs = index_tuples(f.shape[1], 2)
    bm_2 = product_block_means(f, pairs, n_blocks)
    pos = {t: i for i, t in enumerate(pairs)}
    pairings = _pairings_of(n)

    def avg(m):
        g_n, g_2 = m[: len(tuples)], m[len(tuples) :]
        vals = []
        for i, t in enumerate(tuples):
            gp = sum(
                np.prod([g_2[pos[tuple(sorted((t[a], t[b])))]] for a, b in part])
                for part in pairings
            )
            vals.append(g_n[i] / gp - 1.0)
        return np.mean(vals)

    return jackknife(np.concatenate([bm_n, bm_2], axis=1), avg)


def connected_4pt(f: np.ndarray, *, n_blocks: int = 50, tuples=None):
    r"""Connected four-point function $G^{(4)} - \sum_{3\text{ pairings}} G^{(2)}G^{(2)}$.

    Built from measured two- and four-point functions (jackknife errors); for one hidden
    layer it equals $N\kappa_4(u)\propto 1/N$ exactly (:func:`qftml.nnqft.exact_npoint`).
    Returns ``(tuples, Estimate)``.
    """
    f = _as_sites(f)
    p = f.shape[1]
    tuples = index_tuples(p, 4) if tuples is None else [tuple(t) for t in tuples]
    pairs = index_tuples(p, 2)
    pos = {t: i for i, t in enumerate(pairs)}
    bm = np.concatenate(
        [product_block_means(f, tuples, n_blocks), product_block_means(f, pairs, n_blocks)], axis=1
    )
    pairings = _pairings_of(4)

    def conn(m):
        g4, g2 = m[: len(tuples)], m[len(tuples) :]
        out = np.array(g4, dtype=float)
        for i, t in enumerate(tuples):
            for part in pairings:
                out[i] -= np.prod([g2[pos[tuple(sorted((t[a], t[b])))]] for a, b in part])
        return out

    return tuples, jackknife(bm, conn)


def exact_m_n(arch, x, n, widths, *, sigma_w=1.0, sigma_b=1.0):
    """Exact $m_n$ of one-hidden-layer networks (same tuple average as :func:`m_n`).

    ``widths`` may be a scalar or an array; the neuron moments are computed once.
    """
    from .kernels import MomentTable, _evaluate, npoint_coefficients

    x = np.asarray(x, dtype=float)
    table = MomentTable(arch, x, sigma_w=sigma_w, sigma_b=sigma_b)
    w = np.asarray(widths, dtype=float)
    total = np.zeros_like(w)
    tuples = index_tuples(x.shape[0], n)
    for t in tuples:
        coefs = npoint_coefficients(table, t)
        total = total + _evaluate(coefs, w) / coefs[0] - 1.0
    out = total / len(tuples)
    return float(out) if out.ndim == 0 else out


def fit_power_law(widths, values, errors) -> tuple[float, float, float, float]:
    r"""Weighted least-squares fit $\log|v| = a + s\log N$; returns ``(s, ds, a, da)``.

    Errors on $\log|v|$ are $\delta v/|v|$ (first order); points with $|v| \le 2\delta v$
    carry no information on the power and must be excluded by the caller.
    """
    w = np.asarray(widths, dtype=float)
    v = np.abs(np.asarray(values, dtype=float))
    e = np.asarray(errors, dtype=float) / v
    if len(w) < 2:
        raise ValueError(f"need at least two widths to fit a power law; got {len(w)}")
    a_mat = np.stack([np.ones_like(w), np.log(w)], axis=1) / e[:, None]
    coef, *_ = np.linalg.lstsq(a_mat, np.log(v) / e, rcond=None)
    cov = np.linalg.inv(a_mat.T @ a_mat)
    return float(coef[1]), float(np.sqrt(cov[1, 1])), float(coef[0]), float(np.sqrt(cov[0, 0]))
