"""Run a grid of independent jobs on local worker processes or on a Dask cluster.

A grid (family x N_train x seed x augmentation, see :func:`qftml.experiments.run_grid`) is
a list of independent, idempotent jobs, each named by its content key. This module runs
them on `Dask distributed <https://distributed.dask.org>`_, an existing engine that retries
the job of a worker that died on another worker:

- **By default** on a ``distributed.LocalCluster`` of local worker processes, one per
  core (nothing to start; ``QFTML_WORKERS=N`` or ``workers=N`` for fewer, ``0`` to run in
  this process). The cluster is started on first use and kept for later grids of the same
  process (a notebook's kernel).
- **Given a scheduler address** (``scheduler="tcp://host:8786"``, the environment variable
  ``QFTML_SCHEDULER``, or ``python -m qftml book --scheduler ADDRESS``) on that cluster,
  e.g. one started by ``dask-jobqueue``'s ``SLURMCluster`` (see ``book/reproduce.md``). The
  workers must see the same data folder (:func:`qftml.paths.data_dir`, a shared file system).

Jobs whose result is already on disk (``inline``) run in this process: loading a cached
instance starts no worker. Jobs are submitted under their key, so a job that is already
running on the scheduler for another client is shared rather than run twice. A job that
fails raises here after every finished job's result has been kept on disk by the job itself.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable, Mapping, Sequence

from .progress import progress

__all__ = ["SCHEDULER_ENV", "WORKERS_ENV", "get_client", "local_workers", "map_jobs"]

#: Environment variable naming a Dask scheduler address (e.g. ``tcp://host:8786``).
SCHEDULER_ENV = "QFTML_SCHEDULER"
#: Environment variable with the number of local worker processes (``0``: this process).
WORKERS_ENV = "QFTML_WORKERS"

_CLIENTS: dict = {}


def cores() -> int:
    """Cores this process may use (its CPU affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def local_workers(workers: int | None = None) -> int:
    """Number of local worker processes: ``workers``, else ``$QFTML_WORKERS``, else cores."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        if env:
            try:
                workers = int(env)
            except ValueError:
                raise ValueError(f"{WORKERS_ENV} must be an integer; got {env!r}") from None
        else:
            workers = cores()
    if int(workers) < 0:
        raise ValueError(f"workers must be >= 0; got {workers}")
    return int(workers)


def scheduler_address(scheduler=None):
    """``scheduler`` (an address or a ``distributed.Client``), else ``$QFTML_SCHEDULER``."""
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV, "").strip() or None
    return scheduler


def get_client(scheduler=None, workers: int | None = None):
    """A ``distributed.Client`` of ``scheduler``, or of a local cluster of ``workers``.

    The local cluster has ``workers`` processes with one task each and ``cores // workers``
    torch threads each (``OMP_NUM_THREADS``), no memory limit (a worker is never restarted
    for its memory) and no dashboard; it is closed when the process exits.
    """
    from distributed import Client, LocalCluster

    scheduler = scheduler_address(scheduler)
    if isinstance(scheduler, Client):
        return scheduler
    if scheduler is not None:
        key = ("remote", str(scheduler))
        if key not in _CLIENTS or _CLIENTS[key][1].status != "running":
            _CLIENTS[key] = (None, Client(str(scheduler)))
        return _CLIENTS[key][1]
    n = local_workers(workers)
    if n < 1:
        raise ValueError("a local cluster needs workers >= 1 (0 runs jobs in this process)")
    key = ("local", n)
    if key not in _CLIENTS or _CLIENTS[key][1].status != "running":
        threads = str(max(1, cores() // n))
        env = {v: threads for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, memory_limit=0,
            dashboard_address=":0", silence_logs=logging.ERROR, env=env,  # any free port
        )  # fmt: skip
        _CLIENTS[key] = (cluster, Client(cluster))
    return _CLIENTS[key][1]


@atexit.register
def _close_clients() -> None:
    for cluster, client in list(_CLIENTS.values()):
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
    _CLIENTS.clear()


def map_jobs(
    fn: Callable,
    items: Sequence,
    *,
    keys: Sequence[str],
    shared: Mapping | None = None,
    inline: Sequence[bool] | None = None,
    scheduler=None,
    workers: int | None = None,
    desc: str = "jobs",
    on_result: Callable | None = None,
) -> list:
    """``[fn(item, **shared) for item in items]``, run as independent jobs named ``keys``.

    ``shared`` (e.g. the training data) is sent to the cluster once, not with every job.
    Jobs with ``inline[i]`` true (e.g. already cached) run in this process, the others on
    the cluster of :func:`get_client`; with ``workers=0`` and no scheduler all run here. A
    progress bar over the jobs shows the time left (silent in CI, see
    :mod:`qftml.progress`). Results come back in the order of ``items``; ``on_result(i,
    result)`` is called as each one arrives (to keep what finished if a later job fails).
    """
    items = list(items)
    keys = [str(k) for k in keys]
    if len(keys) != len(items) or len(set(keys)) != len(keys):
        raise ValueError(f"keys must be {len(items)} distinct names, one per item; got {keys}")
    shared = dict(shared or {})
    inline = [False] * len(items) if inline is None else [bool(b) for b in inline]
    if len(inline) != len(items):
        raise ValueError(f"inline must have {len(items)} entries; got {len(inline)}")
    if scheduler_address(scheduler) is None and local_workers(workers) == 0:
        inline = [True] * len(items)
    results: list = [None] * len(items)
    remote = [i for i, here in enumerate(inline) if not here]
    with progress(total=len(items), desc=desc, unit="job") as bar:
        futures = {}
        if remote:
            from distributed import as_completed

            client = get_client(scheduler, workers)
            # one copy on every worker: a killed worker takes no input away from the others
            scattered = {
                k: client.scatter([v], hash=False, broadcast=True)[0] for k, v in shared.items()
            }
            for i in remote:
                fut = client.submit(fn, items[i], key=keys[i], pure=False, **scattered)
                futures[fut] = i
        try:
            for i, here in enumerate(inline):
                if here:
                    results[i] = fn(items[i], **shared)
                    bar.update()
                    if on_result is not None:
                        on_result(i, results[i])
            if futures:
                for fut in as_completed(list(futures)):
                    i = futures[fut]
                    results[i] = fut.result()
                    bar.update()
                    if on_result is not None:
                        on_result(i, results[i])
        finally:
            for fut in futures:
                fut.release()
    return results
