"""Figure functions shared by the chapters: each draws one result on a given axis."""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy_map",
    "band",
    "bands_per_mu",
    "best_worst_grid",
    "count_loss_vs_volume",
    "count_loss_vs_worms",
    "count_predictions",
    "count_test_vs_val",
    "data_size_panel",
    "divergence_panel",
    "feature_map_panel",
    "loss_per_mu",
    "loss_vs_lattice",
    "loss_vs_ntrain",
    "ntrain_comparison",
    "phase_predictions",
    "predicted_vs_true",
    "search_history",
    "search_sizes",
    "store_generalization",
    "truth_per_mu",
    "val_histories",
    "val_loss_curves",
    "verdict_loss_vs_lattice",
]


def loss_vs_ntrain(ax, table, label, color, *, value="test", ls="-", name=None, marker="o"):
    """Test loss against ``N_train`` for the instances of ``label`` in ``table``.

    Median (line) with its distribution-free interval of at least 68 % (bars,
    :func:`qftml.experiments.median_interval`), mean (open marker), min-max band and every
    instance (dots, jittered in ``N_train`` by seed so that they do not overlap).
    """
    from .experiments import median_interval

    sub = table[table["label"] == label].dropna(subset=[value])
    if sub.empty:
        return
    s = sub.groupby("n_train")[value]
    n = np.array(sorted(sub["n_train"].unique()))
    med = s.median().to_numpy()
    lo, hi = np.array([median_interval(s.get_group(m))[:2] for m in n]).T
    ax.fill_between(n, s.min(), s.max(), color=color, alpha=0.15, lw=0)
    ax.errorbar(n, med, yerr=[med - lo, hi - med], ls=ls, marker=marker, color=color,
                capsize=3, label=name or label)  # fmt: skip
    ax.plot(n, s.mean(), ls="none", marker=marker, mfc="none", color=color, ms=8)
    rank = sub["seed"].rank(method="dense")
    jitter = np.exp(0.04 * (rank - rank.mean()))
    ax.scatter(sub["n_train"] * jitter, sub[value], s=8, color=color, alpha=0.5)


def search_history(ax, study, family, constant=None):
    """An optuna study's history: each completed trial's best validation loss (dots),
    pruned trials at their last reported loss (crosses), the best so far (line) and the
    ``constant``-prediction loss (dashed); the title counts trials, invalid ones included."""
    from optuna.trial import TrialState

    from .plotting import FAMILY_COLORS

    trials, c = study.trials, FAMILY_COLORS[family]
    done = [(t.number, t.value) for t in trials if t.state == TrialState.COMPLETE]
    pruned = [(t.number, list(t.intermediate_values.values())[-1]) for t in trials
              if t.state == TrialState.PRUNED and t.intermediate_values]  # fmt: skip
    if done:
        n, v = np.array(done).T
        ax.scatter(n, v, color=c, s=18, label="completed")
        ax.step(n, np.minimum.accumulate(v), where="post", color=c, label="best so far")
    if pruned:
        n, v = np.array(pruned).T
        ax.scatter(n, v, marker="x", color=c, s=22, alpha=0.6, label="pruned")
    if constant is not None:
        ax.axhline(constant, color="k", ls="--", lw=1, label="constant prediction")
    ax.set_yscale("log")
    ax.set_xlabel("trial")
    invalid = sum("invalid" in t.user_attrs for t in trials)
    ax.set_title(f"{family}: {len(done)} completed, {len(pruned)} pruned, {invalid} invalid")


