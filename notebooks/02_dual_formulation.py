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
# (chap-dual)=
# # Dual formulation
#
# **Overview.** At $\mu \neq 0$ the lattice action of {ref}`chap-model` is complex and cannot
# be sampled directly. Gattringer and Kloiber {cite}`Gattringer:2012df` rewrote the partition
# sum exactly in terms of integer link variables with real, non-negative weights. This
# chapter derives that *dual formulation* step by step, computes the site weights $W(f)$ to
# machine precision, and shows the observables $n$ and $|\phi|^2$ that the networks of the
# later chapters learn to predict. The numbers come from `qftml.lattice`
# (`log_weights`, `sample`, `divergence`).
#
# **Prerequisites:** the lattice action of {ref}`chap-model`.

# %% tags=["parameters"]
profile = "ci"

# %%
from qftml.profiles import setup

P = setup("02_dual_formulation", profile)

# %%
import matplotlib.pyplot as plt
import mpmath
import numpy as np

from qftml import lattice

# %% [markdown]
# ## From the field to integer links
#
# The lattice action (Eq. (2) of the seed talk {cite}`Favoni:2021talk`) on an
# $N_t\times N_x$ periodic lattice, with $\hat 2 = \hat t$ the time direction, reads
#
# $$
# S = \sum_x \Bigl(\eta|\phi_x|^2 + \lambda|\phi_x|^4
#   - \sum_{\nu=1}^{2}\bigl(e^{\mu\delta_{\nu,2}}\phi_x^*\phi_{x+\hat\nu}
#   + e^{-\mu\delta_{\nu,2}}\phi_x^*\phi_{x-\hat\nu}\bigr)\Bigr).
# $$
#
# Shifting $x \to x+\hat\nu$ in the last term, the hopping part of $e^{-S}$ is a product over
# links of $\exp(e^{\mu\delta_{\nu,2}}\phi_x^*\phi_{x+\hat\nu})
# \exp(e^{-\mu\delta_{\nu,2}}\phi_{x+\hat\nu}^*\phi_x)$. Expand both exponentials, with
# summation indices $n_{x,\nu}, \bar n_{x,\nu} \ge 0$, and write $\phi_x = r_x e^{i\theta_x}$:
#
# $$
# Z = \int\!\prod_x r_x\,dr_x\,d\theta_x\, e^{-\eta r_x^2 - \lambda r_x^4}
# \prod_{x,\nu}\sum_{n,\bar n}
# \frac{e^{\mu\delta_{\nu,2}(n-\bar n)}}{n!\,\bar n!}\,
# (r_x r_{x+\hat\nu})^{n+\bar n}\, e^{-i(\theta_x - \theta_{x+\hat\nu})(n-\bar n)} .
# $$
#
# Change variables to $k = n - \bar n \in \mathbb Z$ and $l = \min(n,\bar n) \ge 0$, so that
# $n + \bar n = |k| + 2l$ and $n!\,\bar n! = (|k|+l)!\,l!$. Now every integral factorizes:
#
# * the **phase** integral $\int_0^{2\pi} d\theta_x\, e^{i\theta_x
#   \sum_\nu (k_{x,\nu} - k_{x-\hat\nu,\nu})}$ vanishes unless the flux is conserved,
#   $\sum_\nu (k_{x,\nu} - k_{x-\hat\nu,\nu}) = 0$ at every site;
# * the **radial** integral at $x$ collects the powers of $r_x$ from the four links touching
#   $x$: $W(f_x) = \int_0^\infty dr\, r^{f_x+1} e^{-\eta r^2 - \lambda r^4}$ with
#   $f_x = \sum_\nu\bigl[|k_{x,\nu}| + |k_{x-\hat\nu,\nu}| + 2(l_{x,\nu} + l_{x-\hat\nu,\nu})\bigr]$.
#
# Up to a constant factor $(2\pi)^V$,
#
# $$
# Z = \sum_{\{k,l\}} \prod_{x,\nu}
#   \frac{e^{\mu\,\delta_{\nu,2}\,k_{x,\nu}}}{(|k_{x,\nu}|+l_{x,\nu})!\;l_{x,\nu}!}
#   \prod_x W(f_x)\;\prod_x \delta\Bigl(\sum_\nu (k_{x,\nu} - k_{x-\hat\nu,\nu})\Bigr),
# $$
#
# a sum of **positive** terms: the sign problem is gone {cite}`Gattringer:2012df`. The
# chemical potential now only weights the net temporal flux: $\mu$ enters as
# $e^{\mu \sum_x k_{x,t}} = e^{\mu N_t Q}$ with the integer charge $Q$ (the flux through a
# time slice, the same on every slice by conservation).
#
# ## Observables
#
# Derivatives of $\log Z$ turn into averages over the dual configurations:
#
# $$
# n = \frac{1}{V}\frac{\partial\log Z}{\partial\mu} = \Bigl\langle \frac1V\sum_x k_{x,t}\Bigr\rangle,
# \qquad
# \langle|\phi|^2\rangle = \Bigl\langle \frac1V\sum_x \frac{W(f_x+2)}{W(f_x)}\Bigr\rangle,
# $$
#
# the second because inserting $r_x^2$ raises the power of $r_x$ in the radial integral by
# two. These are the two regression targets of the seed (its Eq. (3)).
#
# ## The site weights $W(f)$
#
# With $u = r^2$, $W(f) = \tfrac12 I(f/2)$ and $I(\nu) = \int_0^\infty u^\nu
# e^{-\eta u-\lambda u^2}du$. The free field has $I(\nu) = \Gamma(\nu+1)/\eta^{\nu+1}$.
# For $\lambda>0$ integration by parts gives $\nu I(\nu-1) = \eta I(\nu) + 2\lambda
# I(\nu+1)$; `qftml.lattice.log_weights` runs it downwards as the continued fraction
# $I(\nu)/I(\nu-1) = \nu/(\eta + 2\lambda\, I(\nu+1)/I(\nu))$, in which only positive
# numbers are added (no cancellation) and errors shrink at every step; the top value and the
# two anchors $W(0)$, $W(1)$ come from quadrature of the integrand divided by its maximum
# (nothing overflows, even for $f$ in the thousands). The chain reaches $f$ of a few tens
# at these couplings; the table is extended automatically if it ever needs more.
#
# We check the table against 40-digit quadrature (mpmath) and print the largest deviation of
# $\log W$ in units of the machine epsilon times $\max(1, |\log W|)$:

