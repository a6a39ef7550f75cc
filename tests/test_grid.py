"""qftml.grid: a grid of instances on a real Dask cluster, one worker killed in the middle."""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import threading
import time

import pandas as pd
import pytest
import torch
from distributed import Client, LocalCluster

from qftml import experiments as ex
from qftml import grid
from qftml.search import Budget, Task

LATTICE = (4, 6)
TASK = Task(n_out=2, lattice=LATTICE, loss="mse")
# long enough (about a second an instance) for the kill to land inside a training
BUDGET = Budget(max_epochs=30, patience=30, batch_size=8, lr=3e-3)
EQ = "Conv(1x1, 4, 8) LeakyReLU Conv(2x2, 8, 8) LeakyReLU GlobalAvgPool Linear(8, 2)"
FL = "Conv(1x1, 4, 4) LeakyReLU AvgPool(2x2, 2) Flatten Linear(24, 2)"
GRID = dict(sizes=[48], seeds=[0, 1, 2], task=TASK, budget=BUDGET, output_names=("a", "b"))


def synthetic(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, *LATTICE), generator=g).float()
    y = torch.stack([X[:, 0].mean(dim=(1, 2)), (X[:, 1] ** 2).mean(dim=(1, 2))], dim=1)
    return X, y


def _executing(dask_worker):
    """(pid, keys of the tasks running now) of a worker (run there by ``Client.run``)."""
    return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]


def _log():
    path = ex.training_log()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_grid_on_cluster_survives_a_killed_worker(tmp_path, monkeypatch):
    train, val, tests = synthetic(48, 1), synthetic(16, 2), {"test": synthetic(16, 3)}
    specs = {"EQ": EQ, "FL": FL}
    monkeypatch.setenv("QFTML_DATA", str(tmp_path / "cluster"))
    killed = {}

    def kill_one_in_the_middle(client, stop):
        # the first worker to finish an instance is SIGKILLed as it trains its next one
        while not stop.is_set() and not killed:
            log = _log()
            if log:
                for pid, keys in client.run(_executing).values():
                    done = [r["key"][:24] for r in _log()]  # read again: still training?
                    fresh = keys and not any(k in key for k in done for key in keys)
                    if pid == log[0]["pid"] and fresh:
                        os.kill(pid, signal.SIGKILL)
                        # a worker can finish between the check and the kill: then its
                        # record is in the log already, written before it died
                        done = [r["key"][:24] for r in _log() if r["pid"] == pid]
                        finished = any(k in key for k in done for key in keys)
                        killed.update(pid=pid, keys=keys, finished=finished)
                        break
            time.sleep(0.02)

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
            dashboard_address=None, silence_logs=logging.CRITICAL,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.wait_for_workers(2)
        stop = threading.Event()
        killer = threading.Thread(target=kill_one_in_the_middle, args=(client, stop))
        killer.start()
        try:
            table, insts = ex.run_grid(specs, train, val, tests, scheduler=client, **GRID)
        finally:
            stop.set()
            killer.join()
        assert killed, "no worker was killed while training"
        first_log = _log()
        again, _ = ex.run_grid(specs, train, val, tests, scheduler=client, **GRID)
    keys = table["key"].tolist()
    assert len(keys) == len(set(keys)) == 2 * 3
    # every instance exists once, was trained exactly once, and the rerun trained none
    assert collections.Counter(r["key"] for r in first_log) == {k: 1 for k in keys}
    assert sorted(p.stem for p in ex.cache_dir().glob("*.pt")) == sorted(keys)
    assert again["cached"].all() and _log() == first_log
    # the instance the killed worker was training was trained by another process (unless
    # it had finished just before the kill)
    lost = [r for r in first_log if any(r["key"][:24] in k for k in killed["keys"])]
    assert len(lost) == 1
    assert (lost[0]["pid"] == killed["pid"]) == killed["finished"]

    # the same grid in this process (one thread, as on the workers) gives the same results
    monkeypatch.setenv("QFTML_DATA", str(tmp_path / "inline"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref, ref_insts = ex.run_grid(specs, train, val, tests, workers=0, **GRID)
    finally:
        torch.set_num_threads(threads)
    cols = ["label", "family", "n_train", "seed", "val", "epochs", "best_epoch", "test"]
    cols += ["test[a]", "test[b]", "key"]
    pd.testing.assert_frame_equal(table[cols], ref[cols], check_exact=True)
    pd.testing.assert_frame_equal(again[cols], ref[cols], check_exact=True)
    for a, b in zip(insts, ref_insts, strict=True):
        for name, t in a.model.state_dict().items():
            assert torch.equal(t, b.model.state_dict()[name]), name


def test_map_jobs_inline_and_bad_input(monkeypatch):
    monkeypatch.delenv(grid.SCHEDULER_ENV, raising=False)
    out = grid.map_jobs(lambda item, k: item * k, [1, 2, 3], keys="abc", shared={"k": 2}, workers=0)
    assert out == [2, 4, 6]
    seen = []
    grid.map_jobs(lambda item: -item, [1, 2], keys="ab", workers=0,
                  on_result=lambda i, r: seen.append((i, r)))  # fmt: skip
    assert seen == [(0, -1), (1, -2)]  # as each job finishes
    with pytest.raises(ValueError, match="distinct names"):
        grid.map_jobs(abs, [1, 2], keys=["a", "a"], workers=0)
    monkeypatch.setenv(grid.WORKERS_ENV, "many")
    with pytest.raises(ValueError, match="QFTML_WORKERS must be an integer; got 'many'"):
        grid.local_workers()
    monkeypatch.setenv(grid.WORKERS_ENV, "3")
    assert grid.local_workers() == 3 and grid.local_workers(1) == 1
    with pytest.raises(ValueError, match="workers must be >= 0; got -1"):
        grid.local_workers(-1)


def test_local_cluster_by_default(monkeypatch):
    monkeypatch.delenv(grid.SCHEDULER_ENV, raising=False)
    items = [-3, 1, -2, 5]
    out = grid.map_jobs(abs, items, keys=[f"abs-{i}" for i in range(4)], workers=2)
    assert out == [3, 1, 2, 5]
    client = grid.get_client(workers=2)
    assert len(client.scheduler_info()["workers"]) == 2
