r"""The weighting estimators and their cluster-robust standard errors.

With propensities :math:`e_i`, treatment :math:`d_i` and outcome :math:`y_i`:

- ``"ipw"`` (the *marginal* estimator of Li, Zaslavsky & Landrum 2013): Hajek
  means, the weights normalized over the whole sample. ATE weights
  :math:`d/e` and :math:`(1-d)/(1-e)`; ATT weights 1 for the treated and
  :math:`e/(1-e)` for the controls.
- ``"ipw_within"`` (their *clustered* estimator): the same weighted difference
  computed inside each cluster, then averaged over clusters with weights
  :math:`n_j` (ATE) or :math:`n_{1j}` (ATT). Only within-cluster comparisons
  enter, so a cluster-level confounder cannot bias it through a comparison
  between clusters (a propensity model that misstates the covariates' effects
  within clusters still can); every cluster needs both arms.
- ``"aipw"``: augmented IPW (Robins, Rotnitzky & Zhao 1994) with arm-wise
  outcome predictions :math:`\mu_0, \mu_1`:
  :math:`\hat\tau = \frac1n\sum_i \mu_1 - \mu_0 + d(y-\mu_1)/e - (1-d)(y-\mu_0)/(1-e)`
  (ATE), and for the ATT
  :math:`\frac1{n_1}\sum_i d(y-\mu_0) - (1-d)\,e/(1-e)\,(y-\mu_0)`.
  Consistent when either the propensity or the outcome model is right (Bang &
  Robins 2005).
- ``"match"`` and ``"match_within"``: nearest-neighbour matching with replacement
  on the logit of the propensity (``matches`` neighbours, ties averaged, no bias
  correction), across all clusters or exactly on the cluster; see
  ``mlmci.designs.weighting.matching`` for the estimator, its implied weights and
  its cluster-robust SE from the linear representation of Abadie & Imbens (2006).

Standard errors come from each estimator's influence function summed within
clusters, :math:`\hat V = \frac{G}{G-1}\frac1{n^2}\sum_g(\sum_{i\in g}\phi_i)^2`
(for ``"ipw_within"`` the cluster contrasts are the units), with the
propensities and outcome predictions treated as known. For the ATE by IPW with
a propensity fitted by maximum likelihood in a correctly specified parametric
model that is conservative (Wooldridge 2007), not in general for the ATT or for
fits whose parameters grow with the clusters; for AIPW estimated nuisances do
not change the first-order variance when both models are right; otherwise the
chapter's Monte Carlo study measures the coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmci.errors import ArgumentError, DataError
from mlmci.transforms import group_sums

__all__ = ["ESTIMANDS", "ESTIMATORS", "MATCHING", "Estimate", "clustered_se", "estimate"]

#: The estimators, with what each one is.
ESTIMATORS = {
    "ipw": "inverse probability weighting (Hajek, weights normalized over the sample)",
    "ipw_within": "IPW inside each cluster, averaged over clusters",
    "aipw": "augmented IPW (doubly robust)",
    "match": "nearest-neighbour matching on the logit propensity, with replacement",
    "match_within": "nearest-neighbour matching on the logit propensity inside each cluster",
}
#: The estimators that match (and take ``matches``).
MATCHING = ("match", "match_within")
#: The estimands: the average effect over all units or over the treated.
ESTIMANDS = ("ATE", "ATT")


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its cluster-robust SE, the weights it used and its influence values.

    ``weights`` are the weights the estimator's weighted means put on the units, up
    to a constant within each arm: the inverse-probability weights for ``"ipw"`` and
    ``"aipw"`` (its weighting part), and for ``"ipw_within"`` those weights scaled
    within each cluster and arm by the cluster's share over the arm's weight sum, so
    that a balance table or an effective sample size describes what was computed.

    ``influence`` holds each unit's term of the estimator's linearization, scaled so
    that the estimate minus its target is approximately their sum (for
    ``"ipw_within"`` each cluster's term is shared equally by its units); the SE is
    :func:`clustered_se` of them, and a difference of two estimates on the same units
    has the SE of the difference of their influence values.
    """

    estimate: float
    std_error: float
    weights: np.ndarray
    influence: np.ndarray


def balancing_weights(d: np.ndarray, e: np.ndarray, estimand: str) -> np.ndarray:
    """The inverse-probability weights for ``estimand`` (not normalized)."""
    if estimand == "ATE":
        return np.where(d == 1, 1 / e, 1 / (1 - e))
    return np.where(d == 1, 1.0, e / (1 - e))


