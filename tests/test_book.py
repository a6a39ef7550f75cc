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


def test_check_html_flags_unresolved_python_references(tmp_path):
    """A ``{func}`` link Sphinx could not resolve is a build failure, a resolved one is not."""
    resolved = (
        '<a class="reference internal" href="../book/api.html#qftml.training.train" '
        'title="qftml.training.train"><code class="xref py py-func docutils literal '
        'notranslate"><span class="pre">qftml.training.train()</span></code></a>'
    )
    bare = (
        '<code class="xref py py-func docutils literal notranslate"><span class="pre">'
        "qftml.nowhere()</span></code>"
    )
    assert book.unresolved_references(resolved) == []
    assert book.unresolved_references(resolved + " and " + bare) == ["qftml.nowhere()"]
    toc = tmp_path / "_toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro"}))
    (tmp_path / "html" / "book").mkdir(parents=True)
    (tmp_path / "html" / "book" / "intro.html").write_text(bare)
    assert book.check_html(tmp_path / "html", toc) == [
        "intro.html: unresolved reference qftml.nowhere()"
    ]


def _leaves(tree, path=()):
    """Every (path, value) of a nested profile section."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k not in ("reads", "store"):  # declarations, tested below and in test_results
                yield from _leaves(v, (*path, k))
    elif isinstance(tree, list) and tree and all(isinstance(v, (dict, list)) for v in tree):
        for i, v in enumerate(tree):
            yield from _leaves(v, (*path, i))
    else:
        yield path, tree


def _perturbed(tree, path):
    import copy

    tree = copy.deepcopy(tree)
    node = tree
    for k in path[:-1]:
        node = node[k]
    old = node[path[-1]]
    node[path[-1]] = [old, "changed"] if not isinstance(old, list) else [*old, "changed"]
    return tree


@pytest.mark.parametrize("profile", ["ci", "paper"])
def test_page_key_changes_with_every_value_of_every_section_it_reads(profile, monkeypatch):
    """No page is stale: changing any value any page reads changes that page's key."""
    from qftml import profiles as prof

    data = load_profiles()
    monkeypatch.setattr(prof, "load_profiles", lambda path=None: current)
    checked = 0
    for stem in book.toc_notebooks():
        current = data
        key = book.content_key(stem, profile, package_digest="pkg")
        for section in prof.sections_read(stem, profile):
            for path, _ in _leaves(data[profile][section]):
                current = {**data, profile: _perturbed(data[profile], (section, *path))}
                assert book.content_key(stem, profile, package_digest="pkg") != key, (
                    stem,
                    section,
                    path,
                )
                checked += 1
    # the task pages read the datasets section: datasets.task1.train.n reaches 04 and 06-08
    current = data
    keys = {s: book.content_key(s, profile, package_digest="pkg") for s in book.toc_notebooks()}
    current = {**data, profile: _perturbed(data[profile], ("datasets", "task1", "train", "n"))}
    changed = {s for s in keys if book.content_key(s, profile, package_digest="pkg") != keys[s]}
    assert {"04_datasets", "06_task1_search", "07_task1_comparison"} <= changed
    assert "10_networks_as_fields" not in changed
    assert checked > 100


STORE_PAGES = {"06_task1_search", "07_task1_comparison", "08_task1_generalization"}
STORE_PAGES |= {"09_task2_detection"}
VERDICT_PAGES = {"10_networks_as_fields", "11_symmetry_via_duality", "12_symmetry_and_training"}
VERDICT_PAGES |= {"13_interacting_fields"}


@pytest.mark.parametrize(
    "module, function, pages",
    [
        ("results", "store_digest", {"00_statements", "09_task3_counting", *STORE_PAGES}),
        ("verdicts", "digest", {"00_statements", "03_worm_sampling", *VERDICT_PAGES}),
    ],
)
def test_a_page_showing_stored_results_changes_key_with_them(monkeypatch, module, function, pages):
    """Pages that declare ``store:`` (experiments) or ``pages:`` (stored verdicts) are keyed
    on what they show of the store; others are not."""
    import importlib

    digest = {"value": "a"}
    target = importlib.import_module(f"qftml.{module}")
    monkeypatch.setattr(target, function, lambda names, **kw: digest["value"])
    before = {s: book.content_key(s, "ci", package_digest="pkg") for s in book.toc_notebooks()}
    digest["value"] = "b"
    after = {s: book.content_key(s, "ci", package_digest="pkg") for s in book.toc_notebooks()}
    assert {s for s in before if before[s] != after[s]} == pages


def test_reads_are_transitive_and_the_same_in_both_profiles():
    from qftml.profiles import sections_read

    assert sections_read("07_task1_comparison", "ci") == [
        "07_task1_comparison",
        "06_task1_search",
        "datasets",
    ]
    for stem in book.toc_notebooks():
        assert sections_read(stem, "ci") == sections_read(stem, "paper"), stem


