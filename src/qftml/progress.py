"""Progress bars for a person at a terminal, silence in CI and in book builds.

Set ``QFTML_QUIET=1`` (the book builder does) or ``CI=true`` to silence every bar.
"""

from __future__ import annotations

import os


def quiet() -> bool:
    """True when progress output should be suppressed."""
    return bool(os.environ.get("CI")) or os.environ.get("QFTML_QUIET", "") not in ("", "0")


def progress(iterable=None, **kwargs):
    """``tqdm`` that is disabled when :func:`quiet` is true.

    A silenced bar is the plain-text ``tqdm`` (the notebook widget flavour would warn about
    missing ipywidgets inside executed book pages even when disabled).
    """
    if quiet():
        from tqdm.std import tqdm

        kwargs["disable"] = True
    else:
        from tqdm.auto import tqdm
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
