"""Task 1, the regression of ``n`` and ``|phi|^2``: the source's three statements, computed.

:cite:p:`Favoni:2021talk` states, for the published winners retrained as 10 instances at each
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

The chapters' entry points take the loaded splits (:func:`prepare`) and their profile
section as plain values: :func:`run_search` (chapter 06), :func:`train_grid` and
:func:`stored` (chapters 06-08: live instances and the results store),
:func:`generalization`, :func:`train_phases`, :func:`silver_blaze`, :func:`phase_verdict`
and :func:`stored_phases` (chapter 08).

The Silver Blaze statement ("training on both phases is not necessary as long as the
expression of the observables is independent of the transition") is judged by
:func:`phase_verdict`: instances trained on one phase only, ``N_train`` configurations of it,
against instances of the same recipe and ``N_train`` trained on both phases, each tested on
the phase the first never saw (test ``mu`` up to the top of the training range). Per family
and side, the one-sided Mann-Whitney test of "training on both is not better there" at
``alpha``; the statement holds for a family when no side rejects. Each side is tested at
``alpha`` without a correction: for a statement of no effect that is the stricter choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import experiments, training
from .searches import (  # noqa: F401 (re-exported: the chapter calls its task module)
    PARAMETER_BOUND,
    SizeVerdict,
    size_verdict,
    space_share,
)

__all__ = [
    "ComparisonVerdict",
    "Data",
    "GeneralizationVerdict",
    "SearchResult",
    "SilverBlaze",
    "Stored",
    "architectures",
    "best_worst",
    "compare_families",
    "curves",
    "extrapolation",
    "generalization",
    "generalization_size",
    "WorstST",
    "worst_st",
    "stored_search",
    "holm",
    "in_range",
    "invariance",
    "kink_lines",
    "lattice_order",
    "odd_extent_lines",
    "onset",
    "phase",
    "PhaseVerdict",
    "phase_losses",
    "phase_verdict",
    "pooling_coverage",
    "prepare",
    "run_search",
    "runs_on",
    "search_subset",
    "silver_blaze",
    "split_phases",
    "stored",
    "stored_phases",
    "StoredPhases",
    "studies",
    "train_grid",
    "train_phases",
    "yardstick_lines",
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
    loss, loss_n, loss_phi2``, as :func:`qftml.results.point_table` on one lattice);
    returns one row per instance with ``test``, ``test[n]``, ``test[phi2]``.
    """
    sel = per_mu[(per_mu["mu"] >= lo - tol) & (per_mu["mu"] <= hi + tol)]
    if sel.empty:
        raise ValueError(f"no test mu in [{lo:g}, {hi:g}]")
    keys = ["label", "family", "augment", "n_train", "seed"]
    out = sel.groupby(keys, as_index=False)[["loss", "loss_n", "loss_phi2"]].mean()
    return out.rename(columns={"loss": "test", "loss_n": "test[n]", "loss_phi2": "test[phi2]"})


@dataclass
class WorstST:
    """The source's "worst ST" behaviour (right inside the training range of ``mu``, wrong
    beyond it) looked for in every EQ instance, on the training lattice at one ``N_train``."""

    n_train: int
    worst_st_seed: int  # the ST instance with the largest loss over all test mu
    st_inside: float  # its mean loss for mu inside the training range
    st_beyond: float  # ... and beyond it
    eq_beyond_max: float  # the largest mean loss beyond the range of any EQ instance
    n_eq: int
    factor: float = 10.0  # "unlike": an order of magnitude, as the source's log-scale plots

    @property
    def no_eq_like_worst_st(self) -> bool:
        """Every EQ instance's loss beyond the training range is ``factor`` times below the
        worst ST's."""
        return self.eq_beyond_max * self.factor < self.st_beyond

    def line(self) -> str:
        return (
            f"N_train = {self.n_train}: worst ST (seed {self.worst_st_seed}) inside "
            f"{self.st_inside:.2g}, beyond {self.st_beyond:.2g}; largest beyond of the "
            f"{self.n_eq} EQ instances {self.eq_beyond_max:.2g} "
            f"(ratio {self.eq_beyond_max / self.st_beyond:.2g}; unlike below 1/{self.factor:g})"
        )


def worst_st(per_mu, *, train_lattice: str, mu_range, n_train: int, tol: float = 1e-9):
    """:class:`WorstST` from the per-mu losses of the plain instances (the columns of
    :func:`qftml.results.point_table`) on ``train_lattice``: per instance the mean loss over
    the test mu inside ``mu_range`` and over those above it."""
    lo, hi = mu_range
    sel = per_mu[(per_mu["augment"] == "none") & (per_mu["n_train"] == n_train)
                 & (per_mu["lattice"] == train_lattice)]  # fmt: skip
    if sel.empty:
        raise ValueError(f"no plain instances at N_train = {n_train} on {train_lattice}")
    inside = sel[(sel["mu"] >= lo - tol) & (sel["mu"] <= hi + tol)]
    beyond = sel[sel["mu"] > hi + tol]
    if beyond.empty:
        raise ValueError(f"no test mu beyond {hi:g}")
    ins = inside.groupby(["family", "seed"])["loss"].mean()
    out = beyond.groupby(["family", "seed"])["loss"].mean()
    allmu = sel.groupby(["family", "seed"])["loss"].mean()
    if "ST" not in allmu.index.get_level_values(0) or "EQ" not in out.index.get_level_values(0):
        raise ValueError("worst_st needs EQ and ST instances")
    seed = int(allmu.loc["ST"].idxmax())
    return WorstST(int(n_train), seed, float(ins.loc[("ST", seed)]), float(out.loc[("ST", seed)]),
                   float(out.loc["EQ"].max()), int(len(out.loc["EQ"])))  # fmt: skip


