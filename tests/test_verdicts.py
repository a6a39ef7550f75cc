"""Recorded verdicts of pages and their store: records, keys, execution, verification."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from test_book import write_notebook

from qftml import profiles, results, verdicts
from qftml.paths import ROOT

PAGE = """\
# %% [markdown]
# A page that judges one statement.

# %%
import numpy as np

from qftml import verdicts
from qftml.nnqft import m_n
from qftml.profiles import setup

P = setup("page", profile)
x = np.random.default_rng(P["seed"]).normal(size=P["n"])
verdicts.record("mean-zero", "the mean is zero", bool(abs(x.mean()) < 3 / np.sqrt(P["n"])),
                x.mean(), x.std() / np.sqrt(P["n"]), evidence=f"{P['n']} draws")
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A notebooks folder with one page, its profiles file, a data folder and a store."""
    (tmp_path / "nb").mkdir()
    write_notebook(tmp_path / "nb", "page", PAGE)
    prof = {p: {"page": {"seed": 1, "n": 1000}} for p in ("ci", "paper")}
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(prof))
    monkeypatch.setenv("QFTML_PROFILES", str(tmp_path / "profiles.yml"))
    monkeypatch.setenv("QFTML_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("QFTML_RESULTS", str(tmp_path / "store"))
    monkeypatch.setattr(verdicts, "NOTEBOOKS", tmp_path / "nb")
    monkeypatch.setattr(verdicts, "PAGES", ("page",))
    monkeypatch.setattr(verdicts, "_PAGE", None)
    monkeypatch.setattr(profiles, "_PAGE", None)
    return tmp_path


def test_record_needs_a_page_and_a_computed_flag(site):
    with pytest.raises(RuntimeError, match="needs a page"):
        verdicts.record("k", "s", True, 1.0)
    profiles.setup("page", "ci")
    with pytest.raises(TypeError, match="confirmed must be a bool, got 'yes'"):
        verdicts.record("k", "s", "yes", 1.0)
    v = verdicts.record("k", "s", np.True_, 2.5, 0.5, "e")
    assert v.confirmed is True and v.number() == "2.5 ± 0.5"
    assert verdicts.read_records("page", "ci") == [v]


def test_a_new_run_of_a_page_forgets_the_records_of_the_last(site):
    profiles.setup("page", "ci")
    verdicts.record("old", "s", False, 1.0)
    profiles.setup("page", "ci")
    assert verdicts.read_records("page", "ci") == []
    verdicts.record("new", "s", True, 1.0)
    assert [v.key for v in verdicts.read_records("page", "ci")] == ["new"]


def test_page_key_follows_code_and_parameters_not_prose(site):
    base = verdicts.page_key("page")
    path = site / "nb" / "page.py"
    text = path.read_text()
    path.write_text(text.replace("A page that judges", "A page, which judges"))
    path.write_text(path.read_text().replace("x = np", "# a comment\nx = np"))
    assert verdicts.page_key("page") == base  # prose and comments determine nothing
    path.write_text(text.replace("3 / np.sqrt", "2 / np.sqrt"))
    assert verdicts.page_key("page")["code"] != base["code"]
    path.write_text(text)
    prof = yaml.safe_load((site / "profiles.yml").read_text())
    prof["paper"]["page"]["n"] = 999
    (site / "profiles.yml").write_text(yaml.safe_dump(prof))
    assert verdicts.page_key("page")["params"] != base["params"]
    assert verdicts.page_key("page")["modules"] == base["modules"]


def test_module_closure_follows_imports_and_skips_presentation():
    files = {
        p.relative_to(ROOT).as_posix()
        for p in verdicts.module_files(["from qftml.nnqft import m_n"])
    }
    assert "src/qftml/nnqft/correlators.py" in files  # imported by the package's __init__
    assert "src/qftml/nnqft/kernels.py" in files  # imported by correlators (relative import)
    assert "src/qftml/profiles.py" not in files
    assert verdicts.module_files(["from qftml.profiles import setup\nimport numpy"]) == []


def test_pages_are_stored_verified_and_go_stale_with_their_code(site):
    assert verdicts.run_pages(profile="paper", log=lambda *_: None) == ["page"]
    rec = verdicts.stored()["page"]
    assert rec["current"] and rec["verdicts"][0].key == "mean-zero"
    assert rec["provenance"]["wall_seconds"] > 0 and "1000 draws" in rec["verdicts"][0].evidence
    assert verdicts.run_pages(profile="paper", log=lambda *_: None) == []  # current: not rerun
    table = verdicts.table()
    assert list(table["verdict"]) == [
        ("confirmed" if rec["verdicts"][0].confirmed else "not confirmed")
    ]

    lines = []
    assert verdicts.verify(1, log=lines.append)
    assert any("verdicts agree" in line for line in lines)

    path = site / "store" / "pages" / "page.json"
    stored = json.loads(path.read_text())
    stored["verdicts"][0]["value"] += 10 * stored["verdicts"][0]["error"]
    path.write_text(json.dumps(stored))
    assert not verdicts.verify(1, log=lambda *_: None)  # re-execution differs from the record

    nb = site / "nb" / "page.py"
    nb.write_text(nb.read_text().replace("3 / np.sqrt", "2 / np.sqrt"))
    assert not verdicts.stored()["page"]["current"]
    assert not verdicts.verify(0, log=lambda *_: None)  # stale
    assert verdicts.table()["verdict"].tolist() == ["not judged"]


def test_unknown_page_is_named(capsys):
    from qftml.__main__ import main

    with pytest.raises(ValueError, match="unknown page.*'nope'"):
        verdicts.stored(["nope"])
    assert main(["results", "pages", "nope"]) == 2
    assert "unknown page(s) ['nope']" in capsys.readouterr().err


def test_stored_pages_of_the_repository_are_current():
    """The landing page's second table: every page of the second talk is stored and current
    (after editing one, rerun ``python -m qftml results pages``)."""
    have = verdicts.stored(root=ROOT / "results")
    missing = [s for s, r in have.items() if r is None]
    stale = [s for s, r in have.items() if r is not None and not r["current"]]
    assert not missing and not stale, f"missing {missing}, stale {stale}"
    for rec in have.values():
        assert rec["verdicts"] and rec["profile"] == "paper"
    rows = {r["page"]: r for r in results.summary("paper", ROOT / "results")["pages"]}
    assert set(rows) == set(have)  # `results summary --json` lists them
    for stem, rec in have.items():
        confirmed = sum(bool(v.confirmed) for v in rec["verdicts"])
        assert rows[stem]["verdicts"] == len(rec["verdicts"])
        assert rows[stem]["confirmed"] == confirmed and rows[stem]["current"]


def test_a_page_reads_only_the_stored_verdicts_it_declares(site):
    assert verdicts.stored() == {"page": None}  # no page running: no check
    profiles.setup("page", "ci")
    with pytest.raises(KeyError, match=r"stored verdicts of \['page'\] without declaring"):
        verdicts.stored()
    prof = yaml.safe_load((site / "profiles.yml").read_text())
    prof["ci"]["page"]["pages"] = ["page"]
    (site / "profiles.yml").write_text(yaml.safe_dump(prof))
    assert verdicts.stored() == {"page": None}
