"""Valid flux configurations built by hand, for tests that need many without the sampler."""

from __future__ import annotations

import numpy as np

from qftml.lattice import divergence


def plaquette_loops(n, lattice, rng, loops=6):
    """``n`` valid configurations (zero divergence) on ``lattice = (N_t, N_x)``: sums of
    ``loops`` random unit plaquette circulations each, with random ``l ~ Poisson(0.7)``."""
    nt, nx = lattice
    k = np.zeros((n, 2, nt, nx), dtype=np.int32)
    i = np.arange(n)
    for _ in range(loops):
        t, x = rng.integers(0, nt, n), rng.integers(0, nx, n)
        s = rng.choice([-1, 1], n)
        k[i, 0, t, x] += s  # (t, x) -> (t, x+1)
        k[i, 1, t, (x + 1) % nx] += s  # -> (t+1, x+1)
        k[i, 0, (t + 1) % nt, x] -= s  # <- (t+1, x)
        k[i, 1, t, x] -= s  # <- (t, x)
    l = rng.poisson(0.7, size=k.shape).astype(np.int32)
    assert (divergence(k) == 0).all()
    return k, l
