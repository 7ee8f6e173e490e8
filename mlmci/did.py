"""Difference-in-differences designs, with and without hierarchical terms.

:func:`fit` estimates a staggered-adoption DiD with ``method`` naming the
estimator (two-way fixed effects, extended TWFE cells, random effects with and
without cohort terms, partially pooled cells, Callaway-Sant'Anna, varying cell
effects) and ``engine`` the backend where several can fit it (``ENGINES``: a
Bayesian fit of the varying cell effects is ``engine=Bayes(...)``, not a method);
:func:`two_by_two` the canonical 2 x 2 DiD on repeated cross-sections;
:func:`cohorts` derives adoption cohorts and refuses what DiD cannot handle.
The implementation lives in ``mlmci.designs.did``; the numpy fast path for
Monte Carlo studies (:func:`fast_table`) in ``mlmci.designs.did.fast``.

Examples
--------
>>> from mlmci import did
>>> from mlmci.simulate import simulate_staggered
>>> data, truth = simulate_staggered(n_units=40, n_periods=6, seed=3)
>>> res = did.fit(data, "y", unit="unit", time="period", treatment="treated", method="etwfe")
>>> res.effect()["term"]
'ATT'
"""

from mlmci.designs.did import (
    ENGINES,
    METHODS,
    NEVER,
    DidBayesResult,
    DidResult,
    cohorts,
    fit,
    two_by_two,
)
from mlmci.designs.did.fast import fast_table

__all__ = [
    "ENGINES",
    "METHODS",
    "NEVER",
    "DidBayesResult",
    "DidResult",
    "cohorts",
    "fast_table",
    "fit",
    "two_by_two",
]
