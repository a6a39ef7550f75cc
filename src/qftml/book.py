"""Build pipeline: jupytext ``notebooks/*.py`` -> papermill-executed ``.ipynb`` -> Jupyter Book.

Each notebook listed in ``_toc.yml`` is converted with jupytext and executed by papermill
with ``profile`` injected into its ``parameters`` cell. A notebook is re-executed only when
its content key changes: the hash of its source, the profile sections it reads, the package
sources and the pinned requirements (make-style, but by content, so ``git checkout`` does
not force rebuilds). A failing cell (papermill's error) or a stored error output fails the
build; the book itself is built with Sphinx warnings as errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .paths import NOTEBOOKS, ROOT, STAMPS
from .profiles import notebook_params, sections_read


class BuildError(RuntimeError):
    """A notebook failed to execute, or the book failed to build."""


def toc_files(toc_path: Path | None = None) -> list[str]:
    """Every page of ``_toc.yml`` (the root first, then each ``file`` entry), in order."""
    toc = yaml.safe_load(open(toc_path or ROOT / "_toc.yml"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


def toc_notebooks(toc_path: Path | None = None) -> list[str]:
    """Stems of the notebooks (``notebooks/<stem>``) listed in ``_toc.yml``, in order."""
    return [
        f.split("/", 1)[1].removesuffix(".ipynb")
        for f in toc_files(toc_path)
        if f.startswith("notebooks/")
    ]


def _package_digest() -> str:
    h = hashlib.sha256()
    files = sorted((ROOT / "src" / "qftml").rglob("*.py"))
    for extra in ("requirements.lock",):
        if (ROOT / extra).exists():
            files.append(ROOT / extra)
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def content_key(
    stem: str, profile: str, notebooks_dir: Path = NOTEBOOKS, package_digest: str | None = None
) -> str:
    """Hash of everything a notebook's executed output depends on.

    Its source, the profile, the parameters of every profile section it reads
    (:func:`qftml.profiles.sections_read`), the package sources and the pinned requirements,
    and, for a page whose section lists ``store: [experiment, ...]``, the entries of the
    results store it shows (:func:`qftml.results.store_digest`), or ``pages: [stem, ...]``,
    the stored verdicts of those pages (:func:`qftml.verdicts.digest`).
    """
    h = hashlib.sha256()
    h.update((notebooks_dir / f"{stem}.py").read_bytes())
    h.update(profile.encode())
    params = {name: notebook_params(name, profile) for name in sections_read(stem, profile)}
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update((package_digest or _package_digest()).encode())
    stores = params[stem].get("store") or []
    if stores:  # the page shows entries of the results store
        from . import results

        h.update(results.store_digest(stores).encode())
    pages = params[stem].get("pages") or []
    if pages:  # the page shows stored verdicts of other pages
        from . import verdicts

        h.update(verdicts.digest(pages).encode())
    return h.hexdigest()


def stored_errors(nb) -> list[str]:
    """Error outputs stored in an executed notebook, except in cells tagged ``raises-exception``."""
    errors = []
    for i, cell in enumerate(nb.cells):
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return errors


#: Cell tags that already decide how a cell's code is shown.
_SHOWN = {"show-input", "hide-input", "hide-cell", "remove-input", "remove-cell", "hide-output"}


def collapse_code(nb) -> None:
    """Collapse the code of every code cell (tag ``hide-input``) unless tagged ``show-input``.

    Chapters tell the story in prose and figures; their code, which calls the package, is one
    click away. The default ``parameters`` cell is removed: the book shows the injected
    profile, not the notebook's default.
    """
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "parameters" in tags:
            if "remove-cell" not in tags:
                tags.append("remove-cell")
        elif not _SHOWN & set(tags):
            tags.append("hide-input")


def execute_notebook(
    stem: str,
    profile: str,
    *,
    notebooks_dir: Path = NOTEBOOKS,
    stamps_dir: Path = STAMPS,
    force: bool = False,
    timeout: int = 3600,
    package_digest: str | None = None,
    log=print,
) -> bool:
    """Execute ``notebooks_dir/<stem>.py`` into ``<stem>.ipynb`` unless its key is unchanged.

    Returns True if the notebook was executed, False if the stored result was current.
    Raises :class:`BuildError` if a cell fails.
    """
    import jupytext
    import nbformat
    import papermill

    src = notebooks_dir / f"{stem}.py"
    out = notebooks_dir / f"{stem}.ipynb"
    stamp = stamps_dir / f"{stem}.{profile}.key"
    if not src.exists():
        raise BuildError(f"notebook source {src} does not exist (listed in _toc.yml?)")
    key = content_key(stem, profile, notebooks_dir, package_digest)
    if not force and out.exists() and stamp.exists() and stamp.read_text() == key:
        return False
    stamp.unlink(missing_ok=True)
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_in = Path(tmp) / f"{stem}.ipynb"
        nbformat.write(nb, tmp_in)
        try:
            papermill.execute_notebook(
                str(tmp_in),
                str(out),
                parameters={"profile": profile},
                kernel_name="python3",
                cwd=str(notebooks_dir),
                progress_bar=False,
                execution_timeout=timeout,
            )
        except papermill.PapermillExecutionError as exc:
            raise BuildError(
                f"notebook {stem} failed in profile {profile!r}: "
                f"{exc.ename}: {exc.evalue} (see {out})"
            ) from exc
    executed = nbformat.read(out, as_version=4)
    errors = stored_errors(executed)
    if errors:
        raise BuildError(f"notebook {stem} stored errors: {errors}")
    collapse_code(executed)
    nbformat.write(executed, out)
    stamps_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)
    log(f"  executed {stem} ({profile}) in {time.perf_counter() - start:.1f} s")
    return True


def execute_all(
    profile: str,
    *,
    stems: list[str] | None = None,
    jobs: int = 1,
    force: bool = False,
    notebooks_dir: Path = NOTEBOOKS,
    stamps_dir: Path = STAMPS,
    log=print,
) -> list[str]:
    """Execute every out-of-date notebook; returns the stems that were executed."""
    stems = toc_notebooks() if stems is None else stems
    digest = _package_digest()
    os.environ["QFTML_QUIET"] = "1"  # no progress bars inside the rendered book
    if jobs > 1 and "QFTML_WORKERS" not in os.environ:
        # each notebook's grids get their share of the cores (see qftml.grid)
        from .grid import cores

        os.environ["QFTML_WORKERS"] = str(max(1, cores() // jobs))

    def run(stem):
        return (
            stem
            if execute_notebook(
                stem,
                profile,
                force=force,
                package_digest=digest,
                notebooks_dir=notebooks_dir,
                stamps_dir=stamps_dir,
                log=log,
            )
            else None
        )

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = [s for s in pool.map(run, stems) if s]
    if not done:
        log(f"  all {len(stems)} notebooks are up to date for profile {profile!r}")
    return done


def build_book(*, strict: bool = True) -> None:
    """Render the book (no execution) to ``_build/html``; Sphinx warnings are errors."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT)]
    if strict:
        cmd += ["-W", "--keep-going"]
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        raise BuildError(f"jupyter-book build failed with exit code {proc.returncode}")


