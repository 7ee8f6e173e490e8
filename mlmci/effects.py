"""Group-level treatment effects (group CATEs) under no, complete and partial pooling.

Units :math:`i` in groups :math:`j = 1..J` receive a binary treatment :math:`T_{ij}`.
The estimands are the **group CATE** :math:`\\tau_j` (the average effect in group
:math:`j`), the **ATE** :math:`\\mu` (here: the mean of the group effects, each group
weighted equally) and the **effect in a new group** drawn from the same population of
groups. :func:`fit` estimates them four ways, always with a group intercept
:math:`\\alpha_j`, optional covariates :math:`x_{ij}` with common slopes :math:`\\beta`,
and optional group-level effect *modifiers* :math:`w_j`:

``"no_pooling"``
    OLS of :math:`y_{ij} = \\alpha_j + \\tau_j T_{ij} + x_{ij}'\\beta + \\varepsilon_{ij}`
    (every group its own intercept and effect: the full treatment × group interaction).
    :math:`\\hat\\tau_j` is the group's own contrast. Standard errors are classical
    (homoskedastic, one residual variance for all groups) by default, or
    heteroskedasticity-robust with ``cov_type="HC2"`` (without covariates, HC2 is the
    Neyman variance :math:`s_{1j}^2/n_{1j} + s_{0j}^2/n_{0j}` of each group's
    difference in means). Intervals are :math:`t` intervals with the residual degrees of
    freedom (``"95% CI"``). The ATE row is the unweighted mean of the
    :math:`\\hat\\tau_j`, its SE conditional on these :math:`J` groups.
``"complete_pooling"``
    OLS of :math:`y_{ij} = \\alpha_j + \\tau T_{ij} + x_{ij}'\\beta + \\varepsilon_{ij}`:
    group fixed effects, one treatment effect (with modifiers,
    :math:`\\tau + \\gamma' w_j`). Every group gets the same row (or the same row for the
    same :math:`w_j`). Standard errors and intervals as for no pooling. The common
    :math:`\\hat\\tau` is a precision-weighted average of the within-group contrasts.
``"partial_pooling"``
    The REML mixed model :math:`y_{ij} = \\alpha + a_j + (\\tau + \\gamma' w_j + b_j) T_{ij}
    + \\delta' w_j + x_{ij}'\\beta + \\varepsilon_{ij}` with correlated normal
    :math:`(a_j, b_j)` (lme4's ``(1 + T | group)``), fitted by :func:`mlmci.mixed.fit`.
    The group effect is :math:`\\hat\\tau + \\hat\\gamma' w_j + \\hat b_j` (the fixed
    slope plus the group's BLUP). Its interval, labelled ``"95% CI (approx.)"``, is the
    Wald interval with the *prediction error variance* of Henderson's mixed-model
    equations, conditional on the REML variance components:

    .. math::

        \\mathrm{PEV}_j = (\\lambda_j - K_j' e)'\\, C\\, (\\lambda_j - K_j' e)
                         + e' (G - G Z_j' V_j^{-1} Z_j G)\\, e,

    with :math:`C = (\\sum_j X_j' V_j^{-1} X_j)^{-1}` the GLS covariance of the fixed
    effects, :math:`K_j = G Z_j' V_j^{-1} X_j`, :math:`\\lambda_j` the fixed-effect
    contrast of group :math:`j`'s effect, :math:`e` the slope's position in the random
    effects, :math:`G` their covariance and :math:`V_j = Z_j G Z_j' + \\sigma^2 I`. The
    second term is statsmodels' ``random_effects_cov``; the first adds the uncertainty of
    the fixed slope and its covariance with the BLUP. Ignoring the uncertainty of the
    variance components makes the interval too narrow with few groups. The ATE is
    :math:`\\hat\\tau + \\hat\\gamma'\\bar w` with its GLS standard error (``"95% CI"``).
``"partial_pooling"`` with ``engine=Bayes(...)`` (estimator ``"bayes"``)
    The same model in bambi, ``y ~ T + ... + (1 + T | group)`` (independent intercepts
    and slopes, as bambi parametrizes them), sampled by :func:`mlmci.bayes.fit` with
    the book-wide settings and the convergence gate. The group effect's draws are
    ``T + T|group[j]`` (plus the modifier terms), summarized by the posterior mean, SD
    and HDI (``"94% HDI"``). The contrast is read off the linear predictor directly:
    with an identity link it equals what ``bambi.interpret.comparisons`` would compute
    group by group. bambi's default non-centered parametrization mixes poorly when
    groups hold many units (schools of a hundred students); the gate will say so, and
    ``Bayes(model_options={"noncentered": False})`` is the usual cure.

**New group.** For partial pooling the effect of a new group is predicted by
:math:`\\hat\\tau + \\hat\\gamma'\\bar w` with variance :math:`\\mathrm{SE}^2 +
\\hat\\sigma_b^2` (the between-group SD of the effects added), a normal
``"95% PI (approx.)"`` that ignores the uncertainty of :math:`\\hat\\sigma_b`. For
Bayes it is the posterior predictive :math:`\\tau + \\sigma_b z` with :math:`z \\sim N(0, 1)`
drawn once per posterior draw (``"94% HDI (predictive)"``). Complete pooling predicts
its one effect with its own interval (``"95% PI (tau = 0)"``: no heterogeneity, by
assumption). No pooling has no model of a new group and gives no such row.

:func:`mlmci.montecarlo.score` scores the group tables of many replications against
the truth (RMSE, coverage, sign errors), with MCSEs clustered by replication.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import patsy
import statsmodels.api as sm
from scipy import stats

from mlmci import mixed
from mlmci.config import default_prob
from mlmci.engines import OLS, REML, Bayes, resolve
from mlmci.errors import ArgumentError, DataError, DataTypeError
from mlmci.identification import dependent_columns
from mlmci.results import Fit, interval_label, tidy
from mlmci.validation import (
    as_list,
    require_columns,
    require_dataframe,
    require_groups,
    require_no_missing,
    require_numeric,
)

if TYPE_CHECKING:  # mlmci.bayes imports arviz; load it only for the Bayes engine
    from mlmci.bayes import GateThresholds, SamplerSettings

__all__ = ["COV_TYPES", "METHODS", "EffectsFit", "fit", "group_effects"]

Method = Literal["no_pooling", "complete_pooling", "partial_pooling"]

#: The estimators of :func:`fit` (see the module notes).
METHODS: tuple[str, ...] = ("no_pooling", "complete_pooling", "partial_pooling")
_ENGINES = {"no_pooling": (OLS,), "complete_pooling": (OLS,), "partial_pooling": (REML, Bayes)}
_DEFAULT_ENGINES = {
    "no_pooling": OLS(),
    "complete_pooling": OLS(),
    "partial_pooling": REML(allow_boundary=True),
}
#: Covariance types of the OLS methods (statsmodels names).
COV_TYPES: tuple[str, ...] = ("nonrobust", "HC0", "HC1", "HC2", "HC3")

_BOTH_ARMS = ("no_pooling", "partial_pooling", "bayes")


@dataclass(repr=False)
class EffectsFit(Fit):
    """Group effects estimated by :func:`fit` (mlmci's result protocol).

    ``tidy(prob)`` stacks the population rows (``term`` ``"ATE"``, the headline,
    and ``"new group"``; ``group`` empty) over the group rows.

    Attributes
    ----------
    method : str
        The estimator: ``"no_pooling"``, ``"complete_pooling"``, ``"partial_pooling"``
        (REML) or ``"bayes"`` (partial pooling with the Bayes engine); also the
        ``estimator`` column of the tables.
    groups : pandas.DataFrame
        One row per group, sorted by group, in the tidy shape ``estimator, term, group,
        estimate, std_error, ci_low, ci_high, interval`` (``term`` is the treatment
        column's name), plus ``n`` and ``n_treated`` (units and treated units of the group),
        with intervals at the ``prob`` of the fit. For ``"bayes"``, ``estimate`` is the
        posterior mean and ``std_error`` the posterior SD.
    population : pandas.DataFrame
        Tidy rows with ``term`` ``"ATE"`` (every method) and ``"new group"`` (every method
        but no pooling); see the module notes for what each row estimates and its interval.
    native : object
        The fit behind the table: the statsmodels OLS results (no and complete pooling,
        with named columns), the :class:`mlmci.mixed.MixedResult` (partial pooling) or the
        :class:`mlmci.bayes.BayesFit` (bayes). The models use internal column names:
        ``y``, ``t`` (treatment), ``g`` (group code: 0, 1, ... in the order of
        ``groups``), ``c0, c1, ...`` (covariates) and ``m0, m1, ...`` (modifiers).
    tau : float or None
        The between-group SD of the effects not explained by the modifiers: the REML
        estimate, or the posterior mean for Bayes; 0.0 for complete pooling (assumed);
        None for no pooling (not modelled).
    draws : xarray.DataArray or None
        Bayes only: the posterior draws of the group effects, dims ``chain, draw, group``
        (e.g. for the probability that a group's effect is negative).
    """

    method: str
    groups: pd.DataFrame
    population: pd.DataFrame
    native: Any
    tau: float | None = None
    draws: Any = None
    prob: float = 0.95
    df: float | None = None  # t intervals with these degrees of freedom; None: normal
    population_draws: dict = field(default_factory=dict, repr=False)
    headline: str | None = "ATE"

    @property
    def model(self) -> Any:
        """The fit behind the tables (the same object as :attr:`native`)."""
        return self.native

    @property
    def bayesian(self) -> bool:  # type: ignore[override]
        return self.method == "bayes"

    @property
    def title(self) -> str:  # type: ignore[override]
        tau = "" if self.tau is None else f", effect SD {self.tau:.4g}"
        return f"Group effects, {self.method.replace('_', ' ')} ({len(self.groups)} groups{tau})"

    @property
    def notes(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(getattr(self.native, "notes", ()) or ())

    @property
    def diagnostics(self) -> Any:  # type: ignore[override]
        return getattr(self.native, "diagnostics", None)

    def _summary_table(self) -> pd.DataFrame:
        return self.population.drop(columns=["estimator"])

    def _tidy(self, prob: float) -> pd.DataFrame:
        table = pd.concat([self.population.assign(group=None), self.groups], ignore_index=True)
        table = tidy(table, group=True)
        if prob == self.prob:
            return table
        if self.method == "bayes":
            import arviz as az

            draws = [self.population_draws[t] for t in self.population["term"]]
            draws += [self.draws.isel(group=j).to_numpy() for j in range(len(self.groups))]
            bounds = np.array([az.hdi(d[..., None], hdi_prob=prob)[0] for d in draws])
            table["ci_low"], table["ci_high"] = bounds[:, 0], bounds[:, 1]
        else:
            quantile = stats.norm if self.df is None else stats.t(self.df)
            scale = quantile.ppf((1 + prob) / 2) / quantile.ppf((1 + self.prob) / 2)
            centre = (table["ci_low"] + table["ci_high"]) / 2
            half = (table["ci_high"] - table["ci_low"]) / 2 * scale
            table["ci_low"], table["ci_high"] = centre - half, centre + half
        table["interval"] = [
            interval_label(prob, label.split(" ", 1)[1]) for label in table["interval"]
        ]
        return table


@dataclass
class _Prepared:
    frame: pd.DataFrame  # y, t, g (codes), c0.., m0..
    labels: list[Any]  # group label of each code
    covariates: list[str]
    modifiers: list[str]
    modifier_values: np.ndarray  # J x k, each group's modifiers
    n: np.ndarray
    n_treated: np.ndarray
    treatment: str
    prob: float


def fit(
    data: pd.DataFrame,
    y: str,
    treatment: str,
    group: str,
    *,
    method: Method,
    covariates: Sequence[str] = (),
    modifiers: Sequence[str] = (),
    prob: float | None = None,
    engine: OLS | REML | Bayes | None = None,
) -> EffectsFit:
    """Estimate every group's treatment effect, the ATE and the effect in a new group.

    Parameters
    ----------
    data
        One row per unit. Not modified.
    y
        The outcome column (numeric).
    treatment
        The treatment column: binary, coded 0/1 (or True/False).
    group
        The grouping column (schools, sites, ...).
    method
        ``"no_pooling"``, ``"complete_pooling"`` or ``"partial_pooling"`` (see the
        module notes).
    covariates
        Columns adjusted for with common slopes (numeric or categorical). A covariate
        constant within groups is absorbed by the group intercepts of no and complete
        pooling.
    modifiers
        Numeric group-level columns (constant within each group) that shift the treatment
        effect: the effect of group :math:`j` is modelled as :math:`\\tau + \\gamma' w_j`
        (+ a group deviation under partial pooling and Bayes). They change nothing for no
        pooling, where every group already has its own effect.
    prob
        Interval probability of the tables; default 0.95 for the frequentist engines and
        0.94 for Bayes (:mod:`mlmci.config`). ``tidy(prob=...)`` gives any other.
    engine
        The backend (:mod:`mlmci.engines`). No and complete pooling:
        ``OLS(cov_type=...)`` with ``"nonrobust"`` (classical, the default) or a
        heteroskedasticity-robust ``"HC0"``-``"HC3"`` (for no pooling these need two
        treated and two control units in every group). Partial pooling:
        ``REML(allow_boundary=True)`` (the default: a boundary fit, a zero effect
        variance, is a legitimate answer here; ``allow_boundary=False`` raises
        :class:`~mlmci.errors.ConvergenceError` instead) or ``Bayes(sampler=...,
        gate=..., model_options=...)`` (the same model in bambi, estimator ``"bayes"``;
        ``model_options`` e.g. ``{"noncentered": False}``).

    Returns
    -------
    EffectsFit
        ``.groups`` (one row per group), ``.population`` (ATE and new group), ``.model``,
        ``.tau`` and, for Bayes, ``.draws``.

    Raises
    ------
    DataError
        A missing column, a missing value (named), a treatment that is not 0/1 or never
        varies, fewer than two groups, a group without treated or without control units
        (named; no pooling, partial pooling and Bayes), a modifier that varies within a
        group, or effects that a covariate makes unidentifiable.
    DataTypeError
        ``data`` is not a DataFrame, or the outcome, treatment or a modifier is not numeric.
    ConvergenceError
        The REML fit or the posterior failed its convergence checks.

    Examples
    --------
    >>> from mlmci.simulate import simulate_experiment
    >>> data, truth = simulate_experiment(n_groups=8, group_size=30, tau=0.5, seed=3)
    >>> res = fit(data, "y", "treated", "group", method="no_pooling")
    >>> res.groups.columns.tolist()[:8]
    ['estimator', 'term', 'group', 'estimate', 'std_error', 'ci_low', 'ci_high', 'interval']
    >>> res.groups["interval"].iloc[0], len(res.groups)
    ('95% CI', 8)
    >>> pp = fit(data, "y", "treated", "group", method="partial_pooling")
    >>> pp.population[["term", "interval"]].values.tolist()
    [['ATE', '95% CI'], ['new group', '95% PI (approx.)']]
    >>> pp.effect(prob=0.9)["interval"]
    '90% CI'
    """
    engine = resolve(method, engine, allowed=_ENGINES, defaults=_DEFAULT_ENGINES)
    if isinstance(engine, OLS) and engine.cov_type not in COV_TYPES:
        raise ArgumentError(f"cov_type must be one of {COV_TYPES}, got {engine.cov_type!r}.")
    bayesian = isinstance(engine, Bayes)
    prob = default_prob(bayesian=bayesian) if prob is None else prob
    interval_label(prob, "CI")  # validates prob
    label = "bayes" if bayesian else method
    prep = _prepare(data, y, treatment, group, covariates, modifiers, method=label, prob=prob)
    if method == "no_pooling":
        return _no_pooling(prep, cov_type=engine.cov_type)
    if method == "complete_pooling":
        return _complete_pooling(prep, cov_type=engine.cov_type)
    if not bayesian:
        return _partial_pooling(prep, allow_boundary=engine.allow_boundary)
    return _bayes(
        prep, sampler=engine.sampler, gate=engine.gate, model_options=engine.model_options
    )


def group_effects(
    data: pd.DataFrame,
    y: str,
    treatment: str,
    group: str,
    *,
    method: Method,
    covariates: Sequence[str] = (),
    modifiers: Sequence[str] = (),
    prob: float | None = None,
    engine: OLS | REML | Bayes | None = None,
) -> pd.DataFrame:
    """Per-group treatment effects in the tidy shape: ``fit(...).groups``.

    Takes the arguments of :func:`fit`; use :func:`fit` for the ATE, the new-group
    prediction and the underlying model.

    Examples
    --------
    >>> from mlmci.simulate import simulate_experiment
    >>> data, _ = simulate_experiment(n_groups=5, group_size=20, seed=2)
    >>> table = group_effects(data, "y", "treated", "group", method="complete_pooling")
    >>> bool(table["estimate"].nunique() == 1), table["group"].tolist()
    (True, [1, 2, 3, 4, 5])
    """
    return fit(
        data,
        y,
        treatment,
        group,
        method=method,
        covariates=covariates,
        modifiers=modifiers,
        prob=prob,
        engine=engine,
    ).groups


# --- input ------------------------------------------------------------------------------


def _names(value: str | Sequence[str], what: str) -> list[str]:
    names = as_list(value, what)
    bad = [v for v in names if not isinstance(v, str)]
    if bad:
        raise DataTypeError(f"{what} must be column names (strings); got {bad}.")
    return names


def _prepare(
    data: pd.DataFrame,
    y: str,
    treatment: str,
    group: str,
    covariates: Sequence[str],
    modifiers: Sequence[str],
    *,
    method: str,
    prob: float,
) -> _Prepared:
    data = require_dataframe(data)
    for name, value in (("y", y), ("treatment", treatment), ("group", group)):
        if not isinstance(value, str):
            raise DataTypeError(f"{name} must be a column name (a string), got {value!r}.")
    covariates = _names(covariates, "covariates")
    modifiers = _names(modifiers, "modifiers")
    roles = [y, treatment, group, *covariates, *modifiers]
    repeated = sorted({c for c in roles if roles.count(c) > 1})
    if repeated:
        raise ArgumentError(
            f"column(s) {repeated} are given more than one role (outcome, treatment, group, "
            "covariate, modifier); give each column one role (a modifier already enters the "
            "model as a main effect where one is needed)."
        )
    require_columns(data, roles)
    require_no_missing(data, roles)
    require_numeric(data, [y, *modifiers])
    t = _binary(data[treatment], treatment)
    require_groups(data, group)

    codes, uniques = pd.factorize(data[group], sort=True)
    labels = uniques.tolist()
    n_groups = len(labels)
    n = np.bincount(codes, minlength=n_groups)
    n_treated = np.bincount(codes, weights=t, minlength=n_groups).astype(np.int64)
    if method in _BOTH_ARMS:
        _require_both_arms(labels, n, n_treated, group=group, method=method)

    frame = pd.DataFrame({"y": data[y].to_numpy(dtype=float), "t": t, "g": codes})
    internal_cov = [f"c{k}" for k in range(len(covariates))]
    internal_mod = [f"m{k}" for k in range(len(modifiers))]
    for name, col in zip(internal_cov, covariates, strict=True):
        values = data[col].reset_index(drop=True)
        if isinstance(values.dtype, pd.CategoricalDtype):
            # An unused level would code an all-zero column, which a mixed model cannot fit.
            values = values.cat.remove_unused_categories()
        frame[name] = values
    for name, col in zip(internal_mod, modifiers, strict=True):
        frame[name] = data[col].to_numpy(dtype=float)
    modifier_values = np.zeros((n_groups, len(modifiers)))
    if modifiers:
        by_group = frame.groupby("g")
        varying = [
            col
            for col, name in zip(modifiers, internal_mod, strict=True)
            if (by_group[name].nunique() > 1).any()
        ]
        if varying:
            raise DataError(
                f"modifier column(s) {varying} vary within groups of {group!r}; a modifier "
                "must be a group-level column (one value per group). Use a group mean, or "
                "pass the column as a covariate instead."
            )
        modifier_values = by_group[internal_mod].first().to_numpy(dtype=float)
    return _Prepared(
        frame=frame,
        labels=labels,
        covariates=internal_cov,
        modifiers=internal_mod,
        modifier_values=modifier_values,
        n=n,
        n_treated=n_treated,
        treatment=treatment,
        prob=prob,
    )


def _binary(values: pd.Series, name: str) -> np.ndarray:
    """Return the treatment as a float 0/1 array, or raise naming the column."""
    if pd.api.types.is_bool_dtype(values.dtype):
        t = values.to_numpy(dtype=float)
    elif pd.api.types.is_numeric_dtype(values.dtype):
        t = values.to_numpy(dtype=float)
        other = pd.unique(values[~np.isin(t, (0.0, 1.0))])
        if len(other):
            shown = ", ".join(map(repr, other[:5].tolist())) + (" ..." if len(other) > 5 else "")
            raise DataError(
                f"column {name!r} must be a binary treatment coded 0/1 (or True/False), but it "
                f"holds {shown}. Recode it, e.g. (data[{name!r}] == level).astype(int); for a "
                "continuous exposure use mlmci.mixed.fit with a varying slope."
            )
    else:
        raise DataTypeError(
            f"column {name!r} has dtype {values.dtype}, but the treatment must be binary 0/1 "
            f"(or True/False). Recode it, e.g. (data[{name!r}] == 'treated').astype(int)."
        )
    if t.min() == t.max():
        raise DataError(
            f"column {name!r} is {int(t[0])} for every unit: with no "
            f"{'control' if t[0] else 'treated'} units there is no effect to estimate."
        )
    return t


def _require_both_arms(
    labels: list[Any], n: np.ndarray, n_treated: np.ndarray, *, group: str, method: str
) -> None:
    def listed(mask: np.ndarray) -> str:
        bad = [labels[j] for j in np.flatnonzero(mask)]
        return ", ".join(map(repr, bad[:10])) + (
            f" ... ({len(bad)} in all)" if len(bad) > 10 else ""
        )

    problems = []
    if (n_treated == 0).any():
        problems.append(f"no treated units in group(s) {listed(n_treated == 0)}")
    if (n_treated == n).any():
        problems.append(f"no control units in group(s) {listed(n_treated == n)}")
    if problems:
        raise DataError(
            f"method={method!r} estimates each group's effect from its own treated and control "
            f"units, but {group!r} has " + " and ".join(problems) + ". Drop those groups "
            f"(e.g. data[~data[{group!r}].isin([...])]) or use method='complete_pooling', "
            "which assumes one effect for all groups."
        )


# --- the OLS methods -------------------------------------------------------------------


def _covariate_design(prep: _Prepared) -> pd.DataFrame:
    if not prep.covariates:
        return pd.DataFrame(index=prep.frame.index)
    try:
        design = patsy.dmatrix(
            " + ".join(prep.covariates), prep.frame, return_type="dataframe", NA_action="raise"
        )
    except patsy.PatsyError as err:
        raise DataError(f"the covariates could not be coded: {str(err).splitlines()[0]}.") from None
    return design.drop(columns="Intercept")


def _ols(
    prep: _Prepared,
    design: pd.DataFrame,
    effect_columns: list[str],
    covariate_columns: list[str],
    cov_type: str,
    *,
    own_effects: bool,
):
    """OLS of y on the group intercepts, effect and covariate columns of ``design``.

    Identification is checked on within-group deviations (Frisch-Waugh-Lovell), which
    needs ranks of a few columns instead of the whole dummy design: the effects are
    identified when the treatment columns vary within groups and the covariates keep their
    within-group rank after the treatment columns are partialled out too. With
    ``own_effects`` (one effect per group) that second step is a within group-and-arm
    deviation.
    """
    codes = prep.frame["g"].to_numpy()
    covs = design[covariate_columns].to_numpy()
    # Deviations are judged against the raw columns' lengths: a column constant within
    # groups leaves rounding noise, not variation (mlmci.identification).
    covs_length = np.linalg.norm(covs, axis=0)
    covs_within = _within(covs, [codes])
    if own_effects:
        # Every group has both arms (checked), so the J effect columns are independent.
        rank_treat = len(effect_columns)
        covs_left = _within(covs, [codes, prep.frame["t"].to_numpy()])
    else:
        effect_block = design[effect_columns].to_numpy()
        treat = _within(effect_block, [codes])
        rank_treat = _rank(treat, np.linalg.norm(effect_block, axis=0))
        if rank_treat < len(effect_columns):
            raise DataError(
                "the treatment effect is not identified: the treatment (or its product with a "
                "modifier) does not vary within groups. Check that each modifier takes more "
                "than one value across groups."
            )
        covs_left = covs_within - treat @ np.linalg.lstsq(treat, covs_within, rcond=None)[0]
    rank_covs = _rank(covs_within, covs_length)
    if _rank(covs_left, covs_length) < rank_covs:
        raise DataError(
            "the treatment effects are not identified: a covariate is collinear with the "
            "treatment within groups. Remove that covariate."
        )
    rank = len(prep.labels) + rank_treat + rank_covs
    if len(design) <= rank:
        raise DataError(
            f"no residual degrees of freedom ({len(design)} units for {rank} coefficients): "
            "every group needs more units than its intercept and effect use up."
        )
    # The group dummies sum to one; saying so spares statsmodels a rank search for a constant.
    model = sm.OLS(prep.frame["y"].to_numpy(), design, hasconst=True)
    if cov_type == "nonrobust":
        return model.fit()
    return model.fit(cov_type=cov_type, use_t=True)


def _within(block: np.ndarray, keys: list[np.ndarray]) -> np.ndarray:
    """Deviations of the columns of ``block`` from their means within the cells of ``keys``."""
    if block.shape[1] == 0:
        return block
    means = pd.DataFrame(block).groupby(keys).transform("mean").to_numpy()
    return block - means


def _rank(block: np.ndarray, length: np.ndarray) -> int:
    """The number of columns of ``block`` independent of those before them."""
    return block.shape[1] - len(dependent_columns(block, scale=length))


def _t_rows(
    estimates: np.ndarray, variances: np.ndarray, df: float, prob: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    se = np.sqrt(variances)
    if not np.all(np.isfinite(se)):
        raise DataError(
            "some standard errors are not finite; check the data for extreme values, or use "
            "cov_type='nonrobust'."
        )
    half = stats.t.ppf((1 + prob) / 2, df) * se
    return se, estimates - half, estimates + half


def _group_table(
    prep: _Prepared,
    method: str,
    estimate: np.ndarray,
    std_error: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    label: str,
) -> pd.DataFrame:
    return tidy(
        pd.DataFrame(
            {
                "estimator": method,
                "term": prep.treatment,
                "group": pd.Series(prep.labels),
                "estimate": estimate,
                "std_error": std_error,
                "ci_low": low,
                "ci_high": high,
                "interval": label,
                "n": prep.n,
                "n_treated": prep.n_treated,
            }
        ),
        group=True,
    )


def _population_row(
    method: str, term: str, estimate: float, std_error: float, low: float, high: float, label: str
) -> dict[str, Any]:
    return {
        "estimator": method,
        "term": term,
        "estimate": float(estimate),
        "std_error": float(std_error),
        "ci_low": float(low),
        "ci_high": float(high),
        "interval": label,
    }


def _dummies(prep: _Prepared) -> np.ndarray:
    return np.eye(len(prep.labels))[prep.frame["g"].to_numpy()]


def _no_pooling(prep: _Prepared, *, cov_type: str) -> EffectsFit:
    if cov_type != "nonrobust":
        # A lone unit in an arm is fitted exactly (zero residual), so a robust variance
        # would credit that arm's mean with no noise at all.
        lone = (prep.n_treated < 2) | (prep.n - prep.n_treated < 2)
        if lone.any():
            shown = ", ".join(repr(prep.labels[j]) for j in np.flatnonzero(lone)[:10])
            raise DataError(
                f"cov_type={cov_type!r} needs at least two treated and two control units in "
                f"every group, to estimate each arm's own variance; group(s) {shown} have "
                "fewer. Use cov_type='nonrobust' (one pooled residual variance)."
            )
    dummies = _dummies(prep)
    t = prep.frame["t"].to_numpy()[:, None]
    intercepts = [f"g[{label}]" for label in prep.labels]
    effects = [f"t:g[{label}]" for label in prep.labels]
    covariates = _covariate_design(prep)
    design = pd.concat(
        [
            pd.DataFrame(dummies, columns=intercepts),
            pd.DataFrame(dummies * t, columns=effects),
            covariates,
        ],
        axis=1,
    )
    res = _ols(prep, design, effects, list(covariates.columns), cov_type, own_effects=True)
    beta = res.params[effects].to_numpy()
    cov = res.cov_params().loc[effects, effects].to_numpy()
    label = interval_label(prep.prob, "CI")
    se, low, high = _t_rows(beta, np.diag(cov), res.df_resid, prep.prob)
    groups = _group_table(prep, "no_pooling", beta, se, low, high, label)

    weights = np.full(len(beta), 1.0 / len(beta))
    ate = weights @ beta
    ate_se, ate_low, ate_high = _t_rows(
        np.array([ate]), np.array([weights @ cov @ weights]), res.df_resid, prep.prob
    )
    population = tidy(
        [_population_row("no_pooling", "ATE", ate, ate_se[0], ate_low[0], ate_high[0], label)]
    )
    return EffectsFit(
        "no_pooling", groups, population, res, tau=None, prob=prep.prob, df=float(res.df_resid)
    )


def _contrasts(prep: _Prepared, names: list[str], slope: str) -> np.ndarray:
    """Rows lambda_j: group j's effect as a combination of the fixed effects ``names``."""
    lam = np.zeros((len(prep.labels), len(names)))
    lam[:, names.index(slope)] = 1.0
    for k, m in enumerate(prep.modifiers):
        lam[:, names.index(f"{slope}:{m}")] = prep.modifier_values[:, k]
    return lam


def _complete_pooling(prep: _Prepared, *, cov_type: str) -> EffectsFit:
    dummies = _dummies(prep)
    t = prep.frame["t"].to_numpy()
    intercepts = [f"g[{label}]" for label in prep.labels]
    effects = ["t", *[f"t:{m}" for m in prep.modifiers]]
    effect_block = pd.DataFrame(
        {"t": t, **{f"t:{m}": t * prep.frame[m].to_numpy() for m in prep.modifiers}}
    )
    covariates = _covariate_design(prep)
    design = pd.concat(
        [pd.DataFrame(dummies, columns=intercepts), effect_block, covariates], axis=1
    )
    res = _ols(prep, design, effects, list(covariates.columns), cov_type, own_effects=False)
    names = list(design.columns)
    beta = res.params.to_numpy()
    cov = res.cov_params().to_numpy()
    lam = _contrasts(prep, names, "t")
    label = interval_label(prep.prob, "CI")
    est = lam @ beta
    se, low, high = _t_rows(est, np.einsum("jp,pq,jq->j", lam, cov, lam), res.df_resid, prep.prob)
    groups = _group_table(prep, "complete_pooling", est, se, low, high, label)

    mean = lam.mean(axis=0)
    ate = mean @ beta
    a_se, a_low, a_high = _t_rows(
        np.array([ate]), np.array([mean @ cov @ mean]), res.df_resid, prep.prob
    )
    population = tidy(
        [
            _population_row("complete_pooling", "ATE", ate, a_se[0], a_low[0], a_high[0], label),
            _population_row(
                "complete_pooling",
                "new group",
                ate,
                a_se[0],
                a_low[0],
                a_high[0],
                interval_label(prep.prob, "PI (tau = 0)"),
            ),
        ]
    )
    return EffectsFit(
        "complete_pooling",
        groups,
        population,
        res,
        tau=0.0,
        prob=prep.prob,
        df=float(res.df_resid),
    )


# --- partial pooling (REML) ---------------------------------------------------------------


def _partial_pooling(prep: _Prepared, *, allow_boundary: bool) -> EffectsFit:
    terms = ["t", *prep.modifiers, *[f"t:{m}" for m in prep.modifiers], *prep.covariates]
    res = mixed.fit(
        "y ~ " + " + ".join(terms) + " + (t | g)",
        prep.frame,
        allow_boundary=allow_boundary,
    )
    names = list(res.beta.index)
    beta = res.beta.to_numpy()
    lam = _contrasts(prep, names, "t")
    # The engine orders groups its own way (by their codes' text); contrasts follow it, and
    # the predictions come back indexed by code, in prep's order after the reindex.
    codes = res.ranef().index.to_numpy()
    predicted = res.predict_groups(lam[codes], "t").reindex(range(len(prep.labels)))
    estimate = predicted["estimate"].to_numpy()
    se = predicted["std_error"].to_numpy()
    gls_cov = res.vcov.to_numpy()
    z_crit = stats.norm.ppf((1 + prep.prob) / 2)
    groups = _group_table(
        prep,
        "partial_pooling",
        estimate,
        se,
        estimate - z_crit * se,
        estimate + z_crit * se,
        interval_label(prep.prob, "CI (approx.)"),
    )

    mean = lam.mean(axis=0)
    ate = mean @ beta
    ate_se = float(np.sqrt(mean @ gls_cov @ mean))
    tau2 = float(res.cov_re().loc["t", "t"])
    pred_se = float(np.sqrt(ate_se**2 + tau2))
    population = tidy(
        [
            _population_row(
                "partial_pooling",
                "ATE",
                ate,
                ate_se,
                ate - z_crit * ate_se,
                ate + z_crit * ate_se,
                interval_label(prep.prob, "CI"),
            ),
            _population_row(
                "partial_pooling",
                "new group",
                ate,
                pred_se,
                ate - z_crit * pred_se,
                ate + z_crit * pred_se,
                interval_label(prep.prob, "PI (approx.)"),
            ),
        ]
    )
    return EffectsFit(
        "partial_pooling", groups, population, res, tau=float(np.sqrt(tau2)), prob=prep.prob
    )


# --- Bayes --------------------------------------------------------------------------------


def _bayes(
    prep: _Prepared,
    *,
    sampler: SamplerSettings | Mapping[str, Any] | None,
    gate: bool | GateThresholds,
    model_options: Mapping[str, Any] | None,
) -> EffectsFit:
    import arviz as az
    import xarray as xr

    from mlmci import bayes

    frame = prep.frame.copy()
    frame["g"] = pd.Categorical(frame["g"])
    terms = ["t", *prep.modifiers, *[f"t:{m}" for m in prep.modifiers], *prep.covariates]
    formula = "y ~ " + " + ".join(terms) + " + (1 + t | g)"
    result = bayes.fit(formula, frame, sampler=sampler, gate=gate, **dict(model_options or {}))
    post = result.idata.posterior

    deviations = post["t|g"]
    (dim,) = [d for d in deviations.dims if d not in ("chain", "draw")]
    position = {str(code): code for code in range(len(prep.labels))}
    order = np.argsort([position[str(v)] for v in deviations[dim].values])
    deviations = deviations.isel({dim: order}).to_numpy()
    common = post["t"].to_numpy()
    shifts = [post[f"t:{m}"].to_numpy() for m in prep.modifiers]
    effect = common[..., None] + deviations
    for k, shift in enumerate(shifts):
        effect = effect + shift[..., None] * prep.modifier_values[:, k]

    label = interval_label(prep.prob, "HDI")
    hdi = az.hdi(effect, hdi_prob=prep.prob)
    groups = _group_table(
        prep,
        "bayes",
        effect.mean(axis=(0, 1)),
        effect.reshape(-1, effect.shape[-1]).std(axis=0, ddof=1),
        hdi[:, 0],
        hdi[:, 1],
        label,
    )

    mean_w = prep.modifier_values.mean(axis=0)
    ate = common + sum((shift * w for shift, w in zip(shifts, mean_w, strict=True)), 0.0)
    sigma = post["t|g_sigma"].to_numpy()
    rng = np.random.default_rng(result.settings.seed)
    new = ate + sigma * rng.standard_normal(sigma.shape)
    rows = []
    for term, draws, kind in (("ATE", ate, "HDI"), ("new group", new, "HDI (predictive)")):
        # A 3-d array is read as (chain, draw, value); 2-d would be (draw, value).
        low, high = az.hdi(draws[..., None], hdi_prob=prep.prob)[0]
        rows.append(
            _population_row(
                "bayes",
                term,
                draws.mean(),
                draws.std(ddof=1),
                low,
                high,
                interval_label(prep.prob, kind),
            )
        )
    draws = xr.DataArray(
        effect,
        dims=("chain", "draw", "group"),
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            "group": prep.labels,
        },
        name="effect",
    )
    return EffectsFit(
        "bayes",
        groups,
        tidy(rows),
        result,
        tau=float(sigma.mean()),
        draws=draws,
        prob=prep.prob,
        population_draws={"ATE": ate, "new group": new},
    )
