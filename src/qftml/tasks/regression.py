"""Task 1, the regression of ``n`` and ``|phi|^2``: the source's three statements, computed.

{cite}`Favoni:2021talk` states, for the published winners retrained as 10 instances at each
training-set size:

1. EQ beats ST and FL for any number of training samples,
2. EQ improves with more samples, while the other two do not,
3. data augmentation (random lattice translations) does not help ST and FL.

:func:`compare_families` turns a table of instances (one row per instance: ``label``,
``augment``, ``n_train``, ``seed`` and a test loss) into these verdicts:

- (1) at every ``N_train``, EQ's median is below the other family's, and the one-sided
  Mann-Whitney test (:func:`qftml.experiments.compare`) rejects "EQ is not smaller" at
  ``alpha``. Requiring every one of these tests to reject is an intersection-union test,
  valid at level ``alpha`` without a multiplicity correction.
- (2) a family *improves* when the two-sided ``1 - alpha`` Student-t interval of its slope
  of ``log loss`` against ``log N_train`` lies below zero (:func:`qftml.experiments.scaling`).
- (3) augmentation *helps* a family at a size when the augmented instances are
  significantly better than the plain ones: one-sided Mann-Whitney tests, one per family
  and size, rejected by Holm's step-down procedure at family-wise level ``alpha`` (eight
  uncorrected tests at 5 % would find a "help" in a third of the cases where there is none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import experiments

__all__ = [
    "ComparisonVerdict",
    "GeneralizationVerdict",
    "compare_families",
    "generalization",
    "holm",
    "in_range",
    "lattice_order",
]

FAMILIES = ("EQ", "ST", "FL")


def holm(p_values, alpha: float) -> np.ndarray:
    """Holm's step-down rejections at family-wise error rate ``alpha`` (NaN: not rejected)."""
    p = np.asarray(p_values, dtype=float)
    reject = np.zeros(len(p), dtype=bool)
    order = [i for i in np.argsort(p) if np.isfinite(p[i])]
    m = len(order)
    for rank, i in enumerate(order):
        if p[i] >= alpha / (m - rank):
            break
        reject[i] = True
    return reject


@dataclass
class ComparisonVerdict:
    """The three statements' verdicts and the tables behind them."""

    alpha: float
    versus: object  # DataFrame: EQ against each other family, per N_train
    scaling: object  # DataFrame: slope of log loss against log N_train, per family
    augmentation: object  # DataFrame: augmented against plain, and EQ against augmented
    eq_lowest: bool  # (1) EQ's median is the lowest at every N_train
    eq_established: bool  # (1) ... and significantly so at every N_train
    p_min: float  # the smallest p-value the instance counts allow
    improving: list  # (2) families whose loss falls significantly with N_train
    only_eq_improves: bool  # (2) as the source states
    augmentation_helps: dict  # (3) family -> sizes where augmentation is better (Holm)
    augmentation_never_helps: bool  # (3) as the source states

    def lines(self) -> list[str]:
        """The verdicts as sentences with their numbers."""
        v = self.versus
        out = [
            f"1. EQ has the lowest median loss at every N_train: {self.eq_lowest}; "
            f"significant (one-sided Mann-Whitney p < {self.alpha:g}) at "
            f"{int((v['p_value'] < self.alpha).sum())} of {len(v)} comparisons; statement 1 "
            f"established: {self.eq_established} (smallest attainable p {self.p_min:.2g})",
            f"2. families whose loss falls with N_train ({1 - self.alpha:.0%} t interval of the "
            f"slope below 0): {self.improving or 'none'}; statement 2 (only EQ): "
            + (
                str(self.only_eq_improves)
                if self.scaling["sizes"].max() >= 2
                else "not testable (one N_train)"
            ),
        ]
        for f, sizes in self.augmentation_helps.items():
            out.append(
                f"3. {f}: augmentation significantly better (Holm, family-wise "
                f"{self.alpha:g}) at N_train = {sizes or 'no size'}"
            )
        out.append(f"3. statement 3 (augmentation helps neither): {self.augmentation_never_helps}")
        return out


