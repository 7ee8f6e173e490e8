"""mlmci: helpers for the book *Multilevel Models in Causal Inference*.

Submodules are imported on use, so ``import mlmci`` stays fast and does not
pull in PyMC. Data flow one way through the layers:

- data: :mod:`mlmci.datasets` (real data with data cards, offline),
  :mod:`mlmci.simulate` (data with known truth);
- transforms: :mod:`mlmci.transforms` (within-between, group means);
- engines: :mod:`mlmci.mixed` (REML/ML and logistic mixed models, lme4's
  algorithm), :mod:`mlmci.bayes` (bambi with the convergence gate),
  :mod:`mlmci.meta` (random-effects meta-analysis, empirical Bayes),
  :mod:`mlmci.engines` (the engine options a design takes);
- designs: :mod:`mlmci.panel` (FE/RE/Mundlak), :mod:`mlmci.pooling`,
  :mod:`mlmci.effects` (group CATEs), :mod:`mlmci.did`, :mod:`mlmci.rdd`;
- evaluation and figures: :mod:`mlmci.montecarlo` (studies and the one scorer),
  :mod:`mlmci.fastpath` (closed forms for Monte Carlo loops), :mod:`mlmci.plots`,
  :mod:`mlmci.dag`;
- the result protocol :mod:`mlmci.results`, defaults :mod:`mlmci.config`,
  errors :mod:`mlmci.errors`, run modes :mod:`mlmci.runmode`, input checks
  :mod:`mlmci.validation`.
"""

from mlmci.errors import ArgumentError, ConvergenceError, DataError, DataTypeError, MlmciError

__version__ = "0.2.0"

__all__ = [
    "ArgumentError",
    "ConvergenceError",
    "DataError",
    "DataTypeError",
    "MlmciError",
    "__version__",
]
