"""Benchmark of qftml.nnqft: ensemble sampling and correlator estimation.

Prints the time to sample network ensembles (the issue's target: 10^6 single-hidden-layer
networks of width 1000 in seconds to a minute on 2 cores, in bounded memory) and to
estimate the n-point functions of 10^6 networks at 6 inputs.

Usage: ``python benchmarks/bench_nnqft.py [--n-nets 1000000] [--width 1000]``
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from qftml.nnqft import ensemble_outputs, m_n, nngp_kernel, npoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-nets", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--points", type=int, default=6)
    args = parser.parse_args()
    x = np.linspace(-1, 1, args.points)[:, None]
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    print(f"{args.n_nets} networks, width {args.width}, {args.points} inputs (d_in = 1)")
    for arch in ("erf", "relu", "gauss"):
        for dtype in ("float32", "float64") if arch == "erf" else ("float32",):
            t0 = time.perf_counter()
            f = ensemble_outputs(arch, args.width, x, args.n_nets, seed=1, dtype=dtype)
            dt = time.perf_counter() - t0
            rate = args.n_nets * args.width * args.points / dt / 1e6
            print(f"  sample {arch:>5} ({dtype}): {dt:6.1f} s  ({rate:5.0f} M activations/s)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out_mb = f.nbytes / 2**20
    print(f"  peak resident memory: {rss:.0f} MiB (the output array itself: {out_mb:.0f} MiB)")
    for n in (2, 4, 6):
        t0 = time.perf_counter()
        tuples, _, _ = npoint(f, n)
        print(f"  {n}-point function, {len(tuples)} tuples: {time.perf_counter() - t0:5.2f} s")
    t0 = time.perf_counter()
    est = m_n(f, 6, nngp_kernel("gauss", x))
    print(f"  m_6 with jackknife error: {time.perf_counter() - t0:5.2f} s (m_6 = {est.value:.2e})")


if __name__ == "__main__":
    main()
