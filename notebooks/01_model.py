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
# (chap-model)=
# # The model: a charged scalar field at nonzero density
#
# **Overview.** The physical system of Part I is a complex scalar field in 1+1 dimensions
# with a quartic self-interaction and a chemical potential $\mu$ coupled to its conserved
# U(1) charge {cite}`Gattringer:2012df,Bulusu:2021njs`. This chapter writes down its
# continuum and lattice actions, shows that the lattice action is complex for $\mu\neq 0$
# (the *sign problem*), measures how severe that problem is with an exact computation for
# the free field, and explains why the dual formulation of the next chapters removes it.

# %% tags=["parameters"]
profile = "ci"

# %%
import matplotlib.pyplot as plt
import numpy as np

from qftml.lattice import log_average_phase
from qftml.profiles import setup

P = setup("01_model", profile)

# %% [markdown]
# ## Continuum action
#
# In Euclidean space-time $x = (x_1, x_2)$, with $x_2$ the (imaginary) time direction, the
# action of a complex field $\phi$ of bare mass $m$ and coupling $\lambda$ at chemical
# potential $\mu$ reads {cite}`Gattringer:2012df`
#
# $$
# S = \int d^2x \,\Big[ (\partial_2 + \mu)\phi^*\,(\partial_2 - \mu)\phi
#     + \partial_1\phi^*\,\partial_1\phi + m^2 |\phi|^2 + \lambda |\phi|^4 \Big].
# $$
#
# The chemical potential enters like the time component of an imaginary U(1) gauge field,
# $\partial_2 \to \partial_2 \mp \mu$; the source talk {cite}`Favoni:2021talk` writes the same
# coupling in Minkowski form as $D_0 = \partial_0 - i\mu$. The theory is invariant under the
# global U(1) rotation $\phi \to e^{i\alpha}\phi$, whose conserved charge density $n$ is
# what $\mu$ controls.
#
# ## Lattice action
#
# On an $N_t\times N_x$ lattice with periodic boundary conditions, lattice spacing 1 and
# $\hat\nu$ the unit vector in direction $\nu$ ($\nu = 1$ space, $\nu = 2$ time), the
# discretized action is {cite}`Gattringer:2012df,Favoni:2021talk`
#
# $$
# S_\text{lat} = \sum_x \Big( \eta\,|\phi_x|^2 + \lambda\,|\phi_x|^4
#   - \sum_{\nu=1}^{2} \big[ e^{\mu\delta_{\nu,2}}\, \phi_x^*\phi_{x+\hat\nu}
#   + e^{-\mu\delta_{\nu,2}}\, \phi_x^*\phi_{x-\hat\nu} \big] \Big),
# $$
#
# with $\eta = 2D + m^2 = 4 + m^2$ in $D = 2$ dimensions.
#
# The parameters of Part I are $\eta = 4.01$ (a light particle, $m^2 = 0.01$) and
# $\lambda = 1$, with $\mu$ scanned across the onset of the particle density.
#
# ## The sign problem
#
# Under complex conjugation the hopping term in time turns $e^{\pm\mu}$ into $e^{\mp\mu}$:
# $S_\text{lat}(\mu)^* = S_\text{lat}(-\mu)$. For $\mu \neq 0$ the Boltzmann weight
# $e^{-S_\text{lat}}$ is complex and cannot serve as a probability for Monte Carlo
# importance sampling. The standard workaround samples the *phase-quenched* weight
# $e^{-\operatorname{Re} S}$ and reweights with the phase $e^{-i\operatorname{Im}S}$:
#
# $$
# \langle O \rangle = \frac{\langle O\, e^{i\theta} \rangle_\text{pq}}{\langle e^{i\theta}\rangle_\text{pq}},
# \qquad \langle e^{i\theta}\rangle_\text{pq} = \frac{Z(\mu)}{Z_\text{pq}(\mu)} .
# $$
#
# The average phase is a ratio of partition functions, so it falls exponentially with the
# volume $V = N_t N_x$, and the statistical error of the reweighted estimate grows like
# $1/(\langle e^{i\theta}\rangle_\text{pq}\sqrt{N})$. For the free field ($\lambda = 0$) both
# partition functions are Gaussian integrals, $Z = \pi^V/\det M$, and the average phase is
# exact (see `qftml.lattice.free`):
#
# $$
# \langle e^{i\theta}\rangle_\text{pq} = \prod_p \frac{\operatorname{Re} M(p)}{M(p)}, \qquad
# M(p) = \eta - 2\cos p_1 - 2\cosh\mu\cos p_2 - 2i\sinh\mu \sin p_2 ,
# $$
#
# with $p_\nu = 2\pi n_\nu/N_\nu$. The Gaussian integral converges only for
# $\eta > 2 + 2\cosh\mu$, so this exact check uses a heavier field than Part I.