def search_sizes(ax, study, family, bound=None, top_k: int = 3):
    """Best validation loss against parameter count of every trained trial of an optuna
    study (completed: dots; pruned: crosses at their last loss), its ``top_k`` best ringed,
    and the ``bound`` on the parameter count (dashed)."""
    from optuna.trial import TrialState

    from .plotting import FAMILY_COLORS
    from .search import top_specs

    c = FAMILY_COLORS[family]
    done = [(t.user_attrs["n_params"], t.value) for t in study.trials
            if t.state == TrialState.COMPLETE and "n_params" in t.user_attrs]  # fmt: skip
    pruned = [(t.user_attrs["n_params"], list(t.intermediate_values.values())[-1])
              for t in study.trials if t.state == TrialState.PRUNED
              and "n_params" in t.user_attrs and t.intermediate_values]  # fmt: skip
    if done:
        n, v = np.array(done).T
        ax.scatter(n, v, color=c, s=18, label="completed")
    if pruned:
        n, v = np.array(pruned).T
        ax.scatter(n, v, marker="x", color=c, s=22, alpha=0.6, label="pruned (last loss)")
    best = {spec for spec, _ in top_specs(study, top_k)}
    top = [(t.user_attrs["n_params"], t.value) for t in study.trials
           if t.state == TrialState.COMPLETE and t.user_attrs.get("spec") in best]  # fmt: skip
    if top:
        n, v = np.array(top).T
        ax.scatter(n, v, s=90, facecolors="none", edgecolors="k", label=f"best {top_k}")
    if bound is not None:
        ax.axvline(bound, color="k", ls="--", lw=1, label=f"{bound:.0e} parameters")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_title(f"{family}: {len(done)} completed, {len(pruned)} pruned")


def val_histories(ax, table, instances, constant=None):
    """Validation loss (MSE) against the epoch of every instance of a
    :func:`qftml.experiments.run_grid` table, coloured by family."""
    from .plotting import FAMILY_COLORS

    seen = set()
    for inst, (_, row) in zip(instances, table.iterrows(), strict=True):
        f = row["family"]
        ax.plot(inst.history["epoch"], inst.history["val_loss"], color=FAMILY_COLORS[f],
                alpha=0.8, label=None if f in seen else f)  # fmt: skip
        seen.add(f)
    if constant is not None:
        ax.axhline(constant, color="k", ls="--", lw=1, label="constant prediction")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (MSE)")
    ax.legend()


def ntrain_comparison(ax, table, constant=None, families=("EQ", "ST", "FL"), value="test"):
    """Test loss against ``N_train`` (:func:`loss_vs_ntrain`) of the plain instances of each
    family (solid) and the augmented ones (``augment == "translations"``, dotted squares),
    with the ``constant``-prediction loss (dashed); log-log axes, labelled."""
    from .plotting import FAMILY_COLORS

    plain = table[table["augment"] == "none"]
    aug = table[table["augment"] == "translations"]
    for f in families:
        loss_vs_ntrain(ax, plain, f, FAMILY_COLORS[f], value=value)
    for f in aug["label"].unique():
        loss_vs_ntrain(ax, aug, f, FAMILY_COLORS[f], value=value, ls=":", marker="s",
                       name=f"{f} + translations")  # fmt: skip
    if constant is not None:
        ax.axhline(constant, color="k", ls="--", lw=1, label="constant prediction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"training samples $N_\mathrm{train}$")
    ax.set_ylabel("test loss (MSE of $n$, $|\\phi|^2$)")
    ax.legend(
        title="median (line, ≥ 68 % interval),\nmean (open), min–max (band),\ninstances (dots)",
        fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1),
    )  # fmt: skip


# --- task 1: generalization (chapter 08)


def band(ax, x, values, color, label=None, ls="-"):
    """Median over instances (line) and min-max band; ``values`` has one row per instance."""
    values = np.asarray(values, dtype=float)
    ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, lw=0)
    ax.plot(x, np.median(values, axis=0), ls=ls, marker="o", ms=3, color=color, label=label)


def bands_per_mu(ax, df, value, families=("EQ", "ST", "FL")):
    """``value`` (a column of :func:`qftml.tasks.regression.curves`, e.g. ``mse`` or
    ``pred``) against mu: median and min-max band over the instances of each family; a
    value with several rows per instance and mu (outputs) is averaged first."""
    from .plotting import FAMILY_COLORS

    if df.empty:
        return
    per = df.groupby(["family", "seed", "group"])[value].mean().reset_index()
    for f in families:
        piv = per[per["family"] == f].pivot_table(index="seed", columns="group", values=value)
        if len(piv):
            band(ax, piv.columns.to_numpy(float), piv.to_numpy(), FAMILY_COLORS[f], f)


def truth_per_mu(ax, df):
    """True mean per mu with its standard error over the test configurations (black)."""
    truth = df[df["model"] == df["model"].iloc[0]]
    ax.errorbar(truth["group"], truth["true"], truth["true_sem"], color="k", marker=".",
                ls="none", label="true", zorder=5)  # fmt: skip


