"""Named parameter profiles for the notebooks (``profiles.yml``).

The file maps ``profile -> notebook stem -> parameters``. ``ci`` keeps the whole book
within the CI budget; ``paper`` uses the statistics of the source papers. A notebook's
papermill ``parameters`` cell holds only ``profile``; every other number is read here,
so parameters live in exactly one place.
"""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import yaml

from . import __version__
from .paths import ROOT, profiles_file

#: The page being executed (set by :func:`setup`); while set, :func:`notebook_params` refuses
#: sections the page does not declare, so a page's content key can never miss one.
_PAGE: tuple[str, str] | None = None
READS = "reads"


def load_profiles(path=None) -> dict[str, dict[str, dict[str, Any]]]:
    """Read the whole profiles file."""
    path = path or profiles_file()
    with open(path) as fh:
        try:
            data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"{path}{where}: malformed YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of profile names, got {type(data).__name__}")
    return data


def _section(profiles: dict, notebook: str, profile: str, path=None) -> dict[str, Any]:
    if profile not in profiles:
        raise KeyError(f"unknown profile {profile!r}; defined: {sorted(profiles)}")
    section = profiles[profile] or {}
    if notebook not in section:
        raise KeyError(
            f"profile {profile!r} has no parameters for notebook {notebook!r}; "
            f"it defines {sorted(section)}"
        )
    return dict(section[notebook] or {})


def sections_read(notebook: str, profile: str, path=None) -> list[str]:
    """Every profile section ``notebook`` depends on: itself and, transitively, its ``reads``.

    A page declares the other sections it reads (``reads: [datasets, 06_task1_search]``);
    a section it reads may read others in turn (chapter 07 uses the search winners of 06,
    which were trained on the ``datasets``), so the closure is taken. Sorted, own first.
    """
    profiles = load_profiles(path)
    seen, todo = [], [notebook]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        reads = _section(profiles, name, profile).get(READS) or []
        if not isinstance(reads, list) or not all(isinstance(r, str) for r in reads):
            raise ValueError(f"{profile}.{name}.{READS}: a list of section names; got {reads!r}")
        todo.extend(reads)
    return [notebook, *sorted(seen[1:])]


def _allowed_sections(page: str, profile: str) -> list[str]:
    """The sections a page may read: those it declares (:func:`sections_read`), and those of
    the store experiments (``store:``) and stored pages (``pages:``) it shows, whose digests
    cover them in the page's content key (:func:`qftml.book.content_key`)."""
    allowed = sections_read(page, profile)
    own = _section(load_profiles(), page, profile)
    shown = list(own.get("pages") or [])
    if own.get("store"):
        from .results import EXPERIMENTS
        from .search_store import EXPERIMENTS as SEARCHES

        sections = {e: sec for e, (_, sec) in (EXPERIMENTS | SEARCHES).items()}
        shown += [sections[e] for e in own["store"] if e in sections]
    for other in shown:
        try:
            allowed += [s for s in sections_read(other, profile) if s not in allowed]
        except KeyError:  # not in this profile: nothing of it can be read anyway
            continue
    return allowed


def notebook_params(notebook: str, profile: str, path=None) -> dict[str, Any]:
    """Parameters of ``notebook`` (its file stem) in ``profile``; raises if either is unknown.

    Inside a page started by :func:`setup`, reading a section the page does not declare in
    its ``reads`` (or show through ``store:`` or ``pages:``) raises: the page's content key
    would not cover it.
    """
    if _PAGE is not None and _PAGE[1] == profile and path is None:
        allowed = _allowed_sections(_PAGE[0], profile)
        if notebook not in allowed:
            raise KeyError(
                f"page {_PAGE[0]!r} reads profile section {notebook!r} without declaring it: "
                f"add it to {profile}.{_PAGE[0]}.{READS} in profiles.yml (declared: {allowed})"
            )
    return _section(load_profiles(path), notebook, profile)


def git_commit() -> str:
    """Short commit hash of the working tree, with ``+dirty`` if it has changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "notebooks", "profiles.yml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def setup(notebook: str, profile: str) -> dict[str, Any]:
    """Start a notebook: load its parameters, apply the figure style, print provenance.

    Returns the parameter dictionary. Every executed notebook thus states which profile,
    seed, package version and commit produced it.
    """
    from . import plotting, verdicts

    global _PAGE
    params = notebook_params(notebook, profile)
    _PAGE = (notebook, profile)
    verdicts.start_page(notebook, profile)  # the page's verdicts are those of this run
    plotting.use_style()
    import logging

    import numpy as np

    logging.getLogger("optuna").setLevel(logging.WARNING)  # a page shows results, not trial logs

    rows = [
        ("profile", profile),
        ("seed", params.get("seed", "n/a")),
        ("qftml version", __version__),
        ("git commit", git_commit()),
        ("python / numpy", f"{platform.python_version()} / {np.__version__}"),
        ("CI", "yes" if os.environ.get("CI") else "no"),
    ]
    width = max(len(k) for k in [*(k for k, _ in rows), *params])
    print("Provenance of this page")
    for key, value in rows:
        print(f"  {key:<{width}} : {value}")
    print("Parameters (profiles.yml)")
    for key, value in params.items():
        print(f"  {key:<{width}} : {value!r}")
    return params