# %%
eta = P["eta_free"]
mu_max = float(np.arccosh((eta - 2.0) / 2.0))  # convergence bound of the free field
mus = np.linspace(0.0, P["mu_fraction"] * mu_max, P["n_mu"])
sizes = P["sizes"]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
for L in sizes:
    logs = np.array([log_average_phase(eta, mu, L, L) for mu in mus])
    ax1.semilogy(mus, np.exp(logs), label=f"{L} × {L}")
    ax2.plot(mus, -logs / (L * L), label=f"{L} × {L}")
ax1.set_xlabel(r"chemical potential $\mu$ (lattice units)")
ax1.set_ylabel(r"average phase $\langle e^{i\theta}\rangle_\mathrm{pq}$")
ax1.set_title(rf"free field, $\eta = {eta}$ (exact)")
ax2.set_xlabel(r"chemical potential $\mu$ (lattice units)")
ax2.set_ylabel(r"$-\log\langle e^{i\theta}\rangle_\mathrm{pq}\,/\,V$")
ax2.set_title("the phase is extensive: curves collapse")
for ax in (ax1, ax2):
    ax.axvline(mu_max, color="k", ls=":", lw=1)
    ax.legend(title="lattice")
fig.tight_layout()
plt.show()

# %% [markdown]
# The curves are exact (no statistical error). The right panel shows that
# $-\log\langle e^{i\theta}\rangle_\text{pq}$ is proportional to the volume: the cost of
# reweighting grows exponentially with $V$. For the largest lattice and chemical potential
# of the plot, the numbers are:

# %%
L, mu = sizes[-1], mus[-1]
lp = log_average_phase(eta, mu, L, L)
print(f"eta = {eta}, mu = {mu:.3f}, lattice {L} x {L}:")
print(f"  average phase <e^(i theta)>_pq = exp({lp:.2f}) = {np.exp(lp):.3e}")
print(f"  samples needed for the same error as at mu = 0: about {np.exp(-2 * lp):.3e} x more")

# %% [markdown]
# ## Why the dual formulation solves it
#
# The sign problem is a property of the *representation*, not of the theory. Gattringer and
# Kloiber {cite}`Gattringer:2012df` expand each hopping factor
# $e^{e^{\pm\mu}\phi_x^*\phi_{x\pm\hat\nu}}$ in a power series, write $\phi_x = r_x e^{i\theta_x}$
# and integrate the phases $\theta_x$ exactly. What remains is a sum over integer link
# variables, fluxes $k_{x,\nu}\in\mathbb{Z}$ and $l_{x,\nu}\in\mathbb{N}_0$, whose weights
# are *real and positive*:
#
# $$
# Z = \sum_{\{k,l\}} \prod_{x,\nu} \frac{e^{\mu\,\delta_{\nu,2}\,k_{x,\nu}}}{(|k_{x,\nu}| + l_{x,\nu})!\; l_{x,\nu}!}
#     \prod_x W(f_x)\;\prod_x \delta\Big(\sum_\nu (k_{x,\nu} - k_{x-\hat\nu,\nu})\Big),
# $$
#
# with $W(f) = \int_0^\infty dr\, r^{f+1} e^{-\eta r^2 - \lambda r^4}$ and
# $f_x = \sum_\nu [|k_{x,\nu}| + |k_{x-\hat\nu,\nu}| + 2(l_{x,\nu} + l_{x-\hat\nu,\nu})]$.
# The phase integration leaves a Kronecker delta at every site: the $k$-flux is conserved,
# so $k$ lives on closed loops. The chemical potential now only weights loops that wind in
# time, by $e^{\mu}$ per unit of net temporal flux, and the charge density becomes the net
# temporal winding, $n = \frac{1}{V}\sum_x k_{x,2}$. The constraint calls for a sampler that
# moves along closed loops: the worm algorithm {cite}`Prokofev:2001worm`. The next chapters
# derive the formulation step by step and validate the sampler against exact results.
