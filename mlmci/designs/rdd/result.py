"""The result of a regression-discontinuity fit: the jump, and per-site rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from mlmci.results import Fit, interval_label, tidy

__all__ = ["RDResult"]


@dataclass(repr=False)
class RDResult(Fit):
    """A regression-discontinuity fit (:func:`mlmci.rdd.fit`) on mlmci's result protocol.

    ``tidy(prob)`` has the headline row (``term == "jump"``, no ``group``), for
    ``per_site`` also ``"jump (N-weighted)"``, and one ``"jump"`` row per site
    (``group``) for the site methods. Extra columns: ``conv_ci_low``,
    ``conv_ci_high`` (conventional interval), ``robust_std_error``, ``h``, ``b``
    (bandwidths), ``n_left``, ``n_right`` (observations inside ``h``); EB rows add
    ``raw``, ``raw_std_error`` and ``shrinkage``.

    ``native`` is the pooled rdrobust result (``rdrobust``, ``per_site``), or a dict
    of it with the :class:`~mlmci.meta.MetaResult` (``eb``) or the
    :class:`~mlmci.mixed.MixedResult` (``mlm``; no rdrobust fit when ``bandwidth``
    is given). ``extra["tau"]`` is the estimated SD of the site jumps (``eb``, ``mlm``).
    """

    method: str
    rows: pd.DataFrame  # estimate, std_error, rb_center, rb_se (NaN: no robust interval), ...
    native: object
    notes: tuple[str, ...]
    diagnostics: dict
    h: float
    b: float
    prob: float | None = None
    headline: str | None = "jump"
    title: str = ""
    extra: dict = field(default_factory=dict)

    def _tidy(self, prob: float) -> pd.DataFrame:
        z = stats.norm.ppf((1 + prob) / 2)
        r = self.rows
        est, se = r["estimate"].to_numpy(float), r["std_error"].to_numpy(float)
        rb_center, rb_se = r["rb_center"].to_numpy(float), r["rb_se"].to_numpy(float)
        robust = np.isfinite(rb_se)
        kinds = r["kind"].fillna("CI") if "kind" in r else pd.Series("CI", index=r.index)
        kinds = np.where(robust, "CI (robust bias-corrected)", kinds.to_numpy(object))
        labels = {kind: interval_label(prob, kind) for kind in set(kinds)}
        out = pd.DataFrame(
            {
                "estimator": self.method,
                "term": r["term"].to_numpy(),
                "group": r["group"].to_numpy(object),
                "estimate": est,
                "std_error": se,
                "ci_low": np.where(robust, rb_center - z * rb_se, est - z * se),
                "ci_high": np.where(robust, rb_center + z * rb_se, est + z * se),
                "interval": [labels[kind] for kind in kinds],
                "conv_ci_low": est - z * se,
                "conv_ci_high": est + z * se,
                "robust_std_error": rb_se,
            }
        )
        for col in ("h", "b", "n_left", "n_right", "raw", "raw_std_error", "shrinkage"):
            if col in r:
                out[col] = r[col].to_numpy()
        return tidy(out, group=True)

    def tidy(self, prob: float | None = None) -> pd.DataFrame:
        """The estimates as a tidy table, intervals at ``prob`` (default: the fit's ``prob``)."""
        return super().tidy(self.prob if prob is None else prob)

    def sites(self, prob: float | None = None) -> pd.DataFrame:
        """The per-site rows of :meth:`tidy` (empty for ``rdrobust``)."""
        table = self.tidy(prob)
        return table[table["group"].notna()].reset_index(drop=True)

    def _summary_table(self) -> pd.DataFrame:
        table = self.tidy()
        return table[table["group"].isna()].drop(columns="group").dropna(axis=1, how="all")
