"""Issue 15: bad input, interruption, corruption, concurrency (each failed before its fix)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import optuna
import pytest
import torch
from optuna.trial import TrialState

from qftml import datasets as ds
from qftml import experiments, instances, processes, search, training
from qftml.datasets import storage
from qftml.lattice import sample
from qftml.nets import from_spec
from qftml.search import Budget, Task

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


# ----------------------------------------------------------------------------- 5: non-finite data

SMALL = "Conv(1x1, 4, 2) GlobalAvgPool"


def _tiny(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, 4, 4), generator=g)
    return X, (X[:, :2] ** 2).float().mean(dim=(-2, -1))


@pytest.mark.parametrize("where", ["train X", "val y"])
def test_training_on_non_finite_data_is_refused(where):
    X, y = _tiny()[0].float(), _tiny()[1]
    Xv, yv = _tiny(seed=1)[0].float(), _tiny(seed=1)[1]
    if where == "train X":
        X[5, 0, 1, 1] = math.nan
        match = r"train_data: 1 non-finite .* inputs X, in 1 samples \(first: sample 5\)"
    else:
        yv[3, 1] = math.inf
        match = r"val_data: 1 non-finite .* targets y, in 1 samples \(first: sample 3\)"
    with pytest.raises(ValueError, match=match):
        training.train(from_spec(SMALL, seed=0), (X, y), (Xv, yv), max_epochs=2)


def test_a_loss_that_becomes_non_finite_stops_training():
    with pytest.raises(FloatingPointError, match="non-finite in epoch 1"):
        training.train(
            from_spec(SMALL, seed=0), _tiny(), _tiny(seed=1), max_epochs=3,
            transform=lambda x: x * math.nan,
        )  # fmt: skip


def test_integer_and_float64_inputs_are_accepted_and_complex_refused():
    X, y = _tiny()
    model = from_spec(SMALL, seed=0)
    ref = training.predict(model, X.float())
    for variant in (X, X.double(), X.numpy(), X.numpy().astype("int8")):
        assert torch.equal(training.predict(model, variant), ref)
    hist = training.train(from_spec(SMALL, seed=0), (X, y.double()), (X.double(), y), max_epochs=1)
    assert math.isfinite(hist.best_val_loss)
    for bad in (training.predict, lambda m, x: training.train(m, (x, y), (X, y))):
        with pytest.raises(TypeError, match="X must be real; got complex"):
            bad(model, X.to(torch.complex64))


# ----------------------------------------------------------------------------- 6, 7: model cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QFTML_DATA", str(tmp_path))
    task, budget = Task(n_out=2, lattice=(4, 4)), Budget(max_epochs=2, patience=2)
    return {"task": task, "budget": budget, "train_data": _tiny(), "val_data": _tiny(seed=1)}


def _instance(cache, **kw):
    return experiments.train_instance(SMALL, **cache, seed=3, **kw)


def test_truncated_model_file_is_retrained_with_a_message(cache):
    first = _instance(cache)
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match=f"retraining {first.path} \\(unreadable"):
        again = _instance(cache)
    assert not again.cached
    weights = [m.state_dict() for m in (first.model, training.load_model(again.path))]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # same seed
    assert _instance(cache).cached


def test_altered_weights_fail_the_checksum(cache):
    first = _instance(cache)
    record = torch.load(first.path, weights_only=True)
    name = next(iter(record["state_dict"]))
    record["state_dict"][name] += 1.0
    torch.save(record, first.path)  # a valid file, but not what was trained
    with pytest.warns(RuntimeWarning, match=f"retraining {first.path} \\(checksum mismatch"):
        assert not _instance(cache).cached


@pytest.mark.parametrize("damage", [lambda t: t[: len(t) // 2], lambda t: t.replace("0", "1")])
def test_corrupt_evaluation_cache_is_re_evaluated(cache, damage):
    inst = _instance(cache)
    tests = {"test": _tiny(seed=2)}
    fresh = experiments.evaluate_instance(inst, tests, task=cache["task"])
    store = inst.path.with_suffix(".eval.json")
    store.write_text(damage(store.read_text()))
    with pytest.warns(RuntimeWarning, match=f"re-evaluating {store}"):
        assert experiments.evaluate_instance(inst, tests, task=cache["task"]) == fresh
    assert experiments.evaluate_instance(inst, tests, task=cache["task"]) == fresh  # repaired


def test_two_writers_of_one_instance_do_not_collide(cache, monkeypatch):
    """A second writer finishes the same instance while the first one is saving: with a
    shared temporary the first one's rename found no file; now both land, the file is whole."""
    real_save, calls = instances.save_model, []

    def save_and_interleave(path, *args, **kw):
        real_save(path, *args, **kw)
        calls.append(path)
        if len(calls) == 1:  # the other writer runs now (here: the same call, re-entered)
            assert not _instance(cache).cached

    monkeypatch.setattr(instances, "save_model", save_and_interleave)
    inst = _instance(cache)
    assert len(calls) == 2 and calls[0] != calls[1]
    monkeypatch.setattr(instances, "save_model", real_save)
    assert _instance(cache).cached and [p.name for p in inst.path.parent.iterdir()] == [
        inst.path.name
    ]


