"""Every statement of the first talk, with its verdict at full statistics where one exists.

One row per statement of :cite:p:`Favoni:2021talk`: the chapter that tests it, the verdict
computed from the results store (:mod:`qftml.results`) with the numbers behind it, or
"no full-statistics run yet" where the store holds no complete part of its experiment.

The two statements of the summary slide that span all tasks are judged per task, each
part from that task's store once every model has ``min_seeds`` instances there, and
confirmed only when every part holds ("not confirmed" as soon as one part fails):

- *EQ a highly reliable choice*: task 1, EQ beats ST and FL at every stored size
  (:func:`qftml.tasks.regression.compare_families`); task 2, ST's error rate on the largest
  lattice is not significantly below EQ's (:func:`qftml.tasks.detection.family_verdict`);
  task 3, the model with the lowest median test loss up to the largest lattice is an EQ
  (:func:`qftml.tasks.counting.compare_with_source`).
- *Remarkable generalization of EQ*: task 1, EQ beats ST on the other lattices
  (:func:`qftml.tasks.regression.generalization`); task 2, as above, on the largest lattice;
  task 3, the best EQ's median test loss up to the largest lattice is below the best ST's.
"""

from __future__ import annotations

from .. import results
from ..verdicts import styled  # the statements page styles both its tables with it
from . import counting, detection, regression, searches

__all__ = ["STATEMENTS", "STORE_SECTIONS", "link", "styled", "table"]

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


#: Chapter stem -> the label of its full-statistics section (what a statement links to).
STORE_SECTIONS = {
    "06_task1_search": "store-task1-search",
    "07_task1_comparison": "store-task1-comparison",
    "08_task1_generalization": "store-task1-generalization",
    "09_task2_detection": "store-task2",
    "09_task3_counting": "store-task3",
}


def link(stem: str) -> str:
    """An HTML link from the statements page to the chapter ``stem``'s full-statistics
    section (its top where it has none); the pages are siblings in ``notebooks/``."""
    anchor = STORE_SECTIONS.get(stem)
    title = stem.replace("_", " ", 1).replace("_", " ")
    return f'<a href="{stem}.html{"#" + anchor if anchor else ""}">{title}</a>'


def _verdict(flag: bool) -> str:
    return "confirmed" if flag else "not confirmed"


def table(profile: str = "paper", root=None, *, min_seeds: int = results.MIN_SEEDS,
          flux_data=None, seed: int = 0):  # fmt: skip
    """The statements with verdict, evidence and coverage, as a DataFrame; a training-set
    size enters once at least ``min_seeds`` instances of every model are stored.

    ``flux_data`` (task-2 configurations, e.g. a validation split) with ``seed`` judges the
    structural statement that 2x2 convolutions are necessary
    (:func:`qftml.tasks.detection.shuffle_check`: a network of 1x1 kernels is blind to a
    shuffle of the sites, which breaks the conservation law); the store adds the published
    EQ winner's accuracy on the largest lattice."""
    import pandas as pd

    parts: dict[str, dict[int, tuple]] = {"reliable": {}, "general": {}}  # task -> (flag, text)
    rows = {key: {"chapter": ch, "statement": text, "verdict": "no full-statistics run yet",
                  "evidence": "", "coverage": ""} for key, ch, text in STATEMENTS}  # fmt: skip
    sizes = []
    if results.entries("task1-comparison", root):
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
        m_gen = regression.generalization_size({m: chunks[m] for m in sizes})
        g = regression.generalization(per_mu, train_lattice=lat, mu_range=(lo, hi), n_train=m_gen)
        w = regression.worst_st(per_mu, train_lattice=lat, mu_range=(lo, hi), n_train=m_gen)
        rows["t1-worst-st"] |= {"verdict": _verdict(w.no_eq_like_worst_st), "evidence": w.line()}
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
        for key in ("t1-any-n", "t1-improves", "t1-augment", "t1-lattices", "t1-kink",
                    "t1-worst-st"):  # fmt: skip
            rows[key]["coverage"] = cover
        parts["reliable"][1] = (
            v.eq_established,
            f"EQ beats ST, FL at every size: {v.eq_established}",
        )
        parts["general"][1] = (g.eq_beats_st, f"EQ beats ST on other lattices: {g.eq_beats_st}")
    if results.entries("task1-phases", root):
        rows["t1-phases"] |= _phase_row(profile, root)
    rows["t1-optuna"] |= _search_row(profile, root)
    has2 = bool(results.entries("task2-detection", root))
    s2 = detection.stored("task2-detection", profile, root) if has2 else None  # read once
    _task2_parts(parts, s2, min_seeds)
    if flux_data is not None:
        rows["t2-2x2"] |= _kernel_row(flux_data, seed, s2, min_seeds)
    _add_search_kernels(rows["t2-2x2"], profile, root)
    _task3_parts(parts, profile, root, min_seeds)
    for key, name in (("all-eq", "reliable"), ("all-generalization", "general")):
        known = parts[name]
        rows[key] |= {
            "verdict": _across(known),
            "evidence": "; ".join(f"task {t}: {known[t][1]}" for t in sorted(known)),
            "coverage": ", ".join(f"task {t}" for t in sorted(known)) + " stored" if known else "",
        }
    return pd.DataFrame([{"key": k, **r} for k, r in rows.items()]).set_index("key")