def loss_vs_lattice(ax, table, lattices, suffix="", families=("EQ", "ST", "FL")):
    """Test loss on each lattice (columns ``f"{lattice}{suffix}"`` of a
    :func:`qftml.experiments.run_grid` table): median and min-max over instances; a family
    that cannot run on a lattice (NaN: FL off its training lattice) is marked n/a."""
    from .plotting import FAMILY_COLORS

    x = np.arange(len(lattices))
    for k, f in enumerate(families):
        vals = table.loc[table["label"] == f, [f"{lat}{suffix}" for lat in lattices]]
        vals = vals.to_numpy(float)
        ok = ~np.isnan(vals).all(axis=0)
        if ok.any():
            v = vals[:, ok]
            med = np.median(v, axis=0)
            ax.errorbar(x[ok] + 0.08 * (k - 1), med, [med - v.min(axis=0), v.max(axis=0) - med],
                        marker="o", color=FAMILY_COLORS[f], label=f)  # fmt: skip
        for j in np.flatnonzero(~ok):
            ax.annotate(f"{f}: n/a", (x[j] + 0.08 * (k - 1), 0.02),
                        xycoords=("data", "axes fraction"), rotation=90,
                        color=FAMILY_COLORS[f], fontsize=8, ha="center")  # fmt: skip
    ax.set_xticks(x, lattices)
    ax.set_yscale("log")
    ax.set_xlabel(r"test lattice $N_t\times N_x$")


def verdict_loss_vs_lattice(ax, verdict, lattices, families=("EQ", "ST", "FL")):
    """The per-lattice losses of a :class:`qftml.tasks.regression.GeneralizationVerdict`:
    median with min-max bars per family."""
    from .plotting import FAMILY_COLORS

    x = np.arange(len(lattices))
    for k, f in enumerate(families):
        if f not in verdict.losses.index.get_level_values(0):
            continue
        L = verdict.losses.loc[f].reindex(lattices)
        bars = [L["median"] - L["min"], L["max"] - L["median"]]
        ax.errorbar(x + 0.08 * (k - 1), L["median"], bars, marker="o", color=FAMILY_COLORS[f],
                    label=f)  # fmt: skip
    ax.set_xticks(x, lattices)
    ax.set_yscale("log")


def predicted_vs_true(ax, true, pred, color, *, which="best", seed=None):
    """Scatter of predicted against true values (``o`` best, ``x`` worst instance)."""
    label = which if seed is None else f"{which} (seed {seed})"
    marker = "o" if which == "best" else "x"
    ax.scatter(true, pred, s=10, alpha=0.7, marker=marker, color=color, label=label)


# --- task 3: counting

_RANK_MARKERS = {"1st": "o", "2nd": "s", "3rd": "^"}


def _count_style(label, family) -> dict:
    """Colour by family, marker by rank (``"1st EQ"``: circle)."""
    from .plotting import FAMILY_COLORS

    marker = _RANK_MARKERS.get(label.split()[0], "o")
    return dict(color=FAMILY_COLORS.get(family, "0.3"), marker=marker, label=label)


def count_test_vs_val(ax, result, column):
    """Test loss in ``column`` (a lattice, or ``"all"``: every test lattice) against the
    validation loss, one point per instance of a :class:`qftml.tasks.counting.Retrained`;
    dotted: equal losses. Families that cannot run there are named in the title."""
    t, skipped = result.table, []
    for label in result.labels:
        sub = t[t["label"] == label]
        if sub.empty:  # a model without instances (a partial store)
            continue
        family = sub["family"].iloc[0]
        if sub[column].isna().all():
            skipped.append(family)
            continue
        ax.loglog(sub["val"], sub[column], ls="", ms=6, alpha=0.8, **_count_style(label, family))
    worms = " and ".join(str(w) for w in result.train_worms)
    ax.set_xlabel(f"validation loss ({result.train_lattice}, {worms} worms)")
    where = f"all lattices up to {result.lattices[-1]}" if column == "all" else column
    ax.set_ylabel(f"test loss, {where}")
    lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lims, lims, "k:", lw=1)
    if skipped:
        names = ", ".join(dict.fromkeys(skipped))
        ax.set_title(f"{names}: not applicable", fontsize=9, loc="right")


