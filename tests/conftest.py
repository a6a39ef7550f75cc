"""Shared harness of the task tests: one torch thread for tiny networks, and a temporary
trained-model cache in which grids train in the test process, quietly."""

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
