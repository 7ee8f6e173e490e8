"""Closed-form IV estimators for Monte Carlo loops (numpy, no checks).

:func:`fast_estimates` computes, from arrays, the numbers :func:`mlmci.iv.fit`
gives with heteroskedasticity-robust SEs (its default engine) for the methods
a Monte Carlo study of multi-site IV needs:

- ``"ols"``, ``"2sls"``, ``"2sls_interacted"``, ``"liml_interacted"``: k-class
  estimators with site intercepts absorbed by the within transform and
  linearmodels' robust covariance (bread from the k-class cross-product, scores
  from the projected regressors) — equal to :func:`mlmci.iv.fit` to 1e-10;
- ``"re"``, ``"re_mundlak"``: the ratio of random-intercept reduced form and
  first stage, by closed-form REML on equal-sized sites
  (:func:`mlmci.fastpath.reml_random_intercept`) and the joint cluster-robust
  sandwich — equal to :func:`mlmci.iv.fit` to the REML optimizers' tolerance;
- ``"per_site"``, ``"multisite_re"``: the same code as :func:`mlmci.iv.fit`
  (``mlmci.designs.iv.multisite``), with the per-site rows.

The tests (``tests/test_iv_fast.py``) hold each method to :func:`mlmci.iv.fit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mlmci.designs.iv.design import IVData, demean, group_sums
from mlmci.designs.iv.multisite import bivariate_reml, ratio_with_se, site_effects
from mlmci.errors import ArgumentError
from mlmci.threads import one_blas_thread

__all__ = ["FAST_METHODS", "fast_estimates"]

FAST_METHODS = (
    "ols",
    "2sls",
    "2sls_interacted",
    "liml_interacted",
    "re",
    "re_mundlak",
    "per_site",
    "multisite_re",
)


def _kclass(y, w, z, exog, method):
    """k-class estimate and linearmodels-robust SE of the first column of ``w`` (demeaned data)."""
    n = len(y)
    x = np.column_stack([w, exog])
    if method == "ols":
        xtx_inv = np.linalg.inv(x.T @ x)
        beta = xtx_inv @ x.T @ y
        e = y - x @ beta
        s = (x * e[:, None]).T @ (x * e[:, None])
        cov = xtx_inv @ s @ xtx_inv
        return float(beta[0]), float(np.sqrt(cov[0, 0]))
    zall = np.column_stack([z, exog])
    q, _ = np.linalg.qr(zall)
    xhat = q @ (q.T @ x)  # P_Z X
    kappa = 1.0
    if method == "liml_interacted":
        yy = np.column_stack([y, w])
        if exog.shape[1]:
            qx, _ = np.linalg.qr(exog)
            mx = yy - qx @ (qx.T @ yy)
        else:
            mx = yy
        mz = yy - q @ (q.T @ yy)
        kappa = float(np.min(np.linalg.eigvals(np.linalg.solve(mz.T @ mz, mx.T @ mx)).real))
    v = (1 - kappa) * (x.T @ x) + kappa * (x.T @ xhat)
    rhs = (1 - kappa) * (x.T @ y) + kappa * (xhat.T @ y)
    beta = np.linalg.solve(v, rhs)
    e = y - x @ beta
    v_inv = np.linalg.inv(v / n)
    scores = xhat * e[:, None]
    cov = v_inv @ (scores.T @ scores / n) @ v_inv / n
    return float(beta[0]), float(np.sqrt(cov[0, 0]))


def _ratio(design: IVData, mundlak: bool):
    from mlmci.fastpath import reml_random_intercept
    from mlmci.sandwich import random_intercept_scores

    codes, n_sites = design.codes, design.n_sites
    size = len(codes) // n_sites
    z = design.z[:, 0]
    cols = [np.ones(len(z)), z, *design.x.T]
    zbar = group_sums(codes, z, n_sites) / size
    if mundlak and np.ptp(zbar) > 1e-12 * max(1.0, float(np.max(np.abs(zbar)))):
        cols.append(zbar[codes])
    x = np.column_stack(cols)
    coefs, influence = [], []
    for lhs in (design.y, design.d):
        beta, sigma2, tau2, *_ = reml_random_intercept(x, lhs, n_sites, size)
        bread_inv, scores = random_intercept_scores(x, lhs - x @ beta, codes, sigma2, tau2)
        coefs.append(beta[1])
        influence.append(scores @ bread_inv.T[:, 1])
    psi = np.column_stack(influence)
    cov = psi.T @ psi * n_sites / (n_sites - 1)
    return ratio_with_se(coefs[0], coefs[1], cov), float(n_sites - 1)


@one_blas_thread
def fast_estimates(
    y: np.ndarray,
    d: np.ndarray,
    z: np.ndarray,
    x: np.ndarray,
    site: np.ndarray,
    methods: Sequence[str],
    *,
    prob: float = 0.95,
) -> pd.DataFrame:
    """The Monte Carlo workhorse: one row per method (``term == "d"``), site rows for two.

    ``y``, ``d``, ``z`` (n,), ``x`` (n, p), ``site`` integer codes 0..J-1 with
    the rows sorted by site (the ``"re"`` methods need equal-sized sites).
    Returns ``estimator, term, group, estimate, std_error, ci_low, ci_high``;
    ``"per_site"`` and ``"multisite_re"`` add one row per site (``group`` the
    code) with the site's LATE (``multisite_re``: the ratio of the shrunken ITT
    and first stage), and ``multisite_re`` a ``"site_average"`` row.
    """
    unknown = [m for m in methods if m not in FAST_METHODS]
    if unknown:
        raise ArgumentError(f"the fast path has no method(s) {unknown}; it has {FAST_METHODS}.")
    codes = np.asarray(site, dtype=np.int64)
    n_sites = int(codes.max()) + 1
    x = np.asarray(x, float).reshape(len(y), -1)
    design = IVData(
        y=np.asarray(y, float),
        d=np.asarray(d, float),
        z=np.asarray(z, float).reshape(len(y), 1),
        x=x,
        codes=codes,
        sites=pd.RangeIndex(n_sites, name="site"),
        outcome="y",
        treatment="d",
        instruments=("z",),
        covariates=tuple(f"x{k}" for k in range(x.shape[1])),
        site="site",
    )
    q_norm = stats.norm.ppf((1 + prob) / 2)
    rows: list[tuple] = []

    def add(method, term, group, est, se, q):
        rows.append((method, term, group, est, se, est - q * se, est + q * se))

    needs_within = [
        m for m in methods if m in ("ols", "2sls", "2sls_interacted", "liml_interacted")
    ]
    if needs_within:
        yt, dt, zt, xt = (demean(codes, a, n_sites) for a in (design.y, design.d, design.z, x))
        onehot = np.eye(n_sites)[codes]
        for m in needs_within:
            zm = zt * onehot if m.endswith("_interacted") else zt
            est, se = _kclass(yt, dt[:, None], zm, xt, m)
            add(m, "d", None, est, se, q_norm)
    for m in ("re", "re_mundlak"):
        if m in methods:
            (est, se), df = _ratio(design, mundlak=m == "re_mundlak")
            add(m, "d", None, est, se, stats.t.ppf((1 + prob) / 2, df))
    if "per_site" in methods or "multisite_re" in methods:
        sites = site_effects(design)
        if "per_site" in methods:
            lates = [
                ratio_with_se(e[0], e[1], c) for e, c in zip(sites.est, sites.cov, strict=True)
            ]
            values = np.array([v for v, _ in lates])
            ses = np.array([s for _, s in lates])
            add("per_site", "d", None, values.mean(), np.sqrt(np.sum(ses**2)) / n_sites, q_norm)
            for j, (v, s) in enumerate(lates):
                add("per_site", "d", j, v, s, q_norm)
        if "multisite_re" in methods:
            biv = bivariate_reml(sites.est, sites.cov)
            est, se = ratio_with_se(biv.mu[0], biv.mu[1], biv.mu_cov)
            add("multisite_re", "d", None, est, se, q_norm)
            lates = [ratio_with_se(e[0], e[1], c) for e, c in zip(biv.shrunk, biv.pev, strict=True)]
            add(
                "multisite_re", "site_average", None, np.mean([v for v, _ in lates]), np.nan, q_norm
            )
            for j, (v, s) in enumerate(lates):
                add("multisite_re", "d", j, v, s, q_norm)
    return pd.DataFrame(
        rows,
        columns=["estimator", "term", "group", "estimate", "std_error", "ci_low", "ci_high"],
    )