# ----------------------------------------------------------------------------- 2: resumed search

S_TASK = Task(n_out=1, lattice=(4, 4), loss="mse", max_conv=2, max_linear=2)
S_BUDGET = Budget(max_epochs=1, patience=1, batch_size=16)


def _s_data():
    def one(n, seed):
        X, _ = _tiny(n, seed)
        return X.float(), (X[:, 0] ** 2).float().mean(dim=(-2, -1))[:, None]

    return one(32, 1), one(16, 2)


def _specs(study):
    return [t.user_attrs["spec"] for t in search.finished_trials(study) if "spec" in t.user_attrs]


def test_resumed_search_proposes_new_architectures(tmp_path):
    """Killed after 5 trials and resumed to 10: 10 distinct architectures (was 5)."""
    kw = dict(task=S_TASK, budget=S_BUDGET, storage=tmp_path / "r.journal", study_name="r", seed=0)
    search.run("EQ", *_s_data(), n_trials=10, max_new_trials=5, **kw)
    study = search.run("EQ", *_s_data(), n_trials=10, **kw)
    specs = _specs(study)
    assert len(search.finished_trials(study)) == 10 and len(set(specs)) == len(specs) == 10


def test_chunked_search_proposes_new_architectures(tmp_path):
    """Three chunks of two trials: six distinct architectures (was two)."""
    kw = dict(task=S_TASK, budget=S_BUDGET, storage=tmp_path / "c.journal", study_name="c", seed=0)
    for _ in range(3):
        study = search.run("EQ", *_s_data(), n_trials=6, max_new_trials=2, **kw)
    specs = _specs(study)
    assert len(search.finished_trials(study)) == 6 and len(set(specs)) == len(specs) == 6


def test_an_evaluated_architecture_is_not_trained_again(tmp_path, monkeypatch):
    spec = "Conv(2x2, 4, 8) LeakyReLU GlobalAvgPool Linear(8, 1)"
    kw = dict(task=S_TASK, budget=S_BUDGET, storage=tmp_path / "d.journal", study_name="d")
    study = search.run("EQ", *_s_data(), n_trials=1, enqueue=[spec], **kw)
    study.enqueue_trial(search.params_for_spec(spec, S_TASK))  # propose it once more
    trained = []
    real_train = search.train
    monkeypatch.setattr(
        search, "train", lambda m, *a, **k: trained.append(m.spec) or real_train(m, *a, **k)
    )
    study = search.run("EQ", *_s_data(), n_trials=2, **kw)
    (dup,) = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert dup.state == TrialState.FAIL and dup.user_attrs["duplicate_of"] == 0
    assert len(trained) == 1 and trained[0] != spec and len(search.finished_trials(study)) == 2


# ----------------------------------------------------------------------------- 3: torn journal

_SHORT_WRITE = """
import resource, signal, sys, torch
from qftml import search
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is cut short (EFBIG)
size = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
def one(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, 4, 4), generator=g).float()
    return X, (X[:, 0] ** 2).mean(dim=(-2, -1))[:, None]
search.run("EQ", one(32, 1), one(16, 2), n_trials=4, storage=sys.argv[1], study_name="j",
           task=search.Task(lattice=(4, 4), max_conv=2, max_linear=2),
           budget=search.Budget(max_epochs=1, patience=1, batch_size=16))
"""


