# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (chap-symmetry-via-duality)=
# # Symmetry via duality
#
# **Overview.** A field theory is defined by its action, and its symmetries are those of the
# action. A network ensemble at finite width has no known action, so its symmetries cannot
# be read off in function space. They can be read off in *parameter space*: correlators are
# integrals over parameters, and if a transformation of the outputs (or inputs) can be
# absorbed into a change of variables under which the parameter distribution is invariant,
# every correlator, and therefore the density over functions, is invariant
# {cite}`Maiti:2021fpy,Maiti:talk`. This chapter tests the four examples of the source
# numerically, at small and large width, by transforming the outputs of the *same* networks
# with Haar-random group elements and testing all correlators up to fourth order for a
# change; and it shows that the test detects a symmetry that the parameter distribution
# breaks.

# %% tags=["parameters"]
profile = "ci"

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from qftml import verdicts
from qftml.nnqft import (
    Ensemble,
    haar_orthogonal,
    haar_unitary,
    invariance_test,
    nngp_kernel,
    rotate_outputs,
)
from qftml.profiles import setup

P = setup("11_symmetry_via_duality", profile)


# %% [markdown]
# **At full statistics.** This chapter's verdicts from its `paper` run, kept in the results
# store with their provenance ({ref}`reproduce`); the cells below run at the page's profile
# and print their own verdict lines.

# %%
verdicts.page_table("11_symmetry_via_duality")

# %% [markdown]
# ## Parameter space and function space
#
# The same correlator can be computed in two duality frames:
#
# $$
# G^{(n)}(x_1,\dots,x_n) = \frac{1}{Z_\theta}\int d\theta\,P_\theta\, f_\theta(x_1)\cdots f_\theta(x_n)
#   = \frac{1}{Z_f}\int Df\,e^{-S[f]}\,f(x_1)\cdots f(x_n).
# $$
#
# A transformation $f'(x) = \Phi(f(x'))$ leaves the density invariant,
# $D[\Phi f]\,e^{-S[\Phi f]} = Df\,e^{-S[f]}$, exactly when every correlator is invariant,
# $G^{(n)}(x_1,\dots,x_n) = \mathbb E[\Phi(f(x'_1))\cdots\Phi(f(x'_n))]$. In parameter space
# the transformed network is often the same network with transformed parameters
# $\theta_T\subset\theta$; if $P_{\theta_T}$ is invariant under that change of variables
# (with unit Jacobian), the correlators are invariant at **every** width: this is
# *symmetry via duality* {cite}`Maiti:2021fpy`.
#
# ## The test
#
# For a sample of networks we compute all distinct correlators of orders 1 to 4 (over input
# points and output components) before and after applying a group element $g$ to the
# outputs of the same networks, and test whether the differences vanish. The difference of
# a product over the same network is a per-network quantity, so its block means are
# independent; Hotelling's $T^2 = B\,\bar d^{\,T}S^{-1}\bar d$, with $S$ the covariance of
# the $B$ block means $d$, follows $\frac{r(B-1)}{B-r}F(r, B-r)$ under invariance, which
# gives a $p$-value that accounts for the strong correlations between correlators
# (`qftml.nnqft.invariance_test`). A symmetric ensemble gives $p$ uniform in $[0,1]$; a
# broken one gives $p\approx 0$. First, a calibration of the test on ensembles that are
# symmetric by construction (SO(3)-invariant output layer), each with a fresh Haar-random
# rotation:

# %%
seeds = iter(int(s) for s in np.random.SeedSequence(P["seed"]).generate_state(256))
rng = np.random.default_rng(next(seeds))
n_nets = int(P["n_nets"])
x_out = np.asarray(P["x_out"], dtype=float)[:, None]
small, large = int(P["small_width"]), int(P["large_width"])

calib = []
for _ in range(int(P["n_calibration"])):
    ens = Ensemble("erf", (small,), d_out=3)
    f = ens.sample(x_out, n_nets, seed=next(seeds))
    calib.append(invariance_test(f, rotate_outputs(f, haar_orthogonal(3, rng))).p_value)
calib = np.array(calib)
ks = stats.kstest(calib, "uniform")
alpha = float(P["alpha"])
calibrated = bool(ks.pvalue > alpha)
print(f"{len(calib)} symmetric ensembles: p-values {np.round(np.sort(calib), 3)}")
print(f"Kolmogorov-Smirnov test of uniformity: p = {ks.pvalue:.2f}")
print(f"p-values consistent with uniform at level {alpha} (the test is calibrated): {calibrated}")

