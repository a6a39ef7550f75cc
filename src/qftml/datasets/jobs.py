"""The datasets of a profile as a list of independent jobs, with their seeds, keys and paths.

One *job* is one HDF5 file: one task, one split (``train``/``val``/``test``), one lattice
and one parameter point ``(eta, lambda, mu)``. Jobs share nothing, so they run in any order,
in any number of processes, or on a cluster.

**Seeds.** A job's random numbers come from a ``numpy.random.SeedSequence`` whose
entropy is the profile seed followed by four 32-bit words of the SHA-256 of the job's
identity (task, split, lattice, couplings; floats written with ``repr``). The seed thus
depends only on *what* is generated, never on job order or the number of processes; splits
and parameter points get independent streams.

**Content key.** SHA-256 of the job's parameters, the sampler settings, the storage format
and a digest of the generating source code (the :mod:`qftml.lattice` package and this
package's generating modules). A changed parameter, seed, sampler setting or sampler code
gives a new key, and the cache regenerates the file.

**Lattice names.** ``"60x4"`` means ``N_t x N_x = 60 x 4`` (time x space): a long time
extent (low temperature, where the Silver Blaze onset is sharp) and a small spatial box, as
in :cite:p:`Bulusu:2021njs`; arrays are stored as ``(..., N_t, N_x)``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import keys
from ..lattice.worm import check_parameters
from ..paths import data_dir
from ..profiles import notebook_params
from .storage import FORMAT

TASKS = (1, 2, 3)
SPLITS = ("train", "val", "test")
#: Profile section holding every dataset size.
SECTION = "datasets"

_GENERATING_SOURCES = ("violations.py", "generate.py", "jobs.py")


def parse_lattice(name: str) -> tuple[int, int]:
    """``"60x4"`` (``N_t x N_x``) -> ``(nt, nx) = (60, 4)``."""
    try:
        nt, nx = (int(v) for v in str(name).lower().replace("×", "x").split("x"))
    except ValueError:
        raise ValueError(f"lattice must be written 'NTxNX', e.g. '60x4'; got {name!r}") from None
    if nx < 2 or nt < 2:
        raise ValueError(f"lattice {name!r}: both extents must be at least 2")
    return nt, nx


def lattice_name(nt: int, nx: int) -> str:
    """``(nt, nx)`` -> ``"NTxNX"``."""
    return f"{nt}x{nx}"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of the code of everything that determines the generated numbers.

    The definitions that :func:`~qftml.datasets.generate.generate` and :class:`Job` (its
    seeds) reach in the lattice and dataset modules, as code, not text
    (:func:`qftml.keys.code_digest`): docstrings, comments and code that generation never
    runs (the HMC cross-check, exact sums) do not count.
    """
    here = Path(__file__).resolve().parent
    files = sorted((here.parent / "lattice").glob("*.py")) + [here / n for n in _GENERATING_SOURCES]
    return keys.code_digest(files, roots=("generate", "Job"))


def _num(value: float) -> float:
    """Canonical float for keys and names (so 1.0500000000000003 and 1.05 agree)."""
    return float(np.round(float(value), 10))


def _name(value: float) -> str:
    """``value`` in a file name: short (``%g``) where that reads back exactly, else ``repr``.

    Either form reads back as the canonical value, so distinct points never share a name.
    """
    v = _num(value)
    short = f"{v:g}"
    return short if float(short) == v else repr(v)


