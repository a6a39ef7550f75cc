r"""Worm algorithm for the dual complex :math:`\phi^4` field.

References: :cite:p:`Prokofev:2001worm,Gattringer:2012df`.

The dual configuration is a pair of integer fields on the links, ``k[nu, t, x]`` (conserved
flux) and ``l[nu, t, x] >= 0``, with weight

.. math::
    w[k, l] = \prod_{x,\nu} \frac{e^{\mu\,\delta_{\nu,t}\,k_{x,\nu}}}
              {(|k_{x,\nu}| + l_{x,\nu})!\; l_{x,\nu}!} \prod_x W(f_x),
    \qquad f_x = \sum_\nu \bigl[|k_{x,\nu}| + |k_{x-\hat\nu,\nu}|
                 + 2(l_{x,\nu} + l_{x-\hat\nu,\nu})\bigr],

and :math:`W` from :mod:`qftml.lattice.weights`. Directions: ``nu = 0`` space (array axis
``x``, the last), ``nu = 1`` time (axis ``t``); :math:`\mu` couples to time.

**Updates.**

* *l-sweep*: every link in turn (time links, then space links, sites in array order)
  proposes ``l -> l +- 1`` (probability 1/2 each) and accepts with the Metropolis
  probability ``min(1, w'/w)``; ``l = -1`` is rejected.
* *worm*: a site ``x0`` is drawn uniformly; tail and head start there. The head proposes
  a step to one of its 4 neighbours (uniformly), changing ``k`` on the link between by one
  unit of flux along the step (``k_{h,nu} += 1`` forwards, ``k_{h-nu,nu} -= 1`` backwards),
  accepted with ``min(1, w'/w)`` where ``w`` is the same product evaluated on the open
  configuration (it is the weight of the two-point sector :math:`\phi_{x_0}\phi^*_h`, so
  ``f`` is odd at head and tail). The worm ends when the head is back on the tail (a
  rejected first step ends it at once). The head moves satisfy detailed balance in the
  enlarged space of open configurations, and a chain observed only when it is in a subset
  (here: closed) is stationary with respect to the restricted weight, so every completed
  worm leaves :math:`w[k, l]` invariant. Worms wind around the periodic lattice and so
  change the charge :math:`Q = \sum_x k_{x,t}/N_t`.

**One sweep** = one l-sweep over all ``2 V`` links followed by ``worms_per_sweep`` complete
worms, ``V = N_t N_x``. Unless given, ``worms_per_sweep`` is fixed after thermalization to
``round(2 V / L)``, ``L`` the mean worm length (head steps) in the second half of the
thermalization (whose sweeps run worms until ``2 V`` head steps are done), so a sweep costs
about ``4 V`` Metropolis proposals at any coupling. The number of worms per production
sweep must not depend on the worms' lengths: stopping at the first worm that crosses a
step budget measures right after a length-biased worm and over-weights configurations with
loops (we saw a 30 % excess).

All random numbers come from numba's Mersenne Twister, seeded inside the compiled code;
the kernel draws only uniform doubles (``np.random.random``), in exactly the order of the
pure-Python twin :mod:`qftml.lattice.reference`, which the tests hold it to.
"""

# numba kernels use the legacy global generator (seeded inside the compiled code):
# ruff: noqa: NPY002
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .weights import check_couplings, log_weights, ratio_tables

#: ``f`` table size used first; doubled (and the chain rerun) if a chain outgrows it.
F_TABLE = 256
#: largest table :func:`sample` builds before giving up.
F_TABLE_LIMIT = 1 << 16


@njit(cache=True)
def _seed(seed):
    np.random.seed(seed)


@njit(cache=True)
def _site_f(k, l, f):
    """Recompute ``f_x`` from ``k`` and ``l`` (into ``f``)."""
    nt, nx = f.shape
    for t in range(nt):
        for x in range(nx):
            xm = (x - 1) % nx
            tm = (t - 1) % nt
            f[t, x] = (
                abs(k[0, t, x])
                + abs(k[0, t, xm])
                + abs(k[1, t, x])
                + abs(k[1, tm, x])
                + 2 * (l[0, t, x] + l[0, t, xm] + l[1, t, x] + l[1, tm, x])
            )


