"""Content keys change with what determines a result and with nothing else."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from qftml import keys

MODULE = '''\
"""A module."""

import math

SCALE = 2.0


def f(x):
    """Scale x."""
    # a comment
    return SCALE * math.sqrt(x)


class A:
    """A class."""

    def g(self, y=1):
        return y + 1
'''


def _digest(tmp_path, *sources):
    paths = []
    for i, text in enumerate(sources):
        path = tmp_path / f"m{i}.py"
        path.write_text(textwrap.dedent(text))
        paths.append(path)
    return keys.code_digest(paths)


def test_docstrings_comments_formatting_and_imports_do_not_count(tmp_path):
    base = _digest(tmp_path, MODULE)
    edited = (
        MODULE.replace('"""Scale x."""', '"""Scale x by SCALE (a longer docstring)."""')
        .replace("# a comment", "# another comment\n    # and one more")
        .replace("return SCALE * math.sqrt(x)", "return (SCALE *\n            math.sqrt(x))")
        .replace("import math", "import math\nimport os")
        .replace('"""A class."""', "")
    )
    assert edited != MODULE
    assert _digest(tmp_path, edited) == base


def test_moving_a_definition_to_another_module_keeps_the_digest(tmp_path):
    """A refactor that splits one module into two computes the same thing."""
    base = _digest(tmp_path, MODULE)
    first, second = MODULE.split("class A:")
    assert _digest(tmp_path, first, "class A:" + second) == base
    assert _digest(tmp_path, "class A:" + second, first) == base  # order of files


@pytest.mark.parametrize(
    "old, new",
    [
        ("SCALE = 2.0", "SCALE = 2.5"),  # a constant
        ("SCALE * math.sqrt(x)", "SCALE * math.sqrt(x + 0)"),  # an operation
        ("def g(self, y=1)", "def g(self, y=2)"),  # a default
        ("return y + 1", "return y - 1"),
    ],
)
def test_every_change_of_computation_changes_the_digest(tmp_path, old, new):
    assert old in MODULE
    assert _digest(tmp_path, MODULE.replace(old, new)) != _digest(tmp_path, MODULE)


def test_one_name_defined_differently_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'f' is also defined"):
        _digest(tmp_path, MODULE, "def f(x):\n    return x\n")


def test_digest_is_canonical_and_fingerprint_sees_dtype_shape_and_bytes():
    assert keys.digest({"a": 1, "b": [1, 2]}) == keys.digest({"b": [1, 2], "a": 1})
    assert keys.digest({"a": 1}) != keys.digest({"a": 2})
    x = np.arange(6, dtype=np.float32)
    assert keys.fingerprint(x) == keys.fingerprint(torch.from_numpy(x.copy()))
    assert keys.fingerprint(x) != keys.fingerprint(x.reshape(2, 3))
    assert keys.fingerprint(x) != keys.fingerprint(x.astype(np.float64))
    y = x.copy()
    y[3] += 1
    assert keys.fingerprint(x) != keys.fingerprint(y)


def test_a_docstring_edit_in_network_or_training_code_retrains_nothing(tmp_path, monkeypatch):
    """The instance key of a trained model ignores docstrings of nets and training."""
    import shutil

    from qftml import experiments

    pkg = tmp_path / "qftml"
    pkg.mkdir()
    here = experiments.Path(experiments.__file__).parent
    for name in ("training.py", "nets.py"):
        if (here / name).exists():
            shutil.copy(here / name, pkg / name)
    if (here / "nets").is_dir():
        shutil.copytree(here / "nets", pkg / "nets")
    monkeypatch.setattr(experiments, "__file__", str(pkg / "experiments.py"))
    experiments.code_digest.cache_clear()
    before = experiments.code_digest()
    training = pkg / "training.py"
    text = training.read_text()
    i = text.index('"""', text.index("def train("))  # the docstring of train()
    edited = text[:i] + '"""Edited. ' + text[i + 3 :]
    assert edited != text
    training.write_text(edited)
    experiments.code_digest.cache_clear()
    assert experiments.code_digest() == before
    training.write_text(text.replace("def train(", "def train_(", 1))  # a real change
    experiments.code_digest.cache_clear()
    assert experiments.code_digest() != before
    experiments.code_digest.cache_clear()