def check_html(html_dir: Path | None = None, toc_path: Path | None = None) -> list[str]:
    """Problems in the rendered book: missing pages, remote scripts, missing images.

    The book must read offline, so every script (MathJax included) is served locally.
    """
    import re

    html_dir = html_dir or ROOT / "_build" / "html"
    files = toc_files(toc_path)
    problems = []
    for name in files:
        page = html_dir / f"{name.removesuffix('.ipynb').removesuffix('.md')}.html"
        if not page.exists():
            problems.append(f"missing page {page}")
            continue
        text = page.read_text(errors="replace")
        for src in re.findall(r'<script[^>]*src="([^"]+)"', text):
            if src.startswith(("http:", "https:", "//")):
                problems.append(f"{page.name}: remote script {src}")
        for src in re.findall(r'<img[^>]*src="([^"]+)"', text):
            if not src.startswith("data:") and not (page.parent / src).exists():
                problems.append(f"{page.name}: missing image {src}")
        for name in unresolved_references(text):
            problems.append(f"{page.name}: unresolved reference {name}")
    return problems


def unresolved_references(html: str) -> list[str]:
    """Python cross-references (``{func}``, ``{mod}``, ...) that Sphinx rendered without a
    link: a resolved one is ``<a class="reference internal" ...><code class="xref py ...">``,
    an unresolved one is the bare ``<code>``. (Sphinx warns about these only in nitpicky
    mode, which would also flag every type in every signature.)"""
    import re

    out = []
    for m in re.finditer(r'(<a [^>]*>)?<code class="xref py[^"]*">(.*?)</code>', html, re.S):
        if m.group(1) is None:
            out.append(re.sub(r"<[^>]+>", "", m.group(2)).strip())
    return out


def main(
    profile: str = "ci",
    jobs: int = 1,
    force: bool = False,
    stems: list[str] | None = None,
    html: bool = True,
    notebooks_dir: Path | None = None,
) -> int:
    """The ``book`` command; returns the process exit code (non-zero on any failure).

    ``notebooks_dir`` executes notebooks from another folder (stamps kept in its
    ``.stamps`` subfolder); the book is then not rendered.
    """
    start = time.perf_counter()
    print(f"Executing notebooks (profile {profile!r}, {jobs} job(s))")
    dirs = {}
    if notebooks_dir is not None:
        dirs = {"notebooks_dir": Path(notebooks_dir), "stamps_dir": Path(notebooks_dir) / ".stamps"}
        html = False
    try:
        execute_all(profile, stems=stems, jobs=jobs, force=force, **dirs)
        if html:
            build_book()
            problems = check_html()
            if problems:
                raise BuildError("rendered book: " + "; ".join(problems))
    except BuildError as exc:
        print(f"BUILD FAILED: {exc}", file=sys.stderr)
        return 1
    took = f"{time.perf_counter() - start:.1f} s"
    if html:
        print(f"Book built in {took}: {ROOT / '_build' / 'html' / 'index.html'}")
    else:
        print(f"Notebooks executed in {took} (not rendered: --no-html)")
    return 0
