r"""Closed-form NNGP kernels and exact finite-width correlators of one-hidden-layer networks.

**Kernels.** With the first-layer covariance
$C(x, x') = \sigma_b^2 + \sigma_w^2\, x\cdot x'/d_{in}$ of the pre-activations $z = W^0x+b^0$,
the output two-point function of :func:`qftml.nnqft.ensemble_outputs` is, at *every* width,

$$ K(x, x') = \mathbb E[f(x) f(x')] = \sigma_b^2 + \sigma_w^2\, \mathbb E[\varphi(z)\varphi(z')] $$

because $f - b^1$ is a sum of $N$ i.i.d. terms with variance $\sigma_w^2/N$ times
$\mathbb E[\varphi\varphi']$. Closed forms of $\mathbb E[\varphi\varphi']$:

* erf, the arcsine kernel :cite:p:`Williams:1997`:
  $\frac{2}{\pi}\arcsin\frac{2C_{12}}{\sqrt{(1+2C_{11})(1+2C_{22})}}$;
* ReLU, the arc-cosine kernel of degree 1 :cite:p:`Cho:2009`:
  $\frac{\sqrt{C_{11}C_{22}}}{2\pi}\,(\sin\theta + (\pi-\theta)\cos\theta)$,
  $\cos\theta = C_{12}/\sqrt{C_{11}C_{22}}$;
* Gauss-net :cite:p:`Halverson:2020trp`: $e^{C_{12} - (C_{11}+C_{22})/2}
  = e^{-\sigma_w^2|x-x'|^2/(2d_{in})}$ (lognormal moments, derivation in the chapter);
* cos with a bias uniform on the circle: $\tfrac12 e^{-2\pi^2\sigma_w^2|x-x'|^2/d_{in}}$
  (random Fourier features; $\sigma_b$ then only enters through $b^1$).

Deep kernels follow from the recursion $K^{l+1} = \sigma_b^2 + \sigma_w^2 F(K^l)$ with the
same maps $F$ applied to the previous layer's covariance :cite:p:`Lee:2018`.

**Exact finite width.** The $N$ hidden units $u_j(x) = W^1_j\varphi(z_j(x))$ are i.i.d. and
symmetric, so the joint cumulants of $f$ are $\kappa_n(f) = N\kappa_n(u)$ for $n>2$, and
$\kappa_2(f) = K$. With the single-neuron moments $M(x_1..x_m) = \mathbb E[\prod\varphi(z(x_a))]$,
$\mathbb E[u_1\cdots u_m] = (m-1)!!\,(\sigma_w^2/N)^{m/2} M(x_1..x_m)$ and for instance

$$ G^{(4)}_c(x_1..x_4) = \frac{\sigma_w^4}{N}\Big[3M_{1234} - M_{12}M_{34} - M_{13}M_{24}
   - M_{14}M_{23}\Big] . $$

:func:`exact_npoint` assembles any $G^{(n)}$ from these cumulants over set partitions, so
the $1/N$ (and $1/N^2$) corrections are exact, not fitted. The moments $M$ are closed form
for the Gauss-net, $M = \exp(\tfrac12\sum_{ab}C_{ab} - \sum_a C_{aa})$, and otherwise
computed by quadrature (:func:`neuron_moment`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.special import erf, gammaln, roots_hermite, roots_legendre

from .ensemble import _check_x

KERNEL_ARCHS = ("erf", "relu", "gauss", "cos")


def input_covariance(x, x2=None, *, sigma_w: float = 1.0, sigma_b: float = 1.0) -> np.ndarray:
    r"""$C(x, x') = \sigma_b^2 + \sigma_w^2\,x\cdot x'/d_{in}$, covariance of $z = W^0x + b^0$."""
    x = _check_x(x)
    x2 = x if x2 is None else _check_x(x2)
    if x2.shape[1] != x.shape[1]:
        raise ValueError(f"x and x2 have different d_in: {x.shape[1]} != {x2.shape[1]}")
    return sigma_b**2 + sigma_w**2 * (x @ x2.T) / x.shape[1]


def _f_map(arch: str, c11, c22, c12):
    r"""$\mathbb E[\varphi(z)\varphi(z')]$ for a centred Gaussian pair of covariance ``c``."""
    if arch == "erf":
        arg = 2 * c12 / np.sqrt((1 + 2 * c11) * (1 + 2 * c22))
        return 2 / np.pi * np.arcsin(np.clip(arg, -1.0, 1.0))
    if arch == "relu":
        norm = np.sqrt(c11 * c22)
        cos = np.clip(np.divide(c12, norm, out=np.ones_like(norm), where=norm > 0), -1, 1)
        theta = np.arccos(cos)
        return norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)
    if arch == "gauss":
        return np.exp(c12 - 0.5 * (c11 + c22))
    raise ValueError(f"no closed-form kernel map for {arch!r}")


def _check_arch(arch):
    if arch not in KERNEL_ARCHS:
        raise ValueError(f"unknown arch {arch!r}; closed-form kernels exist for {KERNEL_ARCHS}")


def nngp_kernel(
    arch: str, x, x2=None, *, sigma_w: float = 1.0, sigma_b: float = 1.0, depth: int = 1
) -> np.ndarray:
    """NNGP kernel $K(x_a, x'_b)$ of the ensemble of :func:`ensemble_outputs` (shape (n, m)).

    Exact at every width for one hidden layer; ``depth > 1`` (erf, relu) gives the
    infinite-width kernel of ``depth`` hidden layers via the layer recursion.
    """
    _check_arch(arch)
    if int(depth) < 1:
        raise ValueError(f"depth must be >= 1; got {depth!r}")
    x = _check_x(x)
    x2 = x if x2 is None else _check_x(x2)
    if arch == "cos":
        if depth != 1:
            raise ValueError("the 'cos' kernel is defined for one hidden layer")
        d2 = ((x[:, None, :] - x2[None, :, :]) ** 2).sum(-1)
        return sigma_b**2 + sigma_w**2 * 0.5 * np.exp(-2 * np.pi**2 * sigma_w**2 * d2 / x.shape[1])
    if arch == "gauss" and depth != 1:
        raise ValueError("the Gauss-net is defined for one hidden layer")
    kw = dict(sigma_w=sigma_w, sigma_b=sigma_b)
    c12 = input_covariance(x, x2, **kw)
    c11 = sigma_b**2 + sigma_w**2 * (x**2).sum(1) / x.shape[1]
    c22 = sigma_b**2 + sigma_w**2 * (x2**2).sum(1) / x.shape[1]
    for _ in range(int(depth)):
        c12 = sigma_b**2 + sigma_w**2 * _f_map(arch, c11[:, None], c22[None, :], c12)
        c11 = sigma_b**2 + sigma_w**2 * _f_map(arch, c11, c11, c11)
        c22 = sigma_b**2 + sigma_w**2 * _f_map(arch, c22, c22, c22)
    return c12


# ----------------------------------------------------------------------------------------------
# Single-neuron moments M(x_1..x_m) = E[prod_a phi(w.x_a + b)]
# ----------------------------------------------------------------------------------------------


def _act(arch):
    return {"erf": erf, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}[arch]


@lru_cache(maxsize=8)
def _hermite(n):
    t, w = roots_hermite(n)
    return t * math.sqrt(2.0), w / math.sqrt(math.pi)  # nodes/weights for N(0, 1)


@lru_cache(maxsize=8)
def _legendre(n):
    return roots_legendre(n)


def _factor(c, tol=1e-12):
    """``L`` with ``L @ L.T = c`` restricted to the numerical rank of ``c``."""
    evals, evecs = np.linalg.eigh(c)
    keep = evals > tol * max(evals.max(), 1e-300)
    return evecs[:, keep] * np.sqrt(evals[keep])


def _relu_sphere_average(lmat, n_quad):
    r"""Average over the unit sphere $S^{r-1}$ ($r\le 2$) of $\prod_a \max(\ell_a\cdot u, 0)$."""
    r = lmat.shape[1]
    if r == 1:
        ell = lmat[:, 0]
        return 0.5 * sum(np.prod(np.maximum(s * ell, 0.0)) for s in (1.0, -1.0))
    # circle: the product is smooth between the zeros of l_a . u(t); Gauss-Legendre per arc
    zeros = np.arctan2(-lmat[:, 0], lmat[:, 1])
    cuts = np.sort(np.concatenate([zeros % (2 * np.pi), zeros % (2 * np.pi) + np.pi]) % (2 * np.pi))
    cuts = np.concatenate([[0.0], cuts, [2 * np.pi]])
    t, w = _legendre(n_quad)
    total = 0.0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b - a < 1e-15:
            continue
        tt = 0.5 * (b - a) * t + 0.5 * (a + b)
        u = np.stack([np.cos(tt), np.sin(tt)])
        total += 0.5 * (b - a) * (w * np.prod(np.maximum(lmat @ u, 0.0), axis=0)).sum()
    return total / (2 * np.pi)


def neuron_moment(
    arch: str, x, *, sigma_w: float = 1.0, sigma_b: float = 1.0, n_quad: int = 96
) -> float:
    r"""$M(x_1..x_m) = \mathbb E\big[\prod_a \varphi(W^0x_a + b^0)\big]$ for one hidden unit.

    ``x`` is (m, d_in); repeated rows are allowed. Exact for ``gauss``; for ``relu`` exact up
    to Gauss-Legendre rounding (the product is homogeneous, so the radial integral is
    $\mathbb E\rho^m$ and the angular one is done piecewise between the kinks; needs a
    pre-activation covariance of rank <= 2, e.g. $d_{in}=1$); for ``erf``/``tanh`` by
    tensor Gauss-Hermite quadrature over the rank (<= 3) of the covariance.
    """
    x = _check_x(x)
    c = input_covariance(x, sigma_w=sigma_w, sigma_b=sigma_b)
    m = x.shape[0]
    if arch == "gauss":
        return float(np.exp(0.5 * c.sum() - np.trace(c)))
    if arch not in ("erf", "tanh", "relu"):
        raise ValueError(f"no single-neuron moments for {arch!r}; use erf, tanh, relu or gauss")
    lmat = _factor(c)
    r = lmat.shape[1]
    if arch == "relu":
        if r > 2:
            raise ValueError(f"relu moments need a covariance of rank <= 2; got rank {r}")
        # E[rho^m] for rho = |xi|, xi ~ N(0, 1_r)
        log_rho = (m / 2) * math.log(2) + gammaln((m + r) / 2) - gammaln(r / 2)
        return float(math.exp(log_rho) * _relu_sphere_average(lmat, n_quad))
    if r > 3:
        raise ValueError(f"quadrature supports a covariance of rank <= 3; got rank {r}")
    t, w = _hermite(n_quad if r < 3 else min(n_quad, 48))
    grids = np.meshgrid(*([t] * r), indexing="ij")
    weights = np.prod(np.meshgrid(*([w] * r), indexing="ij"), axis=0).ravel()
    xi = np.stack([g.ravel() for g in grids])  # (r, q^r)
    z = lmat @ xi
    return float((weights * np.prod(_act(arch)(z), axis=0)).sum())


# ----------------------------------------------------------------------------------------------
# Exact finite-width n-point functions of one-hidden-layer networks
# ----------------------------------------------------------------------------------------------


def even_partitions(items: tuple) -> list[list[tuple]]:
    """All set partitions of ``items`` into blocks of even size (odd moments vanish)."""
    items = tuple(items)
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    n = len(rest)
    for mask in range(1, 2**n):
        size = bin(mask).count("1")
        if size % 2 == 0:
            continue  # the block holding `first` has 1 + size elements: must be even
        block = (first, *(rest[i] for i in range(n) if mask >> i & 1))
        remaining = tuple(rest[i] for i in range(n) if not mask >> i & 1)
        for sub in even_partitions(remaining):
            out.append([block, *sub])
    return out


def _double_factorial(k):
    return math.prod(range(k, 0, -2)) if k > 0 else 1


class MomentTable:
    """Cache of single-neuron moments $M$ keyed by the sorted tuple of point indices."""

    def __init__(self, arch, x, *, sigma_w=1.0, sigma_b=1.0, n_quad=96):
        self.arch, self.x = arch, _check_x(x)
        self.kw = dict(sigma_w=sigma_w, sigma_b=sigma_b, n_quad=n_quad)
        self.sigma_w, self.sigma_b = sigma_w, sigma_b
        self.table: dict[tuple[int, ...], float] = {}
        self._grid = None
        if arch in ("erf", "tanh") and self.x.shape[1] == 1:
            # d_in = 1: one Gauss-Hermite grid over (w, b) serves every tuple of points
            t, w = _hermite(n_quad)
            xi_w, xi_b = (g.ravel() for g in np.meshgrid(t, t, indexing="ij"))
            z = sigma_w * self.x[:, :1] * xi_w + sigma_b * xi_b  # (n_points, q^2)
            self._grid = (_act(arch)(z), np.outer(w, w).ravel())

    def __call__(self, points) -> float:
        key = tuple(sorted(int(p) for p in points))
        if key not in self.table:
            if self._grid is not None:
                phi, weights = self._grid
                self.table[key] = float(weights @ np.prod(phi[list(key)], axis=0))
            else:
                self.table[key] = neuron_moment(self.arch, self.x[list(key)], **self.kw)
        return self.table[key]


def npoint_coefficients(table: MomentTable, idx, *, connected: bool = False) -> dict[int, float]:
    r"""$G^{(n)}$ at ``idx`` as a polynomial in $1/N$: ``{power: coefficient}``.

    A partition of the $n$ points into blocks $B$ contributes $\prod_B\kappa_f(B)$, and
    $\kappa_f(B)\propto N^{1-|B|/2}$, so the power of $1/N$ is $\sum_B(|B|/2-1)$.
    """
    idx = tuple(int(i) for i in idx)
    sw, sb = table.sigma_w, table.sigma_b

    def moment(block):
        return table([idx[i] for i in block])

    def mu_u(block):  # E[u_{a1}..u_{am}] * N^{m/2} / sigma_w^m
        return _double_factorial(len(block) - 1) * moment(block)

    def kappa(block):  # (coefficient, power of 1/N) of the joint cumulant of f
        m = len(block)
        if m == 2:
            return sb**2 + sw**2 * moment(block), 0
        k_u = 0.0
        for part in even_partitions(block):
            q = len(part)
            k_u += (-1) ** (q - 1) * math.factorial(q - 1) * math.prod(mu_u(b) for b in part)
        return sw**m * k_u, m // 2 - 1

    positions = tuple(range(len(idx)))
    if len(idx) % 2:
        return {0: 0.0}
    parts = [[positions]] if connected else even_partitions(positions)
    out: dict[int, float] = {}
    for part in parts:
        terms = [kappa(b) for b in part]
        power = sum(p for _, p in terms)
        out[power] = out.get(power, 0.0) + math.prod(c for c, _ in terms)
    return out


def _evaluate(coefs: dict[int, float], width):
    inv = 1.0 / np.asarray(width, dtype=float)  # 0 at width = inf
    return sum(c * (inv**p if p else np.ones_like(inv)) for p, c in coefs.items())


def exact_npoint(
    arch: str,
    x,
    idx,
    width,
    *,
    sigma_w: float = 1.0,
    sigma_b: float = 1.0,
    connected: bool = False,
    n_quad: int = 96,
    table: MomentTable | None = None,
):
    r"""Exact $G^{(n)}(x_{i_1},\dots,x_{i_n})$ of one-hidden-layer networks of width ``width``.

    ``idx`` indexes rows of ``x``; ``width`` may be an array, and ``inf`` gives the
    Gaussian-process (Wick) value. ``connected`` returns the connected part (the joint
    cumulant) instead. ``table`` shares computed moments between calls.
    """
    x = _check_x(x)
    idx = tuple(int(i) for i in idx)
    if not idx or min(idx) < 0 or max(idx) >= x.shape[0]:
        raise ValueError(f"idx {idx!r} does not index the {x.shape[0]} points of x")
    if not np.all(np.asarray(width, dtype=float) > 0):
        raise ValueError(f"width must be positive; got {width!r}")
    if table is None:
        table = MomentTable(arch, x, sigma_w=sigma_w, sigma_b=sigma_b, n_quad=n_quad)
    value = _evaluate(npoint_coefficients(table, idx, connected=connected), width)
    return float(value) if np.ndim(value) == 0 else np.asarray(value)
