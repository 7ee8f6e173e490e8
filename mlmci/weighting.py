"""Propensity-score weighting with clustered data: where does the multilevel structure go?

:func:`fit` estimates the ATE or ATT of a 0/1 treatment by inverse probability
weighting (``estimator="ipw"``), by weighting inside each cluster
(``"ipw_within"``), by augmented IPW (``"aipw"``) or by nearest-neighbour matching
on the logit of the propensity across clusters (``"match"``) or inside them
(``"match_within"``), with the propensity from a
pooled logit, a logit with cluster fixed effects, a random-intercept logit, or a
random-intercept logit with the covariates' cluster means (Mundlak); AIPW's
outcome model takes the same four structures. Standard errors are clustered.
The result's ``balance()`` gives standardized differences before and after
weighting, split into their within- and between-cluster parts, which
:func:`mlmci.plots.love` draws, and ``difference(other)`` the difference of two fits
on the same data with the clustered SE of that paired difference. The implementation lives in
``mlmci.designs.weighting``.

Examples
--------
>>> from mlmci import weighting
>>> from mlmci.simulate import simulate_clustered_treatment
>>> data, truth = simulate_clustered_treatment(n_clusters=40, cluster_size=25, seed=1)
>>> res = weighting.fit(data, "y", treatment="d", covariates=["x1", "x2"], cluster="cluster",
...                     propensity="mundlak", estimator="ipw")
>>> res.effect()["term"], res.balance()["component"].unique().tolist()
('ATE', ['overall', 'within', 'between'])
"""

from mlmci.designs.weighting import (
    ESTIMANDS,
    ESTIMATORS,
    PROPENSITY_BOUND,
    SMD_THRESHOLD,
    STRUCTURES,
    WeightingResult,
    fit,
)

__all__ = [
    "ESTIMANDS",
    "ESTIMATORS",
    "PROPENSITY_BOUND",
    "SMD_THRESHOLD",
    "STRUCTURES",
    "WeightingResult",
    "fit",
]
