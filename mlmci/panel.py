r"""Panel estimators side by side: pooled OLS, between, random effects, fixed effects, Mundlak.

:func:`compare` fits the five classical linear panel estimators with
linearmodels on one specification and returns a :class:`PanelComparison`
holding the fitted linearmodels results, a tidy table, the Hausman test and
the cluster-robust Mundlak test.

Estimators (``x`` time-varying regressors, ``z`` time-invariant ones):

* ``"pooled"``: OLS of ``y`` on ``1, x, z`` ignoring the panel structure
  (:class:`linearmodels.panel.PooledOLS`).
* ``"between"``: OLS on the entity means (:class:`~linearmodels.panel.BetweenOLS`).
* ``"re"``: random effects GLS (:class:`~linearmodels.panel.RandomEffects`),
  consistent only if the entity effects are uncorrelated with ``x`` and ``z``.
* ``"fe"``: fixed effects, the within estimator
  (:class:`~linearmodels.panel.PanelOLS` with ``entity_effects=True`` and,
  with period effects, the period dummies as regressors, as in Stata's
  ``xtreg, fe`` with ``i.year``); it cannot identify ``z``.
* ``"mundlak"``: the correlated random effects model of Mundlak (1978), i.e.
  random effects with the entity means ``x_mean`` of the time-varying
  regressors added. Its coefficients on ``x`` equal the fixed effects ones
  and its coefficients on ``x_mean`` are the contextual effects (between
  minus within), while it still estimates the effects of ``z``.

Clustered standard errors of fixed effects follow Stata's ``xtreg, fe
vce(cluster)``: the sandwich times ``stata_cluster_factor``,
:math:`\frac{G}{G-1}\frac{N-1}{N-K}`, where ``K`` counts the coefficients
the model reports (intercept, period dummies, regressors) but not the
absorbed entity effects, which nest within the entity clusters. The other
estimators keep linearmodels' default, the sandwich times :math:`N/(N-K)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
from linearmodels.panel import BetweenOLS, PanelOLS, PooledOLS, RandomEffects

from mlmci.config import CI_PROB
from mlmci.errors import DataError, DataTypeError
from mlmci.identification import RANK_TOL, dependent_columns
from mlmci.results import Fit, interval_label, tidy
from mlmci.validation import (
    as_list,
    require_columns,
    require_dataframe,
    require_groups,
    require_no_missing,
    require_numeric,
)

__all__ = [
    "COV_TYPES",
    "ESTIMATORS",
    "Drop",
    "IdentificationWarning",
    "PanelComparison",
    "TestResult",
    "compare",
    "stata_cluster_factor",
]

#: The estimators :func:`compare` fits, in the order tables show them.
ESTIMATORS: tuple[str, ...] = ("pooled", "between", "re", "fe", "mundlak")
COV_TYPES: tuple[str, ...] = ("unadjusted", "robust", "clustered")
MEAN_SUFFIX = "_mean"
CONST = "const"

CovType = Literal["unadjusted", "robust", "clustered"]


def stata_cluster_factor(nobs: int, n_clusters: int, n_params: int) -> float:
    r"""The small-sample factor of Stata's ``xtreg, fe vce(cluster)`` covariance.

    .. math::

        c = \frac{G}{G-1}\,\frac{N-1}{N-K},

    with :math:`G` clusters, :math:`N` observations and :math:`K` the
    coefficients the model reports: the intercept, the period dummies and
    the regressors, but not the absorbed entity effects. Those nest within
    the entity clusters, so the cluster-robust "meat" already has only
    :math:`G` free scores and counting :math:`G - 1` effects again in
    :math:`N - K` would inflate the variance (on the union wage panel by
    about 7% in the standard error). :func:`compare` multiplies the sandwich
    of the fixed-effects fit by ``c``, through linearmodels'
    ``debiased=True`` (:math:`N/(N-K)`) and ``group_debias=True``
    (:math:`\frac{G}{G-1}\frac{N-1}{N}`). R's ``plm::vcovHC(type = "sss")``
    and ``clubSandwich``'s ``CR1S`` use the same formula with :math:`K` one
    smaller (plm's within model has no intercept);
    ``tests/reference/plm_wagepan.R`` shows both.

    Parameters
    ----------
    nobs
        :math:`N`, the number of observations.
    n_clusters
        :math:`G`, the number of clusters (at least 2).
    n_params
        :math:`K`, the number of estimated coefficients counted (below ``nobs``).

    Returns
    -------
    float
        The factor :math:`c` that multiplies the sandwich.

    Raises
    ------
    DataError
        Fewer than two clusters, or no residual degrees of freedom.

    Examples
    --------
    >>> round(stata_cluster_factor(4360, 545, 11), 6)
    1.004142
    """
    if n_clusters < 2:
        raise DataError(f"a clustered covariance needs at least 2 clusters, got {n_clusters}.")
    if n_params >= nobs:
        raise DataError(
            f"no residual degrees of freedom: {nobs} observations and {n_params} coefficients."
        )
    return n_clusters / (n_clusters - 1) * (nobs - 1) / (nobs - n_params)


class IdentificationWarning(UserWarning):
    """A regressor was dropped from an estimator that cannot identify its coefficient."""


@dataclass(frozen=True)
class Drop:
    """Regressors dropped from one estimator, and why.

    Attributes
    ----------
    estimator
        One of :data:`ESTIMATORS`.
    terms
        The dropped regressors, in design order.
    reason
        Why the estimator cannot identify them.
    """

    estimator: str
    terms: tuple[str, ...]
    reason: str

    def __str__(self) -> str:
        return f"{self.estimator}: dropped {', '.join(self.terms)} — {self.reason}"


@dataclass(frozen=True)
class TestResult:
    """The outcome of a specification test.

    Attributes
    ----------
    name
        Which test this is.
    statistic
        The chi-squared statistic (NaN if the statistic is invalid).
    df
        Its degrees of freedom: the number of coefficients tested.
    pvalue
        The asymptotic p-value (NaN if the statistic is invalid).
    null
        The null hypothesis in words.
    terms
        The coefficients the test compares or restricts.
    cov_type
        The covariance estimator the test uses.
    """

    __test__ = False  # not a pytest test class, despite its name

    name: str
    statistic: float
    df: int
    pvalue: float
    null: str
    terms: tuple[str, ...]
    cov_type: str

    def __str__(self) -> str:
        return (
            f"{self.name}: chi2({self.df}) = {self.statistic:.3f}, p = {self.pvalue:.4g}\n"
            f"H0: {self.null}\nterms: {', '.join(self.terms)}; covariance: {self.cov_type}"
        )


class PanelComparison(Fit):
    """Five panel estimators fitted on one specification; returned by :func:`compare`.

    A comparison of several fits on mlmci's result protocol: ``tidy(prob=...)``
    stacks every estimator's rows; ``native`` is the dict of linearmodels
    results; ``summary()`` shows the estimates side by side.

    Attributes
    ----------
    results
        The fitted linearmodels results by estimator name (:data:`ESTIMATORS`),
        read-only. ``comparison["fe"]`` is a shortcut for
        ``comparison.results["fe"]``.
    drops
        The :class:`Drop` records: which regressor each estimator could not
        identify, and why.
    notes
        The same as human-readable strings (also shown by ``repr``).
    y, x, invariant, entity, time
        The specification as passed to :func:`compare`.
    time_effects, cov_type
        The options as passed to :func:`compare`.
    period_terms
        Names of the period dummies (``f"{time}_{value}"``, first period as
        reference); empty without period effects.
    mean_terms
        Names of the entity-mean columns of the Mundlak model, by regressor.
    data
        The estimation frame (MultiIndex entity code × period code) holding
        ``y``, the regressors, the period dummies and the entity means.
    nobs, n_entities, n_periods, balanced
        Size and shape of the panel.
    """

    def __init__(
        self,
        *,
        spec: dict[str, Any],
        data: pd.DataFrame,
        models: dict[str, Any],
        fit_kwargs: dict[str, dict[str, dict[str, Any]]],
        results: dict[str, Any],
        drops: list[Drop],
    ) -> None:
        self.y: str = spec["y"]
        self.x: tuple[str, ...] = tuple(spec["x"])
        self.invariant: tuple[str, ...] = tuple(spec["invariant"])
        self.entity: str = spec["entity"]
        self.time: str = spec["time"]
        self.time_effects: bool = spec["time_effects"]
        self.cov_type: str = spec["cov_type"]
        self.period_terms: tuple[str, ...] = tuple(spec["period_terms"])
        self.mean_terms: Mapping[str, str] = MappingProxyType(dict(spec["mean_terms"]))
        self.data = data
        self.nobs = int(data.shape[0])
        self.n_entities = int(spec["n_entities"])
        self.n_periods = int(spec["n_periods"])
        self.balanced = bool(spec["balanced"])
        self.drops: tuple[Drop, ...] = tuple(drops)
        self.notes: tuple[str, ...] = tuple(str(d) for d in drops)
        self.results: Mapping[str, Any] = MappingProxyType(dict(results))
        self._models = models
        self._fit_kwargs = fit_kwargs
        self._refits: dict[tuple[str, str], Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.results:
            raise KeyError(f"no estimator {name!r}; choose one of {list(self.results)}.")
        return self.results[name]

    def _result(self, name: str, cov_type: str) -> Any:
        """The ``name`` fit with covariance ``cov_type``, refitting only if it differs."""
        if cov_type == self.cov_type:
            return self.results[name]
        key = (name, cov_type)
        if key not in self._refits:
            self._refits[key] = self._models[name].fit(**self._fit_kwargs[name][cov_type])
        return self._refits[key]

    def _hausman_fe(self) -> Any:
        """The usual-covariance fixed-effects fit whose coefficients the Hausman test compares.

        linearmodels' test compares every coefficient the two models share, so
        the period dummies (regressors of both) are absorbed here instead.
        """
        names = list(self._models["fe"].exog.vars)
        kept = [c for c in names if c not in self.period_terms]
        if len(kept) == len(names):
            return self._result("fe", "unadjusted")
        key = ("fe_twoway", "unadjusted")
        if key not in self._refits:
            model = PanelOLS(
                self.data[self.y], self.data[kept], entity_effects=True, time_effects=True
            )
            self._refits[key] = _fit("fe", model, {"cov_type": "unadjusted"})
        return self._refits[key]

    def _nuisance_terms(self) -> set[str]:
        period_means = {f"{p}{MEAN_SUFFIX}" for p in self.period_terms}
        return {CONST, *self.period_terms, *period_means}

    def tidy(
        self, prob: float | None = None, *, terms: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """The estimates of every estimator as one tidy table.

        Parameters
        ----------
        terms
            The coefficients to report. By default every coefficient except
            the intercept ``const`` and the period effects (and, in the
            Mundlak model, the entity means of the period dummies). The
            Mundlak model's ``{x}_mean`` rows are its contextual effects.
        prob
            Coverage of the confidence intervals (default 0.95, :mod:`mlmci.config`).

        Returns
        -------
        pandas.DataFrame
            Columns ``estimator, term, estimate, std_error, ci_low, ci_high,
            interval``; ``estimator`` is one of :data:`ESTIMATORS`; an estimator
            that could not identify a term has no row for it.

        Examples
        --------
        >>> from mlmci.simulate import simulate_panel
        >>> data, truth = simulate_panel(n_entities=30, n_periods=4, corr=0.5, seed=1)
        >>> cmp = compare(data, "y", "x", entity="unit", time="period")
        >>> cmp.tidy(terms="x").estimator.tolist()
        ['pooled', 'between', 're', 'fe', 'mundlak']
        """
        available = {t for res in self.results.values() for t in res.params.index}
        if terms is None:
            keep = available - self._nuisance_terms()
        else:
            terms = as_list(terms, "terms")
            unknown = [t for t in terms if t not in available]
            if unknown:
                raise DataError(
                    f"term(s) {unknown} are in none of the fitted models; "
                    f"available terms: {sorted(available)}."
                )
            keep = set(terms)
        level = CI_PROB if prob is None else float(prob)
        label = interval_label(level, "CI")
        rows: list[dict[str, Any]] = []
        for name in ESTIMATORS:
            res = self.results[name]
            # linearmodels recomputes these properties on every access: read them once.
            params, std_errors, ci = res.params, res.std_errors, res.conf_int(level=level)
            for term in params.index:
                if term not in keep:
                    continue
                rows.append(
                    {
                        "estimator": name,
                        "term": term,
                        "estimate": params[term],
                        "std_error": std_errors[term],
                        "ci_low": ci.at[term, "lower"],
                        "ci_high": ci.at[term, "upper"],
                        "interval": label,
                    }
                )
        return tidy(rows)

    def hausman(self) -> TestResult:
        """The Hausman test of random against fixed effects, computed by linearmodels.

        Wraps :meth:`linearmodels.panel.results.RandomEffectsResults.hausman`.
        It compares the coefficients the two models share (the time-varying
        regressors fixed effects can identify; never the intercept or the
        period effects: with period effects, the fixed-effects side is the
        two-way fit that absorbs them, whose coefficients and usual
        covariance of the regressors equal those of :func:`compare`'s fit with
        period dummies). The classical statistic
        needs the usual (``"unadjusted"``) covariances, so both models are
        refitted with them if :func:`compare` used another ``cov_type``: under
        heteroskedasticity or serial correlation the test is invalid; prefer
        :meth:`mundlak_test` then.

        Returns
        -------
        TestResult
            ``statistic``, ``df`` and ``pvalue`` (NaN if the variance
            difference makes the statistic negative: linearmodels then warns).

        Examples
        --------
        >>> from mlmci.simulate import simulate_panel
        >>> data, truth = simulate_panel(n_entities=30, n_periods=4, corr=0.5, seed=1)
        >>> test = compare(data, "y", "x", entity="unit", time="period").hausman()
        >>> test.terms, test.df
        (('x',), 1)
        """
        re_res = self._result("re", "unadjusted")
        fe_res = self._hausman_fe()
        try:
            out = re_res.hausman(fe_res)
        except ValueError as exc:
            raise DataError(f"the Hausman test could not be computed: {exc}") from exc
        terms = tuple(out.estimates.index)
        stat = out.statistic
        return TestResult(
            name="Hausman test (fixed vs random effects)",
            statistic=float(stat.stat),
            df=len(terms),
            pvalue=float(stat.pval),
            null="the random effects estimates do not differ systematically from "
            "the fixed effects ones (entity effects uncorrelated with the regressors)",
            terms=terms,
            cov_type="unadjusted",
        )

    def mundlak_test(
        self, *, cov_type: CovType = "clustered", terms: Sequence[str] | None = None
    ) -> TestResult:
        """Wald test that every entity-mean coefficient of the Mundlak model is zero.

        Under the null the Mundlak model reduces to random effects, so this is
        the regression-based alternative to :meth:`hausman`. With the default
        entity-clustered covariance it stays valid under heteroskedasticity
        and serial correlation within entities, which the classical Hausman
        test does not. It uses linearmodels' ``wald_test`` on the Mundlak
        model, refitted with ``cov_type`` if :func:`compare` used another one.
        By default all entity means the model kept are tested, including those
        of the period dummies (present on unbalanced panels with period
        effects).

        Parameters
        ----------
        cov_type
            ``"clustered"`` (by entity, the default), ``"robust"`` or
            ``"unadjusted"``.
        terms
            A subset of the entity-mean terms to test, e.g. ``["union_mean"]``.

        Returns
        -------
        TestResult

        Examples
        --------
        >>> from mlmci.simulate import simulate_panel
        >>> data, truth = simulate_panel(n_entities=30, n_periods=4, corr=0.5, seed=1)
        >>> test = compare(data, "y", "x", entity="unit", time="period").mundlak_test()
        >>> test.terms, test.cov_type
        (('x_mean',), 'clustered')
        """
        _check_cov_type(cov_type)
        res = self._result("mundlak", cov_type)
        names = list(res.params.index)
        means = set(self.mean_terms.values()) | {f"{p}{MEAN_SUFFIX}" for p in self.period_terms}
        kept_means = [t for t in names if t in means]
        if terms is None:
            tested = kept_means
        else:
            tested = as_list(terms, "terms")
            unknown = [t for t in tested if t not in kept_means]
            if unknown:
                raise DataError(
                    f"{unknown} are not entity means of the Mundlak model; it has {kept_means}."
                )
        if not tested:
            raise DataError(
                "the Mundlak model kept no entity means (see .notes), so there is nothing to test."
            )
        restriction = np.zeros((len(tested), len(names)))
        for row, term in enumerate(tested):
            restriction[row, names.index(term)] = 1.0
        wald = res.wald_test(restriction)
        return TestResult(
            name="Mundlak test (entity means jointly zero)",
            statistic=float(wald.stat),
            df=int(wald.df),
            pvalue=float(wald.pval),
            null="all coefficients on the entity means are zero (random effects is consistent)",
            terms=tuple(tested),
            cov_type=cov_type,
        )

    @property
    def native(self) -> Mapping[str, Any]:  # type: ignore[override]
        """The fitted linearmodels results by estimator (the same as :attr:`results`)."""
        return self.results

    @property
    def title(self) -> str:  # type: ignore[override]
        return f"Panel estimators: {self.y} on {', '.join(self.x)}" + (
            f"; time-invariant: {', '.join(self.invariant)}" if self.invariant else ""
        )

    @property
    def diagnostics(self) -> pd.DataFrame:  # type: ignore[override]
        """Observations and R-squared of every fit."""
        return pd.DataFrame(
            {
                name: {"nobs": int(res.nobs), "rsquared": float(res.rsquared)}
                for name, res in self.results.items()
            }
        ).T

    def summary(self) -> str:
        head = (
            f"{self.title}\n{self.n_entities} entities, {self.n_periods} periods, "
            f"{self.nobs} observations ({'balanced' if self.balanced else 'unbalanced'});"
            f" period effects: {'yes' if self.time_effects else 'no'};"
            f" covariance: {self.cov_type}"
        )
        tab = self.tidy()
        cells = tab.assign(
            cell=[f"{e:.4f} ({s:.4f})" for e, s in zip(tab.estimate, tab.std_error, strict=True)]
        )
        wide = cells.pivot(index="term", columns="estimator", values="cell")
        order = list(dict.fromkeys(tab.term))
        wide = wide.reindex(index=order, columns=list(ESTIMATORS)).fillna("—")
        notes = "\n".join(f"note: {n}" for n in self.notes)
        return f"{head}\nestimate (std. error):\n{wide.to_string()}" + (
            f"\n{notes}" if notes else ""
        )

    def _summary_table(self) -> pd.DataFrame:
        return self.tidy()


def compare(
    data: pd.DataFrame,
    y: str,
    x: str | Sequence[str],
    *,
    entity: str,
    time: str,
    invariant: str | Sequence[str] = (),
    time_effects: bool = False,
    cov_type: CovType = "clustered",
) -> PanelComparison:
    """Fit pooled OLS, between, random effects, fixed effects and Mundlak on one panel.

    Parameters
    ----------
    data
        A long panel: one row per (entity, time), with no duplicated pair and
        no missing value in the columns used. It is not modified.
    y
        The outcome column.
    x
        The time-varying regressors.
    entity, time
        The columns identifying the entity and the period.
    invariant
        Time-invariant regressors (constant within each entity; checked).
        Fixed effects cannot identify them; the other estimators do.
    time_effects
        Add period effects to every estimator, as Wooldridge's year dummies
        do: dummies ``f"{time}_{value}"`` for every period but the first in
        pooled, random effects, Mundlak and fixed effects (whose period
        effects are thus estimated, not absorbed, as in Stata's ``xtreg, fe``
        with ``i.year``; the table hides them); the entity means of the
        period dummies in the between regression (they are constant, hence
        dropped, on a balanced panel, where the between estimator cannot
        separate period effects from the intercept) and, as Wooldridge (2019)
        recommends for unbalanced panels, in the Mundlak model too, so that
        its ``x`` coefficients equal the two-way fixed effects ones.
    cov_type
        ``"clustered"`` (the default): standard errors clustered by entity,
        robust to heteroskedasticity and to any serial correlation within an
        entity, which panel errors nearly always have. ``"robust"``:
        heteroskedasticity-robust only. ``"unadjusted"``: the classical
        standard errors textbooks report. In the between regression (one row
        per entity) clustering by entity amounts to robust standard errors.
        Clustered fixed-effects standard errors follow Stata's ``xtreg, fe
        vce(cluster)``: the absorbed entity effects nest within the clusters
        and are not counted in the degrees of freedom
        (``mlmci.panel.stata_cluster_factor``); the other estimators scale the
        sandwich by linearmodels' :math:`N/(N-K)`.

    Returns
    -------
    PanelComparison
        The fitted results by name, ``.tidy()``, ``.hausman()``,
        ``.mundlak_test()`` and ``.notes``.

    Warns
    -----
    IdentificationWarning
        Once per group of regressors an estimator cannot identify and drops:
        time-invariant regressors under fixed effects, a regressor whose
        within-entity variation is collinear with the period effects (such as
        experience that rises by one every year for everyone), an entity mean
        that is constant or collinear (the mean of a period dummy on a
        balanced panel). Each drop is also recorded in ``.notes``.

    Raises
    ------
    DataError
        Missing columns, missing values, fewer than two entities or periods,
        duplicated (entity, time) rows, an ``invariant`` column that varies
        within an entity, or a fit linearmodels could not complete.
    DataTypeError
        A non-numeric outcome or regressor.

    Notes
    -----
    Identification is checked numerically, not by name. Each estimator's
    design is built after the transformation that estimator applies (entity
    demeaning for fixed effects, entity means for between, none for pooled,
    random effects and Mundlak, whose quasi-demeaning preserves the rank),
    and its columns are added one at a time in the order intercept, period
    dummies, ``x``, ``invariant``, entity means (period dummies last in the
    between regression): a column whose residual on the columns before it is
    negligible (norm at most 1e-9 times the norm of the untransformed column,
    :func:`mlmci.identification.dependent_columns`) is dropped, and the note
    names the columns it is collinear with.

    When the Mundlak model drops the mean of a regressor, the coefficient on
    that regressor is no longer a pure within-entity estimate; the note says so.

    Examples
    --------
    >>> import warnings
    >>> from mlmci.simulate import simulate_panel
    >>> data, truth = simulate_panel(n_entities=50, n_periods=4, corr=0.6, seed=1)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", IdentificationWarning)
    ...     cmp = compare(data, "y", "x", entity="unit", time="period", invariant="z")
    >>> cmp.notes
    ('fe: dropped z — time-invariant by construction, so the entity effects absorb them',)
    >>> round(float(cmp["fe"].params["x"] - cmp["mundlak"].params["x"]), 10)
    0.0
    """
    spec = _validate(data, y, x, entity=entity, time=time, invariant=invariant)
    _check_cov_type(cov_type)
    frame, spec = _build_frame(data, spec, time_effects=bool(time_effects))
    spec["cov_type"] = cov_type
    spec["time_effects"] = bool(time_effects)

    designs, drops = _identify(frame, spec)
    for drop in drops:
        warnings.warn(str(drop), IdentificationWarning, stacklevel=2)

    models = _build_models(frame, spec, designs)
    fit_kwargs = {name: _fit_kwargs(name, frame) for name in ESTIMATORS}
    results = {name: _fit(name, models[name], fit_kwargs[name][cov_type]) for name in ESTIMATORS}
    return PanelComparison(
        spec=spec,
        data=frame,
        models=models,
        fit_kwargs=fit_kwargs,
        results=results,
        drops=drops,
    )


# --------------------------------------------------------------------------- input


def _check_cov_type(cov_type: str) -> None:
    if cov_type not in COV_TYPES:
        raise DataError(f"cov_type must be one of {list(COV_TYPES)}, got {cov_type!r}.")


def _validate(
    data: pd.DataFrame,
    y: str,
    x: str | Sequence[str],
    *,
    entity: str,
    time: str,
    invariant: str | Sequence[str],
) -> dict[str, Any]:
    require_dataframe(data)
    xs = as_list(x, "x")
    zs = as_list(invariant, "invariant")
    if not xs:
        raise DataError("`x` is empty: compare needs at least one time-varying regressor.")
    variables = [y, *xs, *zs]
    repeated = sorted({v for v in variables if variables.count(v) > 1})
    if repeated:
        raise DataError(
            f"column(s) {repeated} appear more than once among y, x and invariant; "
            "list each variable in one role only."
        )
    if entity == time:
        raise DataError(f"entity and time must be different columns, both are {entity!r}.")
    for key in (entity, time):
        if key in variables:
            raise DataError(f"the identifier {key!r} cannot also be the outcome or a regressor.")
    require_columns(data, [entity, time, *variables])
    require_numeric(data, variables)
    require_no_missing(data, [entity, time, *variables])
    require_groups(data, entity, min_groups=2)
    if data[time].nunique() < 2:
        raise DataError(f"column {time!r} has a single period; panel estimators need at least two.")
    duplicated = data.duplicated([entity, time], keep=False)
    if duplicated.any():
        pairs = data.loc[duplicated, [entity, time]].drop_duplicates().head(3)
        shown = ", ".join(f"({e!r}, {t!r})" for e, t in pairs.itertuples(index=False))
        raise DataError(
            f"{int(duplicated.sum())} rows share an ({entity}, {time}) pair with another row, "
            f"e.g. {shown}. A panel needs one row per entity and period: aggregate or drop "
            "the duplicates first."
        )
    for z in zs:
        varies = data.groupby(entity, sort=False)[z].nunique() > 1
        if varies.any():
            example = varies.index[varies.to_numpy()][0]
            raise DataError(
                f"column {z!r} was passed in `invariant` but varies within entity {example!r} "
                f"(and {int(varies.sum()) - 1} other(s)); pass it in `x` instead."
            )
    return {"y": y, "x": xs, "invariant": zs, "entity": entity, "time": time}


def _build_frame(
    data: pd.DataFrame, spec: dict[str, Any], *, time_effects: bool
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The estimation frame: codes as index, then y, const, dummies, x, z and entity means."""
    entity, time = spec["entity"], spec["time"]
    try:
        periods = np.sort(data[time].unique())
    except TypeError:
        raise DataTypeError(
            f"the values of {time!r} cannot be ordered; use numbers or dates for periods."
        ) from None
    entity_codes = pd.factorize(data[entity])[0]
    period_codes = np.searchsorted(periods, data[time].to_numpy())
    index = pd.MultiIndex.from_arrays([entity_codes, period_codes], names=[entity, time])

    period_terms = [f"{time}_{p}" for p in periods[1:]] if time_effects else []
    mean_terms = {c: f"{c}{MEAN_SUFFIX}" for c in spec["x"]}
    generated = [*period_terms, *mean_terms.values(), *(f"{p}{MEAN_SUFFIX}" for p in period_terms)]
    taken = {spec["y"], *spec["x"], *spec["invariant"], CONST}
    clash = sorted(taken.intersection(generated))
    if clash:
        raise DataError(
            f"column name(s) {clash} clash with the names compare generates for period "
            "dummies and entity means; rename them first."
        )

    frame = pd.DataFrame(index=index)
    frame[spec["y"]] = data[spec["y"]].to_numpy(dtype=float)
    frame[CONST] = 1.0
    for code, term in enumerate(period_terms, start=1):
        frame[term] = (period_codes == code).astype(float)
    for c in [*spec["x"], *spec["invariant"]]:
        frame[c] = data[c].to_numpy(dtype=float)
    to_average = [*spec["x"], *period_terms]
    means = frame[to_average].groupby(level=0).transform("mean")
    for c in to_average:
        frame[f"{c}{MEAN_SUFFIX}"] = means[c]
    frame = frame.sort_index()

    n_entities = len(np.unique(entity_codes))
    spec = {
        **spec,
        "period_terms": period_terms,
        "mean_terms": mean_terms,
        "n_entities": n_entities,
        "n_periods": len(periods),
        "balanced": frame.shape[0] == n_entities * len(periods),
    }
    return frame, spec


# ---------------------------------------------------------------------- identification


def _independent_columns(
    columns: dict[str, np.ndarray],
    reference: dict[str, np.ndarray] | None = None,
) -> tuple[list[str], dict[str, list[str]]]:
    """Add columns one by one; return those kept and, for each dropped one, its partners.

    A column is dropped when the kept columns explain it up to
    :data:`mlmci.identification.RANK_TOL` of the length of its ``reference`` (the
    column before the estimator's transformation, so that rounding noise left by
    demeaning a constant does not count as variation; by default the column itself),
    as :func:`mlmci.identification.dependent_columns` decides.
    A dropped column's partners are the kept columns before it that reproduce it
    (those with a non-negligible weight in its least-squares fit); a column that is
    (numerically) zero has no partners.
    """
    names = list(columns)
    reference = columns if reference is None else reference
    scale = np.array([np.linalg.norm(reference[c]) for c in names])
    dependent = set(
        dependent_columns(np.column_stack([columns[c] for c in names]), names, scale=scale)
    )
    kept: list[str] = []
    dropped: dict[str, list[str]] = {}
    for name, length in zip(names, scale, strict=True):
        if name not in dependent:
            kept.append(name)
            continue
        vector = columns[name]
        norm = float(np.linalg.norm(vector))
        if norm <= RANK_TOL * length or norm == 0.0:
            dropped[name] = []
            continue
        kept_matrix = np.column_stack([columns[k] for k in kept])
        lengths = np.linalg.norm(kept_matrix, axis=0)
        weights = np.linalg.lstsq(kept_matrix / lengths, vector / norm, rcond=None)[0]
        dropped[name] = [k for k, w in zip(kept, weights, strict=True) if abs(w) > 1e-6]
    return kept, dropped


def _describe(partners: list[str], period_terms: Sequence[str]) -> str:
    periods = [p for p in partners if p in period_terms]
    named = [p for p in partners if p not in period_terms]
    words = [("the intercept" if p == CONST else p) for p in named]
    if periods:
        words.append("the period effects")
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _identify(frame: pd.DataFrame, spec: dict[str, Any]) -> tuple[dict[str, list[str]], list[Drop]]:
    """Each estimator's identified regressors, and a record of every drop."""
    x, z, periods = spec["x"], spec["invariant"], spec["period_terms"]
    period_means = [f"{p}{MEAN_SUFFIX}" for p in periods]
    x_means = [spec["mean_terms"][c] for c in x]
    entity = frame.index.get_level_values(0)
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    drops: list[Drop] = []
    designs: dict[str, list[str]] = {}

    def record(estimator: str, dropped: dict[str, list[str]], reason_of) -> None:
        grouped: dict[str, list[str]] = {}
        for term, partners in dropped.items():
            grouped.setdefault(reason_of(term, partners), []).append(term)
        for reason, terms in grouped.items():
            drops.append(Drop(estimator, tuple(terms), reason))

    def collinear(term: str, partners: list[str]) -> str:
        if partners == [CONST]:
            return "constant, so collinear with the intercept"
        if not partners:
            return "all zero"
        return f"collinear with {_describe(partners, periods)}"

    # pooled and random effects share the untransformed design; RE's
    # quasi-demeaning (theta < 1) does not change its rank.
    order = [CONST, *periods, *x, *z]
    kept, dropped = _independent_columns({c: columns[c] for c in order})
    designs["pooled"] = designs["re"] = kept
    record("pooled", dropped, collinear)
    record("re", dropped, collinear)

    order = [CONST, *periods, *x, *z, *x_means, *period_means]
    kept, dropped = _independent_columns({c: columns[c] for c in order})
    designs["mundlak"] = kept
    reverse_means = {m: c for c, m in spec["mean_terms"].items()}

    def mundlak_reason(term: str, partners: list[str]) -> str:
        base = collinear(term, partners)
        source = reverse_means.get(term)
        if source is not None and source in kept:
            base += (
                f"; the coefficient on {source} in this model is then not a "
                "within-entity estimate (fixed effects is the reference for it)"
            )
        return base

    record("mundlak", dropped, mundlak_reason)

    # between: OLS on entity means, one row per entity.
    entity_means = frame[[CONST, *x, *z, *periods]].groupby(level=0).mean()
    kept, dropped = _independent_columns(
        {c: entity_means[c].to_numpy() for c in [CONST, *x, *z, *periods]}
    )
    designs["between"] = kept
    record(
        "between",
        dropped,
        lambda term, partners: "the entity means are " + collinear(term, partners),
    )

    # fixed effects: the entity-demeaned design; absorbed period effects go first
    # so that a regressor collinear with them is the one dropped.
    within = frame[[*periods, *x]] - frame[[*periods, *x]].groupby(entity).transform("mean")
    kept, dropped = _independent_columns(
        {c: within[c].to_numpy() for c in [*periods, *x]},
        {c: columns[c] for c in [*periods, *x]},
    )
    # The period dummies stay regressors, as in Stata's `xtreg, fe` with `i.year`,
    # so that only the entity effects are absorbed: they nest within the entity
    # clusters, and the Stata convention counts every other coefficient (see
    # stata_cluster_factor).
    designs["fe"] = [CONST, *(c for c in kept if c in periods), *(c for c in kept if c in x)]
    dropped = {c: p for c, p in dropped.items() if c in x}

    def fe_reason(term: str, partners: list[str]) -> str:
        if not partners:
            return "does not vary within any entity, so the entity effects absorb it"
        return (
            "its within-entity variation is collinear with "
            f"{_describe(partners, periods)}, so fixed effects cannot identify it"
        )

    record("fe", dropped, fe_reason)
    if z:
        drops.append(
            Drop(
                "fe",
                tuple(z),
                "time-invariant by construction, so the entity effects absorb them",
            )
        )
    return designs, drops


# ------------------------------------------------------------------------ fitting


def _build_models(
    frame: pd.DataFrame, spec: dict[str, Any], designs: dict[str, list[str]]
) -> dict[str, Any]:
    dependent = frame[spec["y"]]
    return {
        "pooled": PooledOLS(dependent, frame[designs["pooled"]]),
        "between": BetweenOLS(dependent, frame[designs["between"]]),
        "re": RandomEffects(dependent, frame[designs["re"]]),
        "fe": PanelOLS(dependent, frame[designs["fe"]], entity_effects=True),
        "mundlak": RandomEffects(dependent, frame[designs["mundlak"]]),
    }


def _fit_kwargs(name: str, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The ``fit`` keyword arguments of estimator ``name`` for each covariance type."""
    if name == "between":
        # BetweenOLS has one row per entity; clusters are given explicitly.
        clusters = pd.DataFrame(
            {"entity": frame.index.get_level_values(0).to_numpy()}, index=frame.index
        )
        clustered: dict[str, Any] = {"cov_type": "clustered", "clusters": clusters}
    elif name == "fe":
        # Stata's xtreg, fe vce(cluster): linearmodels does not count the entity
        # effects (they nest within the clusters, auto_df), debiased=True gives
        # N/(N-K) and group_debias=True G/(G-1) (N-1)/N, so the sandwich is
        # scaled by stata_cluster_factor(N, G, K).
        clustered = {
            "cov_type": "clustered",
            "cluster_entity": True,
            "debiased": True,
            "group_debias": True,
        }
    else:
        clustered = {"cov_type": "clustered", "cluster_entity": True}
    return {
        "unadjusted": {"cov_type": "unadjusted"},
        "robust": {"cov_type": "robust"},
        "clustered": clustered,
    }


def _fit(name: str, model: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return model.fit(**kwargs)
    except Exception as exc:
        raise DataError(
            f"linearmodels could not fit the {name!r} model: {exc}. Check the data for "
            "near-collinear regressors or entities with too few observations."
        ) from exc
