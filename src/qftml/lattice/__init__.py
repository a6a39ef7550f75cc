"""Dual formulation of the complex phi^4 field at chemical potential, and its worm sampler."""

from .flux import divergence, is_conserved, n_violations
from .free import log_average_phase

__all__ = ["divergence", "is_conserved", "n_violations", "log_average_phase"]
