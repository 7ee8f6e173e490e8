"""The result of an IV fit: the treatment effect, and per-site rows where a method has them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from mlmci.results import Fit, interval_label, tidy

__all__ = ["IVResult"]

METHOD_NAMES = {
    "ols": "OLS of the outcome on the treatment (ignores the instrument)",
    "2sls": "two-stage least squares",
    "liml": "limited-information maximum likelihood",
    "2sls_interacted": "2SLS with the instrument interacted with every site (many instruments)",
    "liml_interacted": "LIML with the instrument interacted with every site (many instruments)",
    "re": "ratio of random-intercept (REML) reduced form and first stage",
    "re_mundlak": "ratio of random-intercept (REML) reduced form and first stage, with the "
    "site mean of the instrument",
    "per_site": "site-by-site Wald ratios (no pooling)",
    "multisite_re": "bivariate random-effects model of site ITT and first-stage effects (REML)",
}

SE_NAMES = {
    "robust": "heteroskedasticity-robust SEs",
    "unadjusted": "classical SEs",
    "clustered": "SEs clustered by site",
    "hc1_sites": "site effects with HC1 SEs",
}


@dataclass(repr=False)
class IVResult(Fit):
    """An IV estimate from :func:`mlmci.iv.fit`, on mlmci's result protocol.

    ``tidy(prob)`` has the treatment's row (``term`` = the treatment's name, the
    headline) and, for multi-site methods, further rows: the mean ITT and first
    stage (``term`` ``"ITT"``, ``"first_stage"``), the between-site SDs and
    correlation (``"sd(ITT)"``, ``"sd(first_stage)"``, ``"corr(ITT,first_stage)"``,
    without standard errors), and one row per site (``group`` = the site, the
    site's LATE, with columns ``itt``, ``first_stage``, ``first_stage_f``,
    ``n_obs``).

    Attributes
    ----------
    method : str
        The estimator (see :func:`mlmci.iv.fit`).
    rows : pandas.DataFrame
        ``term, group, estimate, std_error, df`` and extra columns; intervals
        are built from them at the ``prob`` asked for (t on ``df``, normal when
        ``df`` is missing).
    cov_type : str
        The standard errors' convention (see ``mlmci.designs.iv.linear``).
    """

    method: str
    treatment: str
    rows: pd.DataFrame
    cov_type: str
    native: object
    notes: tuple[str, ...] = ()
    diagnostics: dict = field(default_factory=dict)

    @property
    def headline(self) -> str:  # type: ignore[override]
        return self.treatment

    @property
    def title(self) -> str:  # type: ignore[override]
        return f"IV: {METHOD_NAMES[self.method]} ({SE_NAMES[self.cov_type]})"

    def _tidy(self, prob: float) -> pd.DataFrame:
        frame = self.rows.copy()
        df = frame.pop("df").to_numpy(float)
        q = np.where(np.isnan(df), stats.norm.ppf((1 + prob) / 2), stats.t.ppf((1 + prob) / 2, df))
        se = frame["std_error"].to_numpy(float)
        est = frame["estimate"].to_numpy(float)
        frame["ci_low"] = est - q * se
        frame["ci_high"] = est + q * se
        frame["estimator"] = self.method
        frame["interval"] = interval_label(prob, "CI")
        frame["group"] = frame["group"].astype(object)  # site labels as given, None when pooled
        return tidy(frame, group=True)

    def _summary_table(self) -> pd.DataFrame:
        table = self.tidy()
        pooled = table[table["group"].isna()].dropna(axis=1, how="all")
        return pooled.drop(columns=["group"], errors="ignore")

    @property
    def sites(self) -> pd.DataFrame:
        """The per-site rows of ``tidy()`` (empty for methods without them)."""
        table = self.tidy()
        return table[table["group"].notna()].reset_index(drop=True)
