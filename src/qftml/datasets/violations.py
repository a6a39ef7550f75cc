"""Flux violations: open worms inserted into valid configurations (tasks 2 and 3).

A valid dual configuration obeys the flux constraint at every site,
``div k (x) = sum_nu (k_{x,nu} - k_{x-nu_hat,nu}) = 0`` :cite:p:`Gattringer:2012df`. An *open
worm* is a string of unit changes of ``k`` along a lattice path from a start site ``a`` to an
end site ``b``: a step ``y -> y + nu_hat`` adds ``+1`` to ``k_{y,nu}``, a step
``y -> y - nu_hat`` adds ``-1`` to ``k_{y-nu_hat,nu}``. Every site inside the path receives
as much flux as it sends, so only the ends change:

    div k -> div k + delta_{x,a} - delta_{x,b}.

For ``a != b`` a single worm thus creates exactly two violating sites (a source with
``div = +1`` and a sink with ``div = -1``) :cite:p:`Bulusu:2021njs,Favoni:2021talk`. Worms are
placed so that their ends never meet: every source and sink lands on a site whose divergence
is still zero (a start is redrawn, a walk whose end would land on a taken site or on its own
start is discarded and redrawn). A valid configuration with ``W`` worms thus has exactly
``2 W`` sites with ``|div k| = 1`` and none with ``|div k| >= 2``, and the label of task 3 is
the number of worms, as in the source :cite:p:`Favoni:2021talk`::

    W = sum_x |div k (x)| / 2

Paths are non-backtracking random walks (a step never undoes the previous one) of a length
drawn uniformly from ``length = (min, max)``; a walk that is back at its start after its
last step takes one more step, so every single worm is open. The field ``l`` carries no
constraint and is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lattice import divergence

#: Step directions: (component nu, sign). nu = 0 is space (last array axis), 1 is time.
_DIRECTIONS = ((0, +1), (1, +1), (0, -1), (1, -1))


@dataclass
class Insertion:
    """Result of :func:`insert_worms`.

    ``k``: the configurations with the worms (int32 copy, shape ``(N, 2, nt, nx)``);
    ``n_violations``: sites with nonzero divergence per configuration (``2 n_worms`` on a
    valid input);
    ``n_worms``: worms inserted per configuration, the label of task 3 (both plain ints for
    a single configuration ``(2, nt, nx)``);
    ``sources`` / ``sinks``: ``(config, t, x)`` rows, one per worm, of the start and end
    site of every worm (their ``+1`` / ``-1`` contributions to the divergence).
    """

    k: np.ndarray
    n_violations: np.ndarray
    n_worms: np.ndarray
    sources: np.ndarray
    sinks: np.ndarray


def _check_length(length) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in length)
    except (TypeError, ValueError):
        raise ValueError(f"length must be a (min, max) pair of integers; got {length!r}") from None
    if not 1 <= lo <= hi:
        raise ValueError(f"length must satisfy 1 <= min <= max; got {length!r}")
    return lo, hi


#: Redraws of a worm whose end would share a site before :func:`insert_worms` gives up.
_MAX_ATTEMPTS = 1000


def _walk(out, div, idx, rng, lo, hi):
    """One worm in each configuration ``idx`` of ``out``, with a source on a site of zero
    divergence (redrawn until it is) and a sink on another such site: a walk whose end lands
    on its own start or on a site with ``div != 0`` is discarded (``acc`` False, ``out`` and
    ``div`` untouched there). Accepted walks are added to ``out`` and their ends to ``div``."""
    _, _, nt, nx = out.shape
    m = len(idx)
    t = rng.integers(0, nt, size=m)
    x = rng.integers(0, nx, size=m)
    for _ in range(_MAX_ATTEMPTS):  # a source only where no end is yet
        bad = np.flatnonzero(div[idx, t, x] != 0)
        if not len(bad):
            break
        t[bad] = rng.integers(0, nt, size=len(bad))
        x[bad] = rng.integers(0, nx, size=len(bad))
    else:
        raise RuntimeError(f"no free site for a worm's source after {_MAX_ATTEMPTS} draws")
    steps = rng.integers(lo, hi + 1, size=m)
    t0, x0 = t.copy(), x.copy()
    prev = np.full(m, -1)
    links = []  # (selected rows, component, t, x, sign) of every unit change
    for s in range(hi + 1):
        # extra step only where the walk is back at its start after its last step
        moving = (s < steps) | ((s == steps) & (t == t0) & (x == x0))
        first = rng.integers(0, 4, size=m)
        turn = rng.integers(0, 3, size=m)
        d = np.where(prev < 0, first, (prev + 3 + turn) % 4)  # never (prev + 2) % 4
        if not moving.any():
            continue
        for code, (nu, sign) in enumerate(_DIRECTIONS):
            sel = np.flatnonzero(moving & (d == code))
            if not len(sel):
                continue
            tt, xx = t[sel], x[sel]
            if nu == 0:
                xn = (xx + sign) % nx
                links.append((sel, 0, tt, xx if sign > 0 else xn, sign))
                x[sel] = xn
            else:
                tn = (tt + sign) % nt
                links.append((sel, 1, tt if sign > 0 else tn, xx, sign))
                t[sel] = tn
        prev = np.where(moving, d, prev)
    acc = (div[idx, t, x] == 0) & ((t != t0) | (x != x0))
    for sel, nu, tt, xx, sign in links:
        keep = acc[sel]
        out[idx[sel[keep]], nu, tt[keep], xx[keep]] += sign
    div[idx[acc], t0[acc], x0[acc]] += 1
    div[idx[acc], t[acc], x[acc]] -= 1
    return acc, t0, x0, t, x


def insert_worms(
    k: np.ndarray,
    n_worms: int | np.ndarray,
    rng: np.random.Generator,
    *,
    length: tuple[int, int] = (1, 16),
) -> Insertion:
    """Insert ``n_worms`` open worms into each configuration of ``k``.

    Parameters
    ----------
    k : int array ``(N, 2, nt, nx)`` (or one configuration ``(2, nt, nx)``).
        Usually valid configurations; the divergence they already have is kept, and no
        worm ends on a site where it is nonzero.
    n_worms : worms per configuration, an int or an int array of shape ``(N,)``.
    rng : the random generator (all random numbers come from it: same seed, same worms).
    length : ``(min, max)`` number of steps of a worm, drawn uniformly.

    No two ends share a site and no end lands where ``div k != 0`` already; a configuration
    needs ``2 n_worms`` sites of zero divergence (else ``ValueError``). The walks of all
    configurations advance together (vectorized over ``N``); a rejected start or walk is
    redrawn from ``rng`` (same seed, same worms).
    """
    k = np.asarray(k)
    single = k.ndim == 3
    if single:
        k = k[None]
    if k.ndim != 4 or k.shape[1] != 2:
        raise ValueError(f"k must have shape (N, 2, nt, nx) or (2, nt, nx); got {k.shape}")
    if not np.issubdtype(k.dtype, np.integer):
        raise ValueError(f"k must be an integer array; got dtype {k.dtype}")
    n, _, nt, nx = k.shape
    if nt < 2 or nx < 2:
        raise ValueError(f"worms need a lattice of at least 2 x 2 sites; got nt={nt}, nx={nx}")
    lo, hi = _check_length(length)
    worms = np.broadcast_to(np.asarray(n_worms), (n,))
    if not np.issubdtype(worms.dtype, np.integer) or (worms < 0).any():
        raise ValueError(f"n_worms must be non-negative integers; got {n_worms!r}")
    worms = worms.astype(np.int64)

    out = k.astype(np.int32, copy=True)
    div = divergence(out).astype(np.int64)  # kept up to date: +1 at sources, -1 at sinks
    free = np.count_nonzero(div == 0, axis=(-2, -1))
    if n and (2 * worms > free).any():
        i = int(np.flatnonzero(2 * worms > free)[0])
        raise ValueError(
            f"configuration {i}: {int(worms[i])} worms need {2 * int(worms[i])} free sites "
            f"(zero divergence), it has {int(free[i])}"
        )
    sources, sinks = [], []
    for r in range(int(worms.max()) if n else 0):
        pending = np.flatnonzero(worms > r)
        for _attempt in range(_MAX_ATTEMPTS):
            if not len(pending):
                break
            acc, t0, x0, t, x = _walk(out, div, pending, rng, lo, hi)
            sources.append(np.stack([pending[acc], t0[acc], x0[acc]], axis=1))
            sinks.append(np.stack([pending[acc], t[acc], x[acc]], axis=1))
            pending = pending[~acc]
        else:
            if len(pending):
                raise RuntimeError(
                    f"could not place worm {r + 1} without sharing an end in configuration "
                    f"{int(pending[0])} after {_MAX_ATTEMPTS} attempts"
                )
    empty = np.zeros((0, 3), dtype=np.int64)
    sources_a = np.concatenate(sources) if sources else empty
    sinks_a = np.concatenate(sinks) if sinks else empty
    nviol = np.count_nonzero(divergence(out), axis=(-2, -1))
    worms = worms.copy()
    if single:  # one configuration in, one out: scalars for the counts
        out, nviol, worms = out[0], int(nviol[0]), int(worms[0])
    return Insertion(out, nviol, worms, sources_a, sinks_a)


def endpoint_divergence(ins: Insertion, shape: tuple[int, int, int]) -> np.ndarray:
    """Divergence the worms' ends add, ``sum_w (delta_{x,a_w} - delta_{x,b_w})``, of shape
    ``(N, nt, nx)``: an independent check of :func:`insert_worms` (its divergence change)."""
    div = np.zeros(shape, dtype=np.int64)
    np.add.at(div, tuple(ins.sources.T), 1)
    np.add.at(div, tuple(ins.sinks.T), -1)
    return div
