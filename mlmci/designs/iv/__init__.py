"""Instrumental variables with and without hierarchical terms (public API in :mod:`mlmci.iv`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlmci.designs.iv.design import IVData, prepare, require_within_variation
from mlmci.designs.iv.result import METHOD_NAMES, IVResult
from mlmci.engines import OLS, REML, Bayes, Engine, resolve
from mlmci.errors import ConvergenceError

__all__ = ["METHODS", "WEAK_F", "IVResult", "WeakInstrumentWarning", "fit"]

#: The estimators :func:`fit` knows, with what each one is.
METHODS = METHOD_NAMES
#: First-stage F below which an instrument counts as weak (Staiger & Stock 1997).
WEAK_F = 10.0

_LINEAR = ("ols", "2sls", "liml", "2sls_interacted", "liml_interacted")
_ALLOWED: dict[str, tuple[type, ...]] = {
    **{m: (OLS,) for m in _LINEAR},
    "re": (REML,),
    "re_mundlak": (REML,),
    "per_site": (OLS,),
    "multisite_re": (REML, Bayes),
}
_DEFAULTS: dict[str, Engine] = {
    **{m: OLS(cov_type="robust") for m in _LINEAR},
    # A zero intercept variance in one of the two regressions only makes that one pooled
    # OLS (the ratio stays consistent); the fit says so in its notes.
    "re": REML(allow_boundary=True),
    "re_mundlak": REML(allow_boundary=True),
    "per_site": OLS(cov_type="robust"),
    # With few sites the between-site covariance is often singular (a correlation at
    # +-1); shrinkage toward a line is still empirical Bayes, and the notes say so.
    "multisite_re": REML(allow_boundary=True),
}


class WeakInstrumentWarning(UserWarning):
    """The first stage is weak (F below ``WEAK_F``): the IV estimate is unreliable."""


def fit(
    data: pd.DataFrame,
    y: str,
    *,
    treatment: str,
    instrument: str | Sequence[str],
    covariates: Sequence[str] = (),
    site: str | None = None,
    method: str = "2sls",
    engine: Engine | None = None,
) -> IVResult:
    """Estimate the effect of ``treatment`` on ``y`` with ``instrument``, optionally by site.

    Parameters
    ----------
    data
        One row per unit. Not modified. No missing values in the columns used.
    y, treatment
        The outcome and the (endogenous) treatment, numeric.
    instrument
        One instrument column or several (the single-equation methods accept
        several; the site-by-site methods one).
    covariates
        Exogenous controls, numeric (make dummies of categorical ones first).
    site
        The site (school, village, region) column. With it, the single-equation
        methods absorb site intercepts (site fixed effects), and the multi-site
        methods estimate site by site.
    method
        ``"ols"``: OLS of ``y`` on the treatment (the biased baseline).
        ``"2sls"``, ``"liml"``: linearmodels' IV2SLS / IVLIML (with site fixed
        effects when ``site`` is given). ``"2sls_interacted"``,
        ``"liml_interacted"``: the instrument interacted with every site, one
        excluded instrument per site (many instruments), with site effects.
        ``"re"``, ``"re_mundlak"``: the ratio of a random-intercept reduced form
        and first stage (REML), without or with the site mean of the
        instrument. ``"per_site"``: one Wald ratio per site (no pooling).
        ``"multisite_re"``: the bivariate random-effects model of the site ITT
        and first-stage effects (REML; ``engine=Bayes(...)`` fits the joint
        Bayesian model instead, ``mlmci.designs.iv.twin``).
    engine
        ``OLS(cov_type=...)`` for the single-equation and per-site methods:
        ``"robust"`` (default), ``"unadjusted"`` or ``"clustered"`` (by site);
        see ``mlmci.designs.iv.linear`` for the degrees-of-freedom
        conventions. ``REML(allow_boundary=...)`` for ``"re"``, ``"re_mundlak"``
        and ``"multisite_re"``; ``Bayes(...)`` for ``"multisite_re"``.

    Returns
    -------
    IVResult
        ``effect()`` is the row whose ``term`` is ``treatment``; ``tidy()`` adds
        per-site rows for the multi-site methods; ``notes`` report weak
        first stages.

    Raises
    ------
    DataError
        A missing value, a site in which the instrument is constant (for the
        methods that use within-site variation; the sites are named), too few
        rows in a site.
    ArgumentError
        An unknown method, an engine that cannot fit it, a column with two roles.

    Warns
    -----
    WeakInstrumentWarning
        The first-stage F is below ``WEAK_F``.

    Examples
    --------
    >>> from mlmci import iv
    >>> from mlmci.simulate import simulate_multisite_iv
    >>> data, truth = simulate_multisite_iv(n_sites=20, n_per_site=200, seed=1)
    >>> res = iv.fit(data, "y", treatment="d", instrument="z", covariates=["x"], site="site")
    >>> row = res.effect()
    >>> row["term"], bool(row["ci_low"] < truth["fe_2sls_weight"] < row["ci_high"])
    ('d', True)
    """
    design = prepare(
        data, y, treatment=treatment, instrument=instrument, covariates=covariates, site=site
    )
    engine = resolve(method, engine, allowed=_ALLOWED, defaults=_DEFAULTS)
    if site is not None and method not in ("ols", "2sls", "liml"):
        require_within_variation(design, f"method={method!r}")
    elif site is not None and method != "ols":
        require_within_variation(design, f"method={method!r} with site effects")
    if method in _LINEAR:
        return _fit_linear(design, method, engine)
    if method in ("re", "re_mundlak"):
        return _fit_ratio(design, method, engine)
    if method == "per_site":
        return _fit_per_site(design)
    if isinstance(engine, Bayes):
        from mlmci.designs.iv.twin import fit_bayes

        return fit_bayes(design, engine)
    return _fit_multisite(design, engine)


def _row(term, estimate, std_error, df=None, group=None, **extra) -> dict:
    return {
        "term": term,
        "group": group,
        "estimate": float(estimate),
        "std_error": float(std_error),
        "df": np.nan if df is None else float(df),
        **extra,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a frame, keeping site labels as they are (not cast to float by the None rows)."""
    frame = pd.DataFrame(rows)
    frame["group"] = pd.Series([r["group"] for r in rows], dtype=object)
    return frame


