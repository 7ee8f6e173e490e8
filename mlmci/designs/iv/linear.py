"""Single-equation IV estimators through linearmodels: OLS, 2SLS and LIML, with site effects.

The only code of the IV design that touches linearmodels. Site intercepts are
absorbed by the within-site transform (Frisch-Waugh-Lovell holds for every
k-class estimator, so the coefficients equal those with site dummies), and the
degrees-of-freedom conventions are set explicitly:

- ``"robust"``: heteroskedasticity-robust (HC0), normal intervals — Stata's
  ``ivregress 2sls ..., vce(robust)``;
- ``"unadjusted"``: classical, with the residual variance on ``n - k``
  degrees of freedom where ``k`` counts the site intercepts — the textbook
  (Wooldridge) convention; t intervals on ``n - k``;
- ``"clustered"``: cluster-robust by site with the CR1 factor
  ``G/(G-1) (n-1)/(n-k)``, ``k`` not counting the site intercepts (they nest in
  the clusters, as in Stata's ``xtivreg, fe`` and fixest), t intervals on
  ``G - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmci.designs.iv.design import IVData, demean, group_sums
from mlmci.errors import ArgumentError
from mlmci.threads import one_blas_thread

COV_TYPES = ("robust", "unadjusted", "clustered")


@dataclass(frozen=True)
class LinearFit:
    """The treatment coefficient of one fit, its SE, t degrees of freedom and diagnostics."""

    estimate: float
    std_error: float
    df: float | None
    first_stage_f: float | None
    kappa: float | None
    n_obs: int
    native: object


def instruments_matrix(design: IVData, interacted: bool) -> tuple[np.ndarray, list[str]]:
    """The excluded instruments: as given, or each instrument interacted with every site."""
    names = list(design.instruments)
    if not interacted:
        return design.z, names
    if design.codes is None:
        raise ArgumentError("the interacted methods need `site`: they use one instrument per site.")
    onehot = np.eye(design.n_sites)[design.codes]
    cols = [design.z[:, [k]] * onehot for k in range(design.z.shape[1])]
    labels = [f"{n}:{s}" for n in names for s in design.sites]
    return np.hstack(cols), labels


@one_blas_thread
def fit_linear(design: IVData, *, method: str, cov_type: str) -> LinearFit:
    """Fit ``"ols"``, ``"2sls"``, ``"liml"`` or their ``"_interacted"`` variants."""
    from linearmodels.iv import IV2SLS, IVLIML

    if cov_type not in COV_TYPES:
        raise ArgumentError(f"cov_type must be one of {COV_TYPES}, got {cov_type!r}.")
    if cov_type == "clustered" and design.codes is None:
        raise ArgumentError("cov_type='clustered' clusters by site: pass `site`.")
    base = method.removesuffix("_interacted")
    zmat, znames = instruments_matrix(design, interacted=method.endswith("_interacted"))
    y, d, x = design.y, design.d[:, None], design.x
    n = len(y)
    if design.codes is not None:
        g = design.n_sites
        y, d, x, zmat = (demean(design.codes, a, g) for a in (y, d, x, zmat))
        exog_cols, exog = list(design.covariates), x
    else:
        exog_cols = ["const", *design.covariates]
        exog = np.column_stack([np.ones(n), x])
    exog_frame = pd.DataFrame(exog, columns=exog_cols) if exog_cols else None
    treat = design.treatment
    dep = pd.Series(y, name=design.outcome)
    endog = pd.DataFrame(d, columns=[treat])
    if base == "ols":
        exog_all = pd.concat([endog, exog_frame], axis=1) if exog_frame is not None else endog
        model = IV2SLS(dep, exog_all, None, None)
    else:
        inst = pd.DataFrame(zmat, columns=znames)
        cls = IV2SLS if base == "2sls" else IVLIML
        model = cls(dep, exog_frame, endog, inst)
    k = 1 + len(exog_cols)
    absorbed = design.n_sites if design.codes is not None else 0
    if cov_type == "robust":
        res = model.fit(cov_type="robust")
        df = None
    elif cov_type == "unadjusted":
        res = model.fit(cov_type="unadjusted", debiased=True, extra_df=absorbed)
        df = float(n - k - absorbed)
    else:
        res = model.fit(cov_type="clustered", clusters=design.codes, debiased=True)
        df = float(design.n_sites - 1)
    f_stat = None if base == "ols" else first_stage_f(d[:, 0], zmat, exog, design, cov_type)
    kappa = float(res.kappa) if base == "liml" else None
    return LinearFit(
        estimate=float(res.params[treat]),
        std_error=float(res.std_errors[treat]),
        df=df,
        first_stage_f=f_stat,
        kappa=kappa,
        n_obs=n,
        native=res,
    )


def first_stage_f(
    d: np.ndarray, zmat: np.ndarray, exog: np.ndarray, design: IVData, cov_type: str
) -> float:
    """The first-stage F of the excluded instruments, with the fit's covariance convention.

    Wald statistic of the instruments' coefficients in the regression of the
    treatment on instruments and exogenous regressors, divided by their number
    (the robust or cluster-robust "effective" F when the errors are not iid).
    """
    if exog.shape[1]:
        proj = np.linalg.lstsq(exog, np.column_stack([d, zmat]), rcond=None)[0]
        resid = np.column_stack([d, zmat]) - exog @ proj
        d, zmat = resid[:, 0], resid[:, 1:]
    n, m = zmat.shape
    bread = np.linalg.pinv(zmat.T @ zmat)
    pi = bread @ zmat.T @ d
    e = d - zmat @ pi
    absorbed = design.n_sites if design.codes is not None else 0
    k = m + exog.shape[1]
    if cov_type == "unadjusted":
        cov = bread * (e @ e) / (n - k - absorbed)
    elif cov_type == "robust":
        scores = zmat * e[:, None]
        cov = bread @ (scores.T @ scores) @ bread
    else:
        g = design.n_sites
        scores = group_sums(design.codes, zmat * e[:, None], g)
        cov = bread @ (scores.T @ scores) @ bread * g / (g - 1) * (n - 1) / (n - k)
    return float(pi @ np.linalg.pinv(cov) @ pi / m)