def lattice_order(names) -> list[str]:
    """Lattice names (``NTxNX``) by increasing volume."""
    from ..datasets.jobs import parse_lattice

    return sorted(names, key=lambda n: np.prod(parse_lattice(n)))


@dataclass
class GeneralizationVerdict:
    """Lattice-size statements of :cite:p:`Favoni:2021talk` at one ``N_train``."""

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


# --- chapter 08: generalization across phases, lattice sizes and chemical potentials


def runs_on(model, lattice) -> bool:
    """Whether ``model`` admits ``lattice = (N_t, N_x)``; an FL network runs on its training
    lattice only (:meth:`qftml.nets.SpecNet.check_lattice` says why)."""
    try:
        model.check_lattice(tuple(lattice))
    except ValueError:
        return False
    return True


def curves(instances, data, output_names):
    """Per-mu predictions of every instance that can run on the lattice of ``data``.

    ``data`` is a :class:`qftml.datasets.TaskData`; returns the long table of
    :func:`qftml.experiments.prediction_curves` (``group`` is mu) with ``family`` and
    ``seed`` columns, empty when no instance runs there.
    """
    import pandas as pd

    lattice = tuple(data.x.shape[-2:])
    models = {(i.family, i.seed): i.model for i in instances if runs_on(i.model, lattice)}
    if not models:
        return pd.DataFrame()
    df = experiments.prediction_curves(
        models, *data.xy, data.meta["mu"], output_names=list(output_names)
    )
    df["family"] = [m[0] for m in df["model"]]
    df["seed"] = [m[1] for m in df["model"]]
    return df


def onset(mu, n, charged_fraction: float):
    """The onset of the density in a training set: the first ``mu`` at which a fraction of
    at least ``charged_fraction`` of the configurations carries charge (``n != 0``).

    Returns ``(mu_c, fractions)`` with the fraction per ``mu`` (a pandas Series). Raises
    ``ValueError`` when no ``mu`` but the first (or none) reaches the fraction: then the
    training range has no onset inside it to split at.
    """
    import pandas as pd

    if not 0 < charged_fraction <= 1:
        raise ValueError(f"charged_fraction must be in (0, 1]; got {charged_fraction!r}")
    frac = pd.Series(np.asarray(n) != 0).groupby(np.asarray(mu)).mean()
    charged = frac.index[frac >= charged_fraction]
    if len(charged) == 0 or charged[0] == frac.index[0]:
        raise ValueError(
            f"no onset inside the training range at charged_fraction = {charged_fraction}: "
            f"fractions {frac.round(2).to_dict()}"
        )
    return float(charged[0]), frac


def phase(mu, mu_c: float, side: str, *, tol: float = 1e-9) -> np.ndarray:
    """Mask of the samples ``below`` (``mu < mu_c``) or ``above`` (``mu >= mu_c``) the onset."""
    mu = np.asarray(mu)
    if side == "below":
        return mu < mu_c - tol
    if side == "above":
        return mu >= mu_c - tol
    raise ValueError(f"side must be 'below' or 'above'; got {side!r}")


@dataclass
class SilverBlaze:
    """Loss on the trained phase and on the other one (up to the training range's top)."""

    onset: float
    table: object  # DataFrame indexed (trained, tested, family): test mu, median, min, max

    def lines(self) -> list[str]:
        out = []
        for trained in self.table.index.get_level_values("trained").unique():
            m = self.table.loc[(trained, "other phase"), "median loss"]
            out.append(
                f"trained {trained}: lowest median loss on the other phase: {m.idxmin()} "
                f"({m.min():.3g}); " + ", ".join(f"{f} {v:.3g}" for f, v in m.items())
            )
        return out


