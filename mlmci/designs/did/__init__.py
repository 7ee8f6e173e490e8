"""Difference-in-differences with hierarchical terms (see :mod:`mlmci.did`)."""

from mlmci.designs.did.bayes_twin import DidBayesResult
from mlmci.designs.did.cohorts import NEVER, cohorts
from mlmci.designs.did.estimators import ENGINES, METHODS, fit
from mlmci.designs.did.result import DidResult
from mlmci.designs.did.twobytwo import two_by_two

__all__ = [
    "ENGINES",
    "METHODS",
    "NEVER",
    "DidBayesResult",
    "DidResult",
    "cohorts",
    "fit",
    "two_by_two",
]