# %% [markdown]
# If the $p$-values of symmetric ensembles are consistent with a uniform distribution (the
# verdict printed above), the test is calibrated: a small $p$ below means a broken
# symmetry, not a biased test.
#
# In what follows every example is shown the same way: the differences of all correlators,
# after minus before the transformation, in units of their standard error, for a small
# width (far from the Gaussian process, where no Gaussian argument could help) and a large
# one. The grey band is $\pm 3$ standard errors.


# %%
def show(ax, res, label, color):
    z = res.diff.value / np.where(res.diff.error > 0, res.diff.error, 1.0)
    p = f"p = {res.p_value:.2g}" if res.p_value > 0 else "p < 1e-300"
    ax.plot(np.arange(len(z)), z, ".", ms=3, color=color, label=f"{label}: {p}")


def panel(ax, title, results):
    for (label, res), color in zip(results, ("C0", "C1", "C3", "C2"), strict=False):
        show(ax, res, label, color)
    ax.axhspan(-3, 3, color="0.85", zorder=0)
    ax.set_title(title)
    ax.set_xlabel("correlator index (orders 1 to 4)")
    ax.legend(fontsize=8, markerscale=3, loc="upper left")


summary = []


def record(example, width, res_sym, res_broken):
    summary.append((example, width, res_sym, res_broken))
    print(
        f"{example}, N = {width}:\n  symmetric: {res_sym.summary()}\n"
        f"  broken:    {res_broken.summary()}"
    )


# %% [markdown]
# ## (a) SO(D) output symmetry
#
# Write $f_i(x) = W_{ij}g_j(x) + b_i$, with $g$ the last hidden layer and $\theta_g$ all
# other parameters. Under $f_i\mapsto R_{ij}f_j$ the transformed network is the same network
# with $\tilde W = RW$, $\tilde b = Rb$, and $|R| = 1$, so
#
# $$
# \mathbb E[R_{i_1j_1}f_{j_1}(x_1)\cdots R_{i_nj_n}f_{j_n}(x_n)]
# = \frac{1}{Z_\theta}\int D\tilde W D\tilde b D\theta_g\,
#   (\tilde W g + \tilde b)_{i_1}\cdots(\tilde W g + \tilde b)_{i_n}\,
#   P_{R^{-1}\tilde W} P_{R^{-1}\tilde b}P_{\theta_g}
# = G^{(n)}_{i_1\cdots i_n}(x_1,\dots,x_n)
# $$
#
# whenever $P_W$ and $P_b$ are $SO(D)$ invariant, as i.i.d. Gaussian entries are. The
# counterexample gives the rows of the last layer different variances (`output_scale`),
# so $P_W$ is not invariant and $G^{(2)}_{ij}\propto \operatorname{diag}(s_i^2)$ is not
# $\propto\delta_{ij}$.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), sharey=True)
for ax, width in zip(axes, (small, large), strict=True):
    ens = Ensemble("erf", (width,), d_out=3)
    broken = ens.with_(output_scale=tuple(P["output_scale"]))
    r = haar_orthogonal(3, rng)
    f = ens.sample(x_out, n_nets, seed=next(seeds))
    fb = broken.sample(x_out, n_nets, seed=next(seeds))
    res = invariance_test(f, rotate_outputs(f, r))
    res_b = invariance_test(fb, rotate_outputs(fb, r))
    panel(ax, f"SO(3) output, Erf-net, N = {width}", [("invariant", res), ("broken", res_b)])
    record("(a) SO(3) output", width, res, res_b)
axes[0].set_ylabel("(after - before) / standard error")
axes[0].set_yscale("symlog", linthresh=3)
fig.tight_layout()
plt.show()

# %% [markdown]
# Nothing in the argument involves the hidden layers ($\theta_g$ is arbitrary): a deeper
# network, three hidden layers, is just as invariant, and its counterexample just as broken.

# %%
depth, deep_width = int(P["deep_layers"]), int(P["deep_width"])
ens = Ensemble("tanh", (deep_width,) * depth, d_out=3)
r_deep = haar_orthogonal(3, rng)
f_deep = ens.sample(x_out, n_nets, seed=next(seeds))
fb_deep = ens.with_(output_scale=tuple(P["output_scale"])).sample(x_out, n_nets, seed=next(seeds))
res = invariance_test(f_deep, rotate_outputs(f_deep, r_deep))
res_b = invariance_test(fb_deep, rotate_outputs(fb_deep, r_deep))
record(f"(a) SO(3), {depth} layers", deep_width, res, res_b)

