"""Computed verdicts of the book's pages, recorded and stored with what determines them.

A chapter that tests a statement of the source computes the verdict in its cells and calls
:func:`record` (a flag, the number behind it with its error, a line of evidence). The
records of one execution go to ``<data>/verdicts/<profile>/<stem>.json``, rewritten
atomically after each call and cleared when the page starts (:func:`qftml.profiles.setup`),
so they are always those of the page's latest run.

``python -m qftml results pages`` executes the pages of :data:`PAGES` at the ``paper``
profile (minutes each) and stores their records in ``results/pages/<stem>.json`` with their
provenance and a key of what determines them (:func:`page_key`): the page's code cells, the
profile sections it reads, the sources of the package modules it imports (closed over
their imports) and the versions of the numerical libraries. Prose edits and refactors of
modules the page does not import leave the key, and so the stored verdicts, valid. The
landing page (:func:`table`) shows stored verdicts whose key is today's and says which are
missing or stale; :func:`verify` checks the keys and re-executes the cheapest page to
compare its verdicts with the stored ones.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import keys
from .paths import NOTEBOOKS, ROOT, data_dir

SCHEMA = 1

#: Pages whose verdicts the landing page reads: the sampler's validation and the chapters
#: on the second talk.
PAGES = (
    "03_worm_sampling",
    "10_networks_as_fields",
    "11_symmetry_via_duality",
    "12_symmetry_and_training",
    "13_interacting_fields",
)

#: Package modules that compute no result (parameters, style, progress, paths, records);
#: edits to them do not invalidate a stored page.
PRESENTATION = frozenset(
    {"qftml", "qftml.profiles", "qftml.plotting", "qftml.progress", "qftml.paths", __name__}
)

#: Libraries whose version can change a page's numbers.
LIBRARIES = ("numpy", "scipy", "torch", "scikit-learn")

#: A re-executed page agrees with its stored record when every flag is equal and every value
#: is within this fraction of its error (or, without one, relatively): numbers from seeded
#: Monte Carlo move only by rounding between machines.
VALUE_TOL = 1e-3


@dataclass(frozen=True)
class Verdict:
    """One statement's verdict on one page: flag, the number behind it, evidence."""

    key: str
    statement: str
    confirmed: bool
    value: float
    error: float | None = None
    evidence: str = ""

    def number(self) -> str:
        return f"{self.value:.3g}" + ("" if self.error is None else f" ± {self.error:.2g}")

    @property
    def word(self) -> str:
        return "confirmed" if self.confirmed else "not confirmed"

    def line(self) -> str:
        return (
            f"verdict [{self.key}] {self.statement}: {self.word} ({self.number()}; {self.evidence})"
        )


_RECORDS: dict[str, Verdict] = {}
_PAGE: tuple[str, str] | None = None


def records_file(stem: str, profile: str) -> Path:
    return data_dir() / "verdicts" / profile / f"{stem}.json"


def start_page(stem: str, profile: str) -> None:
    """Forget the records of an earlier run of this page (called by ``profiles.setup``)."""
    global _PAGE
    _PAGE = (stem, profile)
    _RECORDS.clear()
    records_file(stem, profile).unlink(missing_ok=True)


def record(
    key: str,
    statement: str,
    confirmed: bool,
    value: float,
    error: float | None = None,
    evidence: str = "",
) -> Verdict:
    """Record a computed verdict of the current page and print it; returns the record."""
    if _PAGE is None:
        raise RuntimeError("verdicts.record needs a page: call qftml.profiles.setup first")
    import numpy as np

    if not isinstance(confirmed, bool | np.bool_):  # a computed flag, not a number or text
        raise TypeError(f"confirmed must be a bool, got {confirmed!r}")
    v = Verdict(
        key,
        statement,
        bool(confirmed),
        float(value),
        None if error is None else float(error),
        evidence,
    )
    _RECORDS[key] = v
    path = records_file(*_PAGE)
    _write_json(path, {"page": _PAGE[0], "profile": _PAGE[1],
                       "verdicts": [asdict(r) for r in _RECORDS.values()]})  # fmt: skip
    print(v.line())
    return v


def _write_json(path: Path, payload: dict) -> None:
    from .results import _write_json as write  # atomic, as the store's entries

    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, payload)


def read_records(stem: str, profile: str) -> list[Verdict]:
    """The verdicts recorded by the latest run of a page at ``profile``."""
    path = records_file(stem, profile)
    if not path.exists():
        return []
    return [Verdict(**r) for r in json.loads(path.read_text())["verdicts"]]


# --------------------------------------------------------------------------------------------
# What determines a page
# --------------------------------------------------------------------------------------------


def _code_cells(stem: str) -> list[str]:
    import jupytext

    nb = jupytext.read(NOTEBOOKS / f"{stem}.py")
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _normalized(cell: str) -> str:
    """A code cell without comments and formatting (its syntax tree)."""
    try:
        return ast.dump(ast.parse(cell), annotate_fields=False, include_attributes=False)
    except SyntaxError:  # a cell with notebook magics: its text
        return cell


