"""Every statement of the first talk, with its verdict at full statistics where one exists.

One row per statement of :cite:p:`Favoni:2021talk`: the chapter that tests it, the verdict
computed from the results store (:mod:`qftml.results`) with the numbers behind it, or
"no full-statistics run yet" where the store holds no complete part of its experiment.
"""

from __future__ import annotations

from .. import results
from . import regression

__all__ = ["STATEMENTS", "table"]

#: (key, chapter stem, statement as the source writes it)
STATEMENTS = (
    ("t1-any-n", "07_task1_comparison", "EQ beats ST and FL for any number of training samples"),
    ("t1-improves", "07_task1_comparison",
     "EQ improves with more samples, while the other two do not"),
    ("t1-augment", "07_task1_comparison",
     "Data augmentation does not help the two non-equivariant architectures"),
    ("t1-phases", "08_task1_generalization",
     "Training on both phases is not necessary as long as the expression of the observables "
     "is independent of the transition"),
    ("t1-lattices", "08_task1_generalization", "EQ clearly outperforms ST (other lattice sizes)"),
    ("t1-kink", "08_task1_generalization", "Kink in ST at 100 x 5 due to s = 2 in spatial pooling"),
    ("t1-worst-st", "08_task1_generalization", "No EQ instance features a behavior like worst ST"),
    ("t1-optuna", "06_task1_search", "Optuna favoured architectures with < 10^5 parameters"),
    ("t2-2x2", "09_task2_detection", "2x2 convolutions are necessary for this task"),
    ("all-eq", "09_task3_counting", "In all tasks EQ proved to be a highly reliable choice"),
    ("all-generalization", "09_task3_counting", "Remarkable generalization capabilities of EQ"),
)  # fmt: skip


def _verdict(flag: bool) -> str:
    return "confirmed" if flag else "not confirmed"


def table(profile: str = "paper", root=None, *, min_seeds: int = 3):
    """The statements with verdict, evidence and coverage, as a DataFrame; a training-set
    size enters once at least ``min_seeds`` instances of every model are stored."""
    import pandas as pd

    rows = {key: {"chapter": ch, "statement": text, "verdict": "no full-statistics run yet",
                  "evidence": "", "coverage": ""} for key, ch, text in STATEMENTS}  # fmt: skip
    stored, planned, complete = results.coverage("task1-comparison", profile, root)
    chunks = results.complete_seeds("task1-comparison", profile, root)
    sizes = [m for m, seeds in chunks.items() if len(seeds) >= min_seeds]
    counts = {m: len(chunks[m]) for m in sizes}
    cover = f"{stored}/{planned} instances" + ("" if complete else f" (PARTIAL: {counts})")
    if sizes:
        lat, lo, hi = results.training_range(1, profile)
        per_mu = results.select_complete(
            results.point_table("task1-comparison", profile, root), chunks, min_seeds=min_seeds
        )
        inside = regression.in_range(per_mu[per_mu["lattice"] == lat], lo, hi)
        v = regression.compare_families(inside)
        vs = v.versus
        rows["t1-any-n"] |= {
            "verdict": _verdict(v.eq_established),
            "evidence": f"median ST/EQ {_span(vs[vs.b == 'ST']['ratio'])}, FL/EQ "
            f"{_span(vs[vs.b == 'FL']['ratio'])}; largest p {vs['p_value'].max():.2g}",
        }
        sc = v.scaling.set_index("label")
        rows["t1-improves"] |= {
            "verdict": _verdict(v.only_eq_improves) if len(sizes) >= 2 else "needs 2 sizes",
            "evidence": "; ".join(
                f"{f} slope {sc.loc[f, 'slope']:.2f} ± {sc.loc[f, 'stderr']:.2f}" for f in sc.index
            )
            if len(sizes) >= 2
            else f"one size so far (N_train = {sizes[0]})",
        }
        aug = v.augmentation
        own = aug[aug["a"] == "translations"] if len(aug) else aug
        rows["t1-augment"] |= {
            "verdict": _verdict(v.augmentation_never_helps),
            "evidence": f"median plain/augmented {_span(1 / own['ratio'])}" if len(own) else "",
        }
        g = regression.generalization(
            per_mu, train_lattice=lat, mu_range=(lo, hi), n_train=max(sizes)
        )
        k = g.kink[g.kink["family"] == "ST"]
        rows["t1-lattices"] |= {
            "verdict": _verdict(g.eq_beats_st),
            "evidence": f"N_train = {g.n_train}: median ST/EQ {_span(g.versus['ratio'])}",
        }
        rows["t1-kink"] |= {
            "verdict": _verdict(g.st_kink),
            "evidence": f"ST loss ratio to neighbours {_span(k['median ratio'])}; "
            f"largest p {k['p_value'].max():.2g}; EQ kink: {g.eq_kink}",
        }
        for key in ("t1-any-n", "t1-improves", "t1-augment", "t1-lattices", "t1-kink"):
            rows[key]["coverage"] = cover
    return pd.DataFrame([{"key": k, **r} for k, r in rows.items()]).set_index("key")


def _span(values) -> str:
    values = list(values)
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:.3g}" if abs(hi - lo) <= 1e-12 * abs(hi) else f"{lo:.3g} .. {hi:.3g}"