def _phase_row(profile: str, root) -> dict:
    """The Silver Blaze statement from the store's one-phase instances against the
    comparison's of the same size (:func:`qftml.tasks.regression.stored_phases`)."""
    ph = regression.stored_phases(profile, root)
    stored, planned = ph.phases.stored, ph.phases.planned
    seeds = ", ".join(f"{len(s)} at N_train = {m}" for m, s in ph.phases.chunks.items())
    cover = f"{stored}/{planned} instances" + (
        "" if stored == planned else f" (PARTIAL: seeds with every model: {seeds or 'none yet'})"
    )
    v = ph.verdict
    if v is None or v.not_necessary is None:
        return {"verdict": f"needs {results.MIN_SEEDS} instances of each model", "coverage": cover}
    t = v.table.xs(v.family, level="family")
    evidence = f"N_train = {v.n_train}, {v.family}: " + "; ".join(
        f"trained {side}: median loss on the other phase / trained on both {r['ratio']:.3g} "
        f"(p = {r['p_value']:.2g})"
        for side, r in t.iterrows()
    )
    others = {f: h for f, h in v.holds.items() if f != v.family}
    evidence += "; holds for " + ", ".join(f"{f}: {h}" for f, h in others.items())
    return {"verdict": _verdict(v.not_necessary), "evidence": evidence, "coverage": cover}


def _search_row(profile: str, root) -> dict:
    """The optuna statement from the stored searches (:mod:`qftml.search_store`: tasks 1 and
    2; the source's task-3 search has no counterpart here), one part per task once every
    family has its ``top_k`` completed trials (:func:`qftml.tasks.searches.size_verdict`);
    confirmed when every judged part is, partial until every study is complete."""
    from .. import search_store

    parts, evidence, cover = {}, [], []
    for experiment, (task, _) in search_store.EXPERIMENTS.items():
        if not search_store.entries(root, experiment):
            continue
        found = search_store.load(profile, root, experiment=experiment)
        k, n = found.plan.top_k, found.plan.n_trials
        if set(found.studies) != set(found.plan.families) or any(
            e["trials"].get("complete", 0) < k for e in found.entries.values()
        ):
            cover.append(f"task {task}: {found.line()}")
            continue
        v = searches.size_verdict(found.studies, k)
        parts[task] = v.confirmed
        evidence.append(f"task {task}: {v.line()}")
        done = ", ".join(f"{f} {e['trials']['finished']}/{n}" for f, e in found.entries.items())
        n_train = found.plan.n_train
        on = "the whole training set" if n_train is None else f"N_train = {n_train}"
        cover.append(f"task-{task} search, trials {done} on {on} (store budget)"
                     + ("" if found.complete else " (PARTIAL)"))  # fmt: skip
    if not cover:
        return {}
    verdict = _verdict(all(parts.values())) if parts else "no full-statistics run yet"
    return {"verdict": verdict, "evidence": "; ".join(evidence), "coverage": "; ".join(cover)}


def _across(known: dict) -> str:
    """The verdict of a statement on all three tasks from the parts known so far."""
    if any(not flag for flag, _ in known.values()):
        return "not confirmed"
    if len(known) == 3:
        return "confirmed"
    missing = ", ".join(str(t) for t in (1, 2, 3) if t not in known)
    return f"open (task {missing} not stored yet)" if known else "no full-statistics run yet"