def _imports(source: str, package: str | None = None) -> set[str]:
    """Names of the ``qftml`` modules a source imports (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = (package or "").split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # a submodule imported by name
    return {n for n in found if n == "qftml" or n.startswith("qftml.")}


def module_files(sources: list[str]) -> list[Path]:
    """Source files of every ``qftml`` module the sources import, closed over imports."""
    todo, seen, files = set().union(*(_imports(s) for s in sources)), set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = None if name in PRESENTATION else _spec(name)
        if spec is None or spec.origin is None:
            continue  # presentation, or a name imported from a module, not a module
        path = Path(spec.origin)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo |= _imports(path.read_text(), package) - seen
        files.add(path)
    return sorted(files)


def _spec(name: str):
    """The module spec of ``name``, or None where it names an object inside a module."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, AttributeError, ValueError):
        return None


def page_key(stem: str, profile: str = "paper") -> dict:
    """What a page's verdicts depend on, as digests (see the module docstring)."""
    from .profiles import notebook_params, sections_read

    cells = _code_cells(stem)
    params = {name: notebook_params(name, profile) for name in sections_read(stem, profile)}
    files = module_files(cells)
    return {
        "code": keys.digest([_normalized(c) for c in cells]),
        "params": keys.digest(params),
        "modules": keys.digest(
            [[str(p.relative_to(ROOT)), keys.normalized_source(p.read_text())] for p in files]
        ),
        "libraries": {lib: importlib.metadata.version(lib) for lib in LIBRARIES},
    }


# --------------------------------------------------------------------------------------------
# The store of executed pages
# --------------------------------------------------------------------------------------------


def pages_dir(root: Path | None = None) -> Path:
    from .results import store_dir

    return (root or store_dir()) / "pages"


def _check_stems(stems) -> list[str]:
    stems = list(PAGES if stems is None else stems)
    unknown = [s for s in stems if s not in PAGES]
    if unknown:
        raise ValueError(f"unknown page(s) {unknown}: the pages with verdicts are {list(PAGES)}")
    return stems


def _check_declared(stems: list[str]) -> None:
    """Inside a page, refuse to read stored verdicts the page does not list under ``pages:``
    (its content key would not cover them, as :func:`qftml.results.entries` for ``store:``)."""
    from . import profiles

    if profiles._PAGE is None:
        return
    page, profile = profiles._PAGE
    declared = profiles.notebook_params(page, profile).get("pages") or []
    missing = [s for s in stems if s not in declared]
    if missing:
        raise KeyError(
            f"page {page!r} reads the stored verdicts of {missing} without declaring them: add "
            f"them to {profile}.{page}.pages in profiles.yml (declared: {declared})"
        )


def stored(stems=None, profile: str = "paper", root: Path | None = None) -> dict[str, dict]:
    """Stored record of each page (``None`` if absent), with ``"current"``: its key is
    today's and its profile is ``profile``."""
    out = {}
    stems = _check_stems(stems)
    _check_declared(stems)
    for stem in stems:
        path = pages_dir(root) / f"{stem}.json"
        if not path.exists():
            out[stem] = None
            continue
        rec = json.loads(path.read_text())
        rec["current"] = rec["profile"] == profile and rec["key"] == page_key(stem, profile)
        rec["verdicts"] = [Verdict(**v) for v in rec["verdicts"]]
        out[stem] = rec
    return out


def _execute(stem: str, profile: str, timeout: int, log) -> tuple[list[Verdict], float, list]:
    """Execute a page at ``profile`` in a scratch folder; its verdicts, wall time, output."""
    import nbformat

    from .book import execute_notebook

    os.environ.setdefault("QFTML_QUIET", "1")
    with tempfile.TemporaryDirectory() as tmp:
        nbdir = Path(tmp)
        (nbdir / f"{stem}.py").write_bytes((NOTEBOOKS / f"{stem}.py").read_bytes())
        start = time.perf_counter()
        execute_notebook(stem, profile, notebooks_dir=nbdir, stamps_dir=nbdir / "stamps",
                         force=True, timeout=timeout, log=log)  # fmt: skip
        wall = time.perf_counter() - start
        nb = nbformat.read(nbdir / f"{stem}.ipynb", as_version=4)
    printed = [
        o["text"] for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout"
    ]
    return read_records(stem, profile), wall, printed


def run_pages(
    stems=None,
    profile: str = "paper",
    *,
    force: bool = False,
    timeout: int = 3600,
    log=print,
    root: Path | None = None,
) -> list[str]:
    """Execute every page whose stored record is missing or stale and store its verdicts.

    Returns the stems that were executed. A page that records no verdict is an error.
    """
    from .results import machine

    done = []
    have = stored(stems, profile, root)
    for stem, rec in have.items():
        if rec is not None and rec["current"] and not force:
            log(f"{stem}: stored verdicts are current")
            continue
        key = page_key(stem, profile)
        verdicts, wall, printed = _execute(stem, profile, timeout, log)
        if not verdicts:
            raise RuntimeError(f"page {stem} recorded no verdict (verdicts.record)")
        record_ = {
            "schema": SCHEMA,
            "page": stem,
            "profile": profile,
            "key": key,
            "verdicts": [asdict(v) for v in verdicts],
            "provenance": {
                **machine(),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "cores": os.cpu_count(),
                "wall_seconds": round(wall, 1),
                "command": f"python -m qftml results pages {stem} --profile {profile}",
            },
            "output": "".join(printed),
        }
        _write_json(pages_dir(root) / f"{stem}.json", record_)
        log(f"{stem}: {len(verdicts)} verdicts stored ({wall:.0f} s)")
        done.append(stem)
    return done


