"""Generate the content of one dataset file (one :class:`~qftml.datasets.jobs.Job`).

Every configuration comes from the worm sampler of :mod:`qftml.lattice`
:cite:p:`Prokofev:2001worm,Gattringer:2012df`, thinned so that stored configurations are
decorrelated:

1. a *pilot* chain, one sweep apart, measures the integrated autocorrelation time
   ``tau_int`` (in sweeps) of ``n`` and ``|phi|^2`` with the Γ-method; the larger one counts
   (a series that never changes, such as ``n = 0`` deep in the Silver Blaze phase, has no
   autocorrelation and is skipped). The pilot starts with ``pilot`` sweeps and is rerun
   longer (same seed, so the same chain continued) until it spans at least
   :data:`PILOT_TAUS` = 100 ``tau_int``, since a short pilot underestimates ``tau_int``;
2. the production chain stores a configuration every ``n_skip = ceil(tau_factor * tau_int)``
   sweeps, so successive stored configurations are ``tau_factor * tau_int`` sweeps apart;
3. ``tau_int`` of the stored series is measured again and saved (about 1/2 when
   decorrelated).

Tasks 2 and 3 then insert open worms (:mod:`qftml.datasets.violations`). Task 2 alternates
valid and violated configurations (labels 0, 1, 0, 1, ...: exactly balanced); task 3 cycles
through the worm counts (``0, 1, ..., 10, 0, 1, ...``), so each count gets ``n``
configurations from every stretch of the chain.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import __version__, lattice
from .jobs import Job, code_digest
from .storage import compact_int
from .violations import insert_worms

#: Sampler settings used when a profile gives none.
DEFAULT_SAMPLER = {"n_therm": 200, "pilot": 400, "tau_factor": 2.0}
#: The pilot chain spans at least this many integrated autocorrelation times.
PILOT_TAUS = 100
#: Stored configurations are at least this many ``tau_int`` apart (``tau_factor >= 2``).
MIN_SPACING_TAUS = 2.0
#: Longest pilot chain, in sweeps (a point whose ``tau_int`` needs more is refused).
PILOT_LIMIT = 2_000_000


def _seed_int(ss: np.random.SeedSequence) -> int:
    """A 31-bit integer seed from a seed sequence (numba seeds take a plain int)."""
    return int(ss.generate_state(1, np.uint32)[0] >> 1)


def _tau_err(*series: np.ndarray) -> tuple[float, float]:
    """Largest integrated autocorrelation time of the series that fluctuate, with its
    Γ-method error (``(nan, nan)`` if none fluctuates)."""
    best = (float("nan"), float("nan"))
    for x in series:
        x = np.asarray(x, dtype=np.float64)
        if len(x) >= 4 and np.ptp(x) > 0:
            r = lattice.autocorrelation(x)
            if math.isfinite(r["tau_int"]) and not r["tau_int"] <= best[0]:
                best = (float(r["tau_int"]), float(r["tau_int_error"]))
    return best


def _tau(*series: np.ndarray) -> float:
    """Largest integrated autocorrelation time of the series that fluctuate (nan if none)."""
    return _tau_err(*series)[0]


def sample_decorrelated(job: Job, n_configs: int, seed: np.random.SeedSequence):
    """Sample ``n_configs`` decorrelated configurations at the job's point (see module doc).

    Returns ``(ensemble, info)`` with ``info`` holding ``pilot`` (the pilot's length),
    ``n_skip``, ``tau_int_pilot`` and its error ``tau_int_pilot_error`` (in sweeps) and
    ``tau_int`` (of the stored series, in units of stored configurations).
    """
    settings = {**DEFAULT_SAMPLER, **job.settings}
    n_therm, n_pilot = int(settings["n_therm"]), int(settings["pilot"])
    tau_factor = float(settings["tau_factor"])
    if tau_factor < MIN_SPACING_TAUS:
        raise ValueError(f"tau_factor must be >= {MIN_SPACING_TAUS}; got {tau_factor}")
    s_pilot, s_prod = (_seed_int(s) for s in seed.spawn(2))
    while True:  # lengthen the pilot until it spans PILOT_TAUS autocorrelation times
        pilot = lattice.sample(
            job.nt, job.nx, job.eta, job.lam, job.mu, n_pilot,
            seed=s_pilot, n_therm=n_therm, n_skip=1,
        )  # fmt: skip
        tau_pilot, tau_pilot_err = _tau_err(pilot.n, pilot.phi2)
        if not math.isfinite(tau_pilot) or n_pilot >= PILOT_TAUS * tau_pilot:
            break
        if n_pilot >= PILOT_LIMIT:
            raise ValueError(
                f"{job.relpath()}: tau_int = {tau_pilot:.3g} sweeps needs a pilot of "
                f"{PILOT_TAUS} tau_int > {PILOT_LIMIT} sweeps"
            )
        n_pilot = min(PILOT_LIMIT, math.ceil(1.5 * PILOT_TAUS * tau_pilot))
    n_skip = max(1, math.ceil(tau_factor * tau_pilot)) if math.isfinite(tau_pilot) else 1
    ens = lattice.sample(
        job.nt, job.nx, job.eta, job.lam, job.mu, n_configs,
        seed=s_prod, n_therm=n_therm, n_skip=n_skip,
    )  # fmt: skip
    info = {
        "n_therm": n_therm,
        "pilot": n_pilot,
        "tau_factor": tau_factor,
        "n_skip": n_skip,
        "tau_int_pilot": tau_pilot,
        "tau_int_pilot_error": tau_pilot_err,
        "tau_int": _tau(ens.n, ens.phi2),
    }
    return ens, info


def _observable_attrs(n: np.ndarray, phi2: np.ndarray) -> dict[str, float]:
    out = {}
    for name, x in (("n", n), ("phi2", phi2)):
        mean, err = lattice.mean_error(np.asarray(x, dtype=np.float64))
        out[f"{name}_mean"], out[f"{name}_err"] = float(mean), float(err)
    return out


def generate(job: Job) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and attributes of the job's file (deterministic in the job's seed).

    Arrays: ``k``, ``l`` (compact integers, ``(N, 2, N_t, N_x)``), ``n`` and ``phi2`` of the
    sampled (valid) configurations; tasks 2 and 3 add ``n_worms``, ``n_violations`` and,
    for task 2, ``label`` (1 = violated).
    """
    root = job.seed_sequence()
    s_sample, s_worms = root.spawn(2)
    ens, info = sample_decorrelated(job, job.n_total, s_sample)
    k = np.asarray(ens.k)
    arrays: dict[str, np.ndarray] = {
        "n": np.asarray(ens.n, dtype=np.float64),
        "phi2": np.asarray(ens.phi2, dtype=np.float64),
        "l": compact_int(np.asarray(ens.l)),
    }
    if job.task == 1:
        arrays["k"] = compact_int(k)
    else:
        rng = np.random.default_rng(s_worms)
        if job.task == 2:
            violated = np.arange(job.n_total) % 2 == 1
            worms = np.where(violated, job.worms[0], 0)
        else:
            worms = np.tile(np.asarray(job.worms, dtype=np.int64), job.n)
        ins = insert_worms(k, worms, rng, length=job.worm_length)
        if job.task == 2:
            arrays["label"] = (ins.n_violations > 0).astype(np.int8)
            if not np.array_equal(arrays["label"], violated.astype(np.int8)):
                raise RuntimeError(f"{job}: could not create a violated configuration")
        absdiv = np.abs(lattice.divergence(ins.k))
        if absdiv.max(initial=0) > 1 or not np.array_equal(absdiv.sum(axis=(-2, -1)), 2 * worms):
            raise RuntimeError(f"{job}: worms share an end (|div k| != 1 at 2 W sites)")
        arrays["k"] = compact_int(ins.k)
        arrays["n_worms"] = worms.astype(np.int16)
        arrays["n_violations"] = ins.n_violations.astype(np.int32)
    attrs: dict[str, Any] = {
        "task": job.task,
        "split": job.split,
        "lattice": job.lattice,
        "nt": job.nt,
        "nx": job.nx,
        "eta": job.eta,
        "lam": job.lam,
        "mu": job.mu,
        "n_configs": job.n_total,
        "seed": job.seed,
        "seed_entropy": [int(v) for v in root.entropy],
        "worms": list(job.worms),
        "worm_length": list(job.worm_length),
        "sampler": info,
        "tau_int": info["tau_int"],
        "tau_int_pilot": info["tau_int_pilot"],
        "n_skip": info["n_skip"],
        **_observable_attrs(arrays["n"], arrays["phi2"]),
        "qftml_version": __version__,
        "code_digest": code_digest(),
    }
    return arrays, attrs
