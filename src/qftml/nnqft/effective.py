r"""The effective action of a network ensemble: a quartic coupling fitted on $G^{(4)}$.

Near the Gaussian-process limit the output density is modelled as
$P[f]\propto e^{-S}$, $S = S_{GP} + \int_{[-\Lambda,\Lambda]^d} d^dx\,\lambda f(x)^4 + \dots$
:cite:p:`Halverson:2020trp`. **Sign convention:** $e^{-S}$ with $+\lambda f^4$ in $S$, so a
positive $\lambda$ *suppresses* large outputs. Expanding $e^{-\Delta S}$ to first order, the
$4! = 24$ Wick contractions of $f(x_1)\cdots f(x_4)$ with the vertex give

$$
\Delta G^{(4)}(x_1,\dots,x_4) = -24\,\lambda\int_{-\Lambda}^{\Lambda} d^dx\,
\prod_{i=1}^4 K(x, x_i) ,
$$

and, at the same order, the six-point function gets one vertex joined to four external
points times a free propagator between the other two (15 terms),
$\Delta G^{(6)} = \sum_{(a,b)} K(x_a,x_b)\,\Delta G^{(4)}(\text{the other four})$.
Diagrams with a propagator from the vertex to itself renormalize the two-point function;
they are absorbed because the propagator used is the **exact two-point function** $K$ of
the ensemble (:func:`qftml.nnqft.nngp_kernel`, *including* $\sigma_b^2$: it is the
propagator of the field $f$ whose correlators are measured). The public code of the source,
`keeganstoner/nn-qft` :cite:p:`Stoner:nnqft`, instead uses $K-\sigma_b^2$ in every propagator
(`K_EFT` in `lib.py`), defines $\lambda$ there as $\Delta G^{(4)}/(+24\int\prod K)$ (the
opposite sign to its own action) and in its ReLU runs never sets $\sigma_b = 0$ (a
comparison, ``args.sb == 10**-100``, stands where an assignment was meant); we do not copy
it. With $\sigma_b = 0$, the case used in the chapter, the two propagators agree.

**Closed form** (ReLU, $\sigma_b = 0$, $d_{in} = 1$): $K(x,x') = \frac{\sigma_w^4}{2}xx'\,
\theta(xx')$, so for inputs of one sign
$\int_{-\Lambda}^{\Lambda}dx\prod_{i=1}^n K(x,x_i) = (\sigma_w^4/2)^n\prod_i|x_i|\,
\Lambda^{n+1}/(n+1)$ and, with the exact $G^{(4)}_c = \frac{15}{4}\sigma_w^8\prod x_i/N$,

$$ \lambda = -\frac{25}{2\,N\,\sigma_w^8\,\Lambda^5}\qquad(\propto 1/(N\Lambda^{4+d_{in}})). $$
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.special import roots_legendre

from .correlators import Estimate, index_tuples, jackknife, product_block_means
from .ensemble import _check_x, ensemble_outputs
from .kernels import nngp_kernel


def _check_cutoff(cutoff):
    cutoff = float(cutoff)
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive number; got {cutoff!r}")
    return cutoff


def quadrature_grid(cutoff: float, d_in: int, n_quad: int = 64):
    r"""Nodes (n, d_in) and weights of Gauss-Legendre on $[-\Lambda,\Lambda]^{d}$.

    Each axis is split at 0 (where the ReLU kernel with $\sigma_b=0$ has its kink) and
    ``n_quad`` nodes are used on each half.
    """
    cutoff = _check_cutoff(cutoff)
    if not 1 <= int(d_in) <= 3:
        raise ValueError(f"tensor quadrature supports d_in in 1..3; got {d_in!r}")
    t, w = roots_legendre(int(n_quad))
    nodes = np.concatenate([0.5 * cutoff * (t - 1), 0.5 * cutoff * (t + 1)])
    weights = np.concatenate([0.5 * cutoff * w, 0.5 * cutoff * w])
    grids = np.meshgrid(*([nodes] * int(d_in)), indexing="ij")
    wgrid = np.prod(np.meshgrid(*([weights] * int(d_in)), indexing="ij"), axis=0)
    return np.stack([g.ravel() for g in grids], axis=1), wgrid.ravel()


def vertex_integrals(
    arch: str,
    x,
    tuples,
    *,
    cutoff: float,
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    n_quad: int = 64,
    kernel=None,
) -> np.ndarray:
    r"""$I(t) = \int_{[-\Lambda,\Lambda]^d} d^dy\,\prod_{k} K(y, x_{t_k})$ for each index tuple.

    ``kernel(y, x)`` (matrix (len(y), len(x))) overrides the NNGP kernel of ``arch``; the
    integral is a tensor Gauss-Legendre sum (:func:`quadrature_grid`).
    """
    x = _check_x(x)
    y, w = quadrature_grid(cutoff, x.shape[1], n_quad)
    if kernel is None:
        kmat = nngp_kernel(arch, y, x, sigma_w=sigma_w, sigma_b=sigma_b)
    else:
        kmat = np.asarray(kernel(y, x), dtype=float)
    if kmat.shape != (len(y), len(x)):
        raise ValueError(f"kernel returned shape {kmat.shape}; expected {(len(y), len(x))}")
    return np.array([w @ np.prod(kmat[:, list(t)], axis=1) for t in tuples])


def relu_vertex_integral_exact(x, t, *, cutoff: float, sigma_w: float = 1.0) -> float:
    r"""Closed form of :func:`vertex_integrals` for ReLU, $\sigma_b = 0$, $d_{in} = 1$.

    $(\sigma_w^4/2)^n\prod|x_i|\Lambda^{n+1}/(n+1)$ if the $x_{t_k}$ share one sign, else 0.
    """
    cutoff = _check_cutoff(cutoff)
    x = _check_x(x)
    if x.shape[1] != 1:
        raise ValueError(f"the closed form needs d_in = 1; got d_in = {x.shape[1]}")
    v = x[list(t), 0]
    if not (np.all(v > 0) or np.all(v < 0)):
        return 0.0
    n = len(v)
    return float((sigma_w**4 / 2) ** n * np.prod(np.abs(v)) * cutoff ** (n + 1) / (n + 1))


def relu_quartic_exact(width, *, cutoff: float, sigma_w: float = 1.0):
    r"""Exact $\lambda = -25/(2N\sigma_w^8\Lambda^5)$ (ReLU, $\sigma_b=0$, $d_{in}=1$, one sign)."""
    cutoff = _check_cutoff(cutoff)
    w = np.asarray(width, dtype=float)
    if not np.all(w > 0):
        raise ValueError(f"width must be positive; got {width!r}")
    out = -25.0 / (2.0 * w * sigma_w**8 * cutoff**5)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------------------------
# Fits on Monte Carlo correlators
# ----------------------------------------------------------------------------------------------


def _pairings(items):
    """All perfect matchings of ``items`` (a tuple of positions)."""
    if not items:
        return [[]]
    a, rest = items[0], items[1:]
    out = []
    for i, b in enumerate(rest):
        for sub in _pairings(rest[:i] + rest[i + 1 :]):
            out.append([(a, b), *sub])
    return out


def _pair_index(t, pairing, pos2):
    return [pos2[tuple(sorted((t[a], t[b])))] for a, b in pairing]


class _Layout:
    """Index arrays that turn block means of products into correlators, vectorised."""

    def __init__(self, n_points):
        self.t2 = index_tuples(n_points, 2)
        self.t4 = index_tuples(n_points, 4)
        self.t6 = index_tuples(n_points, 6)
        pos2 = {t: i for i, t in enumerate(self.t2)}
        pos4 = {t: i for i, t in enumerate(self.t4)}
        p4, p6 = _pairings((0, 1, 2, 3)), _pairings(tuple(range(6)))
        self.wick4 = np.array([[_pair_index(t, p, pos2) for p in p4] for t in self.t4])
        self.wick6 = np.array([[_pair_index(t, p, pos2) for p in p6] for t in self.t6])
        # six-point first-order terms: pair (a, b) times the other four
        pair_of6, rest_of6 = [], []
        for t in self.t6:
            prs, rst = [], []
            for a, b in combinations(range(6), 2):
                prs.append(pos2[tuple(sorted((t[a], t[b])))])
                rst.append(pos4[tuple(sorted(t[k] for k in range(6) if k not in (a, b)))])
            pair_of6.append(prs)
            rest_of6.append(rst)
        self.pair_of6, self.rest_of6 = np.array(pair_of6), np.array(rest_of6)

    def wick(self, g2, idx):
        return np.prod(g2[idx], axis=-1).sum(-1)


@dataclass(frozen=True)
class CouplingFit:
    r"""$\lambda$ fitted on the connected four-point function, with its jackknife error.

    ``design`` is $A_t = -24\,I(t)$ per four-tuple, so the model is $G^{(4)}_c(t) = \lambda A_t$;
    ``g4c`` the measured connected function; ``chi2``/``dof`` the diagonal
    $\sum_t (G^{(4)}_c - \lambda A_t)^2/\sigma_t^2$ (indicative: tuples are correlated).
    """

    lam: float
    err: float
    tuples: list
    design: np.ndarray
    g4c: Estimate
    chi2: float
    dof: int


def _fit_weights(g4c: Estimate, design):
    err = np.where(g4c.error > 0, g4c.error, np.inf)
    w = design / err**2
    if not np.any(w != 0):
        raise ValueError("no four-point tuple constrains lambda (all vertex integrals vanish)")
    return w


def fit_quartic(f, design, *, n_blocks: int = 50) -> CouplingFit:
    r"""Weighted least-squares $\lambda$ from outputs ``f`` (n_nets, n_points[, 1]).

    ``design``: $A_t = -24 I(t)$ for the tuples of ``index_tuples(n_points, 4)``. The
    connected part uses the *measured* two-point function; $\lambda =
    \sum_t w_tG_c(t)/\sum_t w_tA_t$ with $w_t = A_t/\sigma_t^2$, jackknifed over blocks.
    """
    f = np.asarray(f)
    if f.ndim == 3:
        f = f[:, :, 0]
    lay = _Layout(f.shape[1])
    design = np.asarray(design, dtype=float)
    if design.shape != (len(lay.t4),):
        raise ValueError(
            f"design needs {len(lay.t4)} entries (one per 4-tuple); got {design.shape}"
        )
    bm = np.concatenate(
        [product_block_means(f, lay.t4, n_blocks), product_block_means(f, lay.t2, n_blocks)], 1
    )
    n4 = len(lay.t4)

    def conn(m):
        return m[:n4] - lay.wick(m[n4:], lay.wick4)

    g4c = jackknife(bm, conn)
    w = _fit_weights(g4c, design)
    est = jackknife(bm, lambda m: np.array([w @ conn(m) / (w @ design)]))
    lam = float(est.value[0])
    ok = g4c.error > 0
    chi2 = float((((g4c.value - lam * design) / g4c.error)[ok] ** 2).sum())
    return CouplingFit(lam, float(est.error[0]), lay.t4, design, g4c, chi2, int(ok.sum()) - 1)


def quartic_design(arch, x, *, cutoff, sigma_w=1.0, sigma_b=0.0, n_quad=64) -> np.ndarray:
    r"""$A_t = -24\int\prod_{k=1}^4K(y,x_{t_k})$ for all four-tuples of the rows of ``x``."""
    x = _check_x(x)
    t4 = index_tuples(x.shape[0], 4)
    i4 = vertex_integrals(
        arch, x, t4, cutoff=cutoff, sigma_w=sigma_w, sigma_b=sigma_b, n_quad=n_quad
    )
    return -24.0 * i4


def quartic_coupling(
    arch: str,
    x,
    width: int,
    n_nets: int,
    *,
    cutoff: float,
    seed: int,
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    n_blocks: int = 50,
) -> tuple[float, float]:
    r"""Quartic coupling $\lambda$ of ``n_nets`` one-hidden-layer networks and its error.

    Samples the ensemble (:func:`qftml.nnqft.ensemble_outputs`), measures the connected
    four-point function at all tuples of the inputs ``x`` (n_points, d_in) and fits
    $G^{(4)}_c = -24\lambda\int_{[-\Lambda,\Lambda]^d}\prod K$ (:func:`fit_quartic`).
    Returns ``(lam, err)``, the error from ``n_blocks`` jackknife blocks.
    """
    x = _check_x(x)
    design = quartic_design(arch, x, cutoff=cutoff, sigma_w=sigma_w, sigma_b=sigma_b)
    f = ensemble_outputs(arch, width, x, n_nets, sigma_w=sigma_w, sigma_b=sigma_b, seed=seed)
    fit = fit_quartic(f, design, n_blocks=n_blocks)
    return fit.lam, fit.err


@dataclass(frozen=True)
class SixPointTest:
    r"""Measured six-point deviation against the first-order prediction from fitted $\lambda$.

    Tuple averages of $\Delta G^{(6)}/G^{(6)}_{GP}$: ``measured`` (from $G^{(6)}$ minus Wick of
    the measured $G^{(2)}$), ``predicted`` (first order in $\lambda$, the $\lambda$ fitted on
    the same blocks), and ``residual = measured - predicted``, all jackknifed together;
    ``z = residual.value / residual.error``. ``lam`` is the fitted coupling.
    """

    measured: Estimate
    predicted: Estimate
    residual: Estimate
    lam: Estimate

    @property
    def z(self) -> float:
        return float(self.residual.value[0] / self.residual.error[0])


def sixpt_test(f, design, *, n_blocks: int = 50) -> SixPointTest:
    r"""Compare $G^{(6)} - G^{(6)}_{GP}$ with $\sum_{(a,b)}K_{ab}\,\lambda A(\text{rest})$.

    All quantities are functions of the same block means (6-, 4- and 2-point products), so
    the jackknife propagates the error of the fitted $\lambda$ into the prediction.
    """
    f = np.asarray(f)
    if f.ndim == 3:
        f = f[:, :, 0]
    lay = _Layout(f.shape[1])
    design = np.asarray(design, dtype=float)
    n6, n4 = len(lay.t6), len(lay.t4)
    bm = np.concatenate(
        [
            product_block_means(f, lay.t6, n_blocks),
            product_block_means(f, lay.t4, n_blocks),
            product_block_means(f, lay.t2, n_blocks),
        ],
        1,
    )

    def parts(m):
        g6, g4, g2 = m[:n6], m[n6 : n6 + n4], m[n6 + n4 :]
        conn = g4 - lay.wick(g2, lay.wick4)
        return g6, conn, g2

    g4c = jackknife(bm, lambda m: parts(m)[1])
    w = _fit_weights(g4c, design)

    def all_of(m):
        g6, conn, g2 = parts(m)
        lam = w @ conn / (w @ design)
        gp6 = lay.wick(g2, lay.wick6)
        meas = np.mean((g6 - gp6) / gp6)
        pred = np.mean((g2[lay.pair_of6] * (lam * design[lay.rest_of6])).sum(1) / gp6)
        return np.array([meas, pred, meas - pred, lam])

    est = jackknife(bm, all_of)
    pick = [Estimate(est.value[i : i + 1], est.error[i : i + 1]) for i in range(4)]
    return SixPointTest(*pick)
