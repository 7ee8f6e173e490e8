"""The result of a DiD fit: the aggregate ATT, the cohort x period cells, their weights."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from mlmci.results import Fit, interval_label, tidy

__all__ = ["DidResult"]

METHOD_NAMES = {
    "two_by_two": "2 x 2 DiD: OLS on group, period and their interaction",
    "twfe": "two-way fixed effects (one treatment dummy)",
    "twfe_event": "two-way fixed effects event study (event-time dummies pooled over cohorts)",
    "mundlak": "two-way Mundlak: pooled OLS with unit and period means of the treatment",
    "etwfe": "extended TWFE (Wooldridge 2021): cohort x period cells, unit and period effects",
    "re": "random unit intercepts, period effects and cells, no cohort terms",
    "re_cohort": "random unit intercepts with cohort dummies, period effects and cells",
    "pooled_cells": "partially pooled cells: empirical Bayes on the extended-TWFE cells",
    "callaway_santanna": "Callaway-Sant'Anna (never-treated controls), via Sun-Abraham",
    "re_cells": "varying cell effects (REML): random unit intercepts and cell effects, cohort "
    "dummies, period effects",
}


@functools.lru_cache(maxsize=1024)
def _quantile(prob: float, df: float | None) -> float:
    q = (1 + prob) / 2
    return float(stats.norm.ppf(q) if df is None else stats.t.ppf(q, df))


def cell_columns(cell) -> dict:
    """The tidy columns that locate one cohort x period cell (a row of ``cells``)."""
    return {
        "cohort": float(cell.cohort),
        "period": float(cell.period),
        "event_time": float(cell.event_time),
        "weight": float(cell.weight),
        "n_obs": int(cell.n_obs),
    }


@dataclass(repr=False)
class DidResult(Fit):
    """A DiD estimate from :func:`mlmci.did.fit`, on mlmci's result protocol.

    ``tidy(prob)`` has the aggregate effect (``term == "ATT"``, the headline)
    and, for the methods that estimate them, one row per cohort x period cell
    (``term == "ATT(g,t)"``) with the extra columns ``cohort``, ``period``,
    ``event_time``, ``weight`` (the cell's weight in the ATT: its share of
    the treated observations) and ``n_obs``. Event-time methods
    (``"twfe_event"``) have ``term == "ATT(e)"`` rows instead.

    Attributes
    ----------
    method : str
        The estimator (``"etwfe"``, ...).
    cells : pandas.DataFrame
        ``cohort, period, event_time, estimate, std_error, weight, n_obs`` (and,
        for pooled cells, ``raw`` and ``raw_std_error``); pre-treatment
        placebo cells of ``"callaway_santanna"`` have weight 0.
    cell_cov : numpy.ndarray
        The covariance of the cell estimates (cluster-robust unless
        ``vcov="iid"``): the cells share control units, so it is not diagonal.
    att, att_se : float
        The aggregate effect and its standard error.
    df : float or None
        Degrees of freedom of the t intervals (``None``: normal intervals).
    extra : list of dict
        Further rows of the tidy table (e.g. the pooled cells' hyper-mean).
    engine : OLS, REML or Bayes
        The engine that fitted it (:mod:`mlmci.engines`).
    """

    method: str
    att: float
    att_se: float
    cells: pd.DataFrame
    cell_cov: np.ndarray
    df: float | None
    vcov: str
    native: object
    notes: tuple[str, ...] = ()
    diagnostics: dict = field(default_factory=dict)
    extra: list = field(default_factory=list)
    interval_kind: str = "CI"
    headline: str | None = "ATT"
    engine: object = None

    @property
    def title(self) -> str:  # type: ignore[override]
        se = {
            "cluster": "SEs clustered by unit",
            "iid": "classical / model-based SEs",
            "hc1": "heteroskedasticity-robust SEs (HC1)",
        }[self.vcov]
        return f"DiD: {METHOD_NAMES[self.method]} ({se})"

    def _row(self, term: str, est: float, se: float, prob: float, **extra) -> dict:
        q = _quantile(prob, self.df)
        return {
            "estimator": self.method,
            "term": term,
            "estimate": float(est),
            "std_error": float(se),
            "ci_low": float(est - q * se),
            "ci_high": float(est + q * se),
            "interval": interval_label(prob, self.interval_kind),
            **extra,
        }

    def _treated_obs(self) -> int:
        """Treated observations behind the ATT (cells with positive weight)."""
        if not len(self.cells):
            return (
                int(self.diagnostics.get("n_obs_treated", 0))
                if isinstance(self.diagnostics, dict)
                else 0
            )
        return int(self.cells.loc[self.cells["weight"] > 0, "n_obs"].sum())

    def _tidy(self, prob: float) -> pd.DataFrame:
        nan = float("nan")
        rows = [
            self._row(
                "ATT",
                self.att,
                self.att_se,
                prob,
                cohort=nan,
                period=nan,
                event_time=nan,
                weight=nan,
                n_obs=self._treated_obs(),
            )
        ]
        for extra in self.extra:
            rows.append(
                self._row(
                    extra["term"],
                    extra["estimate"],
                    extra["std_error"],
                    prob,
                    cohort=nan,
                    period=nan,
                    event_time=nan,
                    weight=nan,
                    n_obs=self._treated_obs(),
                )
            )
        term = "ATT(e)" if self.method == "twfe_event" else "ATT(g,t)"
        for cell in self.cells.itertuples(index=False):
            more = cell_columns(cell)
            if "raw" in self.cells.columns:
                more["raw"] = float(cell.raw)
                more["raw_std_error"] = float(cell.raw_std_error)
            rows.append(self._row(term, cell.estimate, cell.std_error, prob, **more))
        out = tidy(rows)
        out["n_obs"] = out["n_obs"].astype(int)
        return out

    def _summary_table(self) -> pd.DataFrame:
        table = self.tidy()
        return table[table["term"] != "ATT(g,t)"].dropna(axis=1, how="all")

    def aggregate(self, weights: pd.Series | np.ndarray, *, prob: float | None = None) -> pd.Series:
        """Any weighted average of the cells (weights normalized), with its SE and interval."""
        from mlmci.config import CI_PROB

        w = np.asarray(weights, dtype=float)
        if w.shape != (len(self.cells),) or w.sum() <= 0 or not np.all(np.isfinite(w)):
            raise ValueError(
                f"weights must be {len(self.cells)} finite numbers with a positive sum."
            )
        w = w / w.sum()
        prob = CI_PROB if prob is None else float(prob)
        est = float(w @ self.cells["estimate"].to_numpy(float))
        se = float(np.sqrt(max(w @ self.cell_cov @ w, 0.0)))
        row = self._row("ATT", est, se, prob)
        return pd.Series(
            {k: row[k] for k in ("estimate", "std_error", "ci_low", "ci_high", "interval")}
        )

    def event_study(self, prob: float | None = None) -> pd.DataFrame:
        """Cells averaged by event time (weights: treated observations), tidy, ``term == "ATT(e)"``.

        Pre-treatment event times appear only for methods that estimate
        placebo cells (``"callaway_santanna"``; event time -1 is the reference).
        """
        from mlmci.config import CI_PROB

        prob = CI_PROB if prob is None else float(prob)
        rows = []
        cells = self.cells.reset_index(drop=True)
        for e, grp in cells.groupby("event_time", sort=True):
            w = np.zeros(len(cells))
            w[grp.index] = grp["n_obs"].to_numpy(float)
            w /= w.sum()
            est = float(w @ cells["estimate"].to_numpy(float))
            se = float(np.sqrt(max(w @ self.cell_cov @ w, 0.0)))
            rows.append(
                self._row(
                    "ATT(e)", est, se, prob, event_time=float(e), n_obs=int(grp["n_obs"].sum())
                )
            )
        return tidy(rows)
