"""qftml.datasets without the sampler: storage, cache, encoding, violations, jobs and seeds."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from qftml import datasets as ds
from qftml.datasets import storage
from qftml.lattice import divergence, is_conserved, n_violations
from qftml.profiles import notebook_params


def random_valid_k(rng, n, nt, nx):
    """Valid configurations built by hand: plaquette circulations plus winding lines."""
    k = np.zeros((n, 2, nt, nx), dtype=np.int64)
    c = rng.integers(-2, 3, size=(n, nt, nx))  # circulation around plaquette (t, x)
    k[:, 0] += c - np.roll(c, 1, axis=-2)  # bottom (+) and top (-) space links
    k[:, 1] += np.roll(c, 1, axis=-1) - c  # right (+) and left (-) time links
    k[:, 0] += rng.integers(-1, 2, size=(n, nt, 1))  # spatial winding lines
    k[:, 1] += rng.integers(-1, 2, size=(n, 1, nx))  # temporal winding lines
    return k


def file_digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- storage


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "k": rng.integers(-5, 6, size=(7, 2, 4, 6)).astype(np.int8),
        "l": rng.integers(0, 300, size=(7, 2, 4, 6)).astype(np.int16),
        "n": rng.normal(size=7),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3), dtype=np.int32),
    }


ATTRS = {"eta": 4.01, "task": 2, "name": "x", "flag": True, "grid": [1, 2.5], "d": {"a": 1}}


def test_round_trip_is_exact(tmp_path):
    arrays = sample_arrays()
    path = storage.write(tmp_path / "a.h5", arrays, ATTRS, "key1")
    got, attrs = storage.read(path, "key1")
    assert sorted(got) == sorted(arrays)
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape
        assert np.array_equal(got[name], a)
    for name, value in ATTRS.items():
        assert attrs[name] == value
    assert attrs["content_key"] == "key1" and attrs["format"] == storage.FORMAT


def test_same_content_same_bytes(tmp_path):
    a = storage.write(tmp_path / "a.h5", sample_arrays(), ATTRS, "key")
    b = storage.write(tmp_path / "b.h5", sample_arrays(), ATTRS, "key")
    assert file_digest(a) == file_digest(b)


@pytest.mark.parametrize("stage", ["arrays", "partial"])
def test_interrupted_write_leaves_no_file(tmp_path, stage):
    def crash(at):
        if at == stage:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.write(tmp_path / "a.h5", sample_arrays(), ATTRS, "key", _hook=crash)
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_only_an_incomplete_temporary(tmp_path):
    """A hard kill (no cleanup at all) in the middle of a write: no file under the final
    name; the temporary is recognised as incomplete and removed by the next build."""
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from qftml.datasets import storage
        def die(stage):
            if stage == "partial":  # half of the file's bytes are on disk
                os._exit(3)
        storage.write({str(tmp_path / "a.h5")!r}, {{"x": np.arange(10)}}, {{}}, "k", _hook=die)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == 3
    assert not (tmp_path / "a.h5").exists()
    (tmp,) = tmp_path.glob("a.h5.tmp-*")
    tmp.rename(tmp_path / "a.h5")  # even under the final name it does not pass as complete
    with pytest.raises((storage.IncompleteFile, storage.CorruptFile)):
        storage.read(tmp_path / "a.h5", "k")
    (tmp_path / "a.h5").rename(tmp)
    assert storage.clean_temporaries(tmp_path) == [tmp]
    assert list(tmp_path.iterdir()) == []


def test_file_without_checksum_is_incomplete(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"] = np.arange(3)
        f.attrs["content_key"] = "key"
    with pytest.raises(storage.IncompleteFile, match="did not complete"):
        storage.read(tmp_path / "a.h5", "key")


def test_altered_content_is_detected(tmp_path):
    path = storage.write(tmp_path / "a.h5", sample_arrays(), ATTRS, "key")
    with h5py.File(path, "r+") as f:
        f["k"][0, 0, 0, 0] += 1
    with pytest.raises(storage.CorruptFile, match="checksum"):
        storage.read(path, "key")
    path = storage.write(tmp_path / "b.h5", sample_arrays(), ATTRS, "key")
    with h5py.File(path, "r+") as f:
        f.attrs["eta"] = 4.02
    with pytest.raises(storage.CorruptFile, match="checksum"):
        storage.read(path, "key")


def test_truncated_file_is_corrupt(tmp_path):
    path = storage.write(tmp_path / "a.h5", sample_arrays(), ATTRS, "key")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(storage.CorruptFile):
        storage.read(path, "key")


def test_stale_key_is_detected(tmp_path):
    path = storage.write(tmp_path / "a.h5", sample_arrays(), ATTRS, "old")
    with pytest.raises(storage.StaleFile, match="changed"):
        storage.read(path, "new")


def test_cache_generates_hits_and_regenerates(tmp_path):
    calls = []
    messages = []

    def make():
        calls.append(1)
        return sample_arrays(), ATTRS

    path = tmp_path / "sub" / "a.h5"
    r1 = storage.cached(path, "key", make, log=messages.append)
    r2 = storage.cached(path, "key", make, log=messages.append)
    assert (r1.status, r2.status, len(calls)) == ("new", "hit", 1)
    for name in r1.arrays:
        assert np.array_equal(r1.arrays[name], r2.arrays[name])
    with h5py.File(path, "r+") as f:  # corrupt it
        f["n"][0] = 99.0
    r3 = storage.cached(path, "key", make, log=messages.append)
    assert (r3.status, len(calls)) == ("regenerated", 2)
    assert "corrupt" in r3.reason and len(messages) == 1 and "regenerating" in messages[0]
    assert np.array_equal(r3.arrays["n"], sample_arrays()["n"])
    r4 = storage.cached(path, "other key", make, log=messages.append)
    assert (r4.status, len(calls)) == ("regenerated", 3) and "stale" in r4.reason


def test_reserved_attribute_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        storage.write(tmp_path / "a.h5", sample_arrays(), {"checksum": 1}, "key")


def test_compact_int():
    assert storage.compact_int(np.array([-128, 127])).dtype == np.int8
    assert storage.compact_int(np.array([0, 128])).dtype == np.int16
    assert storage.compact_int(np.array([-40000])).dtype == np.int32
    with pytest.raises(ValueError, match="integer"):
        storage.compact_int(np.array([0.5]))


# -------------------------------------------------------------------------- violations


def test_hand_built_configurations_are_valid():
    k = random_valid_k(np.random.default_rng(1), 50, 6, 10)
    assert np.all(is_conserved(k)) and np.any(k != 0)


@pytest.mark.parametrize(("nt", "nx"), [(2, 2), (4, 60), (8, 8), (5, 3)])
def test_single_worm_makes_exactly_one_source_and_one_sink(nt, nx):
    rng = np.random.default_rng(2)
    k = random_valid_k(rng, 400, nt, nx)
    ins = ds.insert_worms(k, 1, rng, length=(1, 12))
    div = divergence(ins.k)
    assert np.all(ins.n_violations == 2)
    assert np.all(np.sort(div.reshape(400, -1), axis=1)[:, [0, -1]] == [-1, 1])
    assert np.all(np.abs(div).sum(axis=(1, 2)) == 2)
    src = ins.sources.T
    assert np.all(div[src[0], src[1], src[2]] == 1)
    snk = ins.sinks.T
    assert np.all(div[snk[0], snk[1], snk[2]] == -1)


def test_label_equals_sites_with_nonzero_divergence():
    """Many worms on valid configurations: the divergence is exactly the worms' endpoint
    charges, and the label is the number of sites where those charges do not cancel."""
    rng = np.random.default_rng(3)
    k = random_valid_k(rng, 600, 8, 8)
    worms = np.arange(600) % 11
    ins = ds.insert_worms(k, worms, rng)
    expected = ds.endpoint_divergence(ins, (600, 8, 8))
    assert np.array_equal(divergence(ins.k), expected)
    assert np.array_equal(ins.n_violations, np.count_nonzero(expected, axis=(1, 2)))
    assert np.array_equal(ins.n_violations, n_violations(ins.k))
    assert np.array_equal(ins.n_worms, worms)
    assert np.all(ins.n_violations <= 2 * worms)
    assert np.all(ins.n_violations[worms == 0] == 0)
    assert np.array_equal(ins.k[worms == 0], k[worms == 0])


def test_worm_changes_links_along_a_path_only():
    rng = np.random.default_rng(4)
    k = np.zeros((300, 2, 16, 16), dtype=np.int8)
    ins = ds.insert_worms(k, 1, rng, length=(1, 1))
    # a one-step worm changes one link by one unit
    assert np.all(np.abs(ins.k).sum(axis=(1, 2, 3)) == 1)
    ins = ds.insert_worms(k, 1, rng, length=(3, 6))
    changed = np.abs(ins.k).sum(axis=(1, 2, 3))
    assert np.all(changed <= 7) and np.all(changed >= 1)  # at most max + 1 closing step


def test_worms_are_reproducible():
    k = random_valid_k(np.random.default_rng(5), 20, 8, 8)
    a = ds.insert_worms(k, 3, np.random.default_rng(9))
    b = ds.insert_worms(k, 3, np.random.default_rng(9))
    c = ds.insert_worms(k, 3, np.random.default_rng(10))
    assert np.array_equal(a.k, b.k) and not np.array_equal(a.k, c.k)


def test_worm_input_errors():
    rng = np.random.default_rng(0)
    k = np.zeros((2, 2, 4, 4), dtype=int)
    with pytest.raises(ValueError, match=r"\(N, 2, nt, nx\)"):
        ds.insert_worms(np.zeros((2, 3, 4, 4), dtype=int), 1, rng)
    with pytest.raises(ValueError, match="integer"):
        ds.insert_worms(k.astype(float), 1, rng)
    with pytest.raises(ValueError, match="non-negative"):
        ds.insert_worms(k, -1, rng)
    with pytest.raises(ValueError, match=r"1 <= min <= max"):
        ds.insert_worms(k, 1, rng, length=(0, 3))
    with pytest.raises(ValueError, match="2 x 2"):
        ds.insert_worms(np.zeros((1, 2, 1, 4), dtype=int), 1, rng)


# ---------------------------------------------------------------------------- encoding


def test_encoding_channels_and_inverse():
    rng = np.random.default_rng(6)
    k = random_valid_k(rng, 5, 4, 6)
    l = rng.integers(0, 4, size=k.shape)
    x = ds.encode(k, l)
    assert x.dtype == torch.float32 and tuple(x.shape) == (5, 4, 4, 6)
    for c, (field, nu) in enumerate([(k, 0), (k, 1), (l, 0), (l, 1)]):
        assert np.array_equal(x[:, c].numpy(), field[:, nu])
    k2, l2 = ds.decode(x)
    assert np.array_equal(k2, k) and np.array_equal(l2, l)
    assert ds.CHANNELS == ("k_space", "k_time", "l_space", "l_time")


def test_encoding_scale():
    rng = np.random.default_rng(7)
    k = rng.integers(-3, 4, size=(50, 2, 4, 4))
    l = rng.integers(0, 9, size=(50, 2, 4, 4))
    s = ds.channel_rms(k, l)
    x = ds.encode(k, l, s)
    assert np.allclose(np.sqrt((x.numpy().astype(np.float64) ** 2).mean(axis=(0, 2, 3))), 1)
    k2, l2 = ds.decode(x, s)
    assert np.array_equal(k2, k) and np.array_equal(l2, l)
    with pytest.raises(ValueError, match="positive"):
        ds.encode(k, l, [1, 0, 1, 1])
    with pytest.raises(ValueError, match="one shape"):
        ds.encode(k, l[:, :1])


# -------------------------------------------------------------------------- jobs, seeds


def test_lattice_names():
    assert ds.parse_lattice("60x4") == (60, 4)  # N_t x N_x
    assert ds.parse_lattice("64×64") == (64, 64)
    assert ds.lattice_name(60, 4) == "60x4"
    for bad in ("60", "ax4", "1x4"):
        with pytest.raises(ValueError, match="60x4|at least 2"):
            ds.parse_lattice(bad)


def make_job(**kw):
    base = dict(task=1, split="train", nt=4, nx=60, eta=4.01, lam=1.0, mu=1.0, n=10)
    base.update(seed=1, profile="p", sampler=(("n_therm", 10),))
    base.update(kw)
    return ds.Job(**base)


def test_seeds_depend_on_the_point_only():
    state = make_job().seed_sequence().generate_state(4)
    same = [make_job(n=99), make_job(profile="q"), make_job(mu=1.0000000000001)]
    for job in same:
        assert np.array_equal(job.seed_sequence().generate_state(4), state)
    other = [make_job(split="val"), make_job(mu=1.01), make_job(nx=61), make_job(seed=2)]
    other += [make_job(task=2, n=10), make_job(eta=4.02)]
    states = {tuple(j.seed_sequence().generate_state(4)) for j in other}
    assert len(states) == len(other) and tuple(state) not in states


def test_content_key_tracks_every_input():
    key = make_job().content_key()
    assert make_job(profile="elsewhere").content_key() == key
    changed = [
        make_job(n=11),
        make_job(mu=1.05),
        make_job(seed=2),
        make_job(sampler=(("n_therm", 11),)),
        make_job(worm_length=(1, 8)),
    ]
    assert len({j.content_key() for j in changed} | {key}) == len(changed) + 1


def test_job_validation():
    with pytest.raises(ValueError, match="split"):
        make_job(split="training")
    with pytest.raises(ValueError, match="even"):
        make_job(task=2, n=3)
    with pytest.raises(ValueError, match="task"):
        ds.jobs_for("task4", "ci")


@pytest.mark.parametrize("profile", ["ci", "paper"])
def test_profiles_define_the_papers_tasks(profile):
    params = notebook_params("datasets", profile)
    t1 = ds.jobs_for(1, profile)
    assert {j.lattice for j in t1 if j.split == "train"} == {"60x4"}
    assert {"60x4", "100x5", "200x10"} <= {j.lattice for j in t1 if j.split == "test"}
    assert {(j.eta, j.lam) for j in t1} == {(4.01, 1.0)}
    for task in (2, 3):
        train = ds.jobs_for(task, profile, "train")
        assert {(j.eta, j.mu) for j in train} == {(4.25, 1.0), (4.01, 1.5)}
        assert {j.lattice for j in train} == {"8x8"}
        test = ds.jobs_for(task, profile, "test")
        assert {(j.eta, j.mu) for j in test} == {
            (e, m) for e in (4.01, 4.04, 4.25) for m in (1.0, 1.25, 1.5)
        }
        assert len({j.lattice for j in test}) == 4 and max(j.nx for j in test) == 64
    t3 = ds.jobs_for(3, profile)
    assert {j.worms for j in t3 if j.split == "train"} == {(0, 5)}
    test3 = [j for j in t3 if j.split == "test"]
    assert sum(len(j.worms) for j in test3) == 396  # 3 eta x 3 mu x 4 lattices x 11 counts
    if profile == "paper":  # the training set sizes of the source
        assert sum(j.n_total for j in ds.jobs_for(2, profile, "train")) == 4000
        assert sum(j.n_total for j in ds.jobs_for(3, profile, "train")) == 20000
    assert int(params["seed"]) > 0


# ---------------------------------------------------------------------------- TaskData


def small_taskdata():
    rng = np.random.default_rng(8)
    k = random_valid_k(rng, 6, 4, 4)
    meta = {
        "eta": np.array([4.01, 4.01, 4.25, 4.25, 4.25, 4.01]),
        "mu": np.array([1.0, 1.5, 1.0, 1.0, 1.5, 1.0]),
        "n_worms": np.array([0, 5, 0, 5, 0, 5]),
    }
    targets = np.arange(6, dtype=np.float64)[:, None]
    return ds.TaskData(3, "test", "4x4", k, np.abs(k), targets, meta)


def test_taskdata_cuts_and_tensors():
    d = small_taskdata()
    assert len(d) == 6 and d.target_names == ("n_worms",)
    x, y = d.xy
    assert tuple(x.shape) == (6, 4, 4, 4) and tuple(y.shape) == (6, 1)
    sub = d.where(eta=4.25, mu=1.0)
    assert sub.targets[:, 0].tolist() == [2.0, 3.0] and np.array_equal(sub.k, d.k[[2, 3]])
    groups = dict(d.groups("eta", "n_worms"))
    assert sorted(groups) == [(4.01, 0.0), (4.01, 5.0), (4.25, 0.0), (4.25, 5.0)]
    assert groups[(4.01, 5.0)].targets[:, 0].tolist() == [1.0, 5.0]
    assert sum(len(g) for g in groups.values()) == len(d)
    with pytest.raises(KeyError, match="lam"):
        d.where(lam=1.0)


def test_number_of_processes(monkeypatch):
    monkeypatch.delenv("QFTML_JOBS", raising=False)
    assert ds.n_processes(3) == 3
    assert ds.n_processes(0) >= 1 and ds.n_processes(-1) == ds.n_processes(0)
    monkeypatch.setenv("QFTML_JOBS", "2")
    assert ds.n_processes(None, "ci") == 2
    monkeypatch.setenv("QFTML_JOBS", "many")
    with pytest.raises(ValueError, match="many"):
        ds.n_processes(None)
