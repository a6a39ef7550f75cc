"""Speed of the worm sampler on the training lattice.

N_t x N_x = 60 x 4, eta = 4.01, lambda = 1, mu = 1.

Prints: worm head moves per second (worms alone, on a thermalized configuration), sweeps per
second of :func:`qftml.lattice.sample`, and the cost of one statistically independent |phi|^2
sample, ``time x 2 tau_int / N`` (with tau_int in sweeps from the Gamma method). Also the
throughput of many parameter points over processes (``--jobs``).

    .venv/bin/python benchmarks/bench_worm.py [--configs 20000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from numba import njit

from qftml import lattice
from qftml.lattice.weights import log_weights, ratio_tables
from qftml.lattice.worm import _seed, _worm

NT, NX, ETA, LAM, MU = 60, 4, 4.01, 1.0, 1.0


@njit(cache=True)
def _worms(k, l, f, up1, dn1, e_mu, f_limit, stats, n_worms):  # noqa: E741
    for _ in range(n_worms):
        if _worm(k, l, f, up1, dn1, e_mu, f_limit, stats) < 0:
            return 1
    return 0


def head_moves_per_second(n_worms: int = 200_000, repeats: int = 5) -> tuple[float, float]:
    """Best-of-``repeats`` head moves per second, on the last configuration of a short chain."""
    ens = lattice.sample(NT, NX, ETA, LAM, MU, 1, seed=1, n_therm=500)
    f_table = 256
    tab = ratio_tables(log_weights(ETA, LAM, f_table))
    k, l = ens.k[0].copy(), ens.l[0].copy()  # noqa: E741
    f = np.zeros((NT, NX), np.int32)
    from qftml.lattice.worm import _site_f

    _site_f(k, l, f)
    _seed(7)
    stats = np.zeros(6, np.int64)
    _worms(k, l, f, tab["up1"], tab["dn1"], math.exp(MU), f_table - 2, stats, 10)  # compile
    rates = []
    for _ in range(repeats):
        stats[:] = 0
        t0 = time.perf_counter()
        status = _worms(k, l, f, tab["up1"], tab["dn1"], math.exp(MU), f_table - 2, stats, n_worms)
        dt = time.perf_counter() - t0
        assert status == 0
        rates.append(stats[0] / dt)
    return max(rates), float(np.median(rates))


def _point(args):
    mu, n_configs, seed = args
    ens = lattice.sample(NT, NX, ETA, LAM, mu, n_configs, seed=seed, n_therm=200)
    return float(ens.phi2.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", type=int, default=20_000, help="sweeps stored (n_skip = 1)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--points", type=int, default=8, help="parameter points for the process test")
    args = ap.parse_args()

    lattice.sample(NT, NX, ETA, LAM, MU, 10, seed=0, n_therm=10)  # compile / load the cache
    best, median = head_moves_per_second()
    print(f"lattice {NT}x{NX} (N_t x N_x), eta={ETA}, lambda={LAM}, mu={MU}")
    print(f"worm head moves per second   : {best:.3e} (best of 5), {median:.3e} (median)")

    t0 = time.perf_counter()
    ens = lattice.sample(NT, NX, ETA, LAM, MU, args.configs, seed=2, n_therm=500)
    dt = time.perf_counter() - t0
    sweeps = ens.extra["sweeps"]
    print(f"sample(): {sweeps} sweeps in {dt:.2f} s = {sweeps / dt:.3e} sweeps/s "
          f"({ens.worms_per_sweep} worms of mean length {ens.worm_length:.1f} per sweep, "
          f"head acceptance {ens.acceptance_worm:.3f}, "
          f"l acceptance {ens.acceptance_l:.3f})")  # fmt: skip
    print(f"  head moves per second inside sample() (l updates included): "
          f"{ens.extra['head_steps'] / dt:.3e}")  # fmt: skip
    for name, x in ens.observables().items():
        r = lattice.autocorrelation(x)
        cost = dt * 2 * r["tau_int"] / len(x)
        print(f"  {name:5s} = {r['mean']:.5f} +- {r['error']:.5f}, tau_int = {r['tau_int']:.2f} "
              f"+- {r['tau_int_error']:.2f} sweeps, cost per independent sample "
              f"= {cost * 1e3:.3f} ms")  # fmt: skip

    n_per = max(args.configs // 4, 100)
    tasks = [(mu, n_per, 10 + i) for i, mu in enumerate(np.linspace(0.8, 1.2, args.points))]
    t0 = time.perf_counter()
    for t in tasks:
        _point(t)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        list(pool.map(_point, tasks))
    parallel = time.perf_counter() - t0
    print(f"{args.points} parameter points x {n_per} sweeps: serial {serial:.2f} s, "
          f"{args.jobs} processes {parallel:.2f} s (speed-up {serial / parallel:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
