r"""Symmetry via duality: Haar-random group elements and invariance tests of correlators.

A transformation $f\mapsto\Phi f$ leaves the network density invariant when every
correlator is invariant, $G^{(n)} = \mathbb E[\Phi(f)(x_1)\cdots\Phi(f)(x_n)]$, and the
latter holds when $\Phi$ can be absorbed into a change of variables of parameters whose
distribution is invariant :cite:p:`Maiti:2021fpy`. The test here is the dual, Monte Carlo,
statement: estimate all correlators of the ensemble before and after the transformation
on the *same* networks, and test their difference against zero with Hotelling's $T^2$
over block means (which accounts for the correlations between components).

Group elements: Haar-random $SO(D)$ and $U(D)$ matrices from the QR decomposition of a
Gaussian matrix with the phases of $R$'s diagonal fixed :cite:p:`Mezzadri:2007`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
from scipy import stats

from .correlators import Estimate, jackknife, product_block_means


def haar_orthogonal(dim: int, rng: np.random.Generator, *, special: bool = True) -> np.ndarray:
    """Haar-random $O(D)$ (``special``: $SO(D)$) matrix :cite:p:`Mezzadri:2007`."""
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1; got {dim!r}")
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    if special and np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def haar_unitary(dim: int, rng: np.random.Generator, *, special: bool = False) -> np.ndarray:
    """Haar-random $U(D)$ (``special``: $SU(D)$) matrix :cite:p:`Mezzadri:2007`."""
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1; got {dim!r}")
    z = (rng.standard_normal((dim, dim)) + 1j * rng.standard_normal((dim, dim))) / np.sqrt(2)
    q, r = np.linalg.qr(z)
    d = np.diag(r)
    q = q * (d / np.abs(d))
    if special:
        q = q / np.linalg.det(q) ** (1.0 / dim)
    return q


def real_sites(f: np.ndarray) -> np.ndarray:
    r"""Flatten outputs (n_nets, n_points, d_out) to real 'sites' (n_nets, n_sites).

    Complex outputs become (Re f, Im f): their real n-point functions contain every
    correlator of $f$ and $\bar f$, so invariance of one set is invariance of the other.
    """
    f = np.asarray(f)
    if f.ndim == 2:
        f = f[:, :, None]
    if f.ndim != 3:
        raise ValueError(f"outputs must have shape (n_nets, n_points, d_out); got {f.shape}")
    if np.iscomplexobj(f):
        f = np.concatenate([f.real, f.imag], axis=2)
    return f.reshape(f.shape[0], -1)


def site_tuples(n_sites: int, orders=(1, 2, 3, 4)) -> list[tuple[int, ...]]:
    """Distinct index tuples of all correlators of the given orders."""
    return [t for n in orders for t in combinations_with_replacement(range(n_sites), n)]


@dataclass(frozen=True)
class InvarianceTest:
    r"""Difference of correlators after minus before a transformation, and its test.

    ``before``/``after``/``diff`` are Estimates per tuple; ``t2`` Hotelling's statistic,
    ``dof`` the numerical rank used, ``p_value`` from $F(\text{dof}, B-\text{dof})$;
    ``max_z`` the largest absolute difference in standard errors.
    """

    tuples: list
    before: Estimate
    after: Estimate
    diff: Estimate
    t2: float
    dof: int
    p_value: float
    max_z: float

    def summary(self) -> str:
        return (
            f"{len(self.tuples)} correlators: max |z| = {self.max_z:.2f}, "
            f"T^2 = {self.t2:.1f} (rank {self.dof}), p = {self.p_value:.3g}"
        )


def invariance_test(
    before: np.ndarray, after: np.ndarray, *, orders=(1, 2, 3, 4), n_blocks: int | None = None
) -> InvarianceTest:
    r"""Test $\mathbb E[\prod f] = \mathbb E[\prod \Phi f]$ for all correlators of ``orders``.

    ``before`` and ``after`` are outputs of the *same* networks (shape (n_nets, n_points,
    d_out), real or complex), untransformed and transformed. Under the null hypothesis
    (invariance) the block means of the differences have mean zero; Hotelling's
    $T^2 = B\,\bar d^{\,T} S^{+} \bar d$ with $S$ their sample covariance gives
    $\frac{B-r}{r(B-1)}T^2\sim F(r, B-r)$, $r$ the rank of $S$. The number of blocks
    $B$ defaults to ``max(100, 4 * n_correlators)``: $S$ must be well estimated.
    """
    a, b = real_sites(before), real_sites(after)
    if a.shape != b.shape:
        raise ValueError(f"before and after differ in shape: {a.shape} != {b.shape}")
    tuples = site_tuples(a.shape[1], orders)
    if n_blocks is None:
        n_blocks = max(100, 4 * len(tuples))
    if n_blocks < 2 * len(tuples) or a.shape[0] < 20 * n_blocks:
        raise ValueError(
            f"{len(tuples)} correlators need n_blocks >= {2 * len(tuples)} blocks of >= 20 "
            f"networks; got n_blocks={n_blocks} for {a.shape[0]} networks"
        )
    bm_a = product_block_means(a, tuples, n_blocks)
    bm_b = product_block_means(b, tuples, n_blocks)
    d = bm_b - bm_a
    # drop components that vanish identically (e.g. when a transformation is trivial on them)
    scale = np.maximum(np.abs(bm_a).mean(0), np.abs(bm_b).mean(0))
    live = np.abs(d).max(0) > 1e-12 * np.maximum(scale, 1e-300)
    dl = d[:, live]
    mean = dl.mean(0)
    cov = np.cov(dl, rowvar=False).reshape(dl.shape[1], dl.shape[1]) if dl.shape[1] else None
    if dl.shape[1] == 0:
        t2, r, p = 0.0, 0, 1.0
    else:
        evals, evecs = np.linalg.eigh(cov)
        keep = evals > 1e-10 * evals.max()
        r = int(keep.sum())
        order = np.argsort(evals)[::-1][:r]
        proj = evecs[:, order].T @ mean
        t2 = float(n_blocks * np.sum(proj**2 / evals[order]))
        fstat = (n_blocks - r) / (r * (n_blocks - 1)) * t2
        p = float(stats.f.sf(fstat, r, n_blocks - r))
    diff = jackknife(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(diff.error > 0, np.abs(diff.value) / diff.error, 0.0)
    return InvarianceTest(
        tuples=tuples,
        before=jackknife(bm_a),
        after=jackknife(bm_b),
        diff=diff,
        t2=t2,
        dof=r,
        p_value=p,
        max_z=float(z.max()),
    )


def rotate_outputs(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    r"""$f_i \mapsto g_{ij} f_j$ for outputs (n_nets, n_points, D) and a (D, D) matrix."""
    f = np.asarray(f)
    g = np.asarray(g)
    if g.shape != (f.shape[-1], f.shape[-1]):
        raise ValueError(f"group element of shape {g.shape} does not act on d_out={f.shape[-1]}")
    return f @ g.T