@njit(cache=True)
def _l_sweep(k, l, f, up2, dn2, f_limit, stats):
    """Metropolis update of every ``l`` (module docstring). Returns 1 on table overflow.

    One uniform ``u`` per proposal: ``u < 1/2`` proposes ``l + 1`` and ``2u`` is its
    acceptance uniform, otherwise ``l - 1`` with ``2u - 1``.
    """
    nt, nx = f.shape
    for nu in (1, 0):
        for t in range(nt):
            for x in range(nx):
                t2, x2 = t, x
                if nu == 0:
                    x2 = x + 1 if x + 1 < nx else 0
                else:
                    t2 = t + 1 if t + 1 < nt else 0
                u = 2.0 * np.random.random()
                stats[2] += 1
                kk = abs(k[nu, t, x])
                ll = l[nu, t, x]
                fa = f[t, x]
                fb = f[t2, x2]
                if u < 1.0:
                    if fa + 2 > f_limit or fb + 2 > f_limit:
                        return 1
                    if u * ((kk + ll + 1) * (ll + 1)) < up2[fa] * up2[fb]:
                        l[nu, t, x] = ll + 1
                        f[t, x] = fa + 2
                        f[t2, x2] = fb + 2
                        stats[3] += 1
                elif ll > 0:
                    if (u - 1.0) < dn2[fa] * dn2[fb] * ((kk + ll) * ll):
                        l[nu, t, x] = ll - 1
                        f[t, x] = fa - 2
                        f[t2, x2] = fb - 2
                        stats[3] += 1
    return 0


@njit(cache=True)
def _worm(k, l, f, up1, dn1, e_mu, f_limit, stats):
    """One complete worm (module docstring). Returns -1 on table overflow, else its steps.

    One uniform per head step: ``4u = d + a`` gives the direction ``d`` (0: +x, 1: -x,
    2: +t, 3: -t) and the acceptance uniform ``a``.
    """
    nt, nx = f.shape
    e_mmu = 1.0 / e_mu
    x0 = int(np.random.random() * (nt * nx))
    t0 = x0 // nx
    xs0 = x0 - t0 * nx
    ht, hx = t0, xs0
    steps = 0
    accepted = 0
    while True:
        u = 4.0 * np.random.random()
        d = int(u)
        a = u - d
        steps += 1
        ot, ox = ht, hx
        if d == 0:  # +x: k[0, h] += 1
            nu, lt, lx, dk, chem = 0, ht, hx, 1, 1.0
            ox = hx + 1 if hx + 1 < nx else 0
        elif d == 1:  # -x: k[0, h - x] -= 1
            ox = hx - 1 if hx > 0 else nx - 1
            nu, lt, lx, dk, chem = 0, ht, ox, -1, 1.0
        elif d == 2:  # +t: k[1, h] += 1
            nu, lt, lx, dk, chem = 1, ht, hx, 1, e_mu
            ot = ht + 1 if ht + 1 < nt else 0
        else:  # -t: k[1, h - t] -= 1
            ot = ht - 1 if ht > 0 else nt - 1
            nu, lt, lx, dk, chem = 1, ot, hx, -1, e_mmu
        kold = k[nu, lt, lx]
        n_tot = abs(kold) + l[nu, lt, lx]  # |k| + l on the link
        fh = f[ht, hx]
        fo = f[ot, ox]
        if kold * dk >= 0:  # |k| grows by one: 1/(|k| + l + 1), W(f+1)/W(f) at both ends
            if fh + 1 > f_limit or fo + 1 > f_limit:
                stats[0] += steps
                stats[1] += accepted
                return -1
            accept = a * (n_tot + 1) < chem * up1[fh] * up1[fo]
            df = 1
        else:  # |k| shrinks by one: (|k| + l), W(f-1)/W(f) at both ends
            accept = a < chem * dn1[fh] * dn1[fo] * n_tot
            df = -1
        if accept:
            k[nu, lt, lx] = kold + dk
            f[ht, hx] = fh + df
            f[ot, ox] = fo + df
            ht, hx = ot, ox
            accepted += 1
            if ht == t0 and hx == xs0:
                break
        elif steps == 1:
            break
    stats[0] += steps
    stats[1] += accepted
    return steps


