r"""Closed-form DiD estimators for Monte Carlo studies: :func:`mlmci.did.fit` in numpy.

:func:`fast_table` returns the tidy tables ``fit(..., method=m, vcov=v).tidy(prob)``
returns, stacked, for a **balanced** panel without covariates, with a few
matrix products instead of pyfixest and mixedlm fits (about a millisecond a
method). ``tests/test_did.py`` checks it against the library path:

- ``"twfe"``, ``"etwfe"``, ``"callaway_santanna"``, ``"pooled_cells"`` and the
  cells of ``"re_cohort"``: equal to 1e-10 (estimates, SEs, intervals). On a
  balanced panel the two-way fixed effects are removed exactly by double
  demeaning :math:`a_{it} - \bar a_{i\cdot} - \bar a_{\cdot t} + \bar a`
  (Frisch-Waugh-Lovell); the CRV1 scale is pyfixest's
  :math:`G/(G-1)\,(n-1)/(n-k-T)`.
- ``"re"`` and the SEs of ``"re_cohort"``: REML of the random-intercept model
  by a one-dimensional search over the GLS weight
  :math:`w = \sigma^2/(\sigma^2 + T\tau^2)` of the unit means, using the
  balanced panel's within/between split of the profiled restricted likelihood
  :math:`(n-p)\log S(w) - G\log w + \log|X'QX + wX'PX|`. It reaches mixedlm's
  optimum to the optimizers' tolerance (the test: the REML criterion at least
  as good, estimates within 1e-6), and given the same variance components the
  GLS estimates agree to 1e-10.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from mlmci.designs.did import engine
from mlmci.designs.did.cohorts import Panel, prepare
from mlmci.designs.did.result import DidResult
from mlmci.errors import DataError
from mlmci.fastpath import reml_random_intercept
from mlmci.sandwich import random_intercept_cov

__all__ = ["fast_estimates", "fast_result", "fast_table", "reml_random_intercept"]

_FAST = ("twfe", "etwfe", "re", "re_cohort", "pooled_cells", "callaway_santanna")


def fast_table(
    data: pd.DataFrame,
    y: str,
    *,
    unit: str,
    time: str,
    treatment: str,
    methods: Sequence[str | tuple[str, str]] = ("twfe", "etwfe"),
    prob: float = 0.95,
) -> pd.DataFrame:
    """Stacked ``fit(...).tidy(prob)`` tables of several methods, in closed form.

    ``methods`` holds method names (clustered SEs) or ``(method, vcov)`` pairs;
    the output has a ``vcov`` column. Balanced panels without covariates only.

    Examples
    --------
    >>> from mlmci import did
    >>> from mlmci.simulate import simulate_staggered
    >>> data, truth = simulate_staggered(n_units=30, n_periods=6, seed=2)
    >>> t = did.fast_table(data, "y", unit="unit", time="period", treatment="treated",
    ...                    methods=["twfe", ("re_cohort", "iid")])
    >>> t.loc[t.term == "ATT", ["estimator", "vcov"]].values.tolist()
    [['twfe', 'cluster'], ['re_cohort', 'iid']]
    """
    specs = [(m, "cluster") if isinstance(m, str) else (m[0], m[1]) for m in methods]
    tables = []
    cache: dict = {}
    for method, vcov in specs:
        if method not in _FAST:
            raise DataError(f"the fast path has the methods {list(_FAST)}, not {method!r}.")
        control = "never" if method == "callaway_santanna" else "not_yet"
        key = ("panel", control)
        if key not in cache:
            cache[key] = prepare(
                data, y, unit=unit, time=time, treatment=treatment, control=control
            )
            if not cache[key].balanced:
                raise DataError("the fast path needs a balanced panel; use mlmci.did.fit.")
        res = fast_result(cache[key], method, vcov)
        table = res.tidy(prob)
        table["vcov"] = vcov
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def fast_estimates(
    y: np.ndarray,
    cohort: np.ndarray,
    times: np.ndarray,
    methods: Sequence[str | tuple[str, str]],
    *,
    prob: float = 0.95,
    cells: bool = True,
) -> pd.DataFrame:
    """The Monte Carlo workhorse: :func:`fast_table`'s numbers from arrays, no checks.

    ``y`` is the ``G x T`` outcome matrix (units in rows, periods in the order
    of ``times``), ``cohort`` each unit's first treated period (``inf``:
    never). Returns one row per method (``term == "ATT"``; pooled cells also a
    ``"hyper-mean"`` row) and, if ``cells``, one per cell, with ``estimator,
    vcov, term, cohort, period, estimate, std_error, pooling_sd, event_time,
    ci_low, ci_high`` (``pooling_sd``: the pooled cells' estimated SD of the
    cell effects, NaN for the other methods). The caller guarantees what
    :func:`mlmci.did.cohorts` would check (absorbing adoption, balanced panel).
    """
    from mlmci.designs.did.result import _quantile

    core = _Core(np.asarray(y, float), np.asarray(cohort, float), np.asarray(times, float))
    cols: dict[str, list] = {
        k: []
        for k in (
            "estimator",
            "vcov",
            "term",
            "cohort",
            "period",
            "estimate",
            "std_error",
            "q",
            "pooling_sd",
        )
    }
    for spec in methods:
        method, vcov = (spec, "cluster") if isinstance(spec, str) else spec
        r = core.result(method, vcov)
        q = _quantile(prob, r["df"])
        k = len(r["cells"]) if (cells and r["cells"] is not None) else 0
        head = ["ATT"] + (["hyper-mean"] if "hyper_mean" in r else [])
        h = len(head)
        cols["estimator"] += [method] * (k + h)
        cols["vcov"] += [vcov] * (k + h)
        cols["term"] += head + ["ATT(g,t)"] * k
        cols["cohort"] += [np.nan] * h + (list(r["cells"][:, 0]) if k else [])
        cols["period"] += [np.nan] * h + (list(r["cells"][:, 1]) if k else [])
        cols["estimate"] += [r["att"], r.get("hyper_mean")][:h] + (list(r["beta"]) if k else [])
        cols["std_error"] += [r["att_se"], r.get("hyper_se")][:h] + (list(r["se"]) if k else [])
        cols["q"] += [q] * (k + h)
        cols["pooling_sd"] += [r.get("tau", np.nan)] * (k + h)
    est = np.asarray(cols["estimate"], float)
    se = np.asarray(cols["std_error"], float)
    q = np.asarray(cols.pop("q"), float)
    out = pd.DataFrame(cols)
    out["event_time"] = out["period"] - out["cohort"]
    out["ci_low"] = est - q * se
    out["ci_high"] = est + q * se
    return out


class _Core:
    """Precomputed designs of one balanced staggered panel."""

    def __init__(self, y: np.ndarray, cohort: np.ndarray, times: np.ndarray):
        self.y = y
        self.g, self.t = y.shape
        self.cohort = cohort
        self.times = times
        self.yv = y.ravel()
        self.n = self.g * self.t
        self.yd = _dd(self.yv[:, None], self.g, self.t)[:, 0]
        levels = np.unique(cohort[np.isfinite(cohort)])
        self.levels = levels
        sizes = {c: int((cohort == c).sum()) for c in levels}
        post = [(c, p, sizes[c]) for c in levels for p in times if p >= c]
        self.post = np.array(post, float).reshape(-1, 3)
        pre = []
        for c in levels:
            base = times[times < c].max()
            pre += [(c, p, sizes[c]) for p in times if p != base]
        self.cs = np.array(pre, float).reshape(-1, 3)
        self.cache: dict = {}

    def dummies(self, cells: np.ndarray) -> np.ndarray:
        unit_in = self.cohort[:, None] == cells[None, :, 0]  # G x K
        time_is = self.times[:, None] == cells[None, :, 1]  # T x K
        return (unit_in[:, None, :] & time_is[None, :, :]).reshape(self.n, -1).astype(float)

    def fe_ols(self, x: np.ndarray, vcov: str):
        g, t = self.g, self.t
        xd = _dd(x, g, t)
        xtx_inv = np.linalg.inv(xd.T @ xd)
        beta = xtx_inv @ (xd.T @ self.yd)
        e = self.yd - xd @ beta
        n, k = xd.shape
        if vcov == "cluster":
            scores = (xd * e[:, None]).reshape(g, t, k).sum(1)
            cov = xtx_inv @ (scores.T @ scores) @ xtx_inv * g / (g - 1) * (n - 1) / (n - k - t)
            df = float(g - 1)
        else:
            df = float(n - k - g - t + 1)
            cov = xtx_inv * float(e @ e) / df
        return beta, (cov + cov.T) / 2, df

    def cells_result(self, cells, beta, cov, df, **extra):
        w = cells[:, 2] * (cells[:, 1] >= cells[:, 0])
        w = w / w.sum()
        return {
            "att": float(w @ beta),
            "att_se": float(np.sqrt(max(w @ cov @ w, 0.0))),
            "df": df,
            "cells": cells,
            "beta": beta,
            "cov": cov,
            "weights": w,
            "se": np.sqrt(np.clip(np.diag(cov), 0, None)),
            **extra,
        }

    def result(self, method: str, vcov: str) -> dict:
        key = (method, vcov)
        if key in self.cache:
            return self.cache[key]
        if method == "twfe":
            d = (self.times[None, :] >= self.cohort[:, None]).reshape(-1, 1).astype(float)
            beta, cov, df = self.fe_ols(d, vcov)
            out = {
                "att": float(beta[0]),
                "att_se": float(np.sqrt(cov[0, 0])),
                "df": df,
                "cells": None,
            }
        elif method == "etwfe":
            out = self.cells_result(self.post, *self.fe_ols(self.dummies(self.post), vcov))
        elif method == "callaway_santanna":
            out = self.cells_result(self.cs, *self.fe_ols(self.dummies(self.cs), vcov))
        elif method == "pooled_cells":
            base = self.result("etwfe", vcov)
            shrunken, pred_cov, tau2, mean, mean_var = eb_pool(base["beta"], base["cov"])
            out = self.cells_result(
                self.post,
                shrunken,
                pred_cov,
                None,
                tau=float(np.sqrt(tau2)),
                hyper_mean=mean,
                hyper_se=float(np.sqrt(mean_var)),
            )
        elif method in ("re", "re_cohort"):
            cells_x = self.dummies(self.post)
            time = np.tile(self.times, self.g)
            cohort = np.repeat(self.cohort, self.t)
            cols = [np.ones(self.n)] + [(time == s).astype(float) for s in self.times[1:]]
            if method == "re_cohort":
                groups = sorted(set(self.cohort))
                base = np.inf if np.isinf(groups[-1]) else groups[0]
                cols += [(cohort == c).astype(float) for c in groups if c != base]
            x = np.column_stack([*cols, cells_x])
            if ("reml", method) not in self.cache:
                self.cache[("reml", method)] = reml_random_intercept(x, self.yv, self.g, self.t)
            beta, sigma2, tau2, m_inv, boundary, _ = self.cache[("reml", method)]
            k = cells_x.shape[1]
            idx = np.arange(x.shape[1] - k, x.shape[1])
            if vcov == "cluster":
                codes = np.repeat(np.arange(self.g), self.t)
                cov = random_intercept_cov(x, self.yv - x @ beta, codes, sigma2, tau2)
                df = float(self.g - 1)
            else:
                cov, df = sigma2 * m_inv, None
            out = self.cells_result(
                self.post,
                beta[idx],
                cov[np.ix_(idx, idx)],
                df,
                sigma=float(np.sqrt(sigma2)),
                tau_unit=float(np.sqrt(tau2)),
                boundary=bool(boundary),
            )
        else:
            raise DataError(f"the fast path has the methods {list(_FAST)}, not {method!r}.")
        self.cache[key] = out
        return out


def eb_pool(est: np.ndarray, cov: np.ndarray):
    """:func:`mlmci.meta.fit` (intercept-only) in closed form: shrunken cells and their covariance.

    The sampling covariance ``S = Q diag(s) Q'`` is diagonalized once, so the
    REML criterion of ``V = S + tau^2 I`` costs O(k) per evaluation; the search
    (bounded Brent on the same interval and tolerance as :func:`mlmci.meta.fit`)
    and the formulas after it are meta's. Returns ``shrunken, prediction_cov,
    tau2, mean, mean_var``. Refuses what meta refuses (fewer than three cells, a
    covariance that is not positive definite).
    """
    k = est.size
    s_val, q = np.linalg.eigh(cov)
    if k < 3 or s_val.min() <= 0:
        raise DataError(
            "partial pooling needs at least three cells and a positive definite "
            "sampling covariance."
        )
    xt = q.T @ np.ones(k)
    yt = q.T @ est

    def neg_reml(tau2: float) -> float:
        v = s_val + tau2
        xvx = float(xt @ (xt / v))
        beta = float(xt @ (yt / v)) / xvx
        r = yt - xt * beta
        return 0.5 * (np.log(v).sum() + np.log(xvx) + float(r @ (r / v)))

    scale = float(np.var(est, ddof=1) + np.diag(cov).max())
    found = optimize.minimize_scalar(
        neg_reml, bounds=(0.0, 10.0 * scale), method="bounded", options={"xatol": 1e-12 * scale}
    )
    tau2 = float(found.x)
    if neg_reml(0.0) <= neg_reml(tau2) or tau2 < 1e-10 * np.diag(cov).min():
        tau2 = 0.0
    if tau2 > 0.99 * 10.0 * scale:
        raise DataError("the between-cell variance has no finite REML optimum.")
    v_inv = (q / (s_val + tau2)) @ q.T
    one = np.ones(k)
    mean_var = 1.0 / float(one @ v_inv @ one)
    mean = mean_var * float(one @ v_inv @ est)
    p = v_inv - mean_var * np.outer(v_inv @ one, v_inv @ one)
    shrunken = est - cov @ p @ est
    pred = cov - cov @ p @ cov
    return shrunken, (pred + pred.T) / 2, tau2, mean, mean_var


def _panel_arrays(panel: Panel):
    frame = panel.frame
    g, t = panel.n_units, len(panel.times)
    y = frame["_y"].to_numpy(float).reshape(g, t)
    cohort = frame["_cohort"].to_numpy(float).reshape(g, t)[:, 0]
    return y, cohort


def _dd(a: np.ndarray, n_units: int, n_times: int) -> np.ndarray:
    """Two-way demeaning of the columns of ``a`` (rows unit-major, balanced)."""
    cube = a.reshape(n_units, n_times, -1)
    out = (
        cube
        - cube.mean(1, keepdims=True)
        - cube.mean(0, keepdims=True)
        + cube.mean((0, 1), keepdims=True)
    )
    return out.reshape(n_units * n_times, -1)


def fast_result(panel: Panel, method: str, vcov: str = "cluster") -> DidResult:
    """One method's :class:`DidResult` in closed form (balanced panel, no covariates)."""
    from mlmci.designs.did import estimators as est

    if not panel.balanced or panel.covariates:
        raise DataError("the fast path needs a balanced panel without covariates.")
    y, cohort = _panel_arrays(panel)
    core = _Core(y, cohort, panel.times)
    r = core.result(method, vcov)
    if method == "twfe":
        res = engine.OLSFit(
            names=["_d"],
            beta=np.array([r["att"]]),
            cov=np.array([[r["att_se"] ** 2]]),
            df=r["df"],
            native=None,
        )
        return est._single(panel, "twfe", res, vcov)
    cells = est._cs_cells(panel) if method == "callaway_santanna" else panel.cells
    if method == "pooled_cells":
        base = core.result("etwfe", vcov)
        base_res = est._result(
            panel, "etwfe", panel.cells, base["beta"], base["cov"], base["df"], vcov, None
        )
        return est._pool(panel, base_res, vcov)
    out = est._result(panel, method, cells, r["beta"], r["cov"], r["df"], vcov, None)
    if method.startswith("re"):
        out.diagnostics = {k: r[k] for k in ("sigma", "tau_unit", "boundary")}
    return out