def silver_blaze(curves_by_phase, mu_c: float, mu_max: float, *, tol: float = 1e-9):
    """Median and range over instances of the test loss on each side of the onset ``mu_c``.

    ``curves_by_phase`` maps ``"below"``/``"above"`` (the phase trained on) to a table of
    :func:`curves`; only test ``mu <= mu_max`` (the top of the training range) enter, so
    extrapolation in ``mu`` does not. Each instance's loss is its mean MSE over the chosen
    ``mu`` and outputs.
    """
    import pandas as pd

    rows = []
    for trained, df in curves_by_phase.items():
        upper = df["group"] >= mu_c - tol
        within = df["group"] <= mu_max + tol
        same = (~upper if trained == "below" else upper) & within
        sides = {"same phase": same, "other phase": (upper if trained == "below" else ~upper)}
        sides["other phase"] &= within
        for fam, d in df.groupby("family", sort=False):
            for tested, sel in sides.items():
                s = sel[d.index]
                per_inst = d[s].groupby("seed")["mse"].mean()
                rows.append({
                    "trained": trained, "tested": tested, "family": fam,
                    "test mu": sorted(d.loc[s, "group"].unique().round(3).tolist()),
                    "instances": len(per_inst), "median loss": per_inst.median(),
                    "min": per_inst.min(), "max": per_inst.max(),
                })  # fmt: skip
    table = pd.DataFrame(rows).set_index(["trained", "tested", "family"]).sort_index()
    return SilverBlaze(float(mu_c), table)


def split_phases(train, val, mu_c: float) -> dict:
    """``{side: (train, val)}``: each split's configurations below the onset ``mu_c`` and
    above it (:func:`phase`), the training sets of the one-phase instances."""
    return {side: tuple(d.select(phase(d.meta["mu"], mu_c, side)) for d in (train, val))
            for side in ("below", "above")}  # fmt: skip


def _other(side: str) -> str:
    return {"below": "above", "above": "below"}[side]


@dataclass
class PhaseVerdict:
    """Training on one phase against training on both, on the phase not trained on
    (:func:`phase_verdict`)."""

    alpha: float
    n_train: int
    onset: float
    table: object  # DataFrame per (trained, family): instances, medians, ratio, p-value
    holds: dict  # family -> True (no side significantly worse), False, None (too few)
    min_seeds: int
    family: str = "EQ"  # the family the statement is judged on (the source's choice)

    @property
    def not_necessary(self) -> bool | None:
        """The statement's verdict: it holds for ``family`` (None: too few instances)."""
        return self.holds.get(self.family)

    def lines(self) -> list[str]:
        t = self.table
        out = []
        for (trained, fam), r in t.iterrows():
            out.append(
                f"{fam} trained {trained} (N_train = {self.n_train}), tested {_other(trained)} the"
                f" onset: median loss {r['median one phase']:.3g} against {r['median both']:.3g}"
                f" trained on both (ratio {r['ratio']:.3g}; p = {r['p_value']:.2g}, "
                f"{int(r['n one phase'])} and {int(r['n both'])} instances)"
            )
        verdicts = {f: ("too few instances" if v is None else v) for f, v in self.holds.items()}
        out.append(
            f"training on both phases not necessary (no side significantly worse than training "
            f"on both, one-sided Mann-Whitney p >= {self.alpha:g} each): {verdicts}; the "
            f"statement ({self.family}): "
            + ("needs" + f" {self.min_seeds} instances of each" if self.not_necessary is None
               else str(self.not_necessary))
        )  # fmt: skip
        return out


def phase_losses(curves_or_points, trained: str):
    """A long table ``family, seed, trained, mu, loss`` from per-mu results of instances
    trained on ``trained`` (``"below"``, ``"above"``, ``"both"``): either :func:`curves`
    (``group``, ``mse`` per output, averaged: the MSE over both outputs) or rows of
    :func:`qftml.results.point_table` of one lattice (``mu``, ``loss``)."""
    df = curves_or_points
    if "group" in df:
        df = df.groupby(["family", "seed", "group"], as_index=False)["mse"].mean()
        df = df.rename(columns={"group": "mu", "mse": "loss"})
    out = df[["family", "seed", "mu", "loss"]].copy()
    out.insert(2, "trained", trained)
    return out.reset_index(drop=True)


def phase_verdict(losses, *, onset: float, mu_max: float, n_train: int, alpha: float = 0.05,
                  min_seeds: int | None = None, family: str = "EQ",
                  tol: float = 1e-9) -> PhaseVerdict:  # fmt: skip
    """The Silver Blaze statement (module docstring) from ``losses`` (:func:`phase_losses`
    of the one-phase instances and of the reference trained on both, same ``n_train``).

    For each family and side trained on, each instance's loss is its mean over the test
    ``mu`` of the other phase up to ``mu_max``, the top of the training range, as
    :func:`silver_blaze` (its own phase is not tested: the one-phase instance saw more of
    it; below the range the phase goes on, and both kinds of instance extrapolate there
    alike). ``min_seeds`` (default :data:`qftml.results.MIN_SEEDS`): the fewest instances
    of each kind at which a side is judged.
    """
    import pandas as pd

    from ..results import MIN_SEEDS

    min_seeds = MIN_SEEDS if min_seeds is None else int(min_seeds)
    d = losses[losses["mu"] <= mu_max + tol]
    rows: list[dict] = []
    holds: dict = {}
    for fam in [f for f in FAMILIES if f in set(d["family"])]:
        for side in ("below", "above"):
            other = phase(d["mu"], onset, _other(side), tol=tol)
            sel = d[other & (d["family"] == fam) & d["trained"].isin([side, "both"])]
            per = sel.groupby(["trained", "seed"], as_index=False)["loss"].mean()
            if not (per["trained"] == side).any():
                continue
            c = experiments.compare(per, [], "trained", "both", side, "loss").iloc[0]
            n1, n2 = int(c["n_b"]), int(c["n_a"])
            judged = min(n1, n2) >= min_seeds
            worse = judged and c["p_value"] < alpha
            rows.append({
                "trained": side, "family": fam,
                "tested mu": int(sel["mu"].nunique()),
                "n one phase": n1, "n both": n2,
                "median one phase": c.get("median_b", math.nan),
                "median both": c.get("median_a", math.nan),
                "ratio": c.get("ratio", math.nan), "p_value": c.get("p_value", math.nan),
                "p_min": c.get("p_min", math.nan), "judged": judged, "worse": worse,
            })  # fmt: skip
    if not rows:
        raise ValueError("no one-phase instances with test mu on the other phase")
    table = pd.DataFrame(rows).set_index(["trained", "family"])
    for fam, t in table.groupby(level="family", sort=False):  # a worse side decides
        both_sides = len(t) == 2  # a side without test mu on its other phase: not judged
        holds[fam] = False if t["worse"].any() else (True if t["judged"].all() and both_sides
                                                     else None)  # fmt: skip
    return PhaseVerdict(alpha, int(n_train), float(onset), table, holds, min_seeds, family)