def test_journal_torn_by_a_short_write_is_repaired(tmp_path):
    """A real short write (file-size limit, as a full disk): the search dies with a torn last
    record; the resumed search repairs the journal and finishes the study."""
    journal = tmp_path / "j.journal"
    kw = dict(task=S_TASK, budget=S_BUDGET, storage=journal, study_name="j")
    search.run("EQ", *_s_data(), n_trials=1, **kw)
    limit = journal.stat().st_size + 200  # room for part of the next trial's records
    script = tmp_path / "short.py"
    script.write_text(_SHORT_WRITE)
    env = dict(os.environ, QFTML_QUIET="1")
    proc = subprocess.run(
        [sys.executable, str(script), str(journal), str(limit)], env=env, capture_output=True
    )
    assert proc.returncode != 0 and b"File too large" in proc.stderr
    assert journal.stat().st_size == limit and not journal.read_bytes().endswith(b"\n")
    study = search.run("EQ", *_s_data(), n_trials=4, **kw)  # resume: repairs, then appends
    assert len(search.finished_trials(study)) == 4
    again = optuna.load_study(study_name="j", storage=search.make_storage(journal))
    assert len(search.finished_trials(again)) == 4
    assert list(tmp_path.glob("j.journal.damaged-*"))


def test_journal_with_a_record_appended_behind_a_torn_one_is_repaired(tmp_path):
    """The damage optuna leaves (issue 5138): a torn record with the next one behind it."""
    journal = tmp_path / "k.journal"
    kw = dict(task=S_TASK, budget=S_BUDGET, storage=journal, study_name="k")
    search.run("EQ", *_s_data(), n_trials=2, **kw)
    lines = journal.read_bytes().split(b"\n")
    torn = lines[2][: len(lines[2]) // 2]
    lines[3] = torn + lines[3]  # half of record 3 glued before record 4
    journal.write_bytes(b"\n".join(lines))
    assert search.repair_journal(journal) == [f"line 4: dropped a torn record of {len(torn)} bytes"]
    assert search.repair_journal(journal) == []  # now intact
    study = optuna.load_study(study_name="k", storage=search.make_storage(journal))
    assert len(search.finished_trials(study)) == 2


_FULL_DISK = """
import resource, signal, sys, numpy as np
from qftml.datasets import storage
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is cut short (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    storage.write(sys.argv[1], {"x": np.random.default_rng(0).normal(size=100_000)}, {}, "k")
except OSError as exc:
    print(exc)
"""


def test_a_dataset_write_cut_short_names_the_file(tmp_path):
    """A real short write (as on a full disk): an OSError that names the file and the cause,
    no temporary left, no file at the target, and no crash at exit (h5py writing to the disk
    itself said "slist already enabled?" and the interpreter then died of a segfault)."""
    target = tmp_path / "d" / "a.h5"
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(target)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"cannot write dataset {target}: File too large" in proc.stdout
    assert list(target.parent.iterdir()) == []


# ----------------------------------------------------------------------------- readable errors


def _one_line(capsys, main, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if "ExperimentalWarning" not in line and "optuna_warn" not in line]
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_command_line_faults_are_one_readable_line(tmp_path, monkeypatch, capsys):
    from qftml.__main__ import main

    assert "unknown profile 'nope'" in _one_line(capsys, main, ["book", "--profile", "nope"])
    bad = tmp_path / "profiles.yml"
    bad.write_text("ci:\n  a: [1, 2\n")
    monkeypatch.setenv("QFTML_PROFILES", str(bad))
    assert f"{bad} line 3: malformed YAML" in _one_line(capsys, main, ["data", "1"])
    monkeypatch.delenv("QFTML_PROFILES")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("QFTML_DATA", str(blocker / "data"))
    assert "a file stands where a folder is needed" in _one_line(capsys, main, ["data", "1"])
    monkeypatch.setenv("QFTML_DATA", str(blocker))
    line = _one_line(capsys, main, ["data", "1"])
    assert str(blocker) in line and "a file stands where a folder is needed" in line


def test_a_read_only_data_folder_is_one_readable_line(tmp_path, monkeypatch, capsys):
    """A data folder the user may not write to. The tests run as root here, which file modes
    do not stop, so the kernel's answer (EACCES on creating anything below the folder) is
    raised by ``Path.mkdir`` and ``os.open`` for every path below it."""
    import errno
    import pathlib

    from qftml.__main__ import main

    ro = tmp_path / "read-only"
    ro.mkdir()

    def refuse(path):
        if str(path).startswith(str(ro) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    mkdir, open_ = pathlib.Path.mkdir, os.open
    monkeypatch.setattr(pathlib.Path, "mkdir", lambda p, *a, **k: refuse(p) or mkdir(p, *a, **k))
    monkeypatch.setattr(os, "open", lambda p, *a, **k: refuse(p) or open_(p, *a, **k))
    monkeypatch.setenv("QFTML_DATA", str(ro))
    monkeypatch.setenv("CI", "true")  # no progress bar on stderr
    line = _one_line(capsys, main, ["data", "2", "--profile", "ci", "--jobs", "1"])
    assert "Permission denied" in line and str(ro) in line, line


def test_search_command_names_a_bad_storage_url(tmp_path, capsys):
    data = tmp_path / "d.pt"
    torch.save({"train": _s_data()[0], "val": _s_data()[1]}, data)
    line = _one_line(capsys, search.main, ["EQ", str(data), "--storage", "nope://x"])
    assert "cannot open the optuna storage 'nope://x'" in line


@pytest.mark.parametrize(
    "spec,fault",
    [
        ("Conv2d(3x3, 4, 8) GlobalAvgPool", "unknown layer 'Conv2d'"),
        ("Conv(3x3, 4, 8", r"missing '\)' in 'Conv\(3x3, 4, 8'"),
        ("Conv(3x3, 4, 8) GlobalAvgPool Linear(8, 1", r"missing '\)' in 'Linear\(8, 1'"),
    ],
)
def test_spec_parser_names_the_real_fault(spec, fault):
    from qftml.nets import parse_spec

    with pytest.raises(ValueError, match=fault):
        parse_spec(spec)


@pytest.mark.parametrize("seed", [1.5, -1, True])
def test_from_spec_refuses_a_seed_the_sampler_refuses(seed):
    with pytest.raises(ValueError, match=f"seed must be an integer >= 0; got seed={seed!r}"):
        from_spec(SMALL, seed=seed)
    a, b = (from_spec(SMALL, seed=v).state_dict() for v in (2.0, 2))  # 2.0 is the integer 2
    assert all(torch.equal(a[k], b[k]) for k in a)


_WORKER = """
import time
from qftml.processes import exit_with_parent
exit_with_parent(0.1)
time.sleep(60)
"""
_ORPHAN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(1.0)  # the worker is running
os._exit(0)  # the parent dies without a word to its worker
"""


_BUILDER = """
import os, sys, threading, time
import psutil
from qftml.datasets.api import build_jobs
from qftml.datasets.jobs import Job

def die_when_sampling():
    me = psutil.Process()
    deadline = time.time() + 60
    while time.time() < deadline:
        workers = [c for c in me.children() if "resource_tracker" not in " ".join(c.cmdline())]
        if len(workers) >= 2:
            time.sleep(1.0)  # both are inside a job
            print(*[w.pid for w in workers], flush=True)
            break
        time.sleep(0.1)
    os._exit(0)  # the build dies without a word to its workers, as under kill -9

threading.Thread(target=die_when_sampling, daemon=True).start()
jobs = [Job(1, "train", 8, 8, 4.01, 1.0, mu, 10**6, 7, "ci") for mu in (0.9, 1.0)]
build_jobs(jobs, jobs=2, root=__import__("pathlib").Path(sys.argv[1]), log=None)
"""


def test_dataset_workers_exit_when_the_build_dies(tmp_path):
    """A build killed while its loky workers sample (for minutes) leaves none running."""
    out, err = tmp_path / "builder.out", tmp_path / "builder.err"
    with open(out, "w") as fo, open(err, "w") as fe:  # files: orphans holding a pipe block run()
        subprocess.run(
            [sys.executable, "-c", _BUILDER, str(tmp_path)], stdout=fo, stderr=fe, timeout=120
        )
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) >= 2, err.read_text()[-2000:]
    deadline = time.time() + 60  # a worker still importing qftml exits when it gets its job
    while any(processes.pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    alive = [p for p in pids if processes.pid_alive(p)]
    for p in alive:
        os.kill(p, 9)
    assert not alive, f"workers {alive} outlived their build"


def test_a_worker_exits_when_its_parent_dies():
    out = subprocess.run([sys.executable, "-c", _ORPHAN, _WORKER], capture_output=True, text=True)
    pid = int(out.stdout.split()[0])
    deadline = time.time() + 10
    while processes.pid_alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    alive = processes.pid_alive(pid)
    if alive:
        os.kill(pid, 9)
    assert not alive