def compare_families(
    table,
    *,
    value: str = "test",
    alpha: float = 0.05,
    families: Sequence[str] = FAMILIES,
    augmented: Sequence[str] = ("ST", "FL"),
) -> ComparisonVerdict:
    """The verdicts of the three statements from a table of instances (module docstring).

    ``table`` holds plain instances (``augment == "none"``) of every family and, for the
    families in ``augmented``, instances with ``augment == "translations"``.
    """
    import pandas as pd

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    missing = [c for c in ("label", "augment", "n_train", "seed", value) if c not in table]
    if missing:
        raise ValueError(f"table lacks the column(s) {missing}")
    plain = table[table["augment"] == "none"]
    absent = [f for f in families if not (plain["label"] == f).any()]
    if absent:
        raise ValueError(f"no plain instances of {absent} in the table")
    ref, others = families[0], list(families[1:])
    versus = pd.concat(
        [experiments.compare(plain, ["n_train"], "label", ref, o, value) for o in others],
        ignore_index=True,
    )
    both = versus.dropna(subset=["p_value"])
    eq_lowest = bool(len(both) == len(versus) and (both["median_a"] < both["median_b"]).all())
    eq_established = bool(eq_lowest and (both["p_value"] < alpha).all())
    sc = experiments.scaling(plain, ["label"], "n_train", value, level=1 - alpha)
    improving = [f for f in families if bool(sc.loc[sc["label"] == f, "improving"].any())]
    rows, helps = [], {}
    for f in augmented:
        sub = table[(table["label"] == f)]
        aug = sub[sub["augment"] == "translations"]
        if aug.empty:
            continue
        c = experiments.compare(sub, ["n_train"], "augment", "translations", "none", value)
        c.insert(0, "family", f)
        rows.append(c)
        eq = pd.concat([plain[plain["label"] == ref], aug])
        eq = eq.assign(label=np.where(eq["augment"] == "none", ref, f"{f} + translations"))
        c2 = experiments.compare(eq, ["n_train"], "label", ref, f"{f} + translations", value)
        c2.insert(0, "family", f)
        rows.append(c2)
    augmentation = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if rows:
        own = augmentation["a"] == "translations"
        augmentation["holm_reject"] = False
        augmentation.loc[own, "holm_reject"] = holm(augmentation.loc[own, "p_value"], alpha)
        for f in augmentation["family"].unique():
            hit = own & (augmentation["family"] == f) & augmentation["holm_reject"]
            helps[f] = [int(m) for m in augmentation.loc[hit, "n_train"]]
    p_min = float(versus["p_min"].min()) if "p_min" in versus else math.nan
    return ComparisonVerdict(
        alpha, versus, sc, augmentation, eq_lowest, eq_established, p_min, improving,
        improving == [ref], helps, not any(helps.values()),
    )  # fmt: skip


def in_range(per_mu, lo: float, hi: float, *, tol: float = 1e-9):
    """Per instance, the mean per-mu losses over ``lo <= mu <= hi`` (equal counts per mu).

    ``per_mu`` has one row per instance and mu (``label, augment, n_train, seed, mu,
    loss, loss_n, loss_phi2``, as :func:`qftml.results.per_mu_table` on one lattice);
    returns one row per instance with ``test``, ``test[n]``, ``test[phi2]``.
    """
    sel = per_mu[(per_mu["mu"] >= lo - tol) & (per_mu["mu"] <= hi + tol)]
    if sel.empty:
        raise ValueError(f"no test mu in [{lo:g}, {hi:g}]")
    keys = ["label", "family", "augment", "n_train", "seed"]
    out = sel.groupby(keys, as_index=False)[["loss", "loss_n", "loss_phi2"]].mean()
    return out.rename(columns={"loss": "test", "loss_n": "test[n]", "loss_phi2": "test[phi2]"})


def lattice_order(names) -> list[str]:
    """Lattice names (``NTxNX``) by increasing volume."""
    from ..datasets.jobs import parse_lattice

    return sorted(names, key=lambda n: np.prod(parse_lattice(n)))


