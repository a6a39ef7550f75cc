"""Training throughput on one core: a plain PyTorch loop against ``qftml.training.train``.

For the task-1 EQ winner on 60 × 4 and the task-3 EQ #1 winner on 8 × 8, at batch 100 (the
source's), one thread. Each variant trains ``--epochs`` whole epochs, its validation pass
(10 % of N_train) included, and reports samples per second; variants are interleaved in
each of ``--repeats`` rounds, and the ratio to the plain loop of the same round is given as
min / median / max over rounds (the machine may be shared: only ratios within one round are
meaningful).

- ``plain``: Adam, the same architecture and weights built from PyTorch's own layers
  (``nn.Conv2d(padding_mode="circular")``, i.e. ``from_spec`` before the no-copy padding),
  ``loss.item()`` every step, validation in batches of 100.
- ``train fp32``: ``train(...)`` with its defaults (bitwise the plain arithmetic).
- ``train fp32 CL``: plus channels-last (changes the float32 rounding only).
- ``train bf16``: bfloat16 autocast of the lattice layers, head in float32, without / with
  channels-last (the default with bf16).
- ``GEMM bound fp32 / bf16``: not a loop but its floor: the epoch's multiply-adds as dense
  matrix products at the network's own shapes, timed on this core (:func:`gemm_seconds`).
  Its ratio to the plain loop is the largest speed-up any loop with that arithmetic can
  reach here.

FLOPs per sample: ``2 K^2 C_in C_out T X`` per convolution and ``2 n_in n_out`` per dense
layer for the forward pass, times 3 for forward + backward (the backward pass computes the
input and the weight gradients, each as costly as the forward pass). Peak of one core:
``f × 16 fp32 lanes × 2 (FMA) × 2 FMA units`` with AVX-512 (two 512-bit FMA units, as on
Xeon Scalable parts with AMX) and ``f × 1024`` bf16 FLOP per cycle with AMX-BF16 (Intel's
figure per core), twice the fp32 rate with AVX512-BF16 alone (its dot-product instruction
does two bf16 products per fp32 lane); ``f`` is lscpu's "CPU max MHz" or, on a hypervisor
that hides it, half its BogoMIPS. Both are upper bounds; the GEMM bound rows measure what
the network's own matrix shapes reach.

The loss check trains the task-1 winner with the source's recipe (AdamW, amsgrad, lr 1e-2,
60 epochs on 800 configurations: test MSEs of 1e-6 ... 1e-5, the source's levels) on the
real task-1 data of the ``paper`` or ``ci`` profile where it is built (``python -m qftml
data 1``), else on a synthetic stand-in (integer link fields; targets the site averages
``<k_t>`` and ``<l_s^2>/4``, smooth like ``n`` and ``|phi|^2``), for several seeds in fp32
and in bf16, and compares the test MSEs: the difference of the means in standard errors,
and the seed-paired log ratio (same initial weights and batch order).

    .venv/bin/python benchmarks/bench_training.py [--n-train 2000] [--epochs 2] [--repeats 3]
        [--seeds 4] [--loss-data auto|paper|ci|synthetic] [--only-loss]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import statistics
import subprocess
import time

import torch
from torch import nn

from qftml.nets import PeriodicConv2d, published
from qftml.training import evaluate, train


def torch_layers(model):
    """The same network and weights with PyTorch's circular ``nn.Conv2d``."""
    ref = copy.deepcopy(model)
    for i, m in enumerate(ref.net):
        if isinstance(m, PeriodicConv2d):
            c = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding="same",
                          padding_mode="circular", bias=m.bias is not None)  # fmt: skip
            c.load_state_dict(m.state_dict())
            ref.net[i] = c
    return ref


def flops_per_sample(model, lattice) -> int:
    """Forward + backward FLOPs of one sample (3 × the forward multiply-adds × 2)."""
    shapes = model.check_lattice(lattice)
    fwd = 0
    for layer, shape in zip(model.layers, shapes, strict=True):
        if layer.kind == "Conv":
            _, t, x = shape
            fwd += 2 * layer.kernel**2 * layer.n_in * layer.n_out * t * x
        elif layer.kind == "Linear":
            fwd += 2 * layer.n_in * layer.n_out
    return 3 * fwd


