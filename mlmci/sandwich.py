"""Cluster-robust (sandwich) pieces for random-intercept GLS coefficients.

A random-intercept model fitted by REML estimates its fixed effects by GLS; with
the variance components held at their estimates, the GLS coefficients are a
linear function of the data, and their cluster-robust covariance is a sandwich.
:func:`random_intercept_scores` returns the two parts per cluster, so that the
covariance of *several* models' coefficients fitted on the same clusters (an
IV's reduced form and first stage, say) can be built jointly;
:func:`random_intercept_cov` is the one-model case.

With ``w_g = sigma2 / (sigma2 + n_g tau2)`` the GLS weight of cluster ``g``'s
mean, the bread is ``sum_g x_g'(x_g - (1 - w_g) x̄_g)`` and cluster ``g``'s
score ``x_g'(r_g - (1 - w_g) r̄_g)``; the covariance is scaled by ``G / (G - 1)``
(Stata's ``mixed, vce(cluster)``).
"""

from __future__ import annotations

import numpy as np

from mlmci.transforms import group_sums

__all__ = ["random_intercept_cov", "random_intercept_scores"]


def random_intercept_scores(
    x: np.ndarray, resid: np.ndarray, codes: np.ndarray, sigma2: float, tau2: float
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse bread (k, k) and the per-cluster scores (G, k) of random-intercept GLS.

    ``x`` is the fixed-effects design (n, k), ``resid = y - x beta``, ``codes``
    the cluster codes 0..G-1, ``sigma2`` and ``tau2`` the residual and
    intercept variances. The coefficients' influence of cluster ``g`` is
    ``bread_inv @ scores[g]``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> codes = np.repeat(np.arange(5), 4)
    >>> x = np.column_stack([np.ones(20), rng.normal(size=20)])
    >>> bread_inv, scores = random_intercept_scores(x, rng.normal(size=20), codes, 1.0, 0.5)
    >>> bread_inv.shape, scores.shape
    ((2, 2), (5, 2))
    """
    n_groups = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=n_groups).astype(float)
    w = sigma2 / (sigma2 + sizes * tau2)
    shrink = (1.0 - w)[codes]
    xbar = group_sums(codes, x, n_groups) / sizes[:, None]
    rbar = np.bincount(codes, weights=resid, minlength=n_groups) / sizes
    xt = x - shrink[:, None] * xbar[codes]
    bread_inv = np.linalg.inv(x.T @ xt)
    rt = resid - shrink * rbar[codes]
    scores = group_sums(codes, x * rt[:, None], n_groups)
    return bread_inv, scores


def random_intercept_cov(
    x: np.ndarray, resid: np.ndarray, codes: np.ndarray, sigma2: float, tau2: float
) -> np.ndarray:
    """Cluster-robust covariance of random-intercept GLS coefficients (CR1 factor G/(G-1))."""
    bread_inv, scores = random_intercept_scores(x, resid, codes, sigma2, tau2)
    n_groups = scores.shape[0]
    cov = bread_inv @ (scores.T @ scores) @ bread_inv.T * n_groups / (n_groups - 1)
    return (cov + cov.T) / 2
