r"""Closed-form panel estimators for Monte Carlo studies: :func:`mlmci.panel.compare` in numpy.

:func:`compare_table` returns the table ``mlmci.panel.compare(...).tidy()``
returns: the same five estimators, the same estimates, standard errors and
intervals (``tests/test_fastpath.py`` checks them to 1e-10 on random
balanced and unbalanced panels), computed with a few matrix products instead
of five linearmodels fits. A Monte Carlo replication then takes about a
few milliseconds instead of tenths of a second. Use :func:`mlmci.panel.compare`
for real data: it also finds and reports what an estimator cannot identify,
keeps the fitted linearmodels results and runs the specification tests; the
fast path refuses a rank-deficient design instead, and has no period effects.

The estimators and the conventions they copy from linearmodels (with ``n``
observations, ``G`` entities, ``k`` coefficients of the estimator):

* ``"pooled"``: OLS of ``y`` on ``1, x, z``.
* ``"between"``: OLS of the entity means on ``1, x̄, z`` (``G`` rows).
* ``"fe"``: OLS of ``y - ȳ_i + ȳ`` on ``1, x - x̄_i + x̄`` (the within
  estimator, with linearmodels' intercept).
* ``"re"``: random-effects GLS: OLS of ``y - θ_i ȳ_i`` on the same
  quasi-demeaned ``1, x, z``, with the Swamy-Arora variance components
  linearmodels' :class:`~linearmodels.panel.RandomEffects` uses:
  :math:`\hat\sigma^2_e` from the within residuals over
  :math:`n - G - k_x`, :math:`\hat\sigma^2_u = \max(0, SSR_B/(G - k_B) -
  \hat\sigma^2_e / \bar T)` from the between residuals (:math:`\bar T` the
  harmonic mean of the :math:`T_i`), and
  :math:`\theta_i = 1 - \sqrt{\hat\sigma^2_e / (T_i\hat\sigma^2_u + \hat\sigma^2_e)}`.
* ``"mundlak"``: the same GLS with the entity means ``x_mean`` added.

Covariances are sandwiches :math:`(X'X)^{-1} M (X'X)^{-1}` on each
estimator's transformed design, scaled as linearmodels scales them with
``debiased=True`` (its default): ``"unadjusted"``
:math:`s^2 (X'X)^{-1}`; ``"robust"`` :math:`M = \sum_i x_i x_i' e_i^2`;
``"clustered"`` :math:`M = \sum_g s_g s_g'`, :math:`s_g = \sum_{i \in g} x_i e_i`
(by entity). The scale is :math:`n/(n-k)` (between: :math:`G/(G-k)`, where
clustering by entity is the robust covariance), except for fixed effects,
whose ``G - 1`` absorbed effects are counted as degrees of freedom in the
unadjusted and robust covariances (:math:`n/(n-k-G+1)`) and not in the
clustered one, which follows Stata's ``xtreg, fe vce(cluster)``:
``mlmci.panel.stata_cluster_factor``. Intervals use the t distribution
with the residual degrees of freedom (:math:`n-k`; fixed effects
:math:`n-k-G+1`; between :math:`G-k`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from mlmci.errors import DataError
from mlmci.identification import dependent_columns
from mlmci.panel import CONST, COV_TYPES, ESTIMATORS, MEAN_SUFFIX, CovType, stata_cluster_factor
from mlmci.results import interval_label
from mlmci.transforms import group_sums
from mlmci.validation import (
    as_list,
    require_columns,
    require_dataframe,
    require_no_missing,
    require_numeric,
)

__all__ = ["compare_table", "reml_random_intercept"]


def compare_table(
    data: pd.DataFrame,
    y: str,
    x: str | Sequence[str],
    *,
    entity: str,
    invariant: str | Sequence[str] = (),
    cov_type: CovType = "clustered",
    terms: str | Sequence[str] | None = None,
    prob: float = 0.95,
) -> pd.DataFrame:
    """The table of :func:`mlmci.panel.compare` without period effects, in closed form.

    Parameters
    ----------
    data
        A long panel, one row per entity and period (the period column is not
        needed: without period effects the estimators ignore the order of the
        rows). No missing values in the columns used.
    y
        The outcome column.
    x
        The time-varying regressors.
    entity
        The column identifying the entity.
    invariant
        Time-invariant regressors (constant within each entity; checked).
    cov_type
        ``"clustered"`` (by entity, the default), ``"robust"`` or
        ``"unadjusted"``: the conventions of :func:`mlmci.panel.compare`.
    terms
        The coefficients to report, as in
        :meth:`mlmci.panel.PanelComparison.tidy`; by default all but the
        intercept.
    prob
        Coverage of the confidence intervals.

    Returns
    -------
    pandas.DataFrame
        ``compare(data, y, x, entity=entity, time=..., invariant=invariant,
        cov_type=cov_type).tidy(prob=prob)``: columns ``estimator, term,
        estimate, std_error, ci_low, ci_high, interval``; rows ``x`` and ``z``
        for pooled, between and random effects, ``x`` for fixed effects,
        ``x``, ``z`` and the contextual effects ``{x}_mean`` for Mundlak.

    Raises
    ------
    DataError
        A missing column or value, fewer than two entities, an ``invariant``
        column that varies within an entity, a regressor that does not vary
        within entities, a rank-deficient design (use
        :func:`mlmci.panel.compare`, which drops and reports such columns), or
        too few observations for the variance components.
    DataTypeError
        A non-numeric outcome or regressor.

    Examples
    --------
    >>> import warnings
    >>> from mlmci.panel import IdentificationWarning, compare
    >>> from mlmci.simulate import simulate_panel
    >>> data, truth = simulate_panel(n_entities=40, n_periods=4, corr=0.5, seed=3)
    >>> fast = compare_table(data, "y", "x", entity="unit", invariant="z")
    >>> fast.estimator.tolist()
    ['pooled', 'pooled', 'between', 'between', 're', 're', 'fe', 'mundlak', 'mundlak', 'mundlak']
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", IdentificationWarning)
    ...     slow = compare(data, "y", "x", entity="unit", time="period", invariant="z").tidy()
    >>> bool(np.allclose(fast[["estimate", "std_error"]], slow[["estimate", "std_error"]],
    ...                  rtol=1e-10, atol=0))
    True
    """
    require_dataframe(data)
    xs, zs = as_list(x, "x"), as_list(invariant, "invariant")
    if not xs:
        raise DataError("`x` is empty: compare_table needs at least one time-varying regressor.")
    if cov_type not in COV_TYPES:
        raise DataError(f"cov_type must be one of {list(COV_TYPES)}, got {cov_type!r}.")
    variables = [y, *xs, *zs]
    if len(set(variables)) < len(variables) or entity in variables:
        raise DataError(
            f"y, x, invariant and entity must be distinct columns; got y={y!r}, x={xs}, "
            f"invariant={zs}, entity={entity!r}."
        )
    require_columns(data, [entity, *variables])
    require_numeric(data, variables)
    wanted = None if terms is None else set(as_list(terms, "terms"))
    if wanted is not None:
        known = {*variables[1:], *(f"{c}{MEAN_SUFFIX}" for c in xs), CONST}
        unknown = sorted(wanted - known)
        if unknown:
            raise DataError(
                f"term(s) {unknown} are in none of the models; available terms: {sorted(known)}."
            )
    # Column by column: selecting a list of columns costs more than the estimators.
    columns = {c: data[c].to_numpy(dtype=float) for c in variables}
    codes = pd.factorize(data[entity], use_na_sentinel=True)[0]
    if (codes < 0).any() or not all(np.isfinite(v).all() for v in columns.values()):
        require_no_missing(data, [entity, *variables])  # names the column
        raise DataError(f"the columns {variables} hold infinite values; drop or fix them.")
    n = codes.shape[0]

    def block(names: list[str]) -> np.ndarray:
        return np.column_stack([columns[c] for c in names]) if names else np.empty((n, 0))

    return _table(
        codes,
        columns[y],
        block(xs),
        block(zs),
        xs=xs,
        zs=zs,
        cov_type=cov_type,
        terms=wanted,
        prob=prob,
    )


# --------------------------------------------------------------------------- numpy core


@functools.lru_cache(maxsize=256)
def _t_quantile(prob: float, df: int) -> float:
    # A Monte Carlo asks for the same few (prob, df) pairs thousands of times.
    return float(stats.t.ppf(prob, df))


def _check_rank(
    design: np.ndarray, names: list[str], estimator: str, scale: np.ndarray | None = None
) -> None:
    """Refuse a design with a redundant column (``scale``: see ``dependent_columns``)."""
    if dependent_columns(design, names, scale=scale):
        raise DataError(
            f"the {estimator!r} design ({', '.join(names)}) is rank deficient; the fast path "
            "needs identified regressors. Use mlmci.panel.compare, which drops and reports "
            "the columns an estimator cannot identify."
        )


def _ols(
    design: np.ndarray,
    outcome: np.ndarray,
    codes: np.ndarray | None,
    n_groups: int,
    cov_type: str,
    absorbed: int = 0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """OLS coefficients, covariance and residual df with linearmodels' scaling.

    ``absorbed`` is the number of absorbed effects counted in the degrees of
    freedom (fixed effects: ``G - 1``); ``codes`` the entity of each row for
    the clustered covariance (``None``: every row is its own cluster).
    """
    nobs, k = design.shape
    xtx_inv = np.linalg.inv(design.T @ design)
    params = xtx_inv @ (design.T @ outcome)
    resid = outcome - design @ params
    df_resid = nobs - k - absorbed
    if df_resid <= 0:
        raise DataError(
            f"no residual degrees of freedom: {nobs} rows and {k + absorbed} parameters."
        )
    if cov_type == "unadjusted":
        cov = float(resid @ resid) / df_resid * xtx_inv
        return params, cov, df_resid
    scores = design * resid[:, None]
    if cov_type == "clustered" and codes is not None:
        scores = group_sums(codes, scores, n_groups)
    meat = scores.T @ scores
    if absorbed and cov_type == "clustered":
        # Fixed effects: the absorbed entity effects nest within the clusters
        # and are not counted (Stata's xtreg, fe vce(cluster)).
        scale = stata_cluster_factor(nobs, n_groups, k)
    else:
        scale = nobs / df_resid
    cov = scale * (xtx_inv @ meat @ xtx_inv)
    return params, (cov + cov.T) / 2, df_resid


def _table(
    codes: np.ndarray,
    yv: np.ndarray,
    xv: np.ndarray,
    zv: np.ndarray,
    *,
    xs: list[str],
    zs: list[str],
    cov_type: str,
    terms: set[str] | None,
    prob: float,
) -> pd.DataFrame:
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups < 2:
        raise DataError(f"the panel has {n_groups} entity; the estimators need at least two.")
    nobs = yv.shape[0]
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    kx = xv.shape[1]

    # Entity means, and the same means on every row.
    raw = np.column_stack([yv, xv, zv])
    means = group_sums(codes, raw, n_groups) / counts[:, None]
    rows_mean = means[codes]
    if zs:
        varies = np.abs(zv - rows_mean[:, 1 + kx :]).max(axis=0) > 1e-9 * (
            1.0 + np.abs(zv).max(axis=0)
        )
        if varies.any():
            bad = [z for z, v in zip(zs, varies, strict=True) if v]
            raise DataError(
                f"column(s) {bad} were passed in `invariant` but vary within an entity; "
                "pass them in `x` instead."
            )
    ybar_i, xbar_i, zbar_i = means[:, 0], means[:, 1 : 1 + kx], means[:, 1 + kx :]
    x_rows_mean = rows_mean[:, 1 : 1 + kx]
    ones = np.ones(nobs)

    pooled_names = [CONST, *xs, *zs]
    pooled_design = np.column_stack([ones, xv, zv])
    mundlak_names = [*pooled_names, *(f"{c}{MEAN_SUFFIX}" for c in xs)]
    mundlak_design = np.column_stack([pooled_design, x_rows_mean])
    between_design = np.column_stack([np.ones(n_groups), xbar_i, zbar_i])
    _check_rank(mundlak_design, mundlak_names, "mundlak")  # covers pooled and re too
    _check_rank(between_design, pooled_names, "between")

    # Within: demean by entity, add back the grand mean (linearmodels' intercept).
    y_within = yv - rows_mean[:, 0]
    x_within = xv - x_rows_mean
    # measured against the raw columns: a regressor constant within entities leaves
    # only rounding noise after demeaning
    _check_rank(x_within, xs, "fe", scale=np.linalg.norm(xv, axis=0))
    fe_design = np.column_stack([ones, x_within + xv.mean(axis=0)])
    fe_outcome = y_within + yv.mean()

    fits: dict[str, tuple[list[str], np.ndarray, np.ndarray, int]] = {}
    params, cov, df = _ols(pooled_design, yv, codes, n_groups, cov_type)
    fits["pooled"] = (pooled_names, params, cov, df)
    between_codes = np.arange(n_groups)  # one row per entity: clusters are the rows
    params, cov, df = _ols(between_design, ybar_i, between_codes, n_groups, cov_type)
    fits["between"] = (pooled_names, params, cov, df)
    params_fe, cov, df = _ols(fe_design, fe_outcome, codes, n_groups, cov_type, n_groups - 1)
    fits["fe"] = ([CONST, *xs], params_fe, cov, df)

    # Swamy-Arora variance components, as linearmodels' RandomEffects.
    df_within = nobs - n_groups - kx
    df_between = n_groups - between_design.shape[1]
    if df_within <= 0 or df_between <= 0:
        raise DataError(
            f"too few observations for the variance components: {nobs} rows, {n_groups} "
            f"entities, {kx} time-varying and {between_design.shape[1]} between regressors."
        )
    within_resid = y_within - x_within @ params_fe[1:]
    sigma2_e = float(within_resid @ within_resid) / df_within
    between_coef = np.linalg.lstsq(between_design, ybar_i, rcond=None)[0]
    between_resid = ybar_i - between_design @ between_coef
    t_bar = n_groups / float((1.0 / counts).sum())
    sigma2_u = max(0.0, float(between_resid @ between_resid) / df_between - sigma2_e / t_bar)
    theta = 1.0 - np.sqrt(sigma2_e / (counts * sigma2_u + sigma2_e))
    theta_rows = theta[codes][:, None]

    y_quasi = yv - theta[codes] * ybar_i[codes]
    pooled_means = np.column_stack([np.ones(nobs), x_rows_mean, rows_mean[:, 1 + kx :]])
    re_design = pooled_design - theta_rows * pooled_means
    params, cov, df = _ols(re_design, y_quasi, codes, n_groups, cov_type)
    fits["re"] = (pooled_names, params, cov, df)
    # The entity mean of x_mean is x_mean itself.
    mundlak_quasi = np.column_stack([re_design, (1.0 - theta_rows) * x_rows_mean])
    params, cov, df = _ols(mundlak_quasi, y_quasi, codes, n_groups, cov_type)
    fits["mundlak"] = (mundlak_names, params, cov, df)

    label = interval_label(prob, "CI")
    upper = 1.0 - (1.0 - prob) / 2.0
    keys: list[tuple[str, str]] = []
    numbers: list[np.ndarray] = []
    for name in ESTIMATORS:
        names, params, cov, df = fits[name]
        keep = [
            j for j, term in enumerate(names) if (term != CONST if terms is None else term in terms)
        ]
        se = np.sqrt(np.diag(cov))[keep]
        est = params[keep]
        q = _t_quantile(upper, df)
        keys.extend((name, names[j]) for j in keep)
        numbers.append(np.column_stack([est, se, est - q * se, est + q * se]))
    values = np.vstack(numbers)
    estimators, term_column, intervals = _label_columns(tuple(keys), label)
    return pd.DataFrame(
        {
            "estimator": estimators,
            "term": term_column,
            "estimate": values[:, 0],
            "std_error": values[:, 1],
            "ci_low": values[:, 2],
            "ci_high": values[:, 3],
            "interval": intervals,
        }
    )


@functools.lru_cache(maxsize=64)
def _label_columns(keys: tuple[tuple[str, str], ...], label: str) -> tuple[Any, Any, Any]:
    # The text columns are the same in every replication of a study: building
    # pandas' string arrays once saves most of the cost of the table (they are
    # immutable, so the tables can share them).
    return (
        pd.array([k[0] for k in keys], dtype="str"),
        pd.array([k[1] for k in keys], dtype="str"),
        pd.array([label] * len(keys), dtype="str"),
    )


def reml_random_intercept(x: np.ndarray, yv: np.ndarray, n_units: int, n_times: int):
    """REML of ``y = X beta + u_i + e`` on a balanced panel (rows unit-major).

    The closed-form random-intercept fit the DiD and IV fast paths share: for
    balanced groups the criterion is a function of one variance ratio, profiled
    in O(p) per evaluation. Tested equal to :func:`mlmci.mixed.fit`.

    Returns ``beta, sigma2, tau2, M^-1, boundary, criterion`` with ``M`` the
    GLS cross-product scaled by ``sigma2`` (so ``sigma2 M^-1`` is the model
    covariance) and ``criterion`` the profiled -2 REML log-likelihood up to a
    constant.
    """
    n, p = x.shape
    xm = x.reshape(n_units, n_times, p).mean(1)
    ym = yv.reshape(n_units, n_times).mean(1)
    ap = n_times * xm.T @ xm
    aq = x.T @ x - ap
    bp = n_times * xm.T @ ym
    bq = x.T @ yv - bp
    cp = n_times * float(ym @ ym)
    cq = float(yv @ yv) - cp

    # Diagonalize X'QX and X'PX together once (X'X = X'QX + X'PX = R R'): with
    # L = R^-T U, L'(X'QX + w X'PX)L = diag(1 - e + w e), so every evaluation of
    # the criterion below costs O(p) instead of a p x p solve and determinant.
    chol = np.linalg.cholesky(aq + ap)
    r_inv = np.linalg.inv(chol)
    e, u = np.linalg.eigh(r_inv @ ap @ r_inv.T)
    e = np.clip(e, 0.0, 1.0)
    lmat = r_inv.T @ u
    lq, lp = lmat.T @ bq, lmat.T @ bp

    def parts(w: float):
        d = 1.0 - e + w * e
        z = (lq + w * lp) / d
        s = cq + w * cp - float((lq + w * lp) @ z)
        return d, z, s

    def crit(w: float) -> float:
        d, _, s = parts(w)
        return (n - p) * np.log(s) - n_units * np.log(w) + float(np.log(d).sum())

    found = optimize.minimize_scalar(
        crit, bounds=(1e-12, 1.0), method="bounded", options={"xatol": 1e-12, "maxiter": 500}
    )
    w = float(found.x)
    boundary = crit(1.0) <= crit(w)
    if boundary:
        w = 1.0
    d, z, s = parts(w)
    beta = lmat @ z
    m_inv = (lmat / d) @ lmat.T
    sigma2 = s / (n - p)
    tau2 = sigma2 * (1.0 / w - 1.0) / n_times
    return beta, sigma2, tau2, (m_inv + m_inv.T) / 2, boundary, float(crit(w))
