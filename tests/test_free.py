"""The free-field closed forms against brute-force linear algebra on small lattices."""

import numpy as np
import pytest

from qftml.lattice.free import eigenvalues, log_average_phase


def lattice_operator(eta, mu, nt, nx):
    """Dense M with phi^dagger M phi = S_lat at lambda = 0 (sites indexed t * nx + x)."""
    v = nt * nx
    m = eta * np.eye(v, dtype=complex)
    for t in range(nt):
        for x in range(nx):
            i = t * nx + x
            m[i, t * nx + (x + 1) % nx] -= 1.0
            m[i, t * nx + (x - 1) % nx] -= 1.0
            m[i, ((t + 1) % nt) * nx + x] -= np.exp(mu)
            m[i, ((t - 1) % nt) * nx + x] -= np.exp(-mu)
    return m


@pytest.mark.parametrize("eta,mu,nt,nx", [(5.0, 0.3, 3, 4), (6.0, 0.9, 4, 2), (4.5, 0.1, 5, 3)])
def test_eigenvalues_and_phase_match_dense_determinants(eta, mu, nt, nx):
    m = lattice_operator(eta, mu, nt, nx)
    lam = eigenvalues(eta, mu, nt, nx).ravel()
    # same spectrum: equal power sums tr M^j = sum_p M(p)^j for j = 1..V
    mj = np.eye(len(m))
    for j in range(1, len(m) + 1):
        mj = mj @ m
        assert np.isclose(np.trace(mj), np.sum(lam**j), rtol=1e-10)
    m_pq = 0.5 * (m + m.conj().T)  # phase-quenched action = hermitian part
    _, logdet_pq = np.linalg.slogdet(m_pq)
    sign, logdet = np.linalg.slogdet(m)
    assert np.isclose(sign, 1.0)  # det M is real and positive
    assert np.isclose(log_average_phase(eta, mu, nt, nx), logdet_pq - logdet, atol=1e-12)


def test_divergent_free_field_is_rejected():
    with pytest.raises(ValueError, match="free field diverges"):
        log_average_phase(4.01, 0.5, 4, 4)