def _weak(f_stat: float | None, where: str) -> tuple[str, ...]:
    if f_stat is None or not np.isfinite(f_stat) or f_stat >= WEAK_F:
        return ()
    note = (
        f"weak instrument{where}: first-stage F = {f_stat:.1f} < {WEAK_F:g}; the estimate "
        "is biased toward OLS and its interval unreliable (use LIML or a weak-IV-robust test)."
    )
    warnings.warn(note, WeakInstrumentWarning, stacklevel=4)
    return (note,)


def _fit_linear(design: IVData, method: str, engine: OLS) -> IVResult:
    from mlmci.designs.iv.linear import fit_linear

    res = fit_linear(design, method=method, cov_type=engine.cov_type)
    notes = _weak(res.first_stage_f, "")
    extra = {"n_obs": res.n_obs, "first_stage_f": res.first_stage_f or np.nan}
    rows = _frame([_row(design.treatment, res.estimate, res.std_error, res.df, **extra)])
    diagnostics = {"first_stage_f": res.first_stage_f, "kappa": res.kappa}
    return IVResult(
        method=method,
        treatment=design.treatment,
        rows=rows,
        cov_type=engine.cov_type,
        native=res.native,
        notes=notes,
        diagnostics=diagnostics,
    )


def _fit_ratio(design: IVData, method: str, engine: REML) -> IVResult:
    from mlmci.designs.iv.ratio import fit_ratio

    res = fit_ratio(design, mundlak=method == "re_mundlak", allow_boundary=engine.allow_boundary)
    f_stat = res.first_stage**2 / res.cov[1, 1]
    notes = _weak(f_stat, "")
    if res.boundary:
        notes += ("a random-intercept variance is estimated at zero (singular fit).",)
    rows = _frame(
        [
            _row(design.treatment, res.estimate, res.std_error, res.df, first_stage_f=f_stat),
            _row("ITT", res.itt, np.sqrt(res.cov[0, 0]), res.df, first_stage_f=np.nan),
            _row(
                "first_stage", res.first_stage, np.sqrt(res.cov[1, 1]), res.df, first_stage_f=np.nan
            ),
        ]
    )
    return IVResult(
        method=method,
        treatment=design.treatment,
        rows=rows,
        cov_type="clustered",
        native=res.native,
        notes=notes,
        diagnostics={"first_stage_f": f_stat, "itt_first_stage_cov": res.cov},
    )


