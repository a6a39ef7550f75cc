"""The winning architectures of the source's backup tables, transcribed and read."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .build import SpecNet, from_spec
from .spec import format_spec, parse_spec


@dataclass(frozen=True)
class Published:
    """One architecture of the backup tables of :cite:p:`Favoni:2021talk`.

    ``transcribed`` is the row as printed on the slide; ``spec`` is the reading that has
    exactly ``stated_params`` parameters (equal to ``transcribed`` where that already does);
    ``reading`` says what was changed and why.
    """

    task: int
    family: str
    rank: int
    transcribed: str
    stated_params: int
    lattice: tuple[int, int]
    n_out: int
    spec: str = ""
    reading: str = ""
    loss: str = field(default="mse")

    def __post_init__(self):
        if not self.spec:
            object.__setattr__(self, "spec", self.transcribed)

    @property
    def name(self) -> str:
        return f"task {self.task} {self.family}" + (f" #{self.rank}" if self.task == 3 else "")

    def build(self, *, seed: int | None = None, lattice=None) -> SpecNet:
        """The model of ``spec`` (FL models for ``lattice``, default the training lattice)."""
        return from_spec(self.spec, lattice or self.lattice, seed=seed)


def _nobias(spec: str) -> str:
    """Star every Conv and Linear of a spec (the task-3 reading: no biases anywhere)."""
    return format_spec([replace(la, bias=False) for la in parse_spec(spec)])


_T3_NOBIAS = (
    "the task-3 tables print no stars, but the stated count is met only with every bias "
    "set to zero (a count over sites must not grow with the volume through biases)"
)
_T3_FLAT = (
    "the first Linear after Flattening is printed with the channel count ({c}); on the 8 × 8 "
    "training lattice two 2 × 2 poolings leave 2 × 2 sites, so Flatten gives {c} × 4 = {f} "
    "features, and only Linear({f}, ...) meets the stated count"
)

# Lattice sizes are (N_t, N_x). The source writes the task-1 lattice "60 × 4" as N_t × N_x:
# 60 sites in time (low temperature) and 4 in space, as qftml.datasets reads it.
_T1 = dict(task=1, lattice=(60, 4), n_out=2, loss="mse")
_T2 = dict(task=2, lattice=(8, 8), n_out=1, loss="bce")
_T3 = dict(task=3, lattice=(8, 8), n_out=1, loss="count")

_t3_rows = [
    (
        "EQ",
        1,
        "Conv(1x1, 4, 32) LeakyReLU Conv(2x2, 32, 8) LeakyReLU Conv(2x2, 8, 16) LeakyReLU "
        "Conv(1x1, 16, 8) LeakyReLU GlobalSumPool Linear(8, 1)",
        1800,
        None,
    ),
    (
        "EQ",
        2,
        "Conv(2x2, 4, 8) LeakyReLU Conv(2x2, 8, 8) LeakyReLU Conv(1x1, 8, 4) LeakyReLU "
        "Conv(1x1, 4, 8) LeakyReLU GlobalSumPool Linear(8, 1)",
        456,
        None,
    ),
    (
        "EQ",
        3,
        "Conv(1x1, 4, 4) LeakyReLU Conv(2x2, 4, 8) LeakyReLU Conv(2x2, 8, 4) LeakyReLU "
        "Conv(3x3, 4, 1) LeakyReLU GlobalSumPool",
        308,
        None,
    ),
    (
        "ST",
        1,
        "Conv(2x2, 4, 16) LeakyReLU Conv(1x1, 16, 32) LeakyReLU Conv(1x1, 32, 32) LeakyReLU "
        "AvgPool(2x2, 2) Conv(1x1, 32, 8) LeakyReLU GlobalSumPool Linear(8, 32) LeakyReLU "
        "Linear(32, 1)",
        2336,
        None,
    ),
    (
        "ST",
        2,
        "Conv(2x2, 4, 4) LeakyReLU MaxPool(2x2, 2) Conv(2x2, 4, 4) LeakyReLU GlobalSumPool "
        "Linear(4, 1)",
        132,
        None,
    ),
    (
        "ST",
        3,
        "Conv(2x2, 4, 4) LeakyReLU AvgPool(2x2, 2) Conv(3x3, 4, 16) LeakyReLU GlobalSumPool "
        "Linear(16, 32) LeakyReLU Linear(32, 1)",
        1184,
        None,
    ),
    (
        "FL",
        1,
        "Conv(2x2, 4, 4) LeakyReLU AvgPool(2x2, 2) Conv(3x3, 4, 8) LeakyReLU AvgPool(2x2, 2) "
        "Flattening Linear(8, 4) LeakyReLU Linear(4, 32) LeakyReLU Linear(32, 1)",
        640,
        ("Linear(8, 4)", "Linear(32, 4)", 8, 32),
    ),
    (
        "FL",
        2,
        "Conv(2x2, 4, 8) LeakyReLU AvgPool(2x2, 2) Conv(3x3, 8, 4) LeakyReLU AvgPool(2x2, 2) "
        "Flattening Linear(4, 4) LeakyReLU Linear(4, 32) LeakyReLU Linear(32, 1)",
        640,
        ("Linear(4, 4)", "Linear(16, 4)", 4, 16),
    ),
    (
        "FL",
        3,
        "Conv(2x2, 4, 32) LeakyReLU AvgPool(2x2, 2) Conv(3x3, 32, 4) LeakyReLU "
        "AvgPool(2x2, 2) Flattening Linear(4, 32) LeakyReLU Linear(32, 16) LeakyReLU "
        "Linear(16, 1)",
        2704,
        ("Linear(4, 32)", "Linear(16, 32)", 4, 16),
    ),
]


def _task3(family, rank, transcribed, stated, flat_fix) -> Published:
    fixed = transcribed
    reading = _T3_NOBIAS
    if flat_fix is not None:
        old, new, c, f = flat_fix
        fixed = transcribed.replace(old, new, 1)
        reading += "; " + _T3_FLAT.format(c=c, f=f)
    return Published(
        family=family,
        rank=rank,
        transcribed=transcribed,
        stated_params=stated,
        spec=_nobias(fixed),
        reading=reading,
        **_T3,
    )


#: The 15 winning architectures of the backup tables of :cite:p:`Favoni:2021talk`: task 1
#: (regression of n and |phi|^2 on N_t × N_x = 60 × 4), task 2 (detecting a flux
#: violation on 8 × 8), task 3 (counting flux violations on 8 × 8, three per family).
PUBLISHED: tuple[Published, ...] = (
    Published(
        family="EQ",
        rank=1,
        transcribed="Conv(1x1, 4, 64) LeakyReLU Conv(1x1, 64, 48) LeakyReLU Conv(1x1, 48, 80) "
        "LeakyReLU Conv(2x2, 80, 80) LeakyReLU GlobalAvgPool Linear(80, 2)",
        stated_params=33202,
        **_T1,
    ),
    Published(
        family="ST",
        rank=1,
        transcribed="Conv(1x1, 4, 80) LeakyReLU Conv(1x1, 80, 80) LeakyReLU Conv(1x1, 80, 48) "
        "LeakyReLU AvgPool(2x2, 2) Conv(2x2, 48, 80) LeakyReLU GlobalAvgPool Linear(80, 2)",
        stated_params=26370,
        **_T1,
    ),
    Published(
        family="FL",
        rank=1,
        transcribed="Conv(1x1, 4, 64) LeakyReLU Conv(2x2, 64, 80) LeakyReLU AvgPool(2x2, 2) "
        "Conv(1x1, 80, 48) LeakyReLU Conv(2x2, 48, 64) LeakyReLU AvgPool(2x2, 2) "
        "Conv(1x1, 64, 24) Flatten Linear(360, 24) LeakyReLU Linear(24, 2)",
        stated_params=47394,
        **_T1,
    ),
    Published(
        family="EQ",
        rank=1,
        transcribed="Conv(2x2, 4, 32) LeakyReLU Conv(1x1, 32, 32) LeakyReLU GlobalMaxPool "
        "Linear(32, 32) LeakyReLU Linear*(32, 1) Sigmoid",
        stated_params=2657,
        spec="Conv(2x2, 4, 32) LeakyReLU Conv(1x1, 32, 32) LeakyReLU GlobalMaxPool "
        "Linear*(32, 32) LeakyReLU Linear(32, 1) Sigmoid",
        reading="the bias star is printed on the last Linear; as printed the count is "
        "2688 = 2657 + 32 - 1, so the star belongs to Linear(32, 32) (no bias: -32) and the "
        "output layer keeps its bias (+1), as in the task-2 ST winner",
        **_T2,
    ),
    Published(
        family="ST",
        rank=1,
        transcribed="Conv*(2x2, 4, 16) LeakyReLU MaxPool(2x2, 2) Conv(1x1, 16, 16) LeakyReLU "
        "Conv(1x1, 16, 8) LeakyReLU GlobalMaxPool Linear*(8, 32) Linear(32, 1) Sigmoid",
        stated_params=953,
        **_T2,
    ),
    Published(
        family="FL",
        rank=1,
        transcribed="Conv*(3x3, 4, 8) LeakyReLU MaxPool(2x2, 2) Conv(2x2, 8, 32) LeakyReLU "
        "AvgPool(2x2, 2) Conv(2x2, 32, 32) LeakyReLU Flatten Linear*(128, 1) Sigmoid",
        stated_params=5600,
        **_T2,
    ),
    *(_task3(*row) for row in _t3_rows),
)


def published(task: int, family: str, rank: int = 1) -> Published:
    """Look up a published architecture, e.g. ``published(3, "EQ", 2)``."""
    for entry in PUBLISHED:
        if (entry.task, entry.family, entry.rank) == (task, family.upper(), rank):
            return entry
    raise ValueError(
        f"no published architecture for task={task!r}, family={family!r}, rank={rank!r}; "
        f"available: {[(e.task, e.family, e.rank) for e in PUBLISHED]}"
    )