def digest(stems=None, profile: str = "paper", root: Path | None = None) -> str:
    """Digest of what a page showing these stored verdicts depends on (``book.content_key``):
    the stored files and today's keys of their pages."""
    payload = []
    for stem in PAGES if stems is None else stems:
        if stem not in PAGES:  # a malformed profile value still hashes (and is named later)
            payload.append(["unknown page", str(stem)])
            continue
        path = pages_dir(root) / f"{stem}.json"
        text = path.read_text() if path.exists() else None
        payload.append([stem, text, page_key(stem, profile)])
    return keys.digest(payload)


def table(stems=None, profile: str = "paper", root: Path | None = None):
    """One row per stored verdict (statement, chapter, verdict, evidence, coverage); a page
    with no current record gives one row that says so."""
    import pandas as pd

    rows = []
    for stem, rec in stored(stems, profile, root).items():
        if rec is None or not rec["current"]:
            why = "not run" if rec is None else "stale (code, parameters or libraries changed)"
            rows.append({"statement": f"(every statement of {stem})", "chapter": stem,
                         "verdict": "not judged", "number": "", "evidence": "",
                         "coverage": f"{why}: python -m qftml results pages {stem}"})  # fmt: skip
            continue
        prov = rec["provenance"]
        for v in rec["verdicts"]:
            rows.append({
                "statement": v.statement,
                "chapter": stem,
                "verdict": v.word,
                "number": v.number(),
                "evidence": v.evidence,
                "coverage": f"{profile} run of {prov['date'][:10]}, {prov['wall_seconds']:.0f} s",
            })  # fmt: skip
    return pd.DataFrame(rows)


def styled(table):
    """A verdict table for a page: index hidden, every cell's text HTML-escaped (evidence
    such as ``|<f>|`` or ``p < 0.05`` is text) except the chapter links of the ``chapter``
    column (:func:`qftml.tasks.statements.link`)."""
    text = [c for c in table.columns if c != "chapter"]
    return table.style.hide(axis="index").format(escape="html", subset=text)


def page_table(stem: str, profile: str = "paper", root: Path | None = None):
    """A chapter's own stored verdicts at ``profile`` (full statistics), shown at its top:
    the landing page's rows without the chapter column, text escaped."""
    return styled(table([stem], profile, root).drop(columns="chapter"))


def _agree(a: Verdict, b: Verdict) -> bool:
    if a.confirmed != b.confirmed:
        return False
    scale = b.error if b.error else max(abs(b.value), 1e-300)
    return abs(a.value - b.value) <= VALUE_TOL * scale


def verify(
    rerun: int = 1, *, max_seconds: float | None = None, root: Path | None = None, log=print
) -> bool:
    """Check every stored page's key; re-execute the ``rerun`` cheapest (stored wall time at
    most ``max_seconds``) and compare their verdicts: equal flags, values within
    :data:`VALUE_TOL` of their errors."""
    ok = True
    have = {s: r for s, r in stored(root=root).items() if r is not None}
    if not have:
        log("pages: no stored verdicts")
        return True
    for stem, rec in have.items():
        state = "current" if rec["current"] else "STALE: python -m qftml results pages"
        log(f"  {stem}: {len(rec['verdicts'])} verdicts, {state}")
        ok &= rec["current"]
    cands = sorted((r for r in have.values() if r["current"]),
                   key=lambda r: r["provenance"]["wall_seconds"])  # fmt: skip
    if max_seconds is not None:
        cands = [r for r in cands if r["provenance"]["wall_seconds"] <= max_seconds]
    if rerun and not cands:
        log(f"  re-execution: no current page ran within {max_seconds} s; skipped")
    for rec in cands[:rerun]:
        got, wall, _ = _execute(rec["page"], rec["profile"], 3600, log=lambda *_: None)
        want = {v.key: v for v in rec["verdicts"]}
        mine = {v.key: v for v in got}
        same = set(want) == set(mine) and all(_agree(mine[k], want[k]) for k in want)
        ok &= same
        for k in sorted(set(want) | set(mine)):
            a, b = mine.get(k), want.get(k)
            log(f"    {k}: {'missing' if a is None else a.number()} vs stored "
                f"{'missing' if b is None else b.number()}")  # fmt: skip
        log(f"  re-executed {rec['page']} ({wall:.0f} s): verdicts {'agree' if same else 'DIFFER'}"
            f" (flags equal, values within {VALUE_TOL:g} error)")  # fmt: skip
    return ok
