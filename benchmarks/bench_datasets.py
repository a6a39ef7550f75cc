"""Speed of qftml.datasets: worm insertion, HDF5 write/read, cache hits, and one job per task.

Run: ``.venv/bin/python benchmarks/bench_datasets.py`` (prints figures; writes to a
temporary folder only).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from qftml import datasets as ds
from qftml.datasets import generate, storage


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    rng = np.random.default_rng(0)
    print("worm insertion (0-10 worms, length 1-16, vectorized over configurations)")
    for nt, nx, n in ((8, 8, 20000), (64, 64, 2000)):
        k = np.zeros((n, 2, nt, nx), dtype=np.int8)
        worms = np.arange(n) % 11
        t, _ = best_of(lambda k=k, worms=worms: ds.insert_worms(k, worms, rng))
        print(f"  {nx}x{nt}: {n} configurations in {t:.2f} s = {n / t:,.0f} configs/s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        k = rng.integers(-3, 4, size=(5000, 2, 16, 16)).astype(np.int8)
        arrays = {"k": k, "l": np.abs(k).astype(np.int8), "n": rng.normal(size=5000)}
        mb = sum(a.nbytes for a in arrays.values()) / 2**20
        t_w, _ = best_of(lambda: storage.write(path, arrays, {"x": 1}, "key"))
        t_r, _ = best_of(lambda: storage.read(path, "key"))
        t_q, _ = best_of(lambda: storage.read(path, "key", verify=False))
        size = path.stat().st_size / 2**20
        print(f"HDF5, {mb:.1f} MiB of arrays ({size:.1f} MiB on disk, gzip):")
        print(f"  atomic write {t_w * 1e3:.0f} ms, read + SHA-256 verify {t_r * 1e3:.0f} ms, ")
        print(f"  read without verify {t_q * 1e3:.0f} ms")

        print("one job per task (ci profile settings, generation in this process)")
        for task, split, lattice in (
            (1, "train", "60x4"),
            (2, "test", "64x64"),
            (3, "test", "32x32"),
        ):
            job = next(j for j in ds.jobs_for(task, "ci", split) if j.lattice == lattice)
            generate.generate(job)  # compile / warm up
            t, (arrays, attrs) = best_of(lambda job=job: generate.generate(job), repeat=1)
            print(
                f"  task {task} {split} {lattice} eta={job.eta} mu={job.mu}: "
                f"{job.n_total} configurations in {t:.2f} s "
                f"(n_skip {attrs['n_skip']}, tau_int pilot {attrs['tau_int_pilot']:.2f})"
            )


if __name__ == "__main__":
    main()
