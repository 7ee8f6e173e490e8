"""The only code of the DiD design that touches a library's internals (pyfixest, mixedlm).

- :func:`ols`: a pyfixest ``feols`` fit, returned as names, coefficients and
  covariance (pyfixest keeps the full covariance in the private ``_vcov``).
- :func:`reml`: a random-intercept model through :func:`mlmci.mixed.fit`.
- :func:`re_cluster_cov`: the cluster-robust (sandwich) covariance of the
  random-effects GLS coefficients, for given variance components.

Small-sample conventions (those of pyfixest's ``CRV1``, which follow fixest):
clustered by unit, ``V = G/(G-1) (n-1)/(n-k) (X̃'X̃)^{-1} M (X̃'X̃)^{-1}`` with
``k`` the number of coefficients plus the number of period effects (unit
effects are nested in the clusters and not counted), and t intervals with
``G - 1`` degrees of freedom.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class OLSFit:
    """Coefficients and covariance of one linear fit, with its t degrees of freedom."""

    names: list[str]
    beta: np.ndarray
    cov: np.ndarray
    df: float | None
    native: object


def _pyfixest():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyfixest

    return pyfixest


def ols(formula: str, frame: pd.DataFrame, *, vcov: str, cluster: str = "_unit") -> OLSFit:
    """Fit ``formula`` with pyfixest's feols; ``vcov``: ``"cluster"``, ``"iid"``, ``"hetero"``."""
    pf = _pyfixest()
    spec = {"CRV1": cluster} if vcov == "cluster" else vcov  # "iid" or "hetero" (HC1)
    # pyfixest 0.60 on pandas 3 warns (Pandas4Warning: the `inplace=` keyword of
    # DataFrame.reset_index / drop is deprecated) from inside its own code on every fit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from pandas.errors import Pandas4Warning

            warnings.simplefilter("ignore", Pandas4Warning)
        except ImportError:  # pragma: no cover - older pandas
            pass
        # A tight tolerance on the alternating projections that absorb the fixed effects
        # (pyfixest's default, 1e-8, leaves errors of ~1e-8 in the coefficients).
        native = pf.feols(formula, data=frame, vcov=spec, fixef_tol=1e-13, fixef_maxiter=100_000)
    names = list(native._coefnames)
    beta = native.coef().reindex(names).to_numpy(dtype=float)
    cov = np.asarray(native._vcov, dtype=float)
    # The t degrees of freedom pyfixest uses: G - 1 clustered, n - (all parameters) iid.
    df = float(native._df_t)
    return OLSFit(names=names, beta=beta, cov=(cov + cov.T) / 2, df=df, native=native)


def reml(formula: str, frame: pd.DataFrame):
    """A REML fit of a random-intercept model through :func:`mlmci.mixed.fit`."""
    from mlmci import mixed

    return mixed.fit(formula, frame, reml=True)


def re_cluster_cov(
    x: np.ndarray, resid: np.ndarray, codes: np.ndarray, sigma2: float, tau2: float
) -> np.ndarray:
    """Cluster-robust covariance of random-intercept GLS coefficients, clustered by unit.

    ``x`` is the fixed-effects design, ``resid = y - x beta``, ``codes`` the
    unit codes 0..G-1. With ``w_i = sigma2 / (sigma2 + T_i tau2)`` the GLS
    weight of unit ``i``'s mean, the scores are ``x_i'(r_i - (1 - w_i) r̄_i)``
    and the bread ``sum_i x_i'(x_i - (1 - w_i) x̄_i)``; the result is scaled by
    ``G / (G - 1)`` (Stata's ``mixed, vce(cluster)``).
    """
    n_groups = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=n_groups).astype(float)
    w = sigma2 / (sigma2 + sizes * tau2)
    shrink = (1.0 - w)[codes]
    xbar = np.zeros((n_groups, x.shape[1]))
    np.add.at(xbar, codes, x)
    xbar /= sizes[:, None]
    rbar = np.bincount(codes, weights=resid, minlength=n_groups) / sizes
    xt = x - shrink[:, None] * xbar[codes]
    bread = np.linalg.inv(x.T @ xt)
    rt = resid - shrink * rbar[codes]
    scores = np.zeros((n_groups, x.shape[1]))
    np.add.at(scores, codes, x * rt[:, None])
    meat = scores.T @ scores
    cov = bread @ meat @ bread.T * n_groups / (n_groups - 1)
    return (cov + cov.T) / 2
