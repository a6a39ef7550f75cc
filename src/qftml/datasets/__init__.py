"""The three tasks' datasets of :cite:p:`Bulusu:2021njs`: generation, storage, cache, loading.

- Task 1 (regression): dual configurations of the complex phi^4 field at ``eta = 4.01``,
  ``lambda = 1`` over a grid of ``mu`` across the Silver Blaze onset, with the
  per-configuration density ``n`` and ``|phi|^2`` as targets; training on ``60x4``,
  testing also on larger lattices.
- Task 2 (classification): valid configurations and configurations with an open worm
  (a flux violation), exactly balanced.
- Task 3 (counting): configurations with 0 to 10 open worms; the target is the number of
  sites with nonzero flux divergence.

Quick use::

    from qftml import datasets
    datasets.build("all", profile="ci")              # or: python -m qftml data all
    train = datasets.load_task1("ci", "train")       # TaskData
    X, y = train.xy                                  # (N, 4, 60, 4) float32, (N, 2)
    test = datasets.load_task3("ci", "test", "32x32").where(n_worms=7)

Files live under ``$QFTML_DATA/datasets/<profile>/task<t>/<split>/<lattice>/`` (default
``<repo>/data``), one HDF5 file per parameter point, keyed by content.
"""

from .api import (
    TARGETS,
    BuildReport,
    TaskData,
    build,
    build_jobs,
    decorrelation_problem,
    lattices,
    load,
    load_task1,
    load_task2,
    load_task3,
    n_processes,
)
from .encoding import CHANNELS, channel_rms, decode, encode, stack_channels
from .jobs import (
    Job,
    code_digest,
    dataset_params,
    datasets_dir,
    jobs_for,
    lattice_name,
    parse_lattice,
)
from .storage import (
    CorruptFile,
    DatasetFileError,
    IncompleteFile,
    StaleFile,
    cached,
    checksum,
    read,
    write,
)
from .violations import Insertion, endpoint_divergence, insert_worms

__all__ = [
    "TARGETS",
    "BuildReport",
    "TaskData",
    "build",
    "build_jobs",
    "decorrelation_problem",
    "lattices",
    "load",
    "load_task1",
    "load_task2",
    "load_task3",
    "n_processes",
    "CHANNELS",
    "channel_rms",
    "decode",
    "encode",
    "stack_channels",
    "Job",
    "code_digest",
    "dataset_params",
    "datasets_dir",
    "jobs_for",
    "lattice_name",
    "parse_lattice",
    "CorruptFile",
    "DatasetFileError",
    "IncompleteFile",
    "StaleFile",
    "cached",
    "checksum",
    "read",
    "write",
    "Insertion",
    "endpoint_divergence",
    "insert_worms",
]