def _site_rows(design: IVData, est, cov, sites, raw=None) -> list[dict]:
    from mlmci.designs.iv.multisite import ratio_with_se

    rows = []
    for j, label in enumerate(design.sites):
        late, se = ratio_with_se(est[j, 0], est[j, 1], cov[j])
        extra = {
            "itt": float(est[j, 0]),
            "first_stage": float(est[j, 1]),
            "first_stage_f": float(sites.first_stage_f[j]),
            "n_obs": int(sites.n_obs[j]),
        }
        if raw is not None:
            extra["raw"] = float(raw[j])
        rows.append(_row(design.treatment, late, se, None, group=label, **extra))
    return rows


def _site_notes(design: IVData, f_stats: np.ndarray) -> tuple[str, ...]:
    weak = np.flatnonzero(f_stats < WEAK_F)
    if not weak.size:
        return ()
    return (
        f"{weak.size} of {design.n_sites} sites have a first-stage F below {WEAK_F:g}; their "
        "Wald ratios are unreliable on their own.",
    )


def _fit_per_site(design: IVData) -> IVResult:
    from mlmci.designs.iv.multisite import site_effects

    sites = site_effects(design)
    site_rows = _site_rows(design, sites.est, sites.cov, sites)
    lates = np.array([r["estimate"] for r in site_rows])
    ses = np.array([r["std_error"] for r in site_rows])
    head = _row(
        design.treatment,
        lates.mean(),
        np.sqrt(np.sum(ses**2)) / len(lates),
        None,
        first_stage_f=np.nan,
        n_obs=int(sites.n_obs.sum()),
    )
    return IVResult(
        method="per_site",
        treatment=design.treatment,
        rows=_frame([head, *site_rows]),
        cov_type="hc1_sites",
        native=sites,
        notes=_site_notes(design, sites.first_stage_f),
        diagnostics={"site_first_stage_f": sites.first_stage_f},
    )


def _fit_multisite(design: IVData, engine: REML) -> IVResult:
    from mlmci.designs.iv.multisite import bivariate_reml, ratio_with_se, site_effects

    sites = site_effects(design)
    biv = bivariate_reml(sites.est, sites.cov)
    notes = _site_notes(design, sites.first_stage_f)
    if not biv.converged:
        raise ConvergenceError("the bivariate random-effects REML optimizer did not converge.")
    if biv.boundary:
        if not engine.allow_boundary:
            raise ConvergenceError(
                "the bivariate random-effects fit is singular (a between-site SD at zero or a "
                "correlation at +-1); pass engine=REML(allow_boundary=True) to accept it."
            )
        notes += ("singular fit: the between-site covariance T is on its boundary.",)
    raw = sites.est[:, 0] / sites.est[:, 1]
    site_rows = _site_rows(design, biv.shrunk, biv.pev, sites, raw=raw)
    late, late_se = ratio_with_se(biv.mu[0], biv.mu[1], biv.mu_cov)
    sd = np.sqrt(np.diag(biv.tau))
    corr = biv.tau[0, 1] / (sd[0] * sd[1]) if sd.min() > 0 else np.nan
    nan = np.nan
    head = [
        _row(design.treatment, late, late_se, first_stage_f=nan, n_obs=int(sites.n_obs.sum())),
        _row("ITT", biv.mu[0], np.sqrt(biv.mu_cov[0, 0])),
        _row("first_stage", biv.mu[1], np.sqrt(biv.mu_cov[1, 1])),
        _row("site_average", np.mean([r["estimate"] for r in site_rows]), nan),
        _row("sd(ITT)", sd[0], nan),
        _row("sd(first_stage)", sd[1], nan),
        _row("corr(ITT,first_stage)", corr, nan),
    ]
    return IVResult(
        method="multisite_re",
        treatment=design.treatment,
        rows=_frame([*head, *site_rows]),
        cov_type="hc1_sites",
        native=biv,
        notes=notes,
        diagnostics={"site_first_stage_f": sites.first_stage_f, "neg_reml": biv.neg_reml},
    )
