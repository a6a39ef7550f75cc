"""Architecture search: the space holds the published winners; studies persist, run in
parallel worker processes, survive a killed search and resume to the requested size."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
import torch
from optuna.trial import FixedTrial, TrialState

from qftml import nets, search

TASK = search.Task(n_out=1, lattice=(4, 4), loss="mse", max_conv=2, max_linear=2)
TINY = search.Budget(max_epochs=2, patience=2, batch_size=16)


def _synthetic(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, 4, 4), generator=g).float()
    return X, (X[:, 0] ** 2).mean(dim=(-2, -1))[:, None]


@pytest.fixture(scope="module")
def data():
    return _synthetic(48, 1), _synthetic(24, 2)


@pytest.mark.parametrize("entry", nets.PUBLISHED, ids=[e.name for e in nets.PUBLISHED])
def test_space_expresses_every_published_winner(entry):
    task = search.Task(n_out=entry.n_out, lattice=entry.lattice, loss=entry.loss)
    params = search.params_for_spec(entry.spec, task)
    assert search.suggest_spec(FixedTrial(params), entry.family, task) == entry.spec


def test_space_rejects_and_flags_invalid():
    with pytest.raises(ValueError, match=r"width 7 .* is not in"):
        search.params_for_spec("Conv(1x1, 4, 7) LeakyReLU GlobalAvgPool Linear(7, 1)", TASK)
    no_pool = {"n_conv": 1, "n_linear": 0, "conv0_kernel": 1, "conv0_bias": True}
    no_pool |= {"conv0_act": True, "conv0_pool": "none", "global_pool": "sum"}
    with pytest.raises(search.InvalidSpec, match="needs at least one strided pooling"):
        search.suggest_spec(FixedTrial(no_pool), "ST", TASK)
    assert search.suggest_spec(FixedTrial(no_pool), "EQ", TASK) == (
        "Conv(1x1, 4, 1) LeakyReLU GlobalSumPool"
    )
    three = {"n_conv": 2, "n_linear": 1, "lin0_bias": True}
    for i in range(2):
        three |= {f"conv{i}_kernel": 1, f"conv{i}_width": 4, f"conv{i}_bias": True}
        three |= {f"conv{i}_act": False, f"conv{i}_pool": "avg"}
    tiny = search.Task(lattice=(2, 2))
    with pytest.raises(search.InvalidSpec, match="too many poolings"):
        search.suggest_spec(FixedTrial(three), "FL", tiny)


def test_sampled_specs_have_their_family(data):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"EQ": 0, "ST": 0, "FL": 0}
    for family in seen:
        for _ in range(30):
            trial = study.ask()
            try:
                spec = search.suggest_spec(trial, family, TASK)
            except search.InvalidSpec:
                continue
            model = nets.from_spec(spec, TASK.lattice)
            assert model.family == family
            assert model(data[0][0][:2]).shape == (2, 1)
            seen[family] += 1
    assert min(seen.values()) >= 10


def test_search_in_chunks_is_reproducible_and_resumes(tmp_path, data):
    runs = []
    for name in ("a", "b"):
        storage = tmp_path / f"{name}.journal"
        kw = dict(task=TASK, n_trials=4, budget=TINY, storage=storage, study_name="s", seed=3)
        first = search.run("EQ", *data, max_new_trials=2, **kw)  # stops early: "interrupted"
        assert len(search.finished_trials(first)) == 2
        study = search.run("EQ", *data, **kw)  # resumes
        trials = search.finished_trials(study)
        assert len(trials) == 4 and not study.get_trials(states=(TrialState.RUNNING,))
        runs.append([(t.user_attrs.get("spec"), t.value) for t in trials])
    assert runs[0] == runs[1]  # one worker: same seed, same search


def test_enqueued_specs_run_first(tmp_path, data):
    spec = "Conv(2x2, 4, 8) LeakyReLU GlobalAvgPool Linear(8, 1)"
    study = search.run(
        "EQ", *data, task=TASK, n_trials=1, budget=TINY, storage=tmp_path / "e.journal",
        enqueue=[spec],
    )  # fmt: skip
    assert study.trials[0].user_attrs["spec"] == spec


_SCRIPT = """
import torch
from qftml import search
def synthetic(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, 4, 4, 4), generator=g).float()
    return X, (X[:, 0] ** 2).mean(dim=(-2, -1))[:, None]
if __name__ == "__main__":
    search.run(
        "ST", synthetic(256, 1), synthetic(64, 2),
        task=search.Task(lattice=(4, 4), max_conv=2, max_linear=2),
        n_trials={n}, jobs=2, storage={storage!r}, study_name="kill", seed=1,
        budget=search.Budget(max_epochs=15, patience=15, batch_size=16),
    )
"""


def test_parallel_search_killed_and_resumed(tmp_path):
    """Two worker processes; the whole search is killed (SIGKILL) mid-way; a second call
    fails the dead workers' trials and finishes the study with exactly n_trials."""
    n = 6
    storage = str(tmp_path / "kill.journal")
    script = tmp_path / "run_search.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(n=n, storage=storage)))
    env = dict(os.environ, QFTML_QUIET="1")
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True, env=env)
    try:
        deadline = time.time() + 300  # generous: a loaded machine starts workers late
        done = 0
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                st = optuna.load_study(study_name="kill", storage=search.make_storage(storage))
            except KeyError:  # the study is not created yet
                continue
            done = len(search.finished_trials(st))
            seen = {t.user_attrs["worker"]["pid"] for t in st.trials if "worker" in t.user_attrs}
            if done >= 2 and len(seen) == 2:  # both workers have started (a loaded machine
                break  # may start the second one late)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    study = optuna.load_study(study_name="kill", storage=search.make_storage(storage))
    before = search.finished_trials(study)
    assert 2 <= len(before) < n, "the search was not interrupted mid-way"
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials if "worker" in t.user_attrs}
    assert len(pids) == 2  # two worker processes shared the study
    data = (_synthetic(256, 1), _synthetic(64, 2))
    study = search.run(
        "ST", *data, task=search.Task(lattice=(4, 4), max_conv=2, max_linear=2), n_trials=n,
        jobs=2, storage=storage, study_name="kill", seed=1,
        budget=search.Budget(max_epochs=3, patience=3, batch_size=16),
    )  # fmt: skip
    assert len(search.finished_trials(study)) == n
    assert not study.get_trials(states=(TrialState.RUNNING,))
    for t in study.get_trials(states=(TrialState.FAIL,)):
        assert t.user_attrs.get("failed")  # a dead worker's trial, or a cancelled one


def test_top_specs(data):
    study = optuna.create_study()
    for spec, value in [("A", 3.0), ("B", 1.0), ("A", 0.5), ("C", 2.0)]:
        t = study.ask()
        t.set_user_attr("spec", spec)
        study.tell(t, value)
    assert search.top_specs(study, 2) == [("A", 0.5), ("B", 1.0)]