def clustered_se(influence: np.ndarray, codes: np.ndarray, n_groups: int) -> float:
    r"""The cluster-robust SE of an estimate whose linearization is ``sum(influence)``.

    :math:`\sqrt{\frac{G}{G-1}\sum_g (\sum_{i \in g} \text{influence}_i)^2}`, the
    small-sample factor as Stata's for clustered errors.

    >>> round(clustered_se(np.array([0.1, -0.1, 0.2, 0.0]), np.array([0, 0, 1, 1]), 2), 6)
    0.282843
    """
    if n_groups < 2:
        raise DataError(f"a clustered SE needs at least two clusters, got {n_groups}.")
    sums = group_sums(codes, influence, n_groups)
    return float(np.sqrt(n_groups / (n_groups - 1) * np.sum(sums**2)))


def _estimate(est: float, weights: np.ndarray, influence: np.ndarray, codes, n_groups) -> Estimate:
    return Estimate(float(est), clustered_se(influence, codes, n_groups), weights, influence)


def estimate(
    estimator: str,
    estimand: str,
    *,
    y: np.ndarray,
    d: np.ndarray,
    e: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    mu: tuple[np.ndarray, np.ndarray] | None = None,
    matches: int = 1,
) -> Estimate:
    """The ``estimand`` by ``estimator`` (see the module docstring) with its SE.

    ``matches`` is the number of neighbours of the matching estimators (refused
    with any other estimator unless 1).

    Examples
    --------
    >>> import numpy as np
    >>> y, d = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 0.0, 0.0])
    >>> e, codes = np.full(4, 0.5), np.array([0, 1, 0, 1])
    >>> estimate("ipw", "ATE", y=y, d=d, e=e, codes=codes, n_groups=2).estimate
    -2.0
    >>> estimate("match", "ATT", y=y, d=d, e=np.array([0.5, 0.4, 0.45, 0.6]),
    ...          codes=codes, n_groups=2).estimate
    -1.5
    """
    if estimator in MATCHING:
        from mlmci.designs.weighting.matching import match_estimate

        return match_estimate(
            y,
            d,
            np.log(e / (1 - e)),
            estimand=estimand,
            matches=matches,
            codes=codes,
            n_groups=n_groups,
            within=estimator == "match_within",
        )
    if matches != 1:
        raise ArgumentError(
            f"matches is for the matching estimators {MATCHING}; got {estimator!r}."
        )
    w = balancing_weights(d, e, estimand)
    if estimator == "ipw":
        return _hajek(y, d, w, codes, n_groups)
    if estimator == "ipw_within":
        return _within(y, d, w, codes, n_groups, estimand)
    return _aipw(y, d, e, w, codes, n_groups, estimand, mu)


def _hajek(y, d, w, codes, n_groups) -> Estimate:
    n = len(y)
    w1, w0 = w * d, w * (1 - d)
    m1, m0 = w1 @ y / w1.sum(), w0 @ y / w0.sum()
    phi = w1 * (y - m1) / (w1.sum() / n) - w0 * (y - m0) / (w0.sum() / n)
    return _estimate(m1 - m0, w, phi / n, codes, n_groups)


def _within(y, d, w, codes, n_groups, estimand) -> Estimate:
    w1, w0 = w * d, w * (1 - d)
    s1, s0 = group_sums(codes, w1, n_groups), group_sums(codes, w0, n_groups)
    one_arm = np.flatnonzero((s1 == 0) | (s0 == 0))
    if one_arm.size:
        raise DataError(
            f"the within-cluster estimator needs both arms in every cluster; cluster codes "
            f"{one_arm[:10].tolist()} have one arm only (drop them first)."
        )
    contrast = group_sums(codes, w1 * y, n_groups) / s1 - group_sums(codes, w0 * y, n_groups) / s0
    size = np.bincount(codes, weights=d if estimand == "ATT" else None, minlength=n_groups)
    share = size / size.sum()
    est = float(share @ contrast)
    # Clusters as the sampled units: the variance of a share-weighted mean of their
    # contrasts, each cluster's term shared by its units.
    dev = share * (contrast - est)
    units = np.bincount(codes, minlength=n_groups)
    effective = share[codes] * (w1 / s1[codes] + w0 / s0[codes])
    return _estimate(est, effective, dev[codes] / units[codes], codes, n_groups)


def _aipw(y, d, e, w, codes, n_groups, estimand, mu) -> Estimate:
    mu0, mu1 = mu
    n = len(y)
    if estimand == "ATE":
        psi = mu1 - mu0 + d * (y - mu1) / e - (1 - d) * (y - mu0) / (1 - e)
        est = float(psi.mean())
        return _estimate(est, w, (psi - est) / n, codes, n_groups)
    n1 = d.sum()
    psi = d * (y - mu0) - (1 - d) * w * (y - mu0)
    est = float(psi.sum() / n1)
    return _estimate(est, w, (psi - d * est) / n1, codes, n_groups)