@dataclass(frozen=True)
class Job:
    """One dataset file: see the module docstring.

    ``n`` counts configurations per file for tasks 1 and 2 and per worm count for task 3
    (a task-3 file holds ``n * len(worms)`` configurations). ``worms``: task 2, the number
    of worms in a violated configuration (one entry); task 3, the worm counts; task 1, empty.
    """

    task: int
    split: str
    nt: int
    nx: int
    eta: float
    lam: float
    mu: float
    n: int
    seed: int
    profile: str
    worms: tuple[int, ...] = ()
    worm_length: tuple[int, int] = (1, 16)
    sampler: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {self.task!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {self.split!r}")
        if int(self.n) < 1:
            raise ValueError(f"n must be a positive number of configurations; got {self.n!r}")
        if self.task == 2 and self.n % 2:
            raise ValueError(f"task 2 needs an even n (balanced labels); got {self.n}")
        try:  # refuse a divergent or overflowing point before any work is scheduled
            check_parameters(self.nt, self.nx, self.eta, self.lam, self.mu)
        except ValueError as exc:
            raise ValueError(f"task {self.task} {self.split} {self.lattice}: {exc}") from None

    @property
    def lattice(self) -> str:
        return lattice_name(self.nt, self.nx)

    @property
    def n_total(self) -> int:
        """Configurations in the file."""
        return self.n * len(self.worms) if self.task == 3 else self.n

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.sampler)

    def identity(self) -> dict[str, Any]:
        """What the job generates, without its size: the input of the seed."""
        return {
            "task": self.task,
            "split": self.split,
            "nt": self.nt,
            "nx": self.nx,
            "eta": repr(_num(self.eta)),
            "lam": repr(_num(self.lam)),
            "mu": repr(_num(self.mu)),
        }

    def seed_sequence(self) -> np.random.SeedSequence:
        """The job's root ``SeedSequence`` (see the module docstring)."""
        text = json.dumps(self.identity(), sort_keys=True).encode()
        words = np.frombuffer(hashlib.sha256(text).digest()[:16], dtype="<u4")
        return np.random.SeedSequence([int(self.seed), *(int(w) for w in words)])

    def key_fields(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("profile")  # where the file lives, not what it contains
        d["sampler"] = self.settings
        for name in ("eta", "lam", "mu"):
            d[name] = repr(_num(d[name]))
        return d

    def content_key(self) -> str:
        payload = {"job": self.key_fields(), "format": FORMAT, "code": code_digest()}
        return keys.digest(payload)

    def relpath(self) -> Path:
        name = f"eta{_name(self.eta)}_mu{_name(self.mu)}.h5"
        return Path(self.profile, f"task{self.task}", self.split, self.lattice, name)

    def path(self, root: Path | None = None) -> Path:
        return (root or datasets_dir()) / self.relpath()

    @property
    def cost(self) -> float:
        """Rough relative cost (sites x configurations), to start the largest jobs first."""
        return float(self.nt * self.nx * self.n_total)


def datasets_dir() -> Path:
    """Root of the dataset cache: ``$QFTML_DATA/datasets`` (default ``<repo>/data/datasets``)."""
    return data_dir() / "datasets"


def _grid(spec, name: str) -> list[float]:
    """A list of numbers, or ``{start, stop, num}`` (inclusive, like ``numpy.linspace``)."""
    if isinstance(spec, dict):
        try:
            values = np.linspace(float(spec["start"]), float(spec["stop"]), int(spec["num"]))
        except KeyError as exc:
            raise ValueError(f"{name}: a grid needs start, stop and num; got {spec!r}") from exc
        return [_num(v) for v in values]
    if isinstance(spec, int | float):
        return [_num(spec)]
    if isinstance(spec, list | tuple) and spec:
        return [_num(v) for v in spec]
    raise ValueError(f"{name}: expected a number, a list or {{start, stop, num}}; got {spec!r}")


def _points(split_spec: dict, task_spec: dict, where: str) -> list[tuple[float, float]]:
    """``(eta, mu)`` pairs of a split: ``points`` or the product of ``eta`` and ``mu``."""
    if "points" in split_spec:
        pts = split_spec["points"]
        if not isinstance(pts, list) or not all(len(p) == 2 for p in pts):
            raise ValueError(f"{where}.points must be a list of [eta, mu] pairs; got {pts!r}")
        return [(_num(e), _num(m)) for e, m in pts]
    eta = split_spec.get("eta", task_spec.get("eta"))
    mu = split_spec.get("mu", task_spec.get("mu"))
    if eta is None or mu is None:
        raise ValueError(f"{where}: give 'points' or both 'eta' and 'mu'")
    return list(itertools.product(_grid(eta, f"{where}.eta"), _grid(mu, f"{where}.mu")))


def dataset_params(profile: str) -> dict[str, Any]:
    """The ``datasets`` section of ``profile`` in ``profiles.yml``."""
    return notebook_params(SECTION, profile)


def jobs_for(
    task: int | str, profile: str = "ci", split: str | None = None, params=None
) -> list[Job]:
    """Every job of ``task`` (1, 2, 3) in ``profile``, optionally of one split.

    ``params`` replaces the profile's ``datasets`` section (tests use it).
    """
    task = normalize_task(task)
    params = dataset_params(profile) if params is None else params
    key = f"task{task}"
    if key not in params:
        raise KeyError(f"profile {profile!r}: section {SECTION}.{key} is missing")
    spec = params[key]
    sampler = tuple(sorted((params.get("sampler") or {}).items()))
    lam = _num(spec.get("lam", 1.0))
    jobs = []
    splits = [split] if split else [s for s in SPLITS if s in spec]
    for sp in splits:
        if sp not in spec:
            raise KeyError(f"profile {profile!r}: {SECTION}.{key} has no split {sp!r}")
        s = spec[sp]
        where = f"{SECTION}.{key}.{sp}"
        if task == 1:
            worms: tuple[int, ...] = ()
        elif task == 2:
            worms = (int(spec.get("violated_worms", 1)),)
        else:
            worms = tuple(int(w) for w in s.get("worms", spec.get("worms", [])))
            if not worms or min(worms) < 0:
                raise ValueError(f"{where}.worms: non-negative worm counts needed; got {worms}")
        for lat in s["lattices"]:
            nt, nx = parse_lattice(lat)
            for eta, mu in _points(s, spec, where):
                jobs.append(
                    Job(
                        task=task,
                        split=sp,
                        nt=nt,
                        nx=nx,
                        eta=eta,
                        lam=lam,
                        mu=mu,
                        n=int(s["n"]),
                        seed=int(params["seed"]),
                        profile=profile,
                        worms=worms,
                        worm_length=tuple(int(v) for v in spec.get("worm_length", (1, 16))),
                        sampler=sampler,
                    )
                )
    return jobs


def normalize_task(task: int | str) -> int:
    """``1``, ``"1"`` or ``"task1"`` -> ``1``."""
    text = str(task).lower().removeprefix("task")
    if text not in {"1", "2", "3"}:
        raise ValueError(f"task must be 1, 2 or 3 (or 'task1', ...); got {task!r}")
    return int(text)
