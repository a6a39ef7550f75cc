"""Every filesystem location the project uses, in one place.

``QFTML_DATA`` overrides the data/cache folder (default ``<repo>/data``);
``QFTML_PROFILES`` overrides the profiles file (default ``<repo>/profiles.yml``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root (the package is installed editable from ``src/qftml``).
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "_build"
#: Hash stamps of executed notebooks (see :mod:`qftml.book`).
STAMPS = BUILD / "stamps"


def data_dir() -> Path:
    """Folder for generated datasets, trained models and optuna studies (git-ignored)."""
    path = Path(os.environ.get("QFTML_DATA", ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def profiles_file() -> Path:
    """The YAML file that holds every notebook's parameters for every profile."""
    return Path(os.environ.get("QFTML_PROFILES", ROOT / "profiles.yml"))