def count_loss_vs_volume(ax, result):
    """Median test MSE over instances against the lattice volume ``N_t N_x``, per model."""
    from .datasets.jobs import parse_lattice

    fams = result.table.drop_duplicates("label").set_index("label")["family"]
    for label, s in result.loss_by("lattice").items():
        s = s.dropna()
        if s.empty:  # not run anywhere, or no instances yet
            continue
        volume = [np.prod(parse_lattice(lat)) for lat in s.index]
        ax.loglog(volume, s.to_numpy(), **_count_style(label, fams[label]))
    ax.set_xlabel(r"lattice volume $N_t N_x$")
    ax.set_ylabel("test MSE (median over instances)")


def count_loss_vs_worms(ax, result):
    """Median test MSE over instances against the number of worms, per model (all lattices
    it runs on); dotted: the worm counts of the training set."""
    fams = result.table.drop_duplicates("label").set_index("label")["family"]
    for label, s in result.loss_by("worms").items():
        s = s.dropna()
        if s.empty:
            continue
        ax.semilogy(s.index, s.to_numpy(), **_count_style(label, fams[label]))
    ax.set_xlabel("worms inserted")
    ax.set_ylabel("test MSE (median over instances)")
    for w in result.train_worms:
        ax.axvline(w, color="0.6", ls=":", lw=1)


def count_predictions(ax, result, lattice, eta, mu, *, rng):
    """Predicted against true counts of each family's best instance at one lattice and
    parameter point (true counts jittered by ``rng``); dotted: a perfect count."""
    from .plotting import FAMILY_COLORS

    for family, (row, sel) in result.example(lattice, eta, mu).items():
        x = sel["true"] + rng.uniform(-0.15, 0.15, len(sel))
        ax.plot(x, sel["pred"], ".", color=FAMILY_COLORS.get(family, "0.3"), alpha=0.6,
                label=f"{row['label']} (seed {row['seed']})")  # fmt: skip
    top = result.preds["true"].max()
    ax.plot([0, top], [0, top], "k:", lw=1)
    ax.set_title(rf"{lattice}, $\eta = {eta:g}$, $\mu = {mu:g}$", fontsize=10)
    ax.set_xlabel("true number of worms")
    ax.set_ylabel("predicted")
    ax.legend(fontsize=8)


def store_generalization(axes, verdict, per_mu, lattice, mu_range):
    """The stored instances at ``verdict.n_train``: loss per test lattice (left, training
    ``mu``) and per ``mu`` on the training ``lattice`` (right, grey: the training range)."""
    from .tasks.regression import lattice_order

    order = lattice_order(per_mu["lattice"].unique())
    verdict_loss_vs_lattice(axes[0], verdict, order)
    axes[0].set_xlabel(r"test lattice $N_t\times N_x$ (FL: training lattice only)")
    axes[0].set_ylabel("test loss (MSE), median and min–max")
    axes[0].set_title(f"store: trained on {lattice}, N_train = {verdict.n_train}, training $\\mu$")
    axes[0].legend()
    sel = per_mu[(per_mu["lattice"] == lattice) & (per_mu["n_train"] == verdict.n_train)
                 & (per_mu["augment"] == "none")]  # fmt: skip
    bands_per_mu(axes[1], sel.rename(columns={"mu": "group"}), "loss")
    axes[1].axvspan(*mu_range, color="0.85", zorder=0)
    axes[1].set_yscale("log")
    axes[1].set_xlabel(r"chemical potential $\mu$ (grey: training range)")
    axes[1].set_ylabel(f"test loss (MSE) per $\\mu$ on {lattice}")
    axes[1].set_title("store: median and min–max over instances")
    axes[1].legend()


