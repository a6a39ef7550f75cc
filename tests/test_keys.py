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


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


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

    from qftml import instances

    pkg = tmp_path / "qftml"
    pkg.mkdir()
    here = instances.Path(instances.__file__).parent
    shutil.copy(here / "training.py", pkg / "training.py")
    shutil.copytree(here / "nets", pkg / "nets")
    monkeypatch.setattr(instances, "__file__", str(pkg / "instances.py"))
    instances.code_digest.cache_clear()
    before = instances.code_digest()
    training = pkg / "training.py"
    text = training.read_text()
    i = text.index('"""', text.index("def train("))  # the docstring of train()
    edited = text[:i] + '"""Edited. ' + text[i + 3 :]
    assert edited != text
    training.write_text(edited)
    instances.code_digest.cache_clear()
    assert instances.code_digest() == before
    changed = text.replace("since_best >= patience", "since_best > patience", 1)
    assert changed != text
    training.write_text(changed)  # a real change
    instances.code_digest.cache_clear()
    assert instances.code_digest() != before
    instances.code_digest.cache_clear()


def test_roots_count_only_the_code_they_reach(tmp_path):
    """With roots, an unreached definition is left out; a reached one, however far, is in."""
    base = """\
    K = 3

    def helper(x):
        return x * K

    def root(x):
        return helper(x) + 1

    def unrelated(x):
        return x
    """
    base = textwrap.dedent(base)
    before = keys.code_digest([_write(tmp_path, "a.py", base)], roots=["root"])
    added = base + "\ndef another(y):\n    return y - 1\n"
    edited_unreached = base.replace("return x\n", "return -x\n")
    edited_constant = base.replace("K = 3", "K = 4")  # reached through helper
    for text, same in ((added, True), (edited_unreached, True), (edited_constant, False)):
        after = keys.code_digest([_write(tmp_path, "a.py", text)], roots=["root"])
        assert (after == before) is same, text
    with pytest.raises(ValueError, match=r"root\(s\) \['nowhere'\]"):
        keys.code_digest([_write(tmp_path, "a.py", base)], roots=["nowhere"])


def test_instance_code_digest_ignores_code_training_never_runs(tmp_path, monkeypatch):
    """Adding a function to the nets package that no root reaches keeps trained instances
    valid; a change inside the builder's reach does not."""
    import shutil

    from qftml import instances

    pkg = tmp_path / "qftml"
    pkg.mkdir()
    here = instances.Path(instances.__file__).parent
    shutil.copy(here / "training.py", pkg / "training.py")
    shutil.copytree(here / "nets", pkg / "nets")
    monkeypatch.setattr(instances, "__file__", str(pkg / "instances.py"))
    instances.code_digest.cache_clear()
    try:
        before = instances.code_digest()
        probes = pkg / "nets" / "probes.py"
        probes.write_text(probes.read_text() + "\n\ndef a_new_probe(model):\n    return 0\n")
        instances.code_digest.cache_clear()
        assert instances.code_digest() == before
        build = pkg / "nets" / "build.py"
        text = build.read_text()  # a change inside the builder's reach
        changed = text.replace("class PeriodicConv2d(", "class PeriodicConv2d_(", 1)
        assert changed != text
        build.write_text(changed)
        instances.code_digest.cache_clear()
        assert instances.code_digest() != before
    finally:
        instances.code_digest.cache_clear()
