"""qftml: symmetry in neural networks for lattice quantum field theory.

Subpackages (import them explicitly; importing ``qftml`` itself stays light):

- :mod:`qftml.lattice`  dual formulation of the complex phi^4 field at chemical potential,
  worm sampler, Monte Carlo statistics;
- :mod:`qftml.datasets` the three tasks' datasets, stored in HDF5 with provenance;
- :mod:`qftml.nets`     EQ / ST / FL convolutional networks built from a text spec;
- :mod:`qftml.training` seeded training loops and optuna architecture search;
- :mod:`qftml.nnqft`    neural-network ensembles as field theories, symmetry-via-duality;
- :mod:`qftml.profiles` run-time parameters of every notebook (``profiles.yml``);
- :mod:`qftml.book`     the notebook -> executed notebook -> static book pipeline.
"""

__version__ = "0.1.0"
