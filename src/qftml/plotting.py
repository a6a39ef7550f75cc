"""One figure style for the whole book: readable at a glance, labelled, with error bars."""

from __future__ import annotations

import matplotlib as mpl

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 11,
    "axes.labelsize": 12,
    "axes.titlesize": 12,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "errorbar.capsize": 2.5,
    "lines.markersize": 5,
}

#: Family colours used by every architecture-comparison figure.
FAMILY_COLORS = {"EQ": "#1b9e77", "ST": "#d95f02", "FL": "#7570b3"}


def use_style() -> None:
    """Apply the book's matplotlib defaults."""
    mpl.rcParams.update(STYLE)
