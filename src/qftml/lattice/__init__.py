"""Dual formulation of the complex phi^4 field at chemical potential, and its worm sampler.

Public API:

- :func:`log_weights` -- ``log W(f)``, the site weights of the dual formulation;
- :func:`sample` -- the worm sampler, returning an :class:`Ensemble` of ``k``, ``l``
  configurations with the observables ``n`` and ``phi2``;
- :func:`autocorrelation_time`, :func:`mean_error`, :func:`autocorrelation`,
  :func:`summarize`, :func:`binning_error` -- Monte Carlo statistics;
- :func:`scan` -- many parameter points over worker processes (summaries only);
- :func:`free_observables` (exact free field), :func:`hmc` (field variables at mu = 0) --
  independent references for validation;
- :func:`divergence`, :func:`n_violations`, :func:`is_conserved` -- flux conservation.
"""

from .exact import free_observables
from .flux import divergence, is_conserved, n_violations
from .free import log_average_phase
from .hmc import hmc
from .scan import scan
from .stats import autocorrelation, autocorrelation_time, binning_error, mean_error, summarize
from .weights import log_weights
from .worm import Ensemble, sample

__all__ = [
    "divergence",
    "is_conserved",
    "n_violations",
    "log_average_phase",
    "log_weights",
    "sample",
    "Ensemble",
    "autocorrelation",
    "autocorrelation_time",
    "binning_error",
    "mean_error",
    "summarize",
    "scan",
    "free_observables",
    "hmc",
]
