"""Training throughput of the task-1 EQ winner on 60 × 4 lattices (samples per second).

Measures one full training epoch (forward, backward, Adam step) of
``qftml.training.train`` for several mini-batch sizes and torch thread counts, on the
device ``pick_device()`` chooses (pass ``--device cpu`` to force the CPU). Each figure is
the mean of ``--repeats`` epochs with the standard error over them.

    .venv/bin/python benchmarks/bench_training.py [--samples 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from qftml.nets import published
from qftml.training import pick_device, train


def epoch_rate(X, y, batch_size, device, epochs):
    model = published(1, "EQ").build(seed=0)
    rates = []
    for e in range(epochs + 1):  # the first epoch warms up (allocations, thread pool)
        t0 = time.perf_counter()
        train(model, (X, y), (X[:64], y[:64]), max_epochs=1, batch_size=batch_size,
              seed=e, device=device)  # fmt: skip
        dt = time.perf_counter() - t0
        if e:
            rates.append(len(X) / dt)
    mean = statistics.fmean(rates)
    sem = statistics.stdev(rates) / len(rates) ** 0.5 if len(rates) > 1 else float("nan")
    return mean, sem


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--batch-sizes", type=int, nargs="*", default=[32, 128, 512])
    args = p.parse_args()
    device = pick_device(args.device)
    g = torch.Generator().manual_seed(0)
    X = torch.randint(-3, 4, (args.samples, 4, 4, 60), generator=g).float()  # N_t=4, N_x=60
    y = torch.rand(args.samples, 2, generator=g)
    cores = os.cpu_count()
    threads = sorted({1, torch.get_num_threads()}) if device.type == "cpu" else [None]
    print(f"task-1 EQ winner ({published(1, 'EQ').stated_params} parameters), 60 × 4 lattice")
    print(f"device {device}, {platform.processor() or platform.machine()}, {cores} cores")
    print(f"torch {torch.__version__}, default threads {torch.get_num_threads()}")
    print(f"{'threads':>8} {'batch':>6} {'samples/s':>12} {'± s.e.':>8}")
    default = torch.get_num_threads()
    for n in threads:
        if n is not None:
            torch.set_num_threads(n)
        for bs in args.batch_sizes:
            mean, sem = epoch_rate(X, y, bs, device, args.repeats)
            print(f"{n or '-':>8} {bs:>6} {mean:>12.0f} {sem:>8.0f}")
    torch.set_num_threads(default)


if __name__ == "__main__":
    main()
