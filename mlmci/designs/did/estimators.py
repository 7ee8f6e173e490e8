"""The DiD estimators: one entry point, :func:`fit`, with ``method`` naming the estimator.

Every method reads a checked panel (:func:`mlmci.designs.did.cohorts.prepare`)
and returns a :class:`~mlmci.designs.did.result.DidResult`. The ATT is always
the same estimand — the average effect over the treated unit-periods, each
observed treated unit-period weighted equally — rebuilt from a method's cells
with explicit weights (the cells' shares of treated observations), except for
``"twfe"`` and ``"mundlak"``, whose single coefficient is a variance-weighted
average that need not be a convex combination of the cells (Goodman-Bacon 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlmci.designs.did import engine
from mlmci.designs.did.backends import _DEFAULTS, ENGINES, choose
from mlmci.designs.did.cohorts import Panel, prepare
from mlmci.designs.did.result import METHOD_NAMES, DidResult
from mlmci.engines import REML, Bayes, Engine
from mlmci.errors import ConvergenceError, DataError
from mlmci.sandwich import random_intercept_cov

__all__ = ["ENGINES", "METHODS", "fit"]

METHODS: tuple[str, ...] = tuple(m for m in METHOD_NAMES if m != "two_by_two")


def fit(
    data: pd.DataFrame,
    y: str,
    *,
    unit: str,
    time: str,
    treatment: str,
    method: str = "etwfe",
    covariates: Sequence[str] = (),
    vcov: str = "cluster",
    engine: Engine | None = None,
) -> DidResult:
    """Estimate a staggered-adoption difference-in-differences.

    Parameters
    ----------
    data
        A panel, one row per unit and period. Not modified.
    y
        The outcome column.
    unit, time, treatment
        The unit identifier, the numeric period and a 0/1 absorbing treatment
        indicator (see :func:`mlmci.did.cohorts` for what is refused).
    method
        ``"twfe"``: one treatment dummy with unit and period fixed effects.
        ``"twfe_event"``: event-time dummies (e = 0, 1, ...) pooled over cohorts.
        ``"mundlak"``: pooled OLS on the treatment and its unit and period means
        (Wooldridge's two-way Mundlak; equals ``"twfe"`` on a balanced panel).
        ``"etwfe"``: one dummy per treated cohort x period cell, unit and period
        fixed effects (Wooldridge 2021; equals the imputation estimator).
        ``"re"``: the same cells and period effects with a random unit intercept
        instead of unit fixed effects, and no cohort terms.
        ``"re_cohort"``: ``"re"`` plus cohort dummies (equals ``"etwfe"`` on a
        balanced panel without covariates).
        ``"pooled_cells"``: empirical Bayes (REML random-effects meta-analysis,
        :func:`mlmci.meta.fit`) of the extended-TWFE cells with their full
        cluster-robust covariance; the ATT rebuilt from the pooled cells with
        the design's weights.
        ``"callaway_santanna"``: ATT(g, t) against never-treated units with base
        period g - 1, computed as Sun and Abraham's saturated event study (the
        two are equal with never-treated controls and no covariates); a
        balanced panel and no covariates are required.
        ``"re_cells"``: the model-based twin of ``"pooled_cells"`` — random unit
        intercepts, cohort dummies and period effects, and cell effects varying
        around a common mean (REML, or Bayesian with ``engine=Bayes(...)``);
        model-based intervals only (``vcov="iid"``).
    covariates
        Time-varying controls, entered linearly (not interacted with cohorts).
    vcov
        The covariance convention, for every engine: ``"cluster"`` (default):
        cluster-robust by unit (pyfixest's CRV1 for the regressions, a sandwich
        for random effects, t intervals on G - 1 degrees of freedom).
        ``"iid"``: classical OLS, or the random-effects model's own (REML)
        standard errors with normal intervals. The empirical-Bayes intervals of
        ``"pooled_cells"`` are normal whatever ``vcov``. ``"re_cells"`` has
        model-based intervals only and needs ``vcov="iid"`` (also with
        ``engine=Bayes(...)``: its HDIs assume independent errors too).
    engine
        The backend, with its options (:mod:`mlmci.engines`); leave it out for
        the method's default. ``OLS()`` for ``"twfe"``, ``"twfe_event"``,
        ``"mundlak"``, ``"etwfe"``, ``"callaway_santanna"`` (pyfixest; the
        covariance comes from ``vcov``, so ``OLS(cov_type=...)`` is refused).
        ``REML(allow_boundary=...)`` for ``"re"`` and ``"re_cohort"`` (default
        ``REML()``: a zero unit variance raises), ``"pooled_cells"`` and
        ``"re_cells"`` (default ``REML(allow_boundary=True)``: a zero SD of the
        cells is reported in ``notes``). ``Bayes(sampler=..., gate=...,
        model_options=...)`` for ``"re_cells"`` only: the same model in bambi
        through :func:`mlmci.bayes.fit` (book-wide sampler settings, convergence
        gate), its ATT's posterior rebuilt from the posterior draws of the
        cells with the design's weights (see ``mlmci.designs.did.bayes_twin``).

    Returns
    -------
    DidResult
        ``tidy()`` with the ``"ATT"`` row and the cells; ``effect()`` the ATT.
        With ``engine=Bayes(...)`` a
        :class:`~mlmci.designs.did.bayes_twin.DidBayesResult` (posterior means,
        SDs and HDIs; the draws in ``att_draws`` and ``cell_draws``).

    Raises
    ------
    DataError
        Bad input (see :func:`mlmci.did.cohorts`), an unknown method or ``vcov``,
        ``"re_cells"`` without ``vcov="iid"``.
    ArgumentError
        An engine that cannot fit the method (e.g. ``Bayes`` with ``"etwfe"``),
        ``OLS(cov_type=...)`` instead of ``vcov``.
    ConvergenceError
        A boundary fit under ``REML(allow_boundary=False)``, a posterior that
        fails the convergence gate.

    Examples
    --------
    >>> from mlmci import did
    >>> from mlmci.simulate import simulate_staggered
    >>> data, truth = simulate_staggered(n_units=40, n_periods=6, seed=1)
    >>> res = did.fit(data, "y", unit="unit", time="period", treatment="treated")
    >>> bool(abs(res.effect()["estimate"] - truth["ATT"]) < 0.5)
    True
    """
    if method not in METHODS:
        raise DataError(f"method must be one of {list(METHODS)}, got {method!r}.")
    if vcov not in ("cluster", "iid"):
        raise DataError(f"vcov must be 'cluster' or 'iid', got {vcov!r}.")
    engine = choose(method, engine, vcov)
    control = "never" if method == "callaway_santanna" else "not_yet"
    panel = prepare(
        data, y, unit=unit, time=time, treatment=treatment, covariates=covariates, control=control
    )
    if isinstance(engine, Bayes):
        from mlmci.designs.did.bayes_twin import fit_bayes_cells

        out: DidResult = fit_bayes_cells(panel, engine)
    elif isinstance(engine, REML):
        out = _FITTERS[method](panel, vcov, engine)
    else:
        out = _FITTERS[method](panel, vcov)
    out.engine = engine
    return out


def _cov_terms(panel: Panel) -> str:
    return "".join(f" + {c}" for c in panel.covariates)


def _cell_dummies(
    panel: Panel, cells: pd.DataFrame, prefix: str = "_c"
) -> tuple[pd.DataFrame, list[str]]:
    frame = panel.frame.copy()
    names = []
    for k, cell in enumerate(cells.itertuples(index=False)):
        name = f"{prefix}{k}"
        frame[name] = ((frame["_cohort"] == cell.cohort) & (frame["_time"] == cell.period)).astype(
            float
        )
        names.append(name)
    return frame, names


def _result(
    panel: Panel, method: str, cells: pd.DataFrame, beta, cov, df, vcov, native, notes=(), **kw
) -> DidResult:
    cells = cells.reset_index(drop=True).copy()
    cells["estimate"] = np.asarray(beta, float)
    cells["std_error"] = np.sqrt(np.clip(np.diag(cov), 0, None))
    w = cells["weight"].to_numpy(float)
    att = float(w @ cells["estimate"].to_numpy(float))
    att_se = float(np.sqrt(max(w @ cov @ w, 0.0)))
    notes = tuple(notes) + _small_cohort_notes(panel, vcov)
    return DidResult(
        method=method,
        att=att,
        att_se=att_se,
        cells=cells[
            [
                "cohort",
                "period",
                "event_time",
                "estimate",
                "std_error",
                "weight",
                "n_obs",
                *[c for c in ("raw", "raw_std_error") if c in cells],
            ]
        ],
        cell_cov=np.asarray(cov, float),
        df=df,
        vcov=vcov,
        native=native,
        notes=notes,
        **kw,
    )


def _small_cohort_notes(panel: Panel, vcov: str) -> tuple[str, ...]:
    sizes = panel.cohort_of_unit[np.isfinite(panel.cohort_of_unit)].value_counts()
    single = sorted(sizes.index[sizes == 1])
    if vcov == "cluster" and single:
        shown = ", ".join(str(int(g)) if float(g).is_integer() else str(g) for g in single)
        return (
            f"cohort(s) {shown} have a single unit: cluster-robust SEs of their cells rest "
            "on one cluster and are unreliable (Conley and Taber 2011).",
        )
    return ()


def _fit_twfe(panel: Panel, vcov: str) -> DidResult:
    res = engine.ols(f"_y ~ _d{_cov_terms(panel)} | _unit + _time", panel.frame, vcov=vcov)
    return _single(panel, "twfe", res, vcov)


def _single(panel: Panel, method: str, res: engine.OLSFit, vcov: str, notes=()) -> DidResult:
    """A result whose ATT is one coefficient (on ``_d``), without cells."""
    k = res.names.index("_d")
    cells = pd.DataFrame(
        columns=["cohort", "period", "event_time", "estimate", "std_error", "weight", "n_obs"]
    )
    return DidResult(
        method=method,
        att=float(res.beta[k]),
        att_se=float(np.sqrt(res.cov[k, k])),
        cells=cells,
        cell_cov=np.zeros((0, 0)),
        df=res.df,
        vcov=vcov,
        native=res.native,
        notes=tuple(notes) + _small_cohort_notes(panel, vcov),
        diagnostics={"n_obs_treated": int(panel.cells["n_obs"].sum())},
    )


def _fit_mundlak(panel: Panel, vcov: str) -> DidResult:
    frame = panel.frame.copy()
    terms = ["_d", *panel.covariates]
    names = []
    for col in terms:
        for key, tag in (("_unit", "u"), ("_time", "t")):
            name = f"_m{tag}_{terms.index(col)}"
            frame[name] = frame.groupby(key)[col].transform("mean")
            names.append(name)
    formula = "_y ~ " + " + ".join(terms + names)
    res = engine.ols(formula, frame, vcov=vcov)
    notes = (
        ()
        if panel.balanced
        else (
            "the panel is unbalanced: the two-way Mundlak regression no longer equals two-way "
            "fixed effects.",
        )
    )
    return _single(panel, "mundlak", res, vcov, notes)


def _fit_twfe_event(panel: Panel, vcov: str) -> DidResult:
    frame = panel.frame.copy()
    events = panel.cells.groupby("event_time", as_index=False)["n_obs"].sum()
    names = []
    for k, e in enumerate(events["event_time"]):
        name = f"_e{k}"
        frame[name] = ((frame["_d"] == 1) & (frame["_time"] - frame["_cohort"] == e)).astype(float)
        names.append(name)
    res = engine.ols(
        f"_y ~ {' + '.join(names)}{_cov_terms(panel)} | _unit + _time", frame, vcov=vcov
    )
    idx = [res.names.index(n) for n in names]
    cells = events.assign(
        cohort=np.nan, period=np.nan, weight=events["n_obs"] / events["n_obs"].sum()
    )
    return _result(
        panel,
        "twfe_event",
        cells,
        res.beta[idx],
        res.cov[np.ix_(idx, idx)],
        res.df,
        vcov,
        res.native,
    )


def _fit_etwfe(panel: Panel, vcov: str) -> DidResult:
    frame, names = _cell_dummies(panel, panel.cells)
    res = engine.ols(
        f"_y ~ {' + '.join(names)}{_cov_terms(panel)} | _unit + _time", frame, vcov=vcov
    )
    idx = [res.names.index(n) for n in names]
    return _result(
        panel,
        "etwfe",
        panel.cells,
        res.beta[idx],
        res.cov[np.ix_(idx, idx)],
        res.df,
        vcov,
        res.native,
    )


def _fit_re(
    panel: Panel, vcov: str, engine_: REML = _DEFAULTS["re"], *, cohort_terms: bool = False
) -> DidResult:
    frame, names = _cell_dummies(panel, panel.cells)
    period_names = []
    for j, t in enumerate(panel.times[1:]):
        frame[f"_t{j}"] = (frame["_time"] == t).astype(float)
        period_names.append(f"_t{j}")
    cohort_names = []
    if cohort_terms:
        for j, g in enumerate(_cohort_levels(panel)):
            frame[f"_g{j}"] = (frame["_cohort"] == g).astype(float)
            cohort_names.append(f"_g{j}")
    fixed = [*period_names, *cohort_names, *names, *panel.covariates]
    formula = "_y ~ 1 + " + " + ".join(fixed) + " + (1 | _unit)"
    native = engine.reml(formula, frame, allow_boundary=engine_.allow_boundary)
    beta_all = native.beta
    idx = [list(beta_all.index).index(n) for n in names]
    if vcov == "cluster":
        x = np.column_stack([np.ones(len(frame)), frame[fixed].to_numpy(float)])
        resid = frame["_y"].to_numpy(float) - x @ beta_all.to_numpy(float)
        vc = native.variance_components
        tau = float(vc.loc[vc["group"] == "_unit", "estimate"].iloc[0])
        cov_all = random_intercept_cov(x, resid, frame["_unit"].to_numpy(), native.sigma**2, tau**2)
        df = float(panel.n_units - 1)
    else:
        cov_all = native.vcov.to_numpy(float)
        df = None
    method = "re_cohort" if cohort_terms else "re"
    out = _result(
        panel,
        method,
        panel.cells,
        beta_all.to_numpy(float)[idx],
        cov_all[np.ix_(idx, idx)],
        df,
        vcov,
        native,
    )
    out.diagnostics = {
        "sigma": float(native.sigma),
        "tau_unit": float(
            native.variance_components.loc[
                native.variance_components["group"] == "_unit", "estimate"
            ].iloc[0]
        ),
    }
    return out


def _cohort_levels(panel: Panel) -> list[float]:
    """The cohorts that get a dummy: all but the baseline (never treated, else the first)."""
    groups = sorted(panel.cohort_of_unit.unique())
    base = np.inf if np.isinf(groups[-1]) else groups[0]
    return [g for g in groups if g != base]


def _fit_re_cohort(panel: Panel, vcov: str, engine_: REML = _DEFAULTS["re"]) -> DidResult:
    return _fit_re(panel, vcov, engine_, cohort_terms=True)


def _fit_pooled_cells(panel: Panel, vcov: str, engine_: REML = _DEFAULTS["pooled_cells"]):
    out = _pool(panel, _fit_etwfe(panel, vcov), vcov)
    if not engine_.allow_boundary and out.native["meta"].tau2 == 0.0:
        raise ConvergenceError(
            "the REML estimate of the SD of the cell effects is zero (a boundary fit: every "
            "cell pooled fully to the mean); pass engine=REML(allow_boundary=True) to accept it."
        )
    return out


def _pool(panel: Panel, base: DidResult, vcov: str) -> DidResult:
    """Empirical Bayes on the cells of an extended-TWFE result (library and fast paths)."""
    from mlmci import meta

    if len(base.cells) < 3:
        raise DataError(
            f"partial pooling needs at least three cells; this design has {len(base.cells)}."
        )
    eig = np.linalg.eigvalsh(base.cell_cov)
    if eig.min() <= 1e-10 * eig.max():
        sizes = panel.cohort_of_unit[np.isfinite(panel.cohort_of_unit)].value_counts()
        few = ", ".join(
            f"{int(g)} ({n} unit{'s' if n > 1 else ''})" for g, n in sorted(sizes.items()) if n <= 2
        )
        raise DataError(
            "the covariance of the extended-TWFE cells is singular "
            f"(rank {int((eig > 1e-10 * eig.max()).sum())} of {len(eig)}), so the cells cannot "
            "be pooled with it"
            + (
                f": cohorts with one or two units ({few}) give cluster-robust variances "
                "resting on one or two clusters"
                if few
                else ""
            )
            + ". Drop or merge those cohorts, or pool with vcov='iid' if the errors are "
            "independent."
        )
    pooled = meta.fit(
        base.cells["estimate"].to_numpy(float), base.cell_cov, labels=list(range(len(base.cells)))
    )
    cells = base.cells.copy()
    cells["raw"] = cells["estimate"]
    cells["raw_std_error"] = cells["std_error"]
    cov = pooled.prediction_cov
    out = _result(
        panel,
        "pooled_cells",
        cells,
        pooled.shrunken,
        cov,
        None,
        vcov,
        {"etwfe": base, "meta": pooled},
        notes=pooled.notes,
    )
    out.interval_kind = "CI (EB)"
    hyper = pooled.effect()
    out.extra = [
        {
            "term": "hyper-mean",
            "estimate": float(hyper["estimate"]),
            "std_error": float(hyper["std_error"]),
        }
    ]
    out.diagnostics = {"tau": pooled.tau, **pooled.diagnostics}
    return out


def _fit_callaway_santanna(panel: Panel, vcov: str) -> DidResult:
    if panel.covariates:
        raise DataError(
            "method='callaway_santanna' is computed through its equality with Sun and Abraham's "
            "saturated event study, which holds without covariates; drop `covariates`."
        )
    if not panel.balanced:
        raise DataError(
            "method='callaway_santanna' needs a balanced panel (every unit in every period): its "
            "equality with Sun and Abraham's regression holds only there."
        )
    cells = _cs_cells(panel)
    frame, names = _cell_dummies(panel, cells)
    res = engine.ols(f"_y ~ {' + '.join(names)} | _unit + _time", frame, vcov=vcov)
    idx = [res.names.index(n) for n in names]
    return _result(
        panel,
        "callaway_santanna",
        cells,
        res.beta[idx],
        res.cov[np.ix_(idx, idx)],
        res.df,
        vcov,
        res.native,
    )


def _cs_cells(panel: Panel) -> pd.DataFrame:
    """Sun-Abraham cells: every cohort x period but the base period g - 1 (weights: post only)."""
    rows = []
    for g in sorted(panel.cohort_of_unit[np.isfinite(panel.cohort_of_unit)].unique()):
        size = int((panel.cohort_of_unit == g).sum())
        base = panel.times[panel.times < g].max()
        for t in panel.times:
            if t != base:
                rows.append({"cohort": g, "period": t, "event_time": t - g, "n_obs": size})
    cells = pd.DataFrame(rows)
    cells["weight"] = np.where(cells["event_time"] >= 0, cells["n_obs"], 0.0)
    cells["weight"] /= cells["weight"].sum()
    return cells


_FITTERS = {
    "twfe": _fit_twfe,
    "twfe_event": _fit_twfe_event,
    "mundlak": _fit_mundlak,
    "etwfe": _fit_etwfe,
    "re": _fit_re,
    "re_cohort": _fit_re_cohort,
    "pooled_cells": _fit_pooled_cells,
    "callaway_santanna": _fit_callaway_santanna,
    "re_cells": lambda panel, vcov, engine_: _twin().fit_re_cells(panel, vcov, engine_),
}


def _twin():
    from mlmci.designs.did import twin

    return twin
