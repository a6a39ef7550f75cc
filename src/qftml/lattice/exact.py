r"""Exact finite-lattice results for the free field (λ = 0) at chemical potential μ.

For :math:`\lambda = 0` the lattice action is :math:`S = \phi^\dagger M(\mu)\phi` with the
momentum-space eigenvalues of :mod:`qftml.lattice.free`,
:math:`M(p) = \eta - 2\cos p_x - e^{\mu}e^{ip_t} - e^{-\mu}e^{-ip_t}`,
:math:`p_\nu = 2\pi n_\nu/N_\nu`. With :math:`Z = \pi^V/\det M`:

.. math::
    \langle n \rangle = \frac{1}{V}\frac{\partial \log Z}{\partial\mu}
      = \frac{1}{V}\sum_p \frac{e^{\mu}e^{ip_t} - e^{-\mu}e^{-ip_t}}{M(p)}, \qquad
    \langle |\phi|^2 \rangle = \frac1V\sum_x \langle\phi_x\phi_x^*\rangle
      = \frac{1}{V}\sum_p \frac{1}{M(p)} .

Both are real (``p_t`` and ``-p_t`` pair up) and exist iff :math:`\eta > 2 + 2\cosh\mu`.
In the dual variables the same numbers are :math:`\langle\sum_x k_{x,t}\rangle/V` and
:math:`\langle\sum_x W(f_x+2)/W(f_x)\rangle/V` :cite:p:`Gattringer:2012df`.
"""

from __future__ import annotations

import numpy as np

from .free import eigenvalues, momenta


def free_observables(eta: float, mu: float, nt: int, nx: int) -> dict[str, float]:
    """Exact ``n`` and ``phi2`` of the free field on the periodic ``nt x nx`` lattice."""
    m = eigenvalues(eta, mu, nt, nx)  # validates eta > 2 + 2 cosh(mu) and the extents
    pt, _ = momenta(nt, nx)
    dmdmu = -(np.exp(mu) * np.exp(1j * pt) - np.exp(-mu) * np.exp(-1j * pt))
    return {"n": float(np.mean(-dmdmu / m).real), "phi2": float(np.mean(1.0 / m).real)}