# %%
eta, lam, f_max = P["eta"], P["lam"], P["f_max"]
eps = np.finfo(float).eps
lw = {lam_: lattice.log_weights(eta, lam_, f_max) for lam_ in (0.0, lam)}


def log_w_mp(f, eta, lam):
    with mpmath.workdps(40):
        e, g = mpmath.mpf(eta), mpmath.mpf(lam)
        r0 = mpmath.sqrt((f + 1) / (e + mpmath.sqrt(e**2 + 4 * g * (f + 1))))
        val = mpmath.quad(
            lambda r: r ** (f + 1) * mpmath.exp(-e * r**2 - g * r**4),
            [0, r0 / 2, r0, 2 * r0, 4 * r0, mpmath.inf],
        )
        return float(mpmath.log(val))


check_f = [0, 1, 2, 5, 10, 30, 100, 250, f_max]
worst = 0.0
for f in check_f:
    ref = log_w_mp(f, eta, lam)
    worst = max(worst, abs(lw[lam][f] - ref) / (eps * max(1.0, abs(ref))))
print(f"eta = {eta}, lambda = {lam}: max |log W - log W_40 digits| = {worst:.2f} eps |log W|")
f = np.arange(2, f_max - 1)
resid = (eta + 2 * lam * np.exp(lw[lam][f + 2] - lw[lam][f])) / (
    f / 2 * np.exp(lw[lam][f - 2] - lw[lam][f])
) - 1
print(
    f"recurrence eta W(f) + 2 lam W(f+2) = (f/2) W(f-2): max relative residual {np.abs(resid).max():.1e}"
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
fs = np.arange(0, 61)
for lam_, style in ((0.0, "--"), (lam, "-")):
    axes[0].plot(fs, lw[lam_][fs], style, label=rf"$\lambda = {lam_:g}$")
    ratio = np.exp(lw[lam_][fs + 2] - lw[lam_][fs])
    axes[1].plot(fs[::2], ratio[::2], style + "o", ms=3, label=rf"$\lambda = {lam_:g}$")
axes[0].set(xlabel="$f$", ylabel=r"$\log W(f)$", title=rf"site weights, $\eta = {eta}$")
axes[1].set(
    xlabel="$f$ (even: closed configurations)",
    ylabel=r"$W(f+2)/W(f)$",
    title=r"the local $|\phi|^2$ estimator",
)
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# At $\lambda = 0$ the ratio $W(f+2)/W(f) = (f/2+1)/\eta$ grows without bound (heavy
# occupation is cheap in a free theory); the quartic term bends it to $\sim\sqrt{f/(4\lambda)}$:
# the local $|\phi|^2$ grows only like the square root of the local occupation.
#
# ## A dual configuration
#
# One configuration from the worm sampler of the next chapter ({ref}`chap-worm`). Left: the
# flux $k$ drawn as arrows on the links (width $\propto |k|$), which forms closed loops and
# loops winding around the periodic time direction; right: $f_x$. The divergence vanishes at
# every site.

# %%
ex = P["example"]
ens = lattice.sample(
    ex["nt"], ex["nx"], eta, lam, ex["mu"], 1, seed=P["seed"], n_therm=ex["n_therm"]
)
k, l = ens.k[0], ens.l[0]
print(f"{ex['nt']} x {ex['nx']} lattice at mu = {ex['mu']}: charge Q = sum_x k_t / N_t = "
      f"{k[1].sum() // ex['nt']}, n = {ens.n[0]:.4f}, |phi|^2 = {ens.phi2[0]:.4f}")  # fmt: skip
print("max |divergence| over the sites:", int(np.abs(lattice.divergence(k)).max()))
n_r = np.abs(k) + 2 * l
f_site = n_r[0] + np.roll(n_r[0], 1, 1) + n_r[1] + np.roll(n_r[1], 1, 0)

fig, axes = plt.subplots(1, 2, figsize=(10, 5.5), gridspec_kw={"width_ratios": [1, 1.15]})
ax = axes[0]
for t in range(ex["nt"]):
    for x in range(ex["nx"]):
        for nu, (dx, dt) in enumerate(((1, 0), (0, 1))):
            kk = k[nu, t, x]
            if kk:
                sx, st = (x, t) if kk > 0 else (x + dx, t + dt)
                ax.annotate("", xy=(sx + np.sign(kk) * dx, st + np.sign(kk) * dt), xytext=(sx, st),
                            arrowprops={"arrowstyle": "-|>", "lw": 0.8 + 0.8 * abs(kk), "color": "C0"})  # fmt: skip
ax.scatter(*np.meshgrid(np.arange(ex["nx"]), np.arange(ex["nt"])), s=6, c="k")
ax.set(xlim=(-0.5, ex["nx"] + 0.5), ylim=(-0.5, ex["nt"] + 0.5), xlabel="$x$ (lattice units)",
       ylabel="$t$ (lattice units)", title="flux $k$ (arrows: direction of flow)", aspect="equal")  # fmt: skip
im = axes[1].imshow(f_site, origin="lower", cmap="viridis")
axes[1].set(xlabel="$x$ (lattice units)", ylabel="$t$ (lattice units)", title="$f_x$")
fig.colorbar(im, ax=axes[1], label="$f_x$")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * The complex action becomes a sum over integer link fields $k$ (conserved flux) and
#   $l \ge 0$ with positive weights; $\mu$ only weights the winding charge $Q$.
# * $n$ and $|\phi|^2$ are averages of local functions of $(k, l)$; $W(f)$ is computed to
#   machine precision for every $f$ the chain can reach.
# * The constraint $\nabla\!\cdot k = 0$ is what the flux-violation tasks later ask networks to
#   check, with `qftml.lattice.divergence` as the ground truth.
#
# **Next:** {ref}`chap-worm` samples these configurations and validates the sampler against
# exact results.