def core_peak() -> tuple[float, float, str]:
    """(fp32 AVX-512 peak, bf16 peak) in FLOP/s of one core, and how they were found."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = set(re.search(r"Flags:\s*(.*)", out).group(1).split()) if "Flags" in out else set()
    m = re.search(r"CPU max MHz:\s*([\d.]+)", out)
    if m:
        mhz, src = float(m.group(1)), "CPU max MHz"
    else:
        mhz, src = float(re.search(r"BogoMIPS:\s*([\d.]+)", out).group(1)) / 2, "BogoMIPS/2"
    f = mhz * 1e6
    lanes = 16 if "avx512f" in flags else 8
    fp32 = f * lanes * 2 * 2
    if "amx_bf16" in flags:
        bf16, bf16_how = f * 1024, "AMX 1024"
    elif "avx512_bf16" in flags:  # VDPBF16PS: two bf16 products per fp32 lane
        bf16, bf16_how = 2 * fp32, f"AVX512-BF16 {lanes * 8}"
    else:
        bf16, bf16_how = fp32, "as fp32"
    how = (f"f = {mhz:.0f} MHz ({src}); fp32 {lanes} lanes × 2 FMA × 2 units = "
           f"{lanes * 4} FLOP/cycle; bf16 {bf16_how} FLOP/cycle")  # fmt: skip
    return fp32, bf16, how


def gemm_seconds(model, lattice, batch, n_train, n_val, dtype) -> float:
    """Seconds per epoch of the network's multiply-adds alone, as dense matrix products.

    Every convolution is the product of an (M = batch × sites, K = k² C_in) matrix with a
    (K, C_out) one, every dense layer of a (batch, n_in) with an (n_in, n_out) one; training
    computes for each the forward product, the input gradient (M, C_out) @ (C_out, K) and the
    weight gradient (K, M) @ (M, C_out); validation the forward product only. Each product
    is timed at its own shape on this core (best of 3): a lower bound on the time of any
    loop with this arithmetic, which adds the activations, the padding and the optimizer.
    """
    shapes = model.check_lattice(lattice)
    train_s = val_s = 0.0
    for layer, shape in zip(model.layers, shapes, strict=True):
        if layer.kind == "Conv":
            m, k, n = batch * shape[1] * shape[2], layer.kernel**2 * layer.n_in, layer.n_out
        elif layer.kind == "Linear":
            m, k, n = batch, layer.n_in, layer.n_out
        else:
            continue
        a, w = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        go = torch.randn(m, n, dtype=dtype)
        products = [(a, w), (go, w.T), (a.T, go)]  # forward, input and weight gradients
        best = []
        for x, y in products:
            x @ y  # warm-up: the library picks its kernel
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                x @ y
                runs.append(time.perf_counter() - t0)
            best.append(min(runs))
        train_s += sum(best)
        val_s += best[0]
    return train_s * math.ceil(n_train / batch) + val_s * math.ceil(n_val / batch)


def plain_epochs(model, X, y, Xv, yv, batch, epochs, opt, g):
    """A plain PyTorch loop: Adam, ``.item()`` per step, validation in training batches."""
    loss_fn = nn.MSELoss()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X), generator=g)
        total = 0.0
        for i in range(0, len(X), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val = sum(loss_fn(model(Xv[i : i + batch]), yv[i : i + batch]).item()
                      for i in range(0, len(Xv), batch))  # fmt: skip
    return total, val


def synthetic(n, lattice, n_out, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, *lattice), generator=g).float()
    t = [X[:, 1].mean(dim=(-2, -1)), (X[:, 2] ** 2).mean(dim=(-2, -1)) / 4]
    return X, torch.stack(t[:n_out], 1)


VARIANTS = {
    "train fp32": dict(precision="fp32", channels_last=False),
    "train fp32 CL": dict(precision="fp32", channels_last=True),
    "train bf16 (no CL)": dict(precision="bf16", channels_last=False),
    "train bf16 CL": dict(precision="bf16", channels_last=True),
}


#: The matrix-product bound of an epoch (:func:`gemm_seconds`) in each arithmetic.
BOUNDS = {"GEMM bound fp32": torch.float32, "GEMM bound bf16": torch.bfloat16}


def speed(entry, lattice, n_train, epochs, repeats, batch, peaks):
    n_out = entry.n_out
    X, y = synthetic(n_train, lattice, n_out, 0)
    Xv, yv = synthetic(max(n_train // 10, 1), lattice, n_out, 1)
    base = entry.build(seed=0)
    fl = flops_per_sample(base, lattice)
    rates: dict[str, list[float]] = {
        "plain": [],
        **{k: [] for k in VARIANTS},
        **{k: [] for k in BOUNDS},
    }
    g = torch.Generator().manual_seed(0)
    for r in range(repeats + 1):  # round 0 warms up (allocations, oneDNN kernel choice)
        m = torch_layers(base)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        plain_epochs(m, X, y, Xv, yv, batch, epochs, opt, g)
        dt = time.perf_counter() - t0
        if r:
            rates["plain"].append(epochs * n_train / dt)
        for name, kw in VARIANTS.items():
            m = copy.deepcopy(base)
            t0 = time.perf_counter()
            train(m, (X, y), (Xv, yv), loss="mse", batch_size=batch, max_epochs=epochs,
                  patience=epochs + 1, lr=1e-3, seed=r, device="cpu", **kw)  # fmt: skip
            dt = time.perf_counter() - t0
            if r:
                rates[name].append(epochs * n_train / dt)
        for name, dtype in BOUNDS.items():
            if r:
                rates[name].append(n_train / gemm_seconds(base, lattice, batch, n_train,
                                                          len(Xv), dtype))  # fmt: skip
    print(f"\n{entry.name}: {base.n_params} parameters, lattice {lattice[0]} × {lattice[1]}, "
          f"batch {batch}, N_train {n_train} (+{len(Xv)} validation), {epochs} epochs × "
          f"{repeats} rounds, {fl / 1e6:.2f} MFLOP per sample (fwd + bwd)")  # fmt: skip
    print(f"{'loop':>20} {'samples/s (median)':>19} {'ratio min/med/max':>20} "
          f"{'GFLOP/s':>8} {'% of peak':>10}")  # fmt: skip
    for name, rs in rates.items():
        ratios = [a / b for a, b in zip(rs, rates["plain"], strict=True)]
        med = statistics.median(rs)
        peak = peaks[1] if "bf16" in name else peaks[0]
        rat = f"{min(ratios):.2f}/{statistics.median(ratios):.2f}/{max(ratios):.2f}"
        print(f"{name:>20} {med:>19.0f} {rat:>20} {med * fl / 1e9:>8.1f} "
              f"{100 * med * fl / peak:>9.2f}%")  # fmt: skip
    print("(GEMM bound: the multiply-adds alone as matrix products at the network's shapes; "
          "no loop with that arithmetic can exceed its rate on this core)")  # fmt: skip
    return rates


def task1_data(which: str, n_train: int, n_test: int, seed: int = 0):
    """``(train, val, test, what)`` for the loss check: real task-1 configurations of the
    ``paper`` or ``ci`` profile where they are on disk (``which="auto"``: the first found),
    else the synthetic stand-in. Real data: ``n_train`` random configurations of the training
    split; validation (10 % of ``n_train``) and test (``n_test``) drawn disjointly from the
    validation split, at the training chemical potentials, so the losses are in-range MSEs
    at the levels the source reports (1e-6 ... 1e-4)."""
    from qftml import datasets
    from qftml.datasets.jobs import jobs_for

    profiles = ("paper", "ci") if which == "auto" else (which,) if which != "synthetic" else ()
    for prof in profiles:
        jobs = [j for s in ("train", "val") for j in jobs_for(1, prof, s)]
        if not all(j.path().exists() for j in jobs):
            continue
        tr = datasets.load(1, prof, "train", log=None).xy
        va = datasets.load(1, prof, "val", log=None).xy
        g = torch.Generator().manual_seed(seed)
        i = torch.randperm(len(tr[0]), generator=g)[:n_train]
        j = torch.randperm(len(va[0]), generator=g)
        n_val = max(1, n_train // 10)
        if n_val + n_test > len(j):
            n_test = len(j) - n_val
        part = lambda d, k: (d[0][k], d[1][k])  # noqa: E731
        what = f"{prof} task-1 data (60 × 4, training mu grid)"
        return part(tr, i), part(va, j[:n_val]), part(va, j[n_val : n_val + n_test]), what
    if which not in ("auto", "synthetic"):
        raise SystemExit(f"no task-1 data of profile {which!r} on disk (python -m qftml data 1)")
    lat = published(1, "EQ").lattice
    sets = [synthetic(n, lat, 2, 10 + k) for k, n in enumerate((n_train, n_train // 10, n_test))]
    return *sets, "synthetic stand-in"


def loss_agreement(seeds, n_train, n_test, epochs, data="auto"):
    """Test MSE of fp32 and bf16 training with the source's recipe, over seeds: mean ± s.e.
    of each, and the seed-paired difference of log MSE (same weights and batch order)."""
    from qftml.training import source_batch_size

    entry = published(1, "EQ")
    (X, y), (Xv, yv), (Xt, yt), what = task1_data(data, n_train, n_test)
    batch = source_batch_size(len(X))
    res = {"fp32": [], "bf16": []}
    for s in range(seeds):
        for prec in res:
            m = entry.build(seed=s)
            train(m, (X, y), (Xv, yv), batch_size=batch, optimizer="adamw", amsgrad=True,
                  lr=1e-2, max_epochs=epochs, patience=epochs + 1, seed=s,
                  precision=prec)  # fmt: skip
            res[prec].append(evaluate(m, (Xt, yt))["loss"])  # evaluated in float32
    print(
        f"\ntest MSE after {epochs} epochs (AdamW amsgrad lr 1e-2, batch {batch}), "
        f"N_train {len(X)}, N_val {len(Xv)}, N_test {len(Xt)}, {seeds} seeds, task-1 EQ "
        f"winner, {what}"
    )
    stats = {}
    for prec, v in res.items():
        mean, se = statistics.fmean(v), statistics.stdev(v) / len(v) ** 0.5
        stats[prec] = (mean, se)
        print(f"{prec:>6}: {mean:.3g} ± {se:.2g}   (seeds: {', '.join(f'{a:.3g}' for a in v)})")
    diff = stats["bf16"][0] - stats["fp32"][0]
    se = (stats["bf16"][1] ** 2 + stats["fp32"][1] ** 2) ** 0.5
    z = diff / se if se > 0 else float("inf")
    print(
        f"bf16 - fp32 = {diff:.3g} ± {se:.2g}  ({z:+.2f} standard errors; "
        f"{'indistinguishable' if abs(z) < 2 else 'distinguishable'} at 2 s.e.)"
    )
    d = [math.log(b / a) for a, b in zip(res["fp32"], res["bf16"], strict=True)]
    md, sd = statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5
    zp = md / sd if sd > 0 else float("inf")
    print(
        f"paired by seed: mean log(MSE_bf16 / MSE_fp32) = {md:+.3f} ± {sd:.3f} (ratio "
        f"{math.exp(md):.2f}; {zp:+.2f} standard errors; "
        f"{'indistinguishable' if abs(zp) < 2 else 'distinguishable'} at 2 s.e.)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seeds", type=int, default=4, help="seeds of the loss check (0: skip)")
    p.add_argument("--loss-epochs", type=int, default=60)
    p.add_argument("--loss-n-train", type=int, default=800)
    p.add_argument(
        "--loss-data",
        default="auto",
        choices=["auto", "paper", "ci", "synthetic"],
        help="data of the loss check (auto: paper or ci task 1 if built)",
    )
    p.add_argument("--only-loss", action="store_true", help="skip the speed measurements")
    args = p.parse_args()
    torch.set_num_threads(1)
    fp32, bf16, how = core_peak()
    print(
        f"torch {torch.__version__}, 1 thread, capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"peak of one core: {fp32 / 1e9:.0f} GFLOP/s fp32, {bf16 / 1e9:.0f} GFLOP/s bf16; {how}")
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
        "(a shared machine: compare ratios within one round, not absolute rates)"
    )
    if not args.only_loss:
        for entry, lattice in ((published(1, "EQ"), (60, 4)), (published(3, "EQ", 1), (8, 8))):
            speed(entry, lattice, args.n_train, args.epochs, args.repeats, args.batch,
                  (fp32, bf16))  # fmt: skip
    if args.seeds:
        loss_agreement(args.seeds, args.loss_n_train, 1000, args.loss_epochs, args.loss_data)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