# %% [markdown]
# The two-point matrix $G^{(2)}_{ij}(x_1, x_1)$ before and after the rotation shows the
# mechanism of the counterexample: with invariant parameters it is $\delta_{ij}K$, which a
# rotation leaves alone; with unequal row variances it is diagonal but not proportional to
# the identity, and $R\,\mathrm{diag}(s^2)R^T$ has off-diagonal entries.

# %%
k11 = nngp_kernel("erf", x_out[:1])[0, 0]
g2 = {
    "invariant": np.einsum("ni,nj->ij", f[:, 0], f[:, 0]) / n_nets,
    "invariant, rotated": np.einsum("ni,nj->ij", *(2 * [rotate_outputs(f, r)[:, 0]])) / n_nets,
    "broken": np.einsum("ni,nj->ij", fb[:, 0], fb[:, 0]) / n_nets,
    "broken, rotated": np.einsum("ni,nj->ij", *(2 * [rotate_outputs(fb, r)[:, 0]])) / n_nets,
}
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
vmax = max(np.abs(m).max() for m in g2.values())
for ax, (name, mat) in zip(axes, g2.items(), strict=True):
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
    ax.set_title(name, fontsize=10)
    ax.set_xticks(range(3), ["$f_1$", "$f_2$", "$f_3$"])
    ax.set_yticks(range(3), ["$f_1$", "$f_2$", "$f_3$"])
fig.colorbar(im, ax=axes, shrink=0.8, label=r"$G^{(2)}_{ij}(x_1, x_1)$")
plt.show()
print(f"closed-form K(x_1, x_1) = {k11:.4f} (N = {large}, all networks)")

# %% [markdown]
# ## (b) SO(d) input symmetry
#
# Write $f_i(x) = g_{ij}(W_{jk}x_k + b_j)$ with $W$ the first layer. A rotation of the inputs,
# $x\mapsto Rx$, is the change of variables $\tilde W = WR$, and the correlators at rotated
# inputs equal those at the original inputs when $P_W$ is invariant under right
# multiplication by $SO(d)$, as i.i.d. Gaussian entries are; the bias is untouched. The test
# evaluates the same networks at $x_a$ and at $Rx_a$. The counterexample scales the columns
# of $W^0$ differently (`input_scale`), an anisotropic first layer.

# %%
x_in = np.asarray(P["x_in"], dtype=float)
d = x_in.shape[1]
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), sharey=True)
for ax, width in zip(axes, (small, large), strict=True):
    q = haar_orthogonal(d, rng)
    both = np.vstack([x_in, x_in @ q.T])
    ens = Ensemble("relu", (width,))
    f = ens.sample(both, n_nets, seed=next(seeds))
    fb = ens.with_(input_scale=tuple(P["input_scale"])).sample(both, n_nets, seed=next(seeds))
    m = len(x_in)
    res = invariance_test(f[:, :m], f[:, m:])
    res_b = invariance_test(fb[:, :m], fb[:, m:])
    panel(ax, f"SO({d}) input, ReLU-net, N = {width}", [("invariant", res), ("broken", res_b)])
    record(f"(b) SO({d}) input", width, res, res_b)