def phase_predictions(axes, phases, mu_c, outputs, families=("EQ", "ST", "FL")):
    """Chapter 08's Silver Blaze instances (:func:`qftml.tasks.regression.train_phases`):
    predicted (median, min-max band) against true mean per ``mu``, one column per phase
    trained on, one row per output; grey: the training range, dotted: the onset."""
    names = {"n": r"$\langle n\rangle$", "phi2": r"$\langle|\phi|^2\rangle$"}
    for col, (side, (tr, df)) in enumerate(phases.items()):
        for row, out in enumerate(outputs):
            ax = axes[row, col]
            d = df[df["output"] == out]
            truth_per_mu(ax, d)
            bands_per_mu(ax, d, "pred", families)
            ax.axvspan(tr.meta["mu"].min(), tr.meta["mu"].max(), color="0.85", zorder=0)
            ax.axvline(mu_c, color="k", ls=":", lw=1)
            ax.set_ylabel(names.get(out, out))
            if row == 0:
                ax.set_title(f"trained {side} the onset (grey: training range)")
            else:
                ax.set_xlabel(r"chemical potential $\mu$")
    axes[0, 0].legend(fontsize=9)


def phase_losses(axes, losses, onset, mu_range, families=("EQ", "ST", "FL")):
    """Test loss per ``mu`` of instances trained below the onset, above it and on both
    (:func:`qftml.tasks.regression.phase_losses`), one axis per family: median and min-max
    band over instances; grey: the training range, dotted: the onset."""
    kinds = {"below": ("tab:blue", "trained below the onset"),
             "above": ("tab:red", "trained above the onset"),
             "both": ("0.25", "trained on both phases")}  # fmt: skip
    for ax, fam in zip(axes, families, strict=True):
        d = losses[losses["family"] == fam]
        for side, (color, label) in kinds.items():
            piv = d[d["trained"] == side].pivot_table(index="seed", columns="mu", values="loss")
            if len(piv):
                band(ax, piv.columns.to_numpy(float), piv.to_numpy(), color, label)
        ax.axvspan(*mu_range, color="0.85", zorder=0)
        ax.axvline(onset, color="k", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(fam)
        ax.set_xlabel(r"chemical potential $\mu$ (grey: training range)")
    axes[0].set_ylabel("test loss (MSE) per $\\mu$, median and min–max")
    axes[0].legend(fontsize=8)


def loss_per_mu(axes, curves_by_lattice, mu_range, families=("EQ", "ST", "FL")):
    """Test loss per ``mu`` on each lattice (one axis each): median and min-max band over
    instances; grey: the training range."""
    for ax, (lat, df) in zip(axes, curves_by_lattice.items(), strict=True):
        bands_per_mu(ax, df, "mse", families)
        ax.axvspan(*mu_range, color="0.85", zorder=0)
        ax.set_yscale("log")
        ax.set_xlabel(r"chemical potential $\mu$")
        ax.set_title(f"test lattice {lat}")
    axes[0].set_ylabel("test loss (MSE) per $\\mu$")
    axes[0].legend()


def best_worst_grid(axes, picks, outputs, mu_out, families=("EQ", "ST", "FL")):
    """Predicted against true of the best and worst instance of each family
    (:func:`qftml.tasks.regression.best_worst`): one column per family, rows per output at
    the inside ``mu`` and at ``mu_out``."""
    from .plotting import FAMILY_COLORS

    for (f, which, m), (seed, true, pred) in picks.items():
        for j, out in enumerate(outputs):
            ax = axes[2 * j + (m == mu_out), list(families).index(f)]
            predicted_vs_true(ax, true[:, j], pred[:, j], FAMILY_COLORS[f], which=which,
                              seed=seed)  # fmt: skip
            if which == "worst":
                t = true[:, j]
                ax.plot([t.min(), t.max()], [t.min(), t.max()], color="k", lw=1)
                ax.set_title(f"{f}, {out}, $\\mu = {m:g}$", fontsize=10)
                ax.set_xlabel(f"true {out}", fontsize=9)
                ax.set_ylabel(f"predicted {out}", fontsize=9)
    axes[0, 0].legend(fontsize=8)


# --- task 2: flux-violation detection


def val_loss_curves(ax, retraining):
    """Validation loss (BCE) against the epoch of every instance of a
    :class:`qftml.tasks.detection.Retraining`: published winners solid, search winners
    dashed, chance (``log 2``) dotted."""
    from .plotting import FAMILY_COLORS

    for (_, row), inst in zip(retraining.table.iterrows(), retraining.instances, strict=True):
        h = inst.history
        ls = "-" if row["label"].endswith("published") else "--"
        ax.semilogy(h["epoch"], h["val_loss"], ls, color=FAMILY_COLORS[row["family"]], lw=1,
                    label=row["label"] if row["seed"] == 0 else None)  # fmt: skip
    ax.axhline(np.log(2), color="k", ls=":", lw=1, label="chance (log 2)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (BCE)")
    ax.legend(fontsize=8, ncol=2)


def accuracy_map(ax, retraining, label, train_points=()):
    """Accuracy of ``label`` per lattice (rows) and test point ``(eta, mu)`` (columns):
    mean over instances (colour and number) and minimum (in brackets); grey: the model
    cannot run there; red frames: the ``train_points`` on the training lattice. Returns the
    image (for a colour bar)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .plotting import FAMILY_COLORS

    mean, lo = retraining.accuracy_grid(label)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    im = ax.imshow(mean.to_numpy(float), vmin=0.5, vmax=1, cmap=cmap, aspect="auto")
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            v, w = mean.iat[i, j], lo.iat[i, j]
            text = "n/a" if np.isnan(v) else f"{v:.2f}\n({w:.2f})"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="k" if np.isnan(v) or v > 0.8 else "w")  # fmt: skip
    for j, (eta, mu) in enumerate(mean.columns):
        if any(np.isclose(eta, e) and np.isclose(mu, m) for e, m in train_points):
            ax.add_patch(Rectangle((j - 0.5, -0.5), 1, 1, fill=False, ec="r", lw=2))
    ax.set_yticks(range(len(mean.index)), list(mean.index))
    ax.set_xticks(range(mean.shape[1]), [f"{e:g}, {m:g}" for e, m in mean.columns])
    n_inst = retraining.accuracy.loc[retraining.accuracy["label"] == label, "seed"].nunique()
    ax.set_title(f"{label} ({n_inst} instances)", fontsize=10,
                 color=FAMILY_COLORS[label.split()[0]])  # fmt: skip
    ax.grid(False)
    return im


def data_size_panel(ax, curve, column, title=""):
    """Accuracy ``column`` (``"val"`` or ``"large"``) of a
    :class:`qftml.tasks.detection.DataSizeCurve` against ``N_train``: median per label
    (line) and every instance (dots, jittered by seed); chance dotted."""
    from .plotting import FAMILY_COLORS

    t = curve.table
    for label, sub in t.groupby("label", sort=False):
        color = FAMILY_COLORS[label.split()[0]]
        med = sub.groupby("n_train")[column].median()
        ax.semilogx(med.index, med.to_numpy(), "-", color=color, label=f"{label} (median)")
        ax.scatter(sub["n_train"] * (1 + 0.04 * (sub["seed"] - 1)), sub[column], s=14,
                   color=color, alpha=0.6)  # fmt: skip
    ax.axhline(0.5, color="k", ls=":", lw=1)
    ax.set_xticks(curve.sizes, [str(n) for n in curve.sizes])
    ax.minorticks_off()
    ax.set_xlabel(r"training configurations $N_\text{train}$")
    ax.set_title(title, fontsize=10)


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def divergence_panel(ax, maps, family, *, title=True):
    """``div k`` of the example of a :class:`qftml.tasks.detection.FeatureMaps`, labelled
    with the instance of ``family`` shown next to it."""
    from .plotting import FAMILY_COLORS

    m = maps.models[family]
    ax.imshow(maps.divergence, cmap="RdBu_r", vmin=-2, vmax=2, origin="lower")
    ax.set_title(r"$\nabla\cdot k$" if title else "", fontsize=9)
    ax.set_ylabel(f"{m.label}\nseed {m.seed}", color=FAMILY_COLORS[family])
    _bare(ax)


def feature_map_panel(ax, maps, family, rank):
    """The channel of rank ``rank`` (by the change the worm causes) of the first layer of
    ``family`` in a :class:`qftml.tasks.detection.FeatureMaps`; dashed squares: the sites
    where the divergence stencil responds to the worm's ends."""
    from matplotlib.patches import Rectangle

    m = maps.models[family]
    _bare(ax)
    if rank >= len(m.order):
        ax.set_axis_off()
        return
    c = m.order[rank]
    ax.imshow(m.maps[c], cmap="magma", origin="lower")
    for t, x in maps.marks:
        ax.add_patch(Rectangle((x - 0.5, t - 0.5), 1, 1, fill=False, ec="c", ls="--", lw=1.2))
    ax.set_title(f"channel {c}", fontsize=9)
