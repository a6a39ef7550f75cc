"""qftml: symmetry in neural networks for lattice quantum field theory.

Subpackages (import them explicitly; importing ``qftml`` itself stays light):

- :mod:`qftml.lattice`  dual formulation of the complex phi^4 field at chemical potential,
  worm sampler, Monte Carlo statistics;
- :mod:`qftml.datasets` the three tasks' datasets, stored in HDF5 with provenance;
- :mod:`qftml.nets`     EQ / ST / FL convolutional networks built from a text spec;
- :mod:`qftml.training` seeded training loops and their budgets (:mod:`qftml.search`: optuna);
- :mod:`qftml.tasks`    the analysis of the source's tasks and its computed verdicts;
- :mod:`qftml.results`  the full-statistics results store;
- :mod:`qftml.nnqft`    neural-network ensembles as field theories, symmetry-via-duality;
- :mod:`qftml.profiles` run-time parameters of every notebook (``profiles.yml``);
- :mod:`qftml.book`     the notebook -> executed notebook -> static book pipeline.
"""

import warnings as _warnings

__version__ = "0.1.0"

# Libraries that import ``tqdm.auto`` (optuna) warn inside executed book pages that
# ipywidgets is missing, although every bar there is silent (qftml.progress).
_warnings.filterwarnings("ignore", message="IProgress not found")
