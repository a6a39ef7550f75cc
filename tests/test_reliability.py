"""Issue 15: bad input, interruption, corruption, concurrency (each failed before its fix)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from qftml import datasets as ds
from qftml import processes
from qftml.datasets import storage
from qftml.lattice import sample

# ----------------------------------------------------------------------------- 1: divergent theory


@pytest.mark.parametrize("eta,mu", [(0.01, 0.0), (4.0, 0.0), (5.0, 1.0)])
def test_divergent_free_theory_is_refused(eta, mu):
    """lam = 0 with eta <= 2 + 2 cosh(mu): no ground state; the error states the bound."""
    with pytest.raises(ValueError, match=r"eta > 2 \+ 2 cosh\(mu\)") as info:
        sample(4, 4, eta, 0.0, mu, 10, seed=0, n_therm=0)
    assert f"{2 + 2 * __import__('math').cosh(mu):.6g}" in str(info.value)


def test_divergent_free_theory_is_refused_by_the_data_jobs():
    params = {
        "seed": 1,
        "task1": {"lam": 0.0, "train": {"lattices": ["4x4"], "eta": 0.01, "mu": 0.0, "n": 10}},
    }
    with pytest.raises(ValueError, match=r"task 1 train 4x4: .*2 \+ 2 cosh\(mu\) = 4"):
        ds.jobs_for(1, "p", params=params)


def test_huge_mu_is_refused_clearly():
    with pytest.raises(ValueError, match=r"\|mu\| must be < 709.*mu=1000"):
        sample(4, 4, 4.01, 1.0, 1000.0, 10, seed=0, n_therm=0)


# ----------------------------------------------------------------------------- 8: file names


def test_distinct_points_get_distinct_file_names():
    base = dict(task=1, split="train", nt=4, nx=60, eta=4.01, lam=1.0, n=10, seed=1, profile="p")
    a, b = ds.Job(mu=1.0, **base), ds.Job(mu=1.0000001, **base)
    assert a.content_key() != b.content_key()
    assert a.relpath() != b.relpath()
    assert a.relpath().name == "eta4.01_mu1.h5"  # short names stay as they were
    assert float(b.relpath().name.removesuffix(".h5").split("_mu")[1]) == 1.0000001


# ----------------------------------------------------------------------------- 4: temporaries


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_other_hosts_survive_until_stale(tmp_path):
    """A shared data folder: a fresh temporary whose writer is not in this host's process
    table (another host, or the old name without a host) is left alone; the same file left
    untouched beyond the stated age, or one whose local writer is gone, is removed."""
    pid = _dead_pid()
    other = tmp_path / f"a.h5.tmp-{pid}@some-other-host.0123abcd"
    legacy = tmp_path / f"b.h5.tmp-{pid}"
    local = tmp_path / f"c.h5.tmp-{pid}@{processes.hostname()}.89abcdef"
    mine = processes.temporary_path(tmp_path / "d.h5")
    for p in (other, legacy, local, mine):
        p.write_bytes(b"partial")
    assert storage.clean_temporaries(tmp_path) == [local]
    assert other.exists() and legacy.exists() and mine.exists()
    old = time.time() - processes.STALE_AGE - 60
    for p in (other, legacy):
        os.utime(p, (old, old))
    assert sorted(storage.clean_temporaries(tmp_path)) == sorted([other, legacy])
    assert list(tmp_path.iterdir()) == [mine]


def test_temporary_names_carry_host_and_process(tmp_path):
    a, b = processes.temporary_path(tmp_path / "x"), processes.temporary_path(tmp_path / "x")
    assert a != b and f"-{os.getpid()}@{processes.hostname()}." in a.name
    assert processes.is_temporary(a) and not processes.writer_gone(a)