def _task2_parts(parts: dict, s2, min_seeds: int) -> None:
    """Task 2's part of the summary statements (``s2``: the task-2 store, or None): ST not
    ahead of EQ on the largest lattice."""
    v2 = s2.verdict(min_seeds=min_seeds) if s2 is not None else None
    if v2 is None:
        return
    c = v2.comparison
    text = (f"{v2.largest}, median error EQ {c['median_a']:.2g} vs ST {c['median_b']:.2g}, "
            f"ST ahead p = {v2.p_st:.2g}")  # fmt: skip
    parts["reliable"][2] = parts["general"][2] = (not v2.st_ahead, text)


def _kernel_row(data, seed: int, s2, min_seeds: int) -> dict:
    """The 2x2 statement: necessary, since a 1x1 network cannot tell a valid configuration
    from its shuffled (violated) sites; with the store, what the 2x2 EQ winner reaches."""
    check = detection.shuffle_check(data, seed)
    necessary = check.blind and check.violated_fraction > 0
    text = (f"1x1 network's largest output change under site shuffles {check.change:.1e}, "
            f"which violate the law in {check.violated_fraction:.0%} of {check.n_valid} valid "
            "configurations")  # fmt: skip
    cover = f"structural check on {check.n_valid} configurations"
    if s2 is not None and min(s2.instances().values(), default=0) >= min_seeds:
        a = s2.accuracy
        eq = a[(a["label"] == "EQ published") & (a["lattice"] == s2.lattices[-1])]
        per = eq.groupby("seed")["accuracy"].mean()
        text += (f"; the published EQ (2x2) on {s2.lattices[-1]}: accuracy "
                 f"{per.mean():.5f} ± {per.std(ddof=1) / len(per) ** 0.5:.1g} "
                 f"({len(per)} instances)")  # fmt: skip
        cover += f"; task-2 store {s2.n}/{s2.planned} instances"
    return {"verdict": _verdict(necessary), "evidence": text, "coverage": cover}


def _add_search_kernels(row: dict, profile: str, root) -> None:
    """Add to the 2x2 statement's ``row`` what the stored task-2 search trained: networks of
    1x1 kernels against those with a larger one
    (:func:`qftml.tasks.detection.kernel_comparison`)."""
    from .. import search_store

    if not search_store.entries(root, "task2-search"):
        return
    found = detection.stored_search(profile, root)
    if not found.studies:
        return
    kc = detection.kernel_comparison(found.studies)
    kinds = set(kc.index.get_level_values("kernel"))
    if kinds != {"all 1x1", "some kernel >= 2"}:
        return
    a, b = kc.xs("all 1x1", level="kernel"), kc.xs("some kernel >= 2", level="kernel")
    text = (f"task-2 search: {a['trained'].sum()} networks of 1x1 kernels trained, "
            f"{a['completed'].sum()} completed, lowest validation BCE "
            f"{a['lowest val loss'].min():.2g} (chance ln 2 = 0.69); with a larger kernel "
            f"{b['lowest val loss'].min():.2g}")  # fmt: skip
    row["evidence"] = "; ".join(x for x in (row.get("evidence"), text) if x)
    cover = f"task-2 search {'complete' if found.complete else 'PARTIAL'}"
    row["coverage"] = "; ".join(x for x in (row.get("coverage"), cover) if x)


def _task3_parts(parts: dict, profile: str, root, min_seeds: int) -> None:
    """Task 3's parts: the best model is an EQ; the best EQ generalizes better than the
    best ST (median test loss up to the largest lattice)."""
    if not results.entries("task3-counting", root):
        return
    s3 = counting.stored("task3-counting", profile, root)
    if min(s3.instances().values(), default=0) < min_seeds:
        return
    ours = s3.loss_table()
    heads = counting.architectures()["linear head after the sum"]
    cmp3 = counting.compare_with_source(ours, counting.source_table(ours.columns), heads)
    best = cmp3.summary.loc["ours", "best"]
    med = ours[ours.columns[-1]].groupby(lambda m: m.split()[-1]).min()
    parts["reliable"][3] = (best.endswith("EQ"), f"lowest median test loss: {best}")
    parts["general"][3] = (
        bool(med.get("EQ") < med.get("ST")),
        f"best median test loss up to {cmp3.largest}: EQ {med.get('EQ'):.2g}, "
        f"ST {med.get('ST'):.2g}",
    )


def _span(values) -> str:
    values = list(values)
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:.3g}" if abs(hi - lo) <= 1e-12 * abs(hi) else f"{lo:.3g} .. {hi:.3g}"
