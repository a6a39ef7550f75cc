"""Many parameter points at once: independent chains over worker processes.

Each point gets its own seed from ``numpy.random.SeedSequence(seed).spawn``, so results do
not depend on the number of workers or the order in which points finish. Workers return
only the summary (means, errors, autocorrelation times), not the configurations.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..progress import progress
from .stats import autocorrelation
from .worm import sample

#: columns of :func:`scan`'s result besides the scanned parameters
COLUMNS = ("n", "n_err", "tau_n", "phi2", "phi2_err", "tau_phi2", "acceptance_worm")


def _run_point(args) -> dict[str, float]:
    (nt, nx, eta, lam, mu), n_configs, seed, n_therm, n_skip = args
    ens = sample(nt, nx, eta, lam, mu, n_configs, seed=seed, n_therm=n_therm, n_skip=n_skip)
    out = {"acceptance_worm": ens.acceptance_worm}
    for name, x in ens.observables().items():
        r = autocorrelation(x)
        out[name], out[f"{name}_err"], out[f"tau_{name}"] = r["mean"], r["error"], r["tau_int"]
    return out


def scan(
    points,
    n_configs: int,
    *,
    seed: int,
    n_therm: int,
    n_skip: int = 1,
    jobs: int = 0,
) -> dict[str, np.ndarray]:
    """Run :func:`~qftml.lattice.sample` at every ``(nt, nx, eta, lam, mu)`` in ``points``.

    ``jobs``: worker processes (0 = all cores, 1 = in this process). Returns a dict of
    arrays, one entry per point: ``nt, nx, eta, lam, mu`` and ``COLUMNS`` (``tau_*`` in
    units of ``n_skip`` sweeps).
    """
    points = [tuple(p) for p in points]
    if not points:
        raise ValueError("scan needs at least one parameter point")
    seeds = [
        int(s.generate_state(1, np.uint32)[0])
        for s in np.random.SeedSequence(seed).spawn(len(points))
    ]
    tasks = [(p, n_configs, s, n_therm, n_skip) for p, s in zip(points, seeds, strict=True)]
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(points) == 1:
        rows = [_run_point(t) for t in progress(tasks, desc="scan")]
    else:
        with ProcessPoolExecutor(min(jobs, len(points))) as pool:
            rows = list(progress(pool.map(_run_point, tasks), total=len(tasks), desc="scan"))
    out = {
        name: np.array([p[i] for p in points])
        for i, name in enumerate(("nt", "nx", "eta", "lam", "mu"))
    }
    for col in COLUMNS:
        out[col] = np.array([r[col] for r in rows])
    return out