@njit(cache=True)
def _chain(
    k,
    l,
    f,
    up1,
    dn1,
    up2,
    dn2,
    e_mu,
    f_limit,
    seed,
    n_therm,
    n_skip,
    worms_per_sweep,
    out_k,
    out_l,
    out_n,
    out_phi2,
    stats,
):
    """Seed, thermalize ``n_therm`` sweeps, then store a configuration every ``n_skip`` sweeps.

    Thermalization sweeps run worms until ``2 V`` head steps are done; if
    ``worms_per_sweep <= 0`` it is then fixed to ``round(2 V / L)``, ``L`` the mean worm length
    in the second half of the thermalization (``V`` if ``n_therm = 0``). Production sweeps run
    exactly ``worms_per_sweep`` worms: a number that depended on the worms' lengths would
    make the measurement time depend on the state and bias the ensemble.

    ``stats`` accumulates ``[head steps, accepted head steps, l proposals, l accepted,
    worms, worms_per_sweep]``. Returns 0, or 1 if some ``f`` would leave the weight table.
    """
    _seed(seed)
    nt, nx = f.shape
    vol = nt * nx
    n_configs = out_k.shape[0]
    steps_late = 0  # head steps and worms in the second half of the thermalization
    worms_late = 0
    for i in range(n_therm):
        if _l_sweep(k, l, f, up2, dn2, f_limit, stats) != 0:
            return 1
        done = 0
        while done < 2 * vol:
            s = _worm(k, l, f, up1, dn1, e_mu, f_limit, stats)
            if s < 0:
                return 1
            done += s
            stats[4] += 1
            if 2 * i >= n_therm:
                steps_late += s
                worms_late += 1
    if worms_per_sweep <= 0:
        if worms_late > 0:
            worms_per_sweep = max(1, int(round(2 * vol * worms_late / steps_late)))
        else:
            worms_per_sweep = vol
    stats[5] = worms_per_sweep
    for i_out in range(n_configs):
        for _s in range(n_skip):
            if _l_sweep(k, l, f, up2, dn2, f_limit, stats) != 0:
                return 1
            for _w in range(worms_per_sweep):
                if _worm(k, l, f, up1, dn1, e_mu, f_limit, stats) < 0:
                    return 1
                stats[4] += 1
        out_k[i_out] = k
        out_l[i_out] = l
        q = 0
        p2 = 0.0
        for t in range(nt):
            for x in range(nx):
                q += k[1, t, x]
                p2 += up2[f[t, x]]
        out_n[i_out] = q / vol
        out_phi2[i_out] = p2 / vol
    return 0


@dataclass
class Ensemble:
    """Configurations of one Markov chain and their observables.

    ``k``, ``l``: ``int32`` arrays ``(n_configs, 2, nt, nx)`` (``nu = 0`` space, ``1`` time).
    ``n = sum_x k_{x,t} / V`` and ``phi2 = sum_x W(f_x + 2)/W(f_x) / V`` per configuration
    (``float64``); their ensemble averages are the charge density and
    :math:`\\langle|\\phi|^2\\rangle`.
    ``acceptance_worm`` / ``acceptance_l``: fraction of accepted head steps / l proposals;
    ``worm_length``: mean head steps per worm; ``f_table``: largest ``f`` of the weight table.
    """

    k: np.ndarray
    l: np.ndarray  # noqa: E741 - the name of the field in the literature
    n: np.ndarray
    phi2: np.ndarray
    nt: int
    nx: int
    eta: float
    lam: float
    mu: float
    seed: int
    n_therm: int
    n_skip: int
    acceptance_worm: float
    acceptance_l: float
    worm_length: float
    worms_per_sweep: int
    f_table: int
    extra: dict = field(default_factory=dict)

    @property
    def n_configs(self) -> int:
        return len(self.n)

    @property
    def volume(self) -> int:
        return self.nt * self.nx

    def observables(self) -> dict[str, np.ndarray]:
        """``{"n": ..., "phi2": ...}``, the per-configuration series."""
        return {"n": self.n, "phi2": self.phi2}


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {name}={value!r}")
    return int(value)


#: Largest |mu|: the chain uses e^{+-mu}, which overflows a double beyond log(max float).
MU_MAX = math.log(np.finfo(float).max)