def pooling_coverage(model, lattice) -> float:
    """Fraction of the sites of ``lattice = (N_t, N_x)`` that the strided poolings of
    ``model`` cover: a window ``k`` of stride ``s`` on an axis of length ``N`` covers
    ``(floor((N - k) / s)) s + k`` sites, so a 2 x 2 stride-2 pooling drops one column of an
    odd axis."""
    covered, shape = 1.0, tuple(int(n) for n in lattice)
    for layer in model.layers:
        if layer.kind in ("AvgPool", "MaxPool") and layer.stride > 1:
            k, s = layer.kernel, layer.stride
            out = tuple((n - k) // s + 1 for n in shape)
            covered *= np.prod([(o - 1) * s + k for o in out]) / np.prod(shape)
            shape = out
    return float(covered)


def odd_extent_lines(medians, lattices, *, family: str = "ST", reference: str = "EQ"):
    """For each lattice with odd ``N_x``, whether ``family``'s median loss exceeds those of
    both neighbouring lattices (by volume), and the ratio to ``reference`` per lattice.

    ``medians`` maps a family to its median losses in the order of ``lattices``. These are
    the live page's descriptive numbers; the tested kink verdict is :func:`generalization`.
    """
    from ..datasets.jobs import parse_lattice

    med = np.asarray(medians[family], dtype=float)
    ref = np.asarray(medians[reference], dtype=float)
    out = []
    for i, lat in enumerate(lattices):
        if parse_lattice(lat)[1] % 2 == 0:
            continue
        nb = [med[j] for j in (i - 1, i + 1) if 0 <= j < len(lattices)]
        out.append(
            f"{family} on {lat} (odd N_x): {med[i]:.3g}, larger than on both neighbouring "
            f"lattices ({', '.join(f'{v:.3g}' for v in nb)}): {bool(nb) and med[i] > max(nb)}"
        )
    out.append(
        f"median loss {family} / {reference} per lattice (training mu): "
        + ", ".join(f"{lat} {a / b:.3g}" for lat, a, b in zip(lattices, med, ref, strict=True))
    )
    return out


def kink_lines(table, spec: str, lattices, family: str = "ST") -> list[str]:
    """Per test lattice, the fraction of sites the strided poolings of ``spec`` cover
    (:func:`pooling_coverage`) and ``family``'s test loss at training ``mu`` (columns
    ``"<lattice> (training mu)"`` of a :func:`train_grid` table: median and range), then
    :func:`odd_extent_lines` against EQ."""
    from .. import nets
    from ..datasets.jobs import parse_lattice

    model = nets.from_spec(spec)
    cols = [f"{lat} (training mu)" for lat in lattices]
    out = []
    for lat, col in zip(lattices, cols, strict=True):
        v = table.loc[table["label"] == family, col]
        out.append(
            f"{lat:>7}: {family} pooling covers {pooling_coverage(model, parse_lattice(lat)):.0%} "
            f"of the sites; test loss (training mu) median {v.median():.3g} "
            f"[{v.min():.3g}, {v.max():.3g}]"
        )
    med = table.groupby("label")[cols].median()
    return out + odd_extent_lines({f: med.loc[f].to_numpy() for f in ("EQ", family)}, lattices,
                                  family=family)  # fmt: skip


def extrapolation(curves_df, mu_range, *, tol: float = 1e-9):
    """Per family: the median over instances of the loss inside the training range
    ``mu_range = (lo, hi)`` and beyond it (``mu > hi``), and their ratio.

    Each instance's loss is its mean per-mu MSE over the part (all outputs).
    """
    import pandas as pd

    lo, hi = mu_range
    loss = curves_df.groupby(["family", "seed", "group"])["mse"].mean().reset_index()
    rows = []
    for fam, d in loss.groupby("family", sort=False):
        ins = d[(d["group"] >= lo - tol) & (d["group"] <= hi + tol)].groupby("seed")["mse"]
        out = d[d["group"] > hi + tol].groupby("seed")["mse"]
        a, b = ins.mean().median(), out.mean().median()
        rows.append({"family": fam, "inside": a, "beyond": b, "ratio": b / a})
    return pd.DataFrame(rows).set_index("family")


def best_worst(table, instances, data, column: str, mus, output_names):
    """The best and worst instance of each family by the test loss in ``column`` of
    ``table`` (a :func:`qftml.experiments.run_grid` table aligned with ``instances``), with
    their predictions on the configurations of ``data`` at each ``mu`` in ``mus``.

    Returns ``(picks, mse)``: ``picks[(family, which, mu)] = (seed, true, predicted)``
    arrays ``(n, n_out)``, and a table of the MSE per family, instance, output and ``mu``.
    """
    import pandas as pd

    picks, rows = {}, []
    for fam, sub in table.groupby("label", sort=False):
        ranked = sub.sort_values(column)
        for which, idx in (("best", ranked.index[0]), ("worst", ranked.index[-1])):
            for m in mus:
                d = data.where(mu=m)
                pred = training.predict(instances[idx].model, d.x).numpy()
                picks[(fam, which, m)] = (int(sub.loc[idx, "seed"]), d.targets, pred)
                err = ((pred - d.targets) ** 2).mean(axis=0)
                for j, out in enumerate(output_names):
                    rows.append({"family": fam, "instance": which, "mu": m, "output": out,
                                 "mse": float(err[j])})  # fmt: skip
    mse = pd.DataFrame(rows).pivot_table(
        index=["family", "instance"], columns=["output", "mu"], values="mse", sort=False
    )
    return picks, mse


def architectures(
    choice: str,
    data=None,
    *,
    search_params=None,
    search_seed=None,
    prefix: str = "task1",
    families=FAMILIES,
) -> dict[str, str]:
    """The spec of each family that chapters 07 and 08 train: ``"published"`` (the source's
    winners, :func:`qftml.nets.published`) or ``"search"`` (the best trial of each family
    in chapter 06's studies on ``data``, reloaded by :func:`studies` with chapter 06's
    ``search_params`` and seed).
    """  # fmt: skip
    from .. import nets, search

    if choice == "published":
        return {f: nets.published(1, f).spec for f in families}
    if choice != "search":
        raise ValueError(f"architectures must be 'published' or 'search'; got {choice!r}")
    if data is None or search_params is None or search_seed is None:
        raise ValueError(
            "architectures='search' needs the data and chapter 06's search_params and seed"
        )
    found = studies(data, search_params, search_seed, prefix=prefix, families=families)
    return {f: search.top_specs(found[f], 1)[0][0] for f in families}


# --- chapters 06-08: data, the results store, grids of instances, the search


@dataclass
class Data:
    """Task 1's splits: training, validation and the test split per lattice."""

    train: object  # qftml.datasets.TaskData
    val: object
    tests: dict  # lattice name -> TaskData of the test split

    @property
    def lattice(self) -> str:
        return self.train.lattice

    @property
    def mu_range(self) -> tuple[float, float]:
        mu = self.train.meta["mu"]
        return float(mu.min()), float(mu.max())

    @property
    def test_all(self):
        """The test split on the training lattice, every test ``mu``."""
        return self.tests[self.lattice]

    @property
    def test(self):
        """The test split on the training lattice at the test ``mu`` inside the training
        range (the yardstick of chapters 06 and 07)."""
        return self.inside(self.test_all)

    @property
    def task(self) -> training.Task:
        """Two outputs ``(n, phi2)``, MSE, on the training lattice."""
        nt, nx = self.train.k.shape[-2:]
        return training.Task(n_out=2, lattice=(int(nt), int(nx)), loss="mse")

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.train.target_names

    def test_sets(self) -> dict:
        """Every test lattice's split as ``(X, y)``, whole (named by the lattice) and at the
        test ``mu`` inside the training range (``"<lattice> (training mu)"``)."""
        inside = {f"{lat} (training mu)": self.inside(d).xy for lat, d in self.tests.items()}
        return {**{lat: d.xy for lat, d in self.tests.items()}, **inside}

    def inside(self, d):
        """The configurations of the split ``d`` at ``mu`` inside the training range."""
        lo, hi = self.mu_range
        return d.select((d.meta["mu"] >= lo - 1e-9) & (d.meta["mu"] <= hi + 1e-9))

    def nearest_mu(self, mu: float) -> float:
        """The test-grid ``mu`` on the training lattice nearest to ``mu``."""
        grid = np.unique(self.test_all.meta["mu"])
        return float(grid[np.argmin(abs(grid - mu))])

    def constant_loss(self, split: str = "test") -> float:
        """The MSE of the best constant prediction on ``split`` (``"test"`` or ``"val"``):
        the mean variance of the targets, the loss of a network that learned nothing."""
        d = {"test": self.test, "val": self.val}[split]
        return float(d.targets.var(axis=0).mean())

    def lines(self) -> list[str]:
        lo, hi = self.mu_range
        test = self.test
        return [
            f"training: {len(self.train)} configurations on {self.lattice} at "
            f"mu = {np.unique(self.train.meta['mu']).round(3).tolist()}; validation: "
            f"{len(self.val)}",
            f"test lattices {list(self.tests)}; on {self.lattice}, {len(test)} of "
            f"{len(self.test_all)} configurations lie in the training range {lo:g} <= mu <= "
            f"{hi:g}",
            "constant-prediction MSE (variance of the targets): validation "
            f"{self.constant_loss('val'):.4g}, test {self.constant_loss('test'):.4g}",
        ]


def prepare(train, val, tests) -> Data:
    """:class:`Data` from the loaded splits; ``tests`` maps each test lattice to its split
    and must hold the training lattice."""
    if train.lattice not in tests:
        raise ValueError(f"the test split lacks the training lattice {train.lattice!r}")
    return Data(train, val, dict(tests))


def _budget(train_params) -> training.Budget:
    """The budget of a profile's ``train`` section (``precision: auto`` resolved here)."""
    return training.Budget.from_params(training.resolve_precision(train_params))


def train_grid(specs, data: Data, params, tests=None, *, sizes=None, augment=(None,), desc=""):
    """Every instance of ``specs`` x ``sizes`` x seeds (:func:`qftml.experiments.run_grid`)
    with the settings the task-1 chapters share, from a profile section ``params``:
    ``seeds``, ``train`` (a :class:`qftml.training.Budget`; ``precision: auto`` takes bf16
    where the CPU has it natively, :func:`qftml.training.resolve_precision`), ``seed`` (the
    nested subsets)
    and ``val_fraction`` (validation on that fraction of ``N_train``, balanced in ``mu``)."""
    return experiments.run_grid(
        specs, data.train.xy, data.val.xy, tests, sizes=sizes, seeds=params["seeds"],
        augment=augment, task=data.task, budget=_budget(params["train"]),
        subset_seed=params["seed"], groups=data.train.meta["mu"],
        val_fraction=params["val_fraction"], val_groups=data.val.meta["mu"],
        output_names=data.outputs, desc=desc or "instances",
    )  # fmt: skip


@dataclass
class Stored:
    """What the results store holds of the ``paper`` task-1 comparison."""

    stored: int
    planned: int
    chunks: dict  # N_train -> seeds at which every model is stored
    provenance: dict
    per_mu: object  # DataFrame (results.point_table) of the finished chunks (>= MIN_SEEDS)
    lattice: str  # the training lattice and range of the paper profile
    mu_range: tuple

    @property
    def complete(self) -> bool:
        return self.stored == self.planned

    @property
    def sizes(self) -> list[int]:
        """The ``N_train`` with at least :data:`qftml.results.MIN_SEEDS` finished seeds (what
        the verdicts use)."""
        from ..results import MIN_SEEDS

        return sorted(int(m) for m, s in self.chunks.items() if len(s) >= MIN_SEEDS)

    def table(self):
        """One row per stored instance of a finished chunk: the loss on the training lattice
        over the training range (the shape of a :func:`qftml.experiments.run_grid` table)."""
        if not len(self.per_mu):
            return self.per_mu
        return in_range(self.per_mu[self.per_mu["lattice"] == self.lattice], *self.mu_range)

    def comparison(self) -> ComparisonVerdict | None:
        """The three statements at full statistics; ``None`` before a size is finished."""
        return compare_families(self.table()) if self.sizes else None

    def generalization(self) -> GeneralizationVerdict | None:
        """The lattice-size verdicts at :func:`generalization_size` of the finished sizes."""
        if not self.sizes:
            return None
        m = generalization_size({m: self.chunks[m] for m in self.sizes})
        return generalization(self.per_mu, train_lattice=self.lattice, n_train=m,
                              mu_range=self.mu_range)  # fmt: skip

    def lines(self, name: str = "results store") -> list[str]:
        p = self.provenance
        return [
            f"{name}: {self.stored} of {self.planned} planned instances "
            f"({'complete' if self.complete else 'PARTIAL'}); instances of every model stored "
            f"per N_train: { {m: len(s) for m, s in self.chunks.items()} or 'none yet' }",
            f"made at commit(s) {', '.join(c[:10] for c in p['commits']) or '-'} on "
            f"{'; '.join(p['machines']) or '-'}, {p['first']} .. {p['last']}; "
            f"{p['train_hours']:.2f} h of training",
        ]


def generalization_size(chunks: dict) -> int:
    """The ``N_train`` at which the lattice-size tests are made: the largest of those with
    the most finished seeds (``chunks``: ``N_train -> seeds``). With ``n`` instances the
    smallest attainable one-sided p is ``1/binom(2n, n)`` for Mann-Whitney and ``2^-n`` for
    the paired Wilcoxon test of the kink (0.05 and 0.125 at ``n = 3``), so a size that has
    just begun would turn every verdict negative by lack of instances alone."""
    if not chunks:
        raise ValueError("no finished size")
    return max(chunks, key=lambda m: (len(chunks[m]), int(m)))


@dataclass
class StoredPhases:
    """What the results store holds of the one-phase instances (``task1-phases``) and the
    verdict against the comparison's instances of the same size."""

    phases: Stored  # the one-phase instances (their per_mu has ``phase`` and ``onset``)
    reference: Stored  # task1-comparison
    n_train: int
    losses: object  # DataFrame (phase_losses) of the finished seeds, both kinds
    verdict: PhaseVerdict | None  # None before a seed of both kinds is stored

    def lines(self) -> list[str]:
        out = self.phases.lines("results store (one phase)")
        have = len(self.reference.chunks.get(self.n_train, []))
        out.append(f"reference, trained on both phases: task1-comparison at N_train = "
                   f"{self.n_train}, {have} instances of every model stored")  # fmt: skip
        return out + (self.verdict.lines() if self.verdict else ["no verdict yet"])


def stored_phases(profile: str = "paper", root=None, *, alpha: float = 0.05) -> StoredPhases:
    """The store's ``task1-phases`` with the ``task1-comparison`` instances of its
    ``N_train`` (plain, training lattice) as reference, and :func:`phase_verdict` on the
    seeds where both are complete."""
    import pandas as pd

    from .. import results

    plan = results.plan_task1_phases(profile)
    (m,) = plan.sizes
    ph = stored("task1-phases", profile, root)
    ref = stored("task1-comparison", profile, root)
    seeds = sorted(set(ph.chunks.get(m, [])) & set(ref.chunks.get(m, [])))
    parts = []
    if seeds and len(ph.per_mu):
        one = ph.per_mu[(ph.per_mu["lattice"] == ph.lattice) & ph.per_mu["seed"].isin(seeds)]
        both = ref.per_mu[
            (ref.per_mu["lattice"] == ref.lattice)
            & (ref.per_mu["n_train"] == m)
            & (ref.per_mu["augment"] == "none")
            & ref.per_mu["seed"].isin(seeds)
        ]
        parts = [phase_losses(one[one["phase"] == side], side) for side in ("below", "above")]
        parts.append(phase_losses(both, "both"))
    losses = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    verdict = None
    if len(losses):
        onset_ = float(ph.per_mu["onset"].iloc[0])
        verdict = phase_verdict(losses, onset=onset_, mu_max=ph.mu_range[1], n_train=m,
                                alpha=alpha)  # fmt: skip
    return StoredPhases(ph, ref, m, losses, verdict)


def stored(experiment: str = "task1-comparison", profile: str = "paper", root=None) -> Stored:
    """Read the store's entries of ``experiment`` made with ``profile``
    (:mod:`qftml.results`): coverage, provenance and the per-mu losses of finished chunks."""
    from .. import results

    lattice, lo, hi = results.training_range(1, profile)
    n, planned, _ = results.coverage(experiment, profile, root)
    chunks = results.complete_seeds(experiment, profile, root)
    per_mu = results.point_table(experiment, profile, root)
    return Stored(
        n, planned, chunks, results.provenance_summary(experiment, profile, root),
        results.select_complete(per_mu, chunks), lattice, (lo, hi),
    )  # fmt: skip


def search_subset(data: Data, n_train: int, seed: int):
    """The balanced subset of ``n_train`` training configurations the search trains on."""
    mu = data.train.meta["mu"]
    return data.train.select(experiments.nested_subsets(len(mu), [n_train], seed, mu)[n_train])


def studies(data: Data, search_params, seed: int, *, prefix: str, families=FAMILIES):
    """Chapter 06's optuna studies, one per family (run, continued or loaded from disk by
    :func:`qftml.experiments.search_studies`; ``search_params`` is its ``search`` section)."""
    S = search_params
    return experiments.search_studies(
        list(families), search_subset(data, S["n_train"], seed).xy, data.val.xy,
        task=data.task, budget=training.Budget.from_params(S["budget"]), n_trials=S["n_trials"],
        seed=seed, jobs=S["jobs"], pruner=S["pruner"], prefix=prefix,
    )  # fmt: skip


@dataclass
class SearchResult:
    """Chapter 06's search: the studies, their winners and the published winners' ranks."""

    studies: dict  # family -> optuna Study
    winners: object  # DataFrame (family, rank): val loss, parameters, spec
    published: object  # DataFrame per family: the published winner's and the best trial's loss

    def states(self) -> dict:
        """Per family, how many trials ended in each state (``COMPLETE``, ``PRUNED``, ...)."""
        out = {}
        for fam, st in self.studies.items():
            names = [t.state.name for t in st.trials]
            out[fam] = {s: names.count(s) for s in sorted(set(names))}
        return out

    def lines(self) -> list[str]:
        out = [f"{f}: {s}" for f, s in self.states().items()]
        for fam, r in self.published.iterrows():
            better = r["best trial"] < r["published winner"]
            out.append(
                f"{fam}: our best trial ({r['best trial']:.3g}) is "
                f"{'better' if better else 'not better'} than the published winner under the "
                f"same search budget ({r['published winner']:.3g}; rank {r['rank among trials']})"
            )
        return out


def run_search(data: Data, params, *, prefix: str, families=FAMILIES) -> SearchResult:
    """Chapter 06 from its profile section ``params`` (``search``, ``seed``): the studies,
    the ``top_k`` best specs of each, and each published winner trained once under the
    search's budget and data and ranked among its family's completed trials."""
    import pandas as pd
    from optuna.trial import TrialState

    from .. import nets, search

    S, seed = params["search"], params["seed"]
    found = studies(data, S, seed, prefix=prefix, families=families)
    rows = [
        {"family": fam, "rank": rank, "val loss": value, "parameters": nets.spec_params(spec),
         "spec": spec}
        for fam, st in found.items()
        for rank, (spec, value) in enumerate(search.top_specs(st, S["top_k"]), 1)
    ]  # fmt: skip
    winners = pd.DataFrame(rows, columns=["family", "rank", "val loss", "parameters", "spec"])
    sub = search_subset(data, S["n_train"], seed).xy
    ranked = []
    for fam in families:
        inst = experiments.train_instance(
            nets.published(1, fam).spec, sub, data.val.xy, task=data.task,
            budget=training.Budget.from_params(S["budget"]), seed=seed,
        )  # fmt: skip
        done = [t.value for t in found[fam].trials if t.state == TrialState.COMPLETE]
        v = inst.history["best_val_loss"]
        ranked.append({
            "family": fam, "published winner": v, "best trial": min(done, default=np.nan),
            "rank among trials": f"{1 + sum(d < v for d in done)} of {len(done) + 1}",
        })  # fmt: skip
    return SearchResult(found, winners.set_index(["family", "rank"]),
                        pd.DataFrame(ranked).set_index("family"))  # fmt: skip


def stored_search(profile: str = "paper", root=None):
    """The results store's architecture searches of chapter 06 that match today's code and
    data (:func:`qftml.search_store.load`)."""
    from .. import search_store

    return search_store.load(profile, root)


def yardstick_lines(summary, constant: float, value: str = "test") -> list[str]:
    """How far each family's median loss (``summary`` of
    :func:`qftml.experiments.summarize` by label) lies below the ``constant`` prediction,
    and how much its instances scatter (max / min)."""
    med = summary[(value, "median")].sort_values()
    spread = summary[(value, "max")] / summary[(value, "min")]
    return [
        "median test loss: " + ", ".join(f"{f} {v:.3g}" for f, v in med.items())
        + f"; lowest: {med.index[0]}; constant prediction {constant:.3g}",
        "constant prediction / median: "
        + ", ".join(f"{f} {constant / v:.3g}" for f, v in med.items()),
        "max / min over the instances: " + ", ".join(f"{f} {spread[f]:.3g}" for f in med.index),
    ]  # fmt: skip


def invariance(tables, x, n_train: int):
    """Median and range over instances of the largest relative output change under all
    lattice translations of the inputs ``x`` (:func:`qftml.nets.equivariance_error`), per
    family and augmentation, for the instances of size ``n_train``; ``tables`` holds
    ``(table, instances)`` pairs of :func:`qftml.experiments.run_grid`."""
    import pandas as pd

    from .. import nets

    rows = [
        {"family": row["label"], "augment": row["augment"],
         "max relative change": max(nets.equivariance_error(inst.model, x).values())}
        for table, insts in tables
        for (_, row), inst in zip(table.iterrows(), insts, strict=True)
        if row["n_train"] == n_train
    ]  # fmt: skip
    return (
        pd.DataFrame(rows)
        .groupby(["family", "augment"])["max relative change"]
        .agg(["median", "min", "max"])
    )


def train_phases(specs, data: Data, params, mu_c: float, *, n_train: int | None = None):
    """Chapter 08's Silver Blaze instances: every family trained on the configurations
    below the onset ``mu_c`` only and above it only (validation cut the same way), with
    their per-mu predictions on the test split of the training lattice.

    ``n_train``: train on that many configurations of each phase, balanced over its ``mu``,
    validated on ``val_fraction`` of it, as :func:`train_grid` (the recipe of the reference
    trained on both phases, and of the store's ``task1-phases``); None: the whole phase.
    Returns ``{side: (training data, curves)}`` for ``side`` in ``("below", "above")``.
    """
    out = {}
    for side, (tr, va) in split_phases(data.train, data.val, mu_c).items():
        sized = {} if n_train is None else dict(
            sizes=[int(n_train)], val_fraction=params["val_fraction"], val_groups=va.meta["mu"],
            output_names=data.outputs,
        )  # fmt: skip
        _, insts = experiments.run_grid(
            specs, tr.xy, va.xy, seeds=params["seeds"], task=data.task,
            budget=_budget(params["train"]), subset_seed=params["seed"],
            groups=tr.meta["mu"], desc=f"silver blaze {side}", **sized,
        )  # fmt: skip
        out[side] = (tr, curves(insts, data.test_all, data.outputs))
    return out
