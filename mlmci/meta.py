"""Random-effects meta-analysis and empirical Bayes with known sampling (co)variances.

Site-by-site estimates (per-site RD jumps, DiD cell effects, per-site ITT
effects) come with their sampling variances, or a full sampling covariance when
the estimates share data (DiD cells share control units). :func:`fit` treats
them as

.. math::

    \\hat\\theta = X\\beta + u + e,\\qquad u \\sim N(0, \\tau^2 I),\\qquad e \\sim N(0, S),

with :math:`S` known, estimates :math:`\\tau^2` by REML (the DerSimonian-Laird
moment estimator is the classical alternative; REML is what lme4 / metafor's
default does), and returns

- the hyper-mean :math:`\\hat\\beta` (GLS, weights :math:`V^{-1}`, :math:`V = S + \\tau^2 I`)
  and its standard error: the mean of the *distribution* of site effects — a
  precision-weighted estimand, not a design-weighted average of these sites;
- the empirical Bayes (shrunken) site effects
  :math:`\\tilde\\theta = X\\hat\\beta + \\tau^2 V^{-1}(\\hat\\theta - X\\hat\\beta)`,
  whose prediction-error covariance :math:`S - S P S`, with
  :math:`P = V^{-1} - V^{-1}X(X'V^{-1}X)^{-1}X'V^{-1}`, includes the uncertainty
  of :math:`\\hat\\beta` (it treats :math:`\\tau^2` as known, as empirical Bayes does);
- :meth:`MetaResult.aggregate`: any design-weighted average of the shrunken site
  effects with its standard error — the way to rebuild a finite-population
  estimand (an ATT over these cohorts, say) from pooled sites.

Examples
--------
>>> import numpy as np
>>> from mlmci import meta
>>> est = np.array([0.1, 0.5, 0.3, 0.9, -0.2])
>>> res = meta.fit(est, np.full(5, 0.04), labels=list("abcde"))
>>> row = res.effect()
>>> round(float(row["estimate"]), 3)
0.32
>>> bool(res.tau > 0)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from mlmci.errors import DataError
from mlmci.identification import dependent_columns
from mlmci.results import Fit, interval_label, tidy

__all__ = ["MetaResult", "fit"]

_TAU_TOL = 1e-10  # tau^2 below this (relative to the sampling variances) counts as zero


@dataclass(repr=False)
class MetaResult(Fit):
    """A random-effects meta-analysis (:func:`fit`), on mlmci's result protocol.

    ``tidy()`` has one row per column of the mean's design (``term`` ``"mean"``
    for the default intercept-only model: the headline) and one row per site
    (``group``, ``term == "site effect"``) with the shrunken estimate, its
    prediction SE and, in extra columns, the raw estimate, its SE and the
    shrinkage factor ``S_jj / (S_jj + tau^2)`` (1: pooled entirely to the mean).
    """

    labels: list
    raw: np.ndarray
    sampling_cov: np.ndarray
    design: pd.DataFrame
    tau2: float
    beta: np.ndarray
    beta_cov: np.ndarray
    shrunken: np.ndarray
    prediction_cov: np.ndarray
    diagnostics: dict
    notes: tuple[str, ...] = ()
    native: object = None  # scipy's result of the REML search for tau^2
    headline: str | None = "mean"
    title: str = "Random-effects meta-analysis (REML), empirical Bayes site effects"

    @property
    def tau(self) -> float:
        """The estimated SD of the site effects."""
        return float(np.sqrt(self.tau2))

    def _tidy(self, prob: float) -> pd.DataFrame:
        z = stats.norm.ppf((1 + prob) / 2)
        label = interval_label(prob, "CI")
        rows = []
        for k, term in enumerate(self.design.columns):
            se = float(np.sqrt(self.beta_cov[k, k]))
            b = float(self.beta[k])
            rows.append(
                {
                    "estimator": "meta_reml",
                    "term": term,
                    "group": None,
                    "estimate": b,
                    "std_error": se,
                    "ci_low": b - z * se,
                    "ci_high": b + z * se,
                    "interval": label,
                }
            )
        raw_se = np.sqrt(np.diag(self.sampling_cov))
        pred_se = np.sqrt(np.clip(np.diag(self.prediction_cov), 0.0, None))
        shrink = np.diag(self.sampling_cov) / (np.diag(self.sampling_cov) + self.tau2)
        for j, name in enumerate(self.labels):
            rows.append(
                {
                    "estimator": "meta_reml",
                    "term": "site effect",
                    "group": name,
                    "estimate": float(self.shrunken[j]),
                    "std_error": float(pred_se[j]),
                    "ci_low": float(self.shrunken[j] - z * pred_se[j]),
                    "ci_high": float(self.shrunken[j] + z * pred_se[j]),
                    "interval": interval_label(prob, "CI (EB)"),
                    "raw": float(self.raw[j]),
                    "raw_std_error": float(raw_se[j]),
                    "shrinkage": float(shrink[j]),
                }
            )
        return tidy(rows, group=True)

    def _summary_table(self) -> pd.DataFrame:
        table = self.tidy()
        return table[table["group"].isna()].drop(columns=["group"]).dropna(axis=1, how="all")

    def aggregate(
        self, weights: Sequence[float] | pd.Series, *, prob: float | None = None
    ) -> pd.Series:
        """A weighted average of the shrunken site effects, with its prediction SE.

        ``weights`` (one per site, in ``labels`` order, or a Series indexed
        by label) are normalized to sum to one. The SE is
        ``sqrt(w' (S - S P S) w)``: the error of the pooled average as a
        predictor of the same average of the true site effects.
        """
        from mlmci.config import CI_PROB

        if isinstance(weights, pd.Series):
            missing = [lab for lab in self.labels if lab not in weights.index]
            if missing:
                raise DataError(f"weights lack the site(s) {missing[:10]}.")
            w = weights.reindex(self.labels).to_numpy(dtype=float)
        else:
            w = np.asarray(weights, dtype=float)
        if w.shape != (len(self.labels),) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise DataError(
                f"weights must be {len(self.labels)} finite numbers with a positive sum."
            )
        w = w / w.sum()
        prob = CI_PROB if prob is None else prob
        z = stats.norm.ppf((1 + prob) / 2)
        est = float(w @ self.shrunken)
        se = float(np.sqrt(max(w @ self.prediction_cov @ w, 0.0)))
        return pd.Series(
            {
                "estimate": est,
                "std_error": se,
                "ci_low": est - z * se,
                "ci_high": est + z * se,
                "interval": interval_label(prob, "CI (EB)"),
            }
        )


def fit(
    estimates: Sequence[float] | pd.Series,
    sampling: Sequence[float] | np.ndarray,
    *,
    labels: Sequence | None = None,
    design: pd.DataFrame | None = None,
) -> MetaResult:
    """REML random-effects meta-analysis of site estimates with known sampling (co)variances.

    Parameters
    ----------
    estimates
        One estimate per site. A Series's index gives the labels.
    sampling
        The sampling variances (one per site: independent estimates) or the
        full sampling covariance matrix (estimates that share data).
    labels
        Site labels (default: the Series index, else 0, 1, ...).
    design
        Site-level regressors of the mean (a DataFrame, one row per site, in
        the same order); default an intercept only, named ``"mean"``.

    Returns
    -------
    MetaResult

    Raises
    ------
    DataError
        Fewer than three sites, missing or non-finite values, a sampling
        covariance that is not symmetric positive definite, or a design with
        fewer sites than columns + 2.

    Examples
    --------
    >>> from mlmci import meta
    >>> res = meta.fit([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])
    >>> res.tau, round(float(res.effect()["estimate"]), 6)
    (0.0, 1.0)
    """
    if isinstance(estimates, pd.Series):
        labels = list(estimates.index) if labels is None else list(labels)
    est = np.asarray(estimates, dtype=float).ravel()
    k = est.size
    labels = list(range(k)) if labels is None else list(labels)
    if len(labels) != k:
        raise DataError(f"{len(labels)} labels for {k} estimates.")
    if k < 3:
        raise DataError(
            f"a random-effects meta-analysis needs at least three sites, got {k}: the "
            "between-site variance cannot be estimated from fewer."
        )
    if not np.all(np.isfinite(est)):
        bad = [labels[j] for j in np.flatnonzero(~np.isfinite(est))]
        raise DataError(f"the estimates of site(s) {bad[:10]} are missing or not finite.")
    s = np.asarray(sampling, dtype=float)
    if s.ndim == 1:
        if s.shape != (k,):
            raise DataError(f"{s.size} sampling variances for {k} estimates.")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            bad = [labels[j] for j in np.flatnonzero(~(np.isfinite(s) & (s > 0)))]
            raise DataError(f"the sampling variances of site(s) {bad[:10]} must be positive.")
        s = np.diag(s)
    elif s.shape != (k, k):
        raise DataError(f"the sampling covariance must be {k} x {k}, got {s.shape}.")
    if not np.all(np.isfinite(s)) or not np.allclose(s, s.T, rtol=1e-10, atol=0):
        raise DataError("the sampling covariance must be finite and symmetric.")
    if np.linalg.eigvalsh(s).min() <= 0:
        raise DataError("the sampling covariance is not positive definite.")
    if design is None:
        x = pd.DataFrame({"mean": np.ones(k)})
    else:
        if not isinstance(design, pd.DataFrame) or len(design) != k:
            raise DataError(f"design must be a DataFrame with one row per site ({k}).")
        x = design.reset_index(drop=True).astype(float)
        if not np.all(np.isfinite(x.to_numpy())):
            raise DataError("design has missing or non-finite values.")
    xm = x.to_numpy()
    if k < xm.shape[1] + 2 or dependent_columns(xm):
        raise DataError(
            f"the design has {xm.shape[1]} columns (full rank needed) for {k} sites; REML "
            "needs at least two more sites than columns."
        )

    def neg_reml(tau2: float) -> float:
        v = s + tau2 * np.eye(k)
        chol = np.linalg.cholesky(v)
        vinv_x = np.linalg.solve(v, xm)
        xtvx = xm.T @ vinv_x
        beta = np.linalg.solve(xtvx, vinv_x.T @ est)
        r = est - xm @ beta
        return 0.5 * (
            2 * np.log(np.diag(chol)).sum() + np.linalg.slogdet(xtvx)[1] + r @ np.linalg.solve(v, r)
        )

    scale = float(np.var(est, ddof=1) + np.diag(s).max())
    upper = 10.0 * scale
    found = optimize.minimize_scalar(
        neg_reml, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12 * scale}
    )
    tau2 = float(found.x)
    # The bounded search never lands exactly on 0: compare with the boundary itself.
    if neg_reml(0.0) <= neg_reml(tau2) or tau2 < _TAU_TOL * np.diag(s).min():
        tau2 = 0.0
    notes: tuple[str, ...] = ()
    if tau2 == 0.0:
        notes = (
            "the REML estimate of the between-site variance is zero: every site is pooled "
            "fully to the mean (the spread of the estimates is within their sampling noise).",
        )
    if tau2 > 0.99 * upper:
        raise DataError("the between-site variance has no finite REML optimum; check the inputs.")
    v = s + tau2 * np.eye(k)
    vinv = np.linalg.inv(v)
    beta_cov = np.linalg.inv(xm.T @ vinv @ xm)
    beta = beta_cov @ xm.T @ vinv @ est
    p = vinv - vinv @ xm @ beta_cov @ xm.T @ vinv
    shrunken = est - s @ p @ est
    prediction_cov = s - s @ p @ s
    return MetaResult(
        labels=labels,
        raw=est,
        sampling_cov=s,
        design=x,
        tau2=tau2,
        beta=beta,
        beta_cov=beta_cov,
        shrunken=shrunken,
        prediction_cov=(prediction_cov + prediction_cov.T) / 2,
        diagnostics={"reml_criterion": float(2 * neg_reml(tau2)), "optimizer": "bounded Brent"},
        notes=notes,
        native=found,
        headline="mean" if design is None else None,
    )
