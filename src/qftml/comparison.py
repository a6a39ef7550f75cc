"""Statistics over trained instances: spread, comparison of two groups, scaling, predictions.

The tables are those of :func:`qftml.experiments.run_grid` (one row per instance), or any
pandas DataFrame with the named columns:

- :func:`median_interval` (distribution-free confidence interval of the median) and
  :func:`summarize` (mean, median, spread);
- :func:`compare` (one-sided Mann-Whitney test and probability of superiority between two
  groups of instances);
- :func:`scaling` (slope of ``log loss`` against ``log N_train``);
- :func:`prediction_curves` (predicted and true targets of networks against a parameter
  such as ``mu``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .training import as_tensors, predict

__all__ = ["compare", "median_interval", "prediction_curves", "scaling", "summarize"]


def median_interval(values, level: float = 0.683) -> tuple[float, float, float]:
    """Distribution-free confidence interval of the median: ``(low, high, coverage)``.

    For ``n`` sorted values the interval ``[x_(j), x_(n+1-j)]`` covers the true median with
    probability ``sum_{i=j}^{n-j} C(n, i) / 2^n`` (the number of values below the median is
    Binomial(n, 1/2)); ``j`` is the largest index whose coverage is at least ``level``. With
    too few values for ``level`` it is ``[min, max]`` and its (smaller) coverage. NaNs are
    dropped; no value gives NaNs.
    """
    from scipy.stats import binom

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    if n == 1:
        return float(x[0]), float(x[0]), 0.0
    for j in range(n // 2, 0, -1):  # 1-based j, narrowest first
        coverage = float(binom.cdf(n - j, n, 0.5) - binom.cdf(j - 1, n, 0.5))
        if coverage >= level or j == 1:
            return float(x[j - 1]), float(x[n - j]), coverage
    raise AssertionError("unreachable")


def summarize(table, by: Sequence[str], values: Sequence[str]):
    """Per group of ``by``: count, mean, median, std, sem, min and max of each of ``values``.

    Missing values (NaN: a model that cannot run on a test set) are left out of every
    statistic, and ``count`` says how many instances remain. Columns are a MultiIndex
    ``(value, statistic)``.
    """
    import pandas as pd

    missing = [c for c in [*by, *values] if c not in table.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the table; it has {list(table.columns)}")
    g = table.groupby(list(by), sort=True)[list(values)]
    stats = {
        "count": g.count(),
        "mean": g.mean(),
        "median": g.median(),
        "std": g.std(ddof=1),
        "sem": g.std(ddof=1) / np.sqrt(g.count()),
        "min": g.min(),
        "max": g.max(),
    }
    out = pd.concat(stats, axis=1).swaplevel(0, 1, axis=1)
    return out[[(v, s) for v in values for s in stats]]


def compare(table, by: Sequence[str], column: str, a, b, value: str):
    """Is ``value`` smaller for ``column == a`` than for ``column == b``, per group of ``by``?

    For each group: the instance counts, the medians, their ratio ``b / a``, the probability
    of superiority ``P(loss_a < loss_b)`` over all pairs of instances (ties count 1/2), and
    the one-sided Mann-Whitney ``p``-value of the hypothesis that ``a`` is not smaller. With
    ``n_a = n_b = n`` instances the smallest attainable ``p`` is ``1 / binom(2n, n)``
    (``p_min`` column), so few instances cannot give a small ``p`` however clear the
    ordering.
    """
    import pandas as pd
    from scipy.stats import mannwhitneyu

    rows = []
    keys = list(by)
    for group, sub in table.groupby(keys, sort=True) if keys else [((), table)]:
        va = sub.loc[sub[column] == a, value].dropna().to_numpy(float)
        vb = sub.loc[sub[column] == b, value].dropna().to_numpy(float)
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        row.update({"a": a, "b": b, "n_a": len(va), "n_b": len(vb)})
        if len(va) and len(vb):
            diff = va[:, None] - vb[None, :]
            row["median_a"], row["median_b"] = float(np.median(va)), float(np.median(vb))
            # a zero median (an error rate of 0, say): the ratio is infinite, or undefined
            # when both are zero
            if row["median_a"] > 0:
                row["ratio"] = row["median_b"] / row["median_a"]
            else:
                row["ratio"] = math.inf if row["median_b"] > 0 else math.nan
            row["p_superior"] = float(((diff < 0) + 0.5 * (diff == 0)).mean())
            row["p_value"] = float(mannwhitneyu(va, vb, alternative="less").pvalue)
            row["p_min"] = 1.0 / math.comb(len(va) + len(vb), len(va))
        rows.append(row)
    return pd.DataFrame(rows)


def scaling(table, by: Sequence[str], x: str, value: str, *, level: float = 0.95):
    """Least-squares slope of ``log10(value)`` against ``log10(x)`` per group of ``by``.

    Every instance is one point, so the scatter of instances sets the error. Returns the
    slope, its standard error, the fit's degrees of freedom ``dof = points - 2``, the
    two-sided ``p``-value of a zero slope, ``upper = slope + t_{(1+level)/2, dof} stderr``
    (the upper end of the two-sided ``level`` confidence interval, Student t since the
    variance is estimated from the fit) and ``improving = upper < 0``, and the number of
    points and of distinct ``x``. With few points the t quantile is much larger than the
    normal one (4.30 for 2 degrees of freedom against 1.96). A negative slope means the loss
    falls with more data; ``-1`` is the rate of averaging out noise.
    """
    import pandas as pd
    from scipy.stats import linregress
    from scipy.stats import t as student_t

    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    rows = []
    for group, sub in table.groupby(list(by), sort=True):
        sub = sub[[x, value]].dropna()
        sub = sub[(sub[x] > 0) & (sub[value] > 0)]
        row = dict(zip(by, group if isinstance(group, tuple) else (group,), strict=True))
        row.update({"points": len(sub), "sizes": sub[x].nunique(), "dof": len(sub) - 2})
        if sub[x].nunique() >= 2 and len(sub) >= 3:
            fit = linregress(np.log10(sub[x].to_numpy(float)), np.log10(sub[value].to_numpy(float)))
            upper = fit.slope + student_t.ppf(0.5 + level / 2, len(sub) - 2) * fit.stderr
            row.update({"slope": fit.slope, "stderr": fit.stderr, "p_value": fit.pvalue})
            row.update({"upper": upper, "improving": bool(upper < 0)})
        else:
            row.update({"slope": math.nan, "stderr": math.nan, "p_value": math.nan})
            row.update({"upper": math.nan, "improving": False})
        rows.append(row)
    return pd.DataFrame(rows)


def prediction_curves(models: Mapping, X, y, groups, *, output_names: Sequence[str] | None = None):
    """Predicted against true targets per group (e.g. per ``mu``), for each model.

    ``models`` maps a label (e.g. ``("EQ", seed)``) to a network. Returns a long pandas
    DataFrame, one row per (model, group, output): ``pred`` and ``true`` means with their
    standard errors over the group's samples, ``mse`` of the group, and ``count``. A model
    that cannot run on the lattice of ``X`` raises ``ValueError``.
    """
    import pandas as pd

    X, y = as_tensors((X, y))
    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} labels for {len(y)} samples")
    names = list(output_names or range(y.shape[1]))
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} output names for {y.shape[1]} outputs")
    yt = y.numpy().astype(np.float64)
    levels = np.unique(groups)
    rows = []
    for label, model in models.items():
        pred = predict(model, X).numpy().astype(np.float64)
        if pred.shape != yt.shape:
            raise ValueError(f"model {label!r} gives shape {pred.shape}, targets {yt.shape}")
        for g in levels:
            sel = groups == g
            k = int(sel.sum())
            for j, name in enumerate(names):
                p, t = pred[sel, j], yt[sel, j]
                rows.append(
                    {
                        "model": label,
                        "group": g,
                        "output": name,
                        "pred": p.mean(),
                        "pred_sem": p.std(ddof=1) / np.sqrt(k) if k > 1 else math.nan,
                        "true": t.mean(),
                        "true_sem": t.std(ddof=1) / np.sqrt(k) if k > 1 else math.nan,
                        "mse": float(((p - t) ** 2).mean()),
                        "count": k,
                    }
                )
    return pd.DataFrame(rows)