def test_page_reading_an_undeclared_section_fails(tmp_path, monkeypatch):
    from qftml import profiles as prof

    monkeypatch.setattr(prof, "_PAGE", None)
    path = tmp_path / "profiles.yml"
    sections = {"a": {"seed": 1, "reads": ["b"]}, "b": {"x": 1}, "c": {"y": 2}}
    path.write_text(yaml.safe_dump({"ci": sections}))
    monkeypatch.setenv("QFTML_PROFILES", str(path))
    prof.setup("a", "ci")
    assert prof.notebook_params("b", "ci") == {"x": 1}
    with pytest.raises(KeyError, match="'c' without declaring it"):
        prof.notebook_params("c", "ci")


def test_page_may_read_the_sections_of_what_it_shows(tmp_path, monkeypatch):
    """A page showing stored verdicts (``pages:``) or store experiments (``store:``) reads
    their sections (their digests cover them in its key), and nothing else."""
    from qftml import profiles as prof

    monkeypatch.setattr(prof, "_PAGE", None)
    path = tmp_path / "profiles.yml"
    sections = {
        "a": {"seed": 1, "pages": ["b"], "store": ["task3-counting"]},
        "b": {"x": 1, "reads": ["c"]},
        "c": {"y": 2},
        "d": {"z": 3},
        "09_task3_counting": {"n": 4},
    }
    path.write_text(yaml.safe_dump({"paper": sections}))
    monkeypatch.setenv("QFTML_PROFILES", str(path))
    prof.setup("a", "paper")
    assert [prof.notebook_params(s, "paper") for s in ("b", "c", "09_task3_counting")] == [
        {"x": 1, "reads": ["c"]},
        {"y": 2},
        {"n": 4},
    ]
    with pytest.raises(KeyError, match="'d' without declaring it"):
        prof.notebook_params("d", "paper")


def test_page_reading_an_undeclared_experiment_of_the_store_fails(tmp_path, monkeypatch):
    from qftml import profiles as prof
    from qftml import results

    monkeypatch.setattr(prof, "_PAGE", None)
    path = tmp_path / "profiles.yml"
    path.write_text(yaml.safe_dump({"ci": {"a": {"seed": 1, "store": ["task1-comparison"]}}}))
    monkeypatch.setenv("QFTML_PROFILES", str(path))
    assert results.entries("task2-detection", root=tmp_path) == []  # no page: no check
    prof.setup("a", "ci")
    assert results.entries("task1-comparison", root=tmp_path) == []
    with pytest.raises(KeyError, match="'task2-detection' without declaring it"):
        results.entries("task2-detection", root=tmp_path)


def test_code_is_collapsed_unless_asked_to_show():
    import nbformat

    nb = nbformat.v4.new_notebook()
    plain = nbformat.v4.new_code_cell("x = 1")
    shown = nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["show-input"]})
    params = nbformat.v4.new_code_cell("profile = 'ci'", metadata={"tags": ["parameters"]})
    text = nbformat.v4.new_markdown_cell("prose")
    nb.cells = [plain, shown, params, text]
    book.collapse_code(nb)
    assert plain.metadata["tags"] == ["hide-input"]
    assert shown.metadata["tags"] == ["show-input"]
    assert params.metadata["tags"] == ["parameters", "remove-cell"]
    assert "tags" not in text.metadata


def test_docstrings_are_restructuredtext_with_dollar_math():
    """The API reference parses docstrings as reStructuredText (autodoc): no MyST roles in
    the package, and the book's ``$...$`` inline math becomes ``:math:`` (book/_ext)."""
    import importlib.util
    import re

    myst = re.compile(r"\{(cite|ref|func|mod|class|meth|data|attr|eq|numref)\}`")
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in sorted((ROOT / "src" / "qftml").rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if myst.search(line) and "``{" not in line
    ]
    assert found == []
    spec = importlib.util.spec_from_file_location("docmath", ROOT / "book" / "_ext" / "docmath.py")
    docmath = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docmath)
    text = r"fit $\log|v| = a$; ``($x$)`` kept, $5 and $$y$$ too"
    assert docmath.dollars_to_math(text) == (
        r"fit :math:`\log|v| = a`; ``($x$)`` kept, $5 and $$y$$ too"
    )


def test_statement_links_point_at_labels_that_exist():
    from qftml.paths import ROOT
    from qftml.tasks import statements

    for stem, label in statements.STORE_SECTIONS.items():
        assert f"# ({label})=" in (ROOT / "notebooks" / f"{stem}.py").read_text(), stem
    assert statements.link("09_task3_counting") == (
        '<a href="09_task3_counting.html#store-task3">09 task3 counting</a>'
    )
    assert statements.link("01_model") == '<a href="01_model.html">01 model</a>'  # no section
    assert {ch for _, ch, _ in statements.STATEMENTS} <= set(book.toc_notebooks())


def test_verdict_tables_escape_their_text_but_not_the_chapter_links():
    import pandas as pd

    from qftml.tasks import statements

    table = pd.DataFrame({"chapter": [statements.link("13_interacting_fields")],
                          "evidence": ["|<f>| after training; p < 0.05"]})  # fmt: skip
    html = statements.styled(table).to_html()
    assert "|&lt;f&gt;| after training; p &lt; 0.05" in html
    assert '<a href="13_interacting_fields.html">13 interacting fields</a>' in html
