"""Neural networks as field theories: ensembles, kernels, correlators, symmetry via duality.

The book's Part II (:ref:`chap-networks-as-fields`, :ref:`chap-symmetry-via-duality`,
:ref:`chap-symmetry-and-training`) is built on this package:

* :func:`ensemble_outputs`, :class:`Ensemble`: outputs of many random networks, chunked;
* :func:`nngp_kernel`, :func:`exact_npoint`, :func:`neuron_moment`: closed-form kernels and
  exact finite-width correlators of one-hidden-layer networks;
* :func:`npoint`, :func:`deviations`, :func:`m_n`, :func:`connected_4pt`: Monte Carlo
  correlators with block/jackknife errors;
* :func:`haar_orthogonal`, :func:`haar_unitary`, :func:`invariance_test`: symmetry checks;
* :func:`quartic_coupling`, :func:`fit_quartic`, :func:`sixpt_test`: the effective action
  (a quartic coupling fitted on $G^{(4)}$ predicting $G^{(6)}$);
* :func:`correlated_outputs`, :func:`fourpt_ratio`: invariant, correlated parameters.
"""

from .correlated import (
    correlated_outputs,
    fourpt_ratio,
    fourpt_ratio_first_order,
    radial_moment,
    sample_invariant,
    sample_radius,
)
from .correlators import (
    Estimate,
    block_means,
    connected_4pt,
    deviations,
    exact_m_n,
    fit_power_law,
    index_tuples,
    jackknife,
    m_n,
    npoint,
    product_block_means,
    wick,
)
from .effective import (
    CouplingFit,
    SixPointTest,
    fit_quartic,
    quadrature_grid,
    quartic_coupling,
    quartic_design,
    relu_quartic_exact,
    relu_vertex_integral_exact,
    sixpt_test,
    vertex_integrals,
)
from .ensemble import ACTIVATIONS, Ensemble, ensemble_outputs
from .kernels import (
    MomentTable,
    even_partitions,
    exact_npoint,
    input_covariance,
    neuron_moment,
    nngp_kernel,
)
from .symmetry import (
    InvarianceTest,
    haar_orthogonal,
    haar_unitary,
    invariance_test,
    real_sites,
    rotate_outputs,
)

__all__ = [
    "CouplingFit",
    "SixPointTest",
    "correlated_outputs",
    "fit_quartic",
    "fourpt_ratio",
    "fourpt_ratio_first_order",
    "quadrature_grid",
    "quartic_coupling",
    "quartic_design",
    "radial_moment",
    "relu_quartic_exact",
    "relu_vertex_integral_exact",
    "sample_invariant",
    "sample_radius",
    "sixpt_test",
    "vertex_integrals",
    "MomentTable",
    "ACTIVATIONS",
    "Ensemble",
    "Estimate",
    "InvarianceTest",
    "block_means",
    "connected_4pt",
    "deviations",
    "ensemble_outputs",
    "even_partitions",
    "exact_m_n",
    "exact_npoint",
    "fit_power_law",
    "haar_orthogonal",
    "haar_unitary",
    "index_tuples",
    "input_covariance",
    "invariance_test",
    "jackknife",
    "m_n",
    "neuron_moment",
    "nngp_kernel",
    "npoint",
    "product_block_means",
    "real_sites",
    "rotate_outputs",
    "wick",
]