@dataclass
class GeneralizationVerdict:
    """Lattice-size statements of {cite}`Favoni:2021talk` at one ``N_train``."""

    alpha: float
    n_train: int
    train_lattice: str
    losses: object  # DataFrame: median, min, max test loss per family and lattice
    versus: object  # DataFrame: EQ against ST on every other lattice
    eq_beats_st: bool  # EQ's median lower, significantly, on every other lattice
    kink: object  # DataFrame: per family and odd-N_x lattice, paired tests against neighbours
    st_kink: bool  # ST's loss on every odd-N_x lattice exceeds both neighbours' (significant)
    eq_kink: bool  # the same test for EQ (the control: no strided pooling, no kink expected)

    def lines(self) -> list[str]:
        v = self.versus
        return [
            f"EQ below ST on every lattice other than {self.train_lattice} (N_train = "
            f"{self.n_train}): {self.eq_beats_st} (significant at "
            f"{int((v['p_value'] < self.alpha).sum())} of {len(v)}; median ratio ST/EQ "
            f"{v['ratio'].min():.3g} .. {v['ratio'].max():.3g})",
            f"ST kink on the odd-N_x lattice(s) "
            f"{sorted(self.kink['lattice'].unique().tolist()) or 'none'}: {self.st_kink} "
            f"(control, EQ: {self.eq_kink})",
        ]


def generalization(
    per_mu, *, train_lattice: str, mu_range, n_train: int, alpha: float = 0.05
) -> GeneralizationVerdict:
    """Test losses of the plain instances of size ``n_train`` on every test lattice
    (``mu`` within ``mu_range``, per instance) and the lattice-size verdicts.

    - EQ against ST on each lattice other than ``train_lattice``: one-sided Mann-Whitney
      (every one must reject at ``alpha``; intersection-union).
    - The kink: on a lattice with odd ``N_x`` a stride-2 pooling drops a column. For each
      family and such lattice, the paired one-sided Wilcoxon signed-rank test (instance by
      instance, on log losses) that its loss exceeds that on each neighbouring lattice (by
      volume); a kink needs both to reject.
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    from ..datasets.jobs import parse_lattice

    lo, hi = mu_range
    sel = per_mu[(per_mu["augment"] == "none") & (per_mu["n_train"] == n_train)]
    if sel.empty:
        raise ValueError(f"no plain instances at N_train = {n_train}")
    lattices = lattice_order(sel["lattice"].unique())
    if train_lattice not in lattices:
        raise ValueError(f"training lattice {train_lattice!r} not among {lattices}")
    parts = []
    for lat in lattices:
        t = in_range(sel[sel["lattice"] == lat], lo, hi)
        parts.append(t.assign(lattice=lat))
    wide = pd.concat(parts, ignore_index=True)
    losses = (
        wide.dropna(subset=["test"])
        .groupby(["label", "lattice"])["test"]
        .agg(["median", "min", "max", "count"])
    )
    others = [lat for lat in lattices if lat != train_lattice]
    versus = experiments.compare(
        wide[wide["lattice"].isin(others)], ["lattice"], "label", "EQ", "ST", "test"
    )
    ok = versus.dropna(subset=["p_value"])
    eq_beats_st = bool(
        len(ok) == len(others) and len(ok) > 0 and (ok["median_a"] < ok["median_b"]).all()
        and (ok["p_value"] < alpha).all()
    )  # fmt: skip
    rows = []
    for i, lat in enumerate(lattices):
        if parse_lattice(lat)[1] % 2 == 0:
            continue
        neighbours = [lattices[j] for j in (i - 1, i + 1) if 0 <= j < len(lattices)]
        for fam in ("EQ", "ST"):
            me = wide[(wide["label"] == fam) & (wide["lattice"] == lat)].set_index("seed")["test"]
            for nb in neighbours:
                other = wide[(wide["label"] == fam) & (wide["lattice"] == nb)]
                other = other.set_index("seed")["test"]
                d = (np.log(me) - np.log(other)).dropna()
                p = float(wilcoxon(d, alternative="greater").pvalue) if len(d) and d.any() else 1.0
                rows.append({
                    "family": fam, "lattice": lat, "neighbour": nb, "instances": len(d),
                    "median ratio": float(np.exp(np.median(d))) if len(d) else math.nan,
                    "p_value": p,
                })  # fmt: skip
    kink = pd.DataFrame(rows, columns=["family", "lattice", "neighbour", "instances",
                                       "median ratio", "p_value"])  # fmt: skip

    def has_kink(fam):
        k = kink[kink["family"] == fam]
        return bool(len(k) > 0 and (k["p_value"] < alpha).all() and (k["median ratio"] > 1).all())

    return GeneralizationVerdict(
        alpha, int(n_train), train_lattice, losses, versus, eq_beats_st, kink, has_kink("ST"),
        has_kink("EQ"),
    )  # fmt: skip
