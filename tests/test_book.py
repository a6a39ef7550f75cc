"""The build pipeline: failing cells fail the build, unchanged notebooks are not re-run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

from qftml import book
from qftml.paths import NOTEBOOKS, ROOT
from qftml.profiles import load_profiles, notebook_params

HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""


def write_notebook(folder, stem, body):
    text = HEADER + '\n# %% tags=["parameters"]\nprofile = "ci"\n\n' + textwrap.dedent(body)
    (folder / f"{stem}.py").write_text(text)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throw-away notebooks folder with its own profiles file."""
    profiles = {
        "ci": {"good": {"seed": 1, "value": 3}, "bad": {"seed": 1}},
        "paper": {"good": {"seed": 1, "value": 4}, "bad": {"seed": 1}},
    }
    path = tmp_path / "profiles.yml"
    path.write_text(yaml.safe_dump(profiles))
    monkeypatch.setenv("QFTML_PROFILES", str(path))
    write_notebook(
        tmp_path,
        "good",
        """\
        # %%
        from qftml.profiles import setup
        P = setup("good", profile)
        print("value", P["value"] * 2)
        """,
    )
    write_notebook(
        tmp_path,
        "bad",
        """\
        # %%
        raise RuntimeError("deliberate failure")
        """,
    )
    return tmp_path


def test_failing_cell_makes_book_command_exit_nonzero(project):
    proc = subprocess.run(
        [sys.executable, "-m", "qftml", "book", "--notebooks-dir", str(project), "--only", "bad"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "deliberate failure" in proc.stderr
    assert not (project / ".stamps" / "bad.ci.key").exists()


def test_unchanged_notebook_is_not_reexecuted(project):
    stamps = project / ".stamps"
    run = lambda profile="ci": book.execute_notebook(  # noqa: E731
        "good", profile, notebooks_dir=project, stamps_dir=stamps, log=lambda *_: None
    )
    assert run() is True
    assert "value 6" in (project / "good.ipynb").read_text()
    assert run() is False  # nothing changed
    assert run("paper") is True  # other profile, other parameters
    src = project / "good.py"
    src.write_text(src.read_text() + "\nprint('changed')\n")
    assert run() is True  # source changed


def test_stored_error_outputs_are_found():
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1/0")
    cell.outputs = [
        nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="x", traceback=[])
    ]
    nb.cells.append(cell)
    assert book.stored_errors(nb) == ["cell 0: ZeroDivisionError: x"]
    cell.metadata["tags"] = ["raises-exception"]
    assert book.stored_errors(nb) == []


def test_every_toc_notebook_exists_and_has_both_profiles():
    stems = book.toc_notebooks()
    assert stems, "the table of contents lists no notebook"
    profiles = load_profiles()
    assert {"ci", "paper"} <= set(profiles)
    for stem in stems:
        assert (NOTEBOOKS / f"{stem}.py").exists(), stem
        for profile in ("ci", "paper"):
            assert "seed" in notebook_params(stem, profile), (stem, profile)
        text = (NOTEBOOKS / f"{stem}.py").read_text()
        assert 'tags=["parameters"]' in text and f'setup("{stem}", profile)' in text, stem


def test_every_notebook_is_in_the_toc():
    stems = set(book.toc_notebooks())
    on_disk = {p.stem for p in NOTEBOOKS.glob("*.py")}
    assert on_disk <= stems, f"notebooks missing from _toc.yml: {sorted(on_disk - stems)}"


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown profile 'nope'"):
        notebook_params("01_model", "nope")
    with pytest.raises(KeyError, match="no parameters for notebook"):
        notebook_params("not_a_notebook", "ci")


def test_readme_quick_start_has_the_two_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```", 2)[1]
    assert "make book" in block and "make test" in block
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_check_html_flags_remote_scripts_and_missing_images(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        yaml.safe_dump(
            {"format": "jb-book", "root": "book/intro", "chapters": [{"file": "notebooks/a"}]}
        )
    )
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "book" / "intro.html").write_text('<script src="../_static/x.js"></script>')
    assert book.check_html(html, toc) == [f"missing page {html / 'notebooks' / 'a.html'}"]
    (html / "notebooks").mkdir()
    (html / "notebooks" / "a.html").write_text(
        '<script src="https://cdn.example/mathjax.js"></script><img src="../_images/f.png">'
    )
    problems = book.check_html(html, toc)
    assert any("remote script" in p for p in problems)
    assert any("missing image" in p for p in problems)
