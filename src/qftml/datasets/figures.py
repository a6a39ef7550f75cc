"""Pictures of dual configurations and flux violations (used by the "Datasets" chapter)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import TwoSlopeNorm

from ..lattice import divergence
from .encoding import CHANNELS


def show_channels(k: np.ndarray, l: np.ndarray, *, title: str = "", figsize=None):
    """The four input channels of one configuration as images (rows: time, columns: space)."""
    nt, nx = k.shape[-2:]
    fig, axes = plt.subplots(4, 1, figsize=figsize or (9, 1.1 + 0.32 * 4 * nt), sharex=True)
    for ax, (name, field) in zip(
        axes, zip(CHANNELS, (k[0], k[1], l[0], l[1]), strict=True), strict=True
    ):
        vmax = max(1, int(np.abs(field).max()))
        if name.startswith("k"):
            im = ax.imshow(field, cmap="RdBu_r", norm=TwoSlopeNorm(0, -vmax, vmax), aspect="auto")
        else:
            im = ax.imshow(field, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        ax.set_ylabel(f"{name}\n$t$", fontsize=9)
        ax.grid(False)
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03)
    axes[-1].set_xlabel("spatial site $x$")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    return fig


def draw_links(ax, k: np.ndarray, *, lw: float = 3.0, cmap="RdBu_r", vmax: int | None = None):
    """Draw the ``k`` field of one configuration ``(2, nt, nx)`` as coloured links.

    The link ``(t, x) -> (t, x + 1)`` carries ``k[0, t, x]`` and ``(t, x) -> (t + 1, x)``
    carries ``k[1, t, x]``; zero links are thin and grey. Sites with nonzero divergence are
    marked: ``+`` (red) sources, ``-`` (blue) sinks.
    """
    _, nt, nx = k.shape
    vmax = vmax or max(1, int(np.abs(k).max()))
    segs, vals = [], []
    for t in range(nt):
        for x in range(nx):
            segs.append([(x, t), (x + 1, t)])
            vals.append(k[0, t, x])
            segs.append([(x, t), (x, t + 1)])
            vals.append(k[1, t, x])
    vals = np.asarray(vals, dtype=float)
    widths = np.where(vals == 0, 0.6, lw)
    lc = LineCollection(segs, cmap=cmap, norm=TwoSlopeNorm(0, -vmax, vmax), linewidths=widths)
    lc.set_array(vals)
    ax.add_collection(lc)
    div = divergence(k)
    for sign, color, marker in ((1, "#b2182b", "P"), (-1, "#2166ac", "X")):
        tt, xx = np.nonzero(np.sign(div) == sign)
        ax.scatter(xx, tt, s=140, c=color, marker=marker, zorder=3, edgecolors="k")
    ax.set_xlim(-0.5, nx + 0.5)
    ax.set_ylim(-0.5, nt + 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("spatial site $x$")
    ax.set_ylabel("time site $t$")
    ax.grid(False)
    return lc
