"""Figure functions shared by the chapters: each draws one result on a given axis."""

from __future__ import annotations

import numpy as np

__all__ = ["loss_vs_ntrain"]


def loss_vs_ntrain(ax, table, label, color, *, value="test", ls="-", name=None, marker="o"):
    """Test loss against ``N_train`` for the instances of ``label`` in ``table``.

    Median (line), mean (open marker), min-max band and every instance (dots, jittered in
    ``N_train`` by seed so that they do not overlap).
    """
    sub = table[table["label"] == label].dropna(subset=[value])
    if sub.empty:
        return
    s = sub.groupby("n_train")[value]
    n = np.array(sorted(sub["n_train"].unique()))
    ax.fill_between(n, s.min(), s.max(), color=color, alpha=0.15, lw=0)
    ax.plot(n, s.median(), ls=ls, marker=marker, color=color, label=name or label)
    ax.plot(n, s.mean(), ls="none", marker=marker, mfc="none", color=color, ms=8)
    rank = sub["seed"].rank(method="dense")
    jitter = np.exp(0.04 * (rank - rank.mean()))
    ax.scatter(sub["n_train"] * jitter, sub[value], s=8, color=color, alpha=0.5)
