"""mlmci: helpers for the book *Multilevel Models in Causal Inference*.

Submodules are imported on use, so ``import mlmci`` stays fast and does not
pull in PyMC:

- :mod:`mlmci.datasets` — real data sets with data cards, offline;
- :mod:`mlmci.bayes` — bambi fits, book-wide sampler settings, the convergence gate;
- :mod:`mlmci.results` — the tidy result shape every estimator returns;
- :mod:`mlmci.dag` — causal diagrams for figures;
- :mod:`mlmci.errors` — the exceptions mlmci raises.
"""

from mlmci.errors import ConvergenceError, DataError, DataTypeError, MlmciError

__version__ = "0.1.0"

__all__ = ["ConvergenceError", "DataError", "DataTypeError", "MlmciError", "__version__"]