axes[0].set_ylabel("(after - before) / standard error")
axes[0].set_yscale("symlog", linthresh=3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## (c) Translation invariance from a bias uniform on the circle
#
# The first layer has *deterministic* weights and a bias uniform on the circle,
# $b\sim\mathcal U(S^1)$, represented as $[0,1)$ with addition mod 1:
# $f_i(x) = g_{ij}\big((W_{jk}x_k \bmod 1) + b_j\big)$ with $g$ 1-periodic in its argument
# (here $\varphi(u) = \cos 2\pi u$, followed by a Gaussian linear layer). A translation
# $x\mapsto x + c$ is the change of variables $b'_j = (W_{jk}c_k \bmod 1) + b_j$, a rotation
# of the circle, under which the uniform distribution is invariant, so
#
# $$
# G^{(n)}(x_1 + c,\dots,x_n + c) = G^{(n)}(x_1,\dots,x_n).
# $$
#
# The kernel is that of random Fourier features {cite}`Rahimi:2007`,
# $K = \sigma_b^2 + \frac{\sigma_w^2}{2}\,\mathbb E_W\cos 2\pi W(x - x')$ (with Gaussian
# rows of $W$, $\frac{\sigma_w^2}{2}e^{-2\pi^2\sigma_w^2|x-x'|^2/d}$). Two counterexamples
# restrict the bias to an arc $[0, r)$. A subtlety that the test gets right: for $r = 1/2$
# the ensemble is **still** exactly invariant, because $\cos 2\pi(u + \frac12) = -\cos 2\pi u$
# and the sign is absorbed by the symmetric last layer, so the relevant circle has length
# $\frac12$. An arc $r = 1/4$ does break the symmetry.

# %%
x_tr = np.asarray(P["x_translation"], dtype=float)[:, None]
shift = float(P["shift"])
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), sharey=True)
for ax, width in zip(axes, (small, large), strict=True):
    ens = Ensemble("cos", (width,), input_bias="circle", fixed_input_weights=True)
    both = np.vstack([x_tr, x_tr + shift])
    m = len(x_tr)
    out = {}
    for label, rr in (("uniform on S^1", 1.0), ("arc r = 1/2", 0.5), ("arc r = 1/4", 0.25)):
        f = ens.with_(bias_range=rr).sample(both, n_nets, seed=next(seeds))
        out[label] = invariance_test(f[:, :m], f[:, m:])
    panel(ax, f"translation by c = {shift}, cos-net, N = {width}", list(out.items()))
    record("(c) translation", width, out["uniform on S^1"], out["arc r = 1/4"])
    print(f"  arc r = 1/2: {out['arc r = 1/2'].summary()}")
axes[0].set_ylabel("(after - before) / standard error")
axes[0].set_yscale("symlog", linthresh=3)
fig.tight_layout()
plt.show()

# %% [markdown]
# The uniform circle and the half-circle pass at both widths. The quarter-circle breaks the
# symmetry strongly at $N = 2$ but only weakly at $N = 500$, and this is physics, not a
# weakness of the test: the symmetry-breaking part of the two-point function is
# $-\frac{1}{\pi}\sin 2\pi\big(u(x_1) + u(x_2) + \tfrac14\big)$-like per hidden unit, odd in
# the frequency $W_j$; summed over $N$ fixed Gaussian frequencies it averages to zero like
# $1/\sqrt N$, so a wide network with a symmetric spread of frequencies is approximately
# translation invariant even with a broken bias distribution. The printed $p$-values
# quantify how much breaking is left at each width.
#
# ## (d) U(D) and SU(D) output symmetry with a complex last layer
#
# With a complex last layer, $W = (A + iB)/\sqrt2$ and $b$ likewise, with $A, B$ i.i.d.
# Gaussian ("all parts from identical SO(D)-invariant distributions"), a unitary
# $U\in U(D)$ acts as $f\mapsto Uf$, $\tilde W = UW$, and the density of $W$,
# $\propto e^{-\operatorname{Tr}W^\dagger W/\sigma^2}$, is $U(D)$ invariant, hence so is the
# network density (and a fortiori $SU(D)$). The invariant correlators are those with equal
# numbers of $f$ and $\bar f$: $\mathbb E[f_i\bar f_j] = \delta_{ij}K$, while
# $\mathbb E[f_if_j] = 0$. The test uses the real and imaginary parts of the outputs, whose
# correlators contain all correlators of $f$ and $\bar f$. The counterexample is a *real*
# last layer: $SO(D)$ invariant, but not $U(D)$ invariant, since
# $\mathbb E[f_if_j] = \delta_{ij}K\mapsto (UU^T)_{ij}K\neq\delta_{ij}K$.

# %%
x_c = np.asarray(P["x_complex"], dtype=float)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), sharey=True)
for ax, width in zip(axes, (small, large), strict=True):
    u = haar_unitary(2, rng)
    su = haar_unitary(2, rng, special=True)
    ens = Ensemble("erf", (width,), d_out=2, complex_output=True)
    f = ens.sample(x_c, n_nets, seed=next(seeds))
    fr = Ensemble("erf", (width,), d_out=2).sample(x_c, n_nets, seed=next(seeds))
    fr = fr.astype(complex)
    res_u = invariance_test(f, rotate_outputs(f, u))
    res_su = invariance_test(f, rotate_outputs(f, su))
    res_b = invariance_test(fr, rotate_outputs(fr, u))
    panel(
        ax,
        f"U(2) output, complex Erf-net, N = {width}",
        [("U(2), complex layer", res_u), ("SU(2), complex layer", res_su), ("U(2), real", res_b)],
    )
    record("(d) U(2) output", width, res_u, res_b)
    print(f"  SU(2), complex layer: {res_su.summary()}")