def check_parameters(nt, nx, eta, lam, mu) -> tuple[int, int, float, float, float]:
    """Validate the lattice and couplings (clear ``ValueError`` naming the bad value).

    At ``lam = 0`` the action is the quadratic form of :mod:`qftml.lattice.free`, bounded
    below only for ``eta > 2 + 2 cosh(mu)``; other free theories have no ensemble to sample.
    """
    nt = _check_int("nt", nt, 2)
    nx = _check_int("nx", nx, 2)
    eta, lam = check_couplings(eta, lam)
    mu_f = float(mu)
    if not math.isfinite(mu_f):
        raise ValueError(f"mu must be finite; got mu={mu!r}")
    if abs(mu_f) >= MU_MAX:
        raise ValueError(f"|mu| must be < {MU_MAX:.6g} (e^mu overflows a float); got mu={mu!r}")
    if lam == 0.0:
        bound = 2.0 + 2.0 * math.cosh(mu_f)
        if not eta > bound:
            raise ValueError(
                f"the free field (lam = 0) diverges unless eta > 2 + 2 cosh(mu) = {bound:.6g}: "
                f"no ground state, Z is infinite; got eta={eta!r}, mu={mu!r}"
            )
    return nt, nx, eta, lam, mu_f


def sample(
    nt: int,
    nx: int,
    eta: float,
    lam: float,
    mu: float,
    n_configs: int,
    *,
    seed: int,
    n_therm: int = 500,
    n_skip: int = 1,
    worms_per_sweep: int | None = None,
    f_table: int = F_TABLE,
) -> Ensemble:
    """Sample the dual complex :math:`\\phi^4` field on an ``nt x nx`` periodic lattice.

    Starts from ``k = l = 0``, runs ``n_therm`` thermalization sweeps, then stores a
    configuration every ``n_skip`` sweeps until ``n_configs`` are stored. One *sweep* is one
    Metropolis update of every ``l`` followed by complete worms until at least ``2 V`` head
    steps were made (module docstring). Same ``seed``, same configurations.

    If some ``f`` would exceed the weight table (size ``f_table``), the table is doubled and
    the chain rerun from the start with the same seed, so the result does not depend on
    ``f_table`` (up to ``F_TABLE_LIMIT``, beyond which a ``ValueError`` is raised).
    """
    nt, nx, eta, lam, mu = check_parameters(nt, nx, eta, lam, mu)
    n_configs = _check_int("n_configs", n_configs, 1)
    n_therm = _check_int("n_therm", n_therm, 0)
    n_skip = _check_int("n_skip", n_skip, 1)
    seed = _check_int("seed", seed, 0)
    if seed >= 2**32:
        raise ValueError(f"seed must be < 2**32; got seed={seed}")
    f_table = _check_int("f_table", f_table, 8)
    worms_per_sweep = (
        0 if worms_per_sweep is None else _check_int("worms_per_sweep", worms_per_sweep, 1)
    )
    while True:
        tables = ratio_tables(log_weights(eta, lam, f_table))
        k = np.zeros((2, nt, nx), np.int32)
        l = np.zeros((2, nt, nx), np.int32)  # noqa: E741
        f = np.zeros((nt, nx), np.int32)
        out_k = np.empty((n_configs, 2, nt, nx), np.int32)
        out_l = np.empty((n_configs, 2, nt, nx), np.int32)
        out_n = np.empty(n_configs)
        out_phi2 = np.empty(n_configs)
        stats = np.zeros(6, np.int64)
        status = _chain(
            k, l, f, tables["up1"], tables["dn1"], tables["up2"], tables["dn2"],
            math.exp(mu), f_table - 2, seed, n_therm, n_skip, worms_per_sweep,
            out_k, out_l, out_n, out_phi2, stats,
        )  # fmt: skip
        if status == 0:
            break
        if 2 * f_table > F_TABLE_LIMIT:
            raise ValueError(
                f"f_x exceeded the weight table f_max={f_table} at eta={eta}, lam={lam}, "
                f"mu={mu}: the chain is running away (is the action bounded below?)"
            )
        f_table *= 2
    sweeps = n_therm + n_configs * n_skip
    return Ensemble(
        k=out_k,
        l=out_l,
        n=out_n,
        phi2=out_phi2,
        nt=nt,
        nx=nx,
        eta=eta,
        lam=lam,
        mu=mu,
        seed=seed,
        n_therm=n_therm,
        n_skip=n_skip,
        acceptance_worm=float(stats[1] / max(stats[0], 1)),
        acceptance_l=float(stats[3] / max(stats[2], 1)),
        worm_length=float(stats[0] / max(stats[4], 1)),
        worms_per_sweep=int(stats[5]),
        f_table=f_table,
        extra={"head_steps": int(stats[0]), "sweeps": sweeps},
    )
