"""Difference-in-differences with hierarchical terms (see :mod:`mlmci.did`)."""

from mlmci.designs.did.cohorts import NEVER, cohorts
from mlmci.designs.did.estimators import METHODS, fit
from mlmci.designs.did.result import DidResult
from mlmci.designs.did.twobytwo import two_by_two

__all__ = ["METHODS", "NEVER", "DidResult", "cohorts", "fit", "two_by_two"]
