"""qftml.datasets end to end with the worm sampler, on tiny lattices: generation, targets,
labels, reproducibility (bytes), the cache, regeneration, loading and the command line."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from qftml import datasets as ds
from qftml.datasets import generate as gen
from qftml.datasets import storage
from qftml.lattice import divergence, is_conserved, n_violations
from qftml.paths import ROOT

TINY = {
    "seed": 7,
    "jobs": 1,
    "sampler": {"n_therm": 20, "pilot": 60, "tau_factor": 2.0},
    "task1": {
        "eta": 4.01,
        "lam": 1.0,
        "train": {"lattices": ["8x4"], "mu": [0.8, 1.4], "n": 6},
        "test": {"lattices": ["8x4", "10x5"], "mu": [1.4], "n": 4},
    },
    "task2": {
        "lam": 1.0,
        "violated_worms": 1,
        "worm_length": [1, 6],
        "train": {"lattices": ["4x4"], "points": [[4.25, 1.0]], "n": 10},
    },
    "task3": {
        "lam": 1.0,
        "worm_length": [1, 6],
        "train": {"lattices": ["4x4"], "points": [[4.01, 1.5]], "worms": [0, 2, 5], "n": 4},
        "test": {"lattices": ["6x6"], "eta": [4.04], "mu": [1.0, 1.25], "worms": [3], "n": 3},
    },
}


def all_jobs(params=TINY):
    return [j for t in (1, 2, 3) for j in ds.jobs_for(t, "tiny", params=params)]


def digests(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.h5"))
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "datasets"  # = datasets_dir() of QFTML_DATA
    report = ds.build_jobs(all_jobs(), jobs=1, root=root, log=None)
    return root, report


def read(job, root):
    return storage.read(job.path(root), job.content_key())


def test_build_creates_every_file(built):
    root, report = built
    assert report.count("new") == len(all_jobs()) == len(list(root.rglob("*.h5")))


def test_stored_data_round_trip_exactly(built):
    root, _ = built
    job = ds.jobs_for(3, "tiny", "train", params=TINY)[0]
    arrays, attrs = gen.generate(job)  # the same job again, in memory
    stored, stored_attrs = read(job, root)
    assert sorted(stored) == sorted(arrays)
    for name, a in arrays.items():
        assert stored[name].dtype == a.dtype and np.array_equal(stored[name], a), name
    for name, value in attrs.items():
        assert stored_attrs[name] == value or (
            isinstance(value, float) and math.isnan(value) and math.isnan(stored_attrs[name])
        ), name


def test_provenance_attributes(built):
    root, _ = built
    for job in all_jobs():
        _, a = read(job, root)
        assert (a["eta"], a["lam"], a["mu"], a["seed"]) == (job.eta, job.lam, job.mu, 7)
        assert (a["nt"], a["nx"], a["n_configs"]) == (job.nt, job.nx, job.n_total)
        assert a["qftml_version"] and a["code_digest"] == ds.code_digest()
        assert a["content_key"] == job.content_key()
        # thinning by the measured autocorrelation time of the pilot chain, which spans at
        # least 100 tau_int (it starts at the profile's 60 sweeps and is lengthened)
        tau = a["tau_int_pilot"]
        assert a["n_skip"] == (max(1, math.ceil(2.0 * tau)) if math.isfinite(tau) else 1)
        if math.isfinite(tau):
            assert a["sampler"]["pilot"] >= max(60, gen.PILOT_TAUS * tau)
            assert a["sampler"]["tau_int_pilot_error"] > 0
        assert ds.decorrelation_problem(a) is None


def test_a_short_pilot_is_lengthened_and_a_close_spacing_refused(tmp_path, monkeypatch):
    """The pilot grows to 100 tau_int; tau_factor < 2 is refused; the loader regenerates a
    file whose configurations are closer than 2 tau_int (or whose pilot was too short)."""
    job = ds.jobs_for(1, "tiny", params=TINY)[0]
    ens, info = gen.sample_decorrelated(job, 4, job.seed_sequence())
    assert info["pilot"] >= gen.PILOT_TAUS * info["tau_int_pilot"] > 60  # lengthened
    bad = ds.jobs_for(
        1, "tiny", params={**TINY, "sampler": {**TINY["sampler"], "tau_factor": 1.5}}
    )[0]
    with pytest.raises(ValueError, match="tau_factor must be >= 2.0; got 1.5"):
        gen.sample_decorrelated(bad, 4, bad.seed_sequence())
    attrs = {"tau_int_pilot": 10.0, "n_skip": 15, "sampler": {"pilot": 5000}}
    assert "15 sweeps apart < 2 tau_int = 20" in ds.decorrelation_problem(attrs)
    attrs = {"tau_int_pilot": 10.0, "n_skip": 20, "sampler": {"pilot": 900}}
    assert "pilot of 900 sweeps < 100 tau_int = 1000" in ds.decorrelation_problem(attrs)
    assert ds.decorrelation_problem({"tau_int_pilot": float("nan"), "n_skip": 1}) is None
    # a stored file with too close a spacing (valid checksum) is regenerated on load
    prof = tmp_path / "profiles.yml"
    prof.write_text(yaml.safe_dump({"tiny": {"datasets": TINY}}))
    monkeypatch.setenv("QFTML_PROFILES", str(prof))
    monkeypatch.setenv("QFTML_DATA", str(tmp_path / "data"))
    first = ds.load(1, "tiny", "train", "8x4", mu=job.mu, log=lambda *_: None)
    arrays, a = storage.read(job.path(), job.content_key())
    if not math.isfinite(a["tau_int_pilot"]):
        pytest.fail("the tiny point must fluctuate for this test")
    kept = {k: v for k, v in a.items() if k not in ("content_key", "format")}  # set by write()
    storage.write(job.path(), arrays, {**kept, "n_skip": 1}, job.content_key())
    lines = []
    again = ds.load(1, "tiny", "train", "8x4", mu=job.mu, log=lines.append)
    assert any("regenerating" in line and "sweeps apart" in line for line in lines), lines
    assert np.array_equal(again.x.numpy(), first.x.numpy())  # the same seed, the same data


def test_task1_targets_and_validity(built):
    root, _ = built
    for job in ds.jobs_for(1, "tiny", params=TINY):
        arr, _ = read(job, root)
        assert arr["k"].shape == (job.n, 2, job.nt, job.nx)
        assert np.all(is_conserved(arr["k"])) and np.all(arr["l"] >= 0)
        # n = (1/V) sum_x k_{x,time}, recomputed from the stored configuration
        assert np.allclose(arr["n"], arr["k"][:, 1].mean(axis=(1, 2)), rtol=0, atol=1e-12)
        assert np.all(arr["phi2"] > 0)


def test_task2_labels_are_balanced_and_exact(built):
    root, _ = built
    (job,) = ds.jobs_for(2, "tiny", params=TINY)
    arr, _ = read(job, root)
    viol = n_violations(arr["k"])
    assert np.array_equal(arr["n_violations"], viol)
    assert np.array_equal(arr["label"], (viol > 0).astype(np.int8))
    assert arr["label"].sum() == job.n // 2
    assert np.all(viol[arr["label"] == 1] == 2)  # one open worm: a source and a sink


def test_task3_label_is_the_number_of_worms(built):
    """Worms never share an end: |div k| <= 1 everywhere, 2 W violating sites, label W."""
    root, _ = built
    for job in ds.jobs_for(3, "tiny", params=TINY):
        arr, _ = read(job, root)
        absdiv = np.abs(divergence(arr["k"]))
        assert absdiv.max() <= 1
        np.testing.assert_array_equal(absdiv.sum(axis=(-2, -1)), 2 * arr["n_worms"])
        np.testing.assert_array_equal(arr["n_violations"], 2 * arr["n_worms"])
        assert np.array_equal(
            np.bincount(arr["n_worms"])[list(job.worms)], [job.n] * len(job.worms)
        )


def test_same_seed_same_bytes_for_any_number_of_processes(built, tmp_path):
    root, _ = built
    ds.build_jobs(all_jobs(), jobs=2, root=tmp_path, log=None)
    assert digests(tmp_path) == digests(root)


def test_second_build_is_a_cache_hit(built, monkeypatch):
    root, _ = built

    def fail(job):
        raise AssertionError(f"regenerated {job}")

    monkeypatch.setattr(gen, "generate", fail)
    report = ds.build_jobs(all_jobs(), jobs=1, root=root, log=None)
    assert report.count("hit") == len(all_jobs())


def test_corrupt_and_stale_files_are_regenerated(built, tmp_path):
    root, _ = built
    jobs = ds.jobs_for(2, "tiny", params=TINY)
    ds.build_jobs(jobs, jobs=1, root=tmp_path, log=None)
    path = jobs[0].path(tmp_path)
    original = path.read_bytes()
    with h5py.File(path, "r") as f:  # damage the stored (compressed) bytes of the flux array
        chunk = f["k"].id.get_chunk_info(0)
    damaged = bytearray(original)
    start, size = chunk.byte_offset, min(chunk.size, 64)
    damaged[start : start + size] = bytes(b ^ 0xFF for b in damaged[start : start + size])
    path.write_bytes(bytes(damaged))
    messages = []
    report = ds.build_jobs(jobs, jobs=1, root=tmp_path, log=messages.append)
    assert report.count("regenerated") == 1 and "corrupt" in messages[0]
    assert path.read_bytes() == original  # regenerated exactly
    params = {**TINY, "task2": {**TINY["task2"], "worm_length": [1, 3]}}
    changed = ds.jobs_for(2, "tiny", params=params)
    report = ds.build_jobs(changed, jobs=1, root=tmp_path, log=messages.append)
    assert report.count("regenerated") == 1 and "stale" in messages[-1]


def test_different_seed_different_data(tmp_path):
    params = {**TINY, "seed": 8}
    (job,) = ds.jobs_for(2, "tiny", params=params)
    (job7,) = ds.jobs_for(2, "tiny", params=TINY)
    a, _ = gen.generate(job)
    b, _ = gen.generate(job7)
    assert not np.array_equal(a["k"], b["k"])


@pytest.fixture
def tiny_profile(tmp_path, monkeypatch, built):
    root, _ = built
    prof = tmp_path / "profiles.yml"
    prof.write_text(yaml.safe_dump({"tiny": {"datasets": TINY}}))
    monkeypatch.setenv("QFTML_PROFILES", str(prof))
    monkeypatch.setenv("QFTML_DATA", str(root.parent))  # load() reads the built files
    return prof


def test_load_returns_network_ready_data(tiny_profile):
    d = ds.load_task1("tiny", "train")
    assert tuple(d.x.shape) == (12, 4, 8, 4) and tuple(d.y.shape) == (12, 2)
    assert d.x.dtype == d.y.dtype and str(d.x.dtype) == "torch.float32"
    assert np.allclose(d.y.numpy()[:, 0], d.meta["n"]) and d.target_names == ("n", "phi2")
    assert sorted({m for m, _ in [(k[0], s) for k, s in d.groups("mu")]}) == [0.8, 1.4]
    with pytest.raises(ValueError, match="lattice="):
        ds.load_task1("tiny", "test")
    t = ds.load_task1("tiny", "test", "10x5")
    assert tuple(t.x.shape) == (4, 4, 10, 5)
    d3 = ds.load_task3("tiny", "train", n_worms=5)
    assert len(d3) == 4 and np.all(d3.meta["n_worms"] == 5)
    assert np.array_equal(d3.targets[:, 0], d3.meta["n_worms"])  # the label: worms
    assert np.array_equal(d3.meta["n_violations"], 2 * d3.meta["n_worms"])
    d3t = ds.load_task3("tiny", "test", "6x6", mu=1.25)
    assert len(d3t) == 3 and np.all(d3t.meta["mu"] == 1.25)
    d2 = ds.load_task2("tiny")
    assert d2.targets.mean() == 0.5


def test_load_takes_the_datasets_section_without_reading_profiles(built, monkeypatch):
    """Given ``params``, load reads the built files without parsing ``profiles.yml``."""
    root, _ = built
    monkeypatch.setenv("QFTML_DATA", str(root.parent))

    def no_profiles(*a, **k):
        raise AssertionError("profiles.yml was read")

    monkeypatch.setattr("qftml.profiles.load_profiles", no_profiles)
    monkeypatch.setattr("qftml.datasets.api.dataset_params", no_profiles)
    monkeypatch.setattr("qftml.datasets.jobs.dataset_params", no_profiles)
    d = ds.load_task1("tiny", "test", "10x5", params=TINY)
    assert tuple(d.x.shape) == (4, 4, 10, 5)
    assert ds.lattices(1, "tiny", "test", params=TINY) == ["8x4", "10x5"]


def test_command_line_builds_then_hits(tiny_profile, tmp_path):
    env = {**os.environ, "QFTML_DATA": str(tmp_path / "cli"), "QFTML_QUIET": "1"}
    cmd = [sys.executable, "-m", "qftml", "data", "all", "--profile", "tiny", "-v"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert f"{len(all_jobs())} new" in first.stdout and "tau_int" in first.stdout
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    assert second.returncode == 0 and f"{len(all_jobs())} cached" in second.stdout
    bad = subprocess.run(cmd[:4] + ["task7"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "task7" in bad.stderr