axes[0].set_ylabel("(after - before) / standard error")
axes[0].set_yscale("symlog", linthresh=3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary of the tests

# %%
print(f"{'example':<20} {'N':>5} {'p (symmetric)':>14} {'p (broken)':>11} {'max |z| broken':>15}")
for example, width, res, res_b in summary:
    print(
        f"{example:<20} {width:>5} {res.p_value:>14.3f} {res_b.p_value:>11.2g} {res_b.max_z:>15.1f}"
    )
ok = all(r.p_value > alpha for _, _, r, _ in summary)
detected = all(rb.p_value < alpha for _, _, _, rb in summary)
print(f"all symmetric ensembles pass at level {alpha}: {ok}; all breakings detected: {detected}")
failed = [f"{e} (N = {w}, p = {r.p_value:.3g})" for e, w, r, _ in summary if r.p_value <= alpha]
missed = [f"{e} (N = {w}, p = {rb.p_value:.3g})" for e, w, _, rb in summary if rb.p_value >= alpha]
e, w, _, rb = max(summary, key=lambda row: row[3].p_value)
print(f"symmetric ensembles rejected: {failed or 'none'}")
print(f"counterexamples not detected: {missed or 'none'}")
print(f"weakest detection: {e} at N = {w}, p = {rb.p_value:.2g}, max |z| = {rb.max_z:.1f}")

# %% [markdown]
# The source's examples as verdicts for {ref}`the landing page <chap-statements>`: an
# example holds when the test is calibrated, its invariant ensembles pass at every width and
# its counterexample is detected at some width (the test can see the breaking).

# %%
STATEMENTS = {
    "(a)": "SO(D) output symmetry: an SO(D)-invariant last layer gives an invariant density",
    "(b)": "SO(d) input symmetry: an SO(d)-invariant first layer gives an invariant density",
    "(c)": "translation input symmetry: a first-layer bias uniform on S^1 gives invariance",
    "(d)": "SU(D) output symmetry: a complex last layer gives an SU(D) (here U(D)) invariance",
}
for tag, statement in STATEMENTS.items():
    rows = [row for row in summary if row[0].startswith(tag)]
    p_sym = min(r.p_value for _, _, r, _ in rows)
    p_broken = [rb.p_value for _, _, _, rb in rows]
    verdicts.record(
        f"symmetry-via-duality {tag}",
        statement,
        calibrated and p_sym > alpha and min(p_broken) < alpha,
        p_sym,
        evidence=f"smallest p of the invariant ensembles ({len(rows)} at N in "
        f"{sorted({w for _, w, _, _ in rows})}), level {alpha:g}; counterexamples p = "
        + ", ".join(f"{p:.2g}" for p in p_broken)
        + f"; calibration KS p = {ks.pvalue:.2f}",
    )

# %% [markdown]
# The verdicts above are computed from the tests: which invariant ensembles pass, at small
# width (strongly non-Gaussian, where the symmetry of the Gaussian-process kernel alone
# would prove nothing about the higher correlators) and at large width, and which
# counterexamples are detected. The weakest detection is expected for the translation
# counterexample at large width, whose breaking is itself suppressed like $1/\sqrt N$ (see
# above). Where all invariant ensembles pass at both widths, the symmetry is a property of
# the parameter distribution, not of the infinite-width limit, as symmetry via duality
# states.
#
# ## Neural networks and field theories
#
# The examples realize the correspondence of the source {cite}`Maiti:talk`:
#
# | neural networks | field theories |
# |---|---|
# | input $x$ | space-time points |
# | network output $f(x)$ | free or interacting fields |
# | input-layer symmetries (examples b, c) | space-time symmetries (rotations, translations) |
# | output-layer symmetries (examples a, d) | internal symmetries ($SO(D)$, $U(D)$) |
#
# Symmetries can also act on hidden layers; they give network densities structure beyond
# that of ordinary field theories. **Next:** {ref}`chap-symmetry-and-training` asks what
# training does to these symmetries.
