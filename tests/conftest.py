"""Shared harness of the task tests: one torch thread for tiny networks, a temporary
trained-model cache in which grids train in the test process, quietly, and a temporary
profiles file with its own data and results folders (the results store's tests)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: one torch thread is fastest (and immune to a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    """``QFTML_DATA`` in a fresh temporary folder for the module; grids run in this process
    (``QFTML_WORKERS=0``) without progress bars."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QFTML_DATA", str(tmp_path_factory.mktemp("data")))
        mp.setenv("QFTML_WORKERS", "0")
        mp.setenv("QFTML_QUIET", "1")
        yield


def use_profile(text, tmp_path, monkeypatch, *, in_process: bool = False):
    """``text`` as the profiles file, with empty data and results folders under ``tmp_path``
    and quiet progress; ``in_process``: grids train in the test process. Returns the file
    (a test may edit it)."""
    import textwrap

    from qftml import experiments

    prof = tmp_path / "profiles.yml"
    prof.write_text(textwrap.dedent(text))
    env = {"QFTML_PROFILES": prof, "QFTML_DATA": tmp_path / "data",
           "QFTML_RESULTS": tmp_path / "results", "QFTML_QUIET": "1"}  # fmt: skip
    if in_process:
        env["QFTML_WORKERS"] = "0"
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    experiments.code_digest.cache_clear()
    return prof
