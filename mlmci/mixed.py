"""Linear mixed models by REML or ML, with a convergence gate.

:func:`fit` wraps statsmodels' :class:`~statsmodels.regression.mixed_linear_model.MixedLM`
(the Python analogue of ``lme4::lmer``) and returns a :class:`MixedResult`: the
fixed effects in mlmci's tidy result shape, the variance components (SDs,
correlations, residual SD) in a second tidy table, and the statsmodels results.

Why a gate
----------
statsmodels' optimizers can stop short or fail silently: on the Minnesota radon
data, ``method="lbfgs"`` reports convergence for the varying-intercept model at a
degenerate point (a zero county variance and an infinite log-likelihood), and
Powell reports convergence on the varying-slope model with a log-likelihood
0.01 below the optimum. :func:`fit` therefore tries several optimizers, judges
each fit by its own checks, keeps the best, and polishes it:

1. Each optimizer in ``methods`` starts from the same point. A fit is *valid*
   when its log-likelihood, fixed effects and covariances are finite, the
   Newton decrement ``g' H^{-1} g / 2`` (the log-likelihood a further Newton
   step would gain, computed from the analytic gradient ``g`` and a numerical
   Hessian ``H`` of the profiled log-likelihood) is below ``1e-5``, and ``-H`` is
   positive definite (a local maximum).
2. The search stops early once two valid fits agree on the log-likelihood to
   ``1e-5``; otherwise every optimizer is tried. The valid fit with the highest
   log-likelihood wins, and BFGS restarted from it with a tight gradient
   tolerance polishes the estimates to more digits than any single default run.
3. A fit is *on the boundary* (singular) when a diagonal element of the
   Cholesky factor of the random-effects covariance relative to the residual
   variance (lme4's ``theta``) is below ``1e-4`` — lme4's ``isSingular`` rule: a
   variance is zero or a correlation is ±1. Such a fit is refused unless
   ``allow_boundary=True``.

If no fit passes, BFGS is restarted once from the best finite fit with the
tight tolerance (on flat likelihoods every optimizer can stop just short of
the optimum); if that fit does not pass either,
:class:`mlmci.errors.ConvergenceError` is raised with the per-optimizer
diagnostics attached.

Singleton groups
----------------
A group with one observation is allowed in a varying-intercept model (lme4
allows it too; the Minnesota radon data have such counties): its estimate is
mostly shrinkage toward the mean. If *every* group has one observation the group
and residual variances cannot be told apart, and :func:`fit` raises
:class:`~mlmci.errors.DataError`. With a varying slope, a group with one
observation carries no information on its own slope; :func:`fit` warns
(``UserWarning``) and fits anyway, as lme4 does.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy
import statsmodels.formula.api as smf
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMResultsWrapper
from statsmodels.tools.numdiff import approx_fprime

from mlmci.errors import ConvergenceError, DataError, DataTypeError
from mlmci.results import interval_label, tidy
from mlmci.validation import (
    require_columns,
    require_dataframe,
    require_groups,
    require_no_missing,
    require_numeric,
)

__all__ = ["DEFAULT_METHODS", "MixedResult", "fit"]

#: Optimizers tried in turn (names as statsmodels' ``MixedLM.fit(method=...)`` takes them).
DEFAULT_METHODS: tuple[str, ...] = ("bfgs", "lbfgs", "cg", "powell", "nm")

_DECREMENT_TOL = 1e-5  # log-likelihood units a Newton step may still gain
_AGREE_TOL = 1e-5  # log-likelihood units within which two optimizers agree
_THETA_TOL = 1e-4  # lme4's isSingular tolerance on the relative Cholesky factor
_POLISH = {"method": "bfgs", "gtol": 1e-8}
_Z95 = 1.959963984540054


@dataclass(repr=False)
class MixedResult:
    """A mixed model fitted by :func:`fit`.

    Attributes
    ----------
    result : statsmodels.regression.mixed_linear_model.MixedLMResultsWrapper
        The winning statsmodels fit, for everything mlmci does not summarize.
    fixed : pandas.DataFrame
        Fixed effects in the tidy shape ``estimator, term, estimate, std_error,
        ci_low, ci_high, interval``; ``estimator`` is ``"reml"`` or ``"ml"``.
        Standard errors are conditional on the estimated variance components
        (the GLS covariance, as lme4's ``vcov()``); intervals are Wald 95% intervals.
    variance_components : pandas.DataFrame
        One row per parameter of the random part, columns ``component, group,
        term, estimate``: ``component`` is ``"sd"`` (a standard deviation) or
        ``"corr"`` (a correlation); ``group`` is the grouping column or
        ``"Residual"``; ``term`` names the varying coefficient (``"Intercept"``,
        a slope's column name, ``"Intercept, Days"`` for a correlation, or
        ``"Residual"``).
    diagnostics : pandas.DataFrame
        One row per optimizer run: ``method, converged`` (statsmodels' own flag),
        ``llf, newton_decrement, min_eigenvalue`` (of minus the Hessian),
        ``boundary, valid, chosen, messages``.
    method : str
        The optimizer whose fit was kept.
    boundary : bool
        Whether the fit is singular (possible only with ``allow_boundary=True``).
    formula, group, re_formula, reml
        The model as specified.
    """

    result: MixedLMResultsWrapper
    fixed: pd.DataFrame
    variance_components: pd.DataFrame
    diagnostics: pd.DataFrame
    method: str
    boundary: bool
    formula: str
    group: str
    re_formula: str | None
    reml: bool
    _re_names: list[str] = field(repr=False, default_factory=list)

    def __repr__(self) -> str:
        re_part = "" if self.re_formula is None else f", re_formula={self.re_formula!r}"
        return (
            f"MixedResult({self.formula!r}, group={self.group!r}{re_part}, "
            f"{'REML' if self.reml else 'ML'}, llf={self.llf:.4f}, method={self.method!r}"
            f"{', boundary' if self.boundary else ''})"
        )

    @property
    def llf(self) -> float:
        """The maximized (restricted, if REML) log-likelihood."""
        return float(self.result.llf)

    @property
    def sigma(self) -> float:
        """The residual standard deviation."""
        return float(np.sqrt(self.result.scale))

    @property
    def icc(self) -> float:
        """Intra-class correlation ``sd_group^2 / (sd_group^2 + sigma^2)``.

        Defined only for a varying-intercept model (no varying slopes), where it
        is the correlation of two observations of the same group.
        """
        if self._re_names != ["Intercept"]:
            raise ValueError(
                "the intra-class correlation is defined for a varying-intercept model only; "
                f"this model's random effects are {self._re_names}."
            )
        tau2 = float(self.result.cov_re.iloc[0, 0])
        return tau2 / (tau2 + float(self.result.scale))

    def group_coefficients(self) -> pd.DataFrame:
        """Each group's coefficients: fixed effect plus the group's predicted deviation.

        The deviations are the best linear unbiased predictions (BLUPs, the
        conditional means of the random effects given the data). This is what
        ``coef()`` returns for an lme4 fit: one row per group (the index), one
        column per fixed-effect term; terms without a random part are constant.
        """
        fe = self.result.fe_params
        blups = pd.DataFrame(self.result.random_effects).T
        blups.columns = self._re_names
        out = pd.DataFrame({term: float(value) for term, value in fe.items()}, index=blups.index)
        for term in self._re_names:
            base = out[term] if term in out.columns else 0.0
            out[term] = base + blups[term]
        out.index.name = self.group
        return out


@dataclass
class _Attempt:
    method: str
    result: MixedLMResultsWrapper | None
    converged: bool = False
    llf: float = float("nan")
    decrement: float = float("nan")
    min_eigenvalue: float = float("nan")
    boundary: bool = False
    valid: bool = False
    messages: list[str] = field(default_factory=list)


def fit(
    formula: str,
    data: pd.DataFrame,
    *,
    group: str,
    re_formula: str | None = None,
    reml: bool = True,
    methods: Sequence[str] = DEFAULT_METHODS,
    allow_boundary: bool = False,
) -> MixedResult:
    """Fit a linear mixed model and prove the optimizer reached the optimum.

    Parameters
    ----------
    formula
        The fixed part, patsy style: ``"Reaction ~ Days"``. Quote awkward
        column names with ``Q("log.radon")``. lme4's ``(Days | Subject)`` is not
        accepted: give the random part with ``group`` and ``re_formula``.
    data
        One row per observation. Not modified.
    group
        The grouping column (lme4's right-hand side of ``|``).
    re_formula
        The varying coefficients, e.g. ``"~Days"`` for a varying intercept and a
        varying slope of ``Days`` with their correlation (lme4's
        ``(Days | Subject)``). ``None`` (default) gives a varying intercept only.
    reml
        Restricted maximum likelihood (default, as lme4) or maximum likelihood.
    methods
        statsmodels optimizers to try, in order (see the module notes).
    allow_boundary
        Accept a singular fit (a variance estimated as zero or a correlation
        as ±1). By default such a fit raises, because it usually means the
        random part is richer than the data support.

    Returns
    -------
    MixedResult
        Fixed effects (``.fixed``), variance components
        (``.variance_components``), optimizer diagnostics (``.diagnostics``)
        and the statsmodels results (``.result``).

    Raises
    ------
    DataError
        A missing column, a missing value in a used column, a formula that does
        not parse, a single group, or only one observation per group.
    DataTypeError
        ``data`` is not a DataFrame or the response is not numeric.
    ConvergenceError
        No optimizer reached a verified optimum, or the optimum is singular and
        ``allow_boundary`` is False. ``.diagnostics`` holds the per-optimizer table.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(20), 10)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=20)[g] + rng.normal(size=200)})
    >>> res = fit("y ~ 1", df, group="g")
    >>> res.fixed[["estimator", "term"]].values.tolist()
    [['reml', 'Intercept']]
    >>> res.variance_components[["component", "group", "term"]].values.tolist()
    [['sd', 'g', 'Intercept'], ['sd', 'Residual', 'Residual']]
    """
    data = require_dataframe(data)
    if not isinstance(formula, str):
        raise DataTypeError(f"formula must be a string like 'y ~ x', got {type(formula).__name__}.")
    if not isinstance(group, str):
        raise DataTypeError(f"group must be a column name (a string), got {group!r}.")
    require_columns(data, [group])
    response, fixed_vars = _formula_variables(formula, data, what="formula", two_sided=True)
    re_vars: list[str] = []
    if re_formula is not None:
        _, re_vars = _formula_variables(re_formula, data, what="re_formula", two_sided=False)
    used = list(dict.fromkeys([*response, *fixed_vars, *re_vars, group]))
    require_no_missing(data, used)
    require_numeric(data, response)
    require_groups(data, group)
    sizes = data[group].value_counts()
    if (sizes == 1).all():
        raise DataError(
            f"every group of {group!r} has a single observation, so the group variance and the "
            "residual variance cannot be told apart. Group the data more coarsely, or fit an "
            "ordinary regression."
        )

    model = _build_model(formula, data, group=group, re_formula=re_formula)
    re_names = [("Intercept" if n == group else n) for n in model.data.exog_re_names]
    if re_names != ["Intercept"]:
        singles = sizes.index[sizes == 1].tolist()
        if singles:
            shown = ", ".join(map(str, singles[:10])) + (" ..." if len(singles) > 10 else "")
            warnings.warn(
                f"{len(singles)} group(s) of {group!r} have a single observation ({shown}): they "
                f"carry no information on their own varying slope(s) "
                f"{[n for n in re_names if n != 'Intercept']}, whose "
                "predictions for them are pure shrinkage toward the mean slope. Drop those "
                "groups, or use a varying-intercept model, if that is not intended.",
                UserWarning,
                stacklevel=2,
            )

    attempts = _search(model, reml=reml, methods=methods)
    if not any(a.valid for a in attempts):
        attempts.append(_rescue(model, attempts, reml=reml))
    chosen = _choose(attempts, allow_boundary=allow_boundary, formula=formula, group=group)
    if not chosen.boundary:
        polished = _tight_restart(model, chosen, reml=reml, label="polish")
        attempts.append(polished)
        improved = polished.llf >= chosen.llf - 1e-9
        if polished.valid and polished.converged and not polished.boundary and improved:
            chosen = polished

    return MixedResult(
        result=chosen.result,
        fixed=_fixed_table(chosen.result, reml=reml),
        variance_components=_variance_table(chosen.result, group=group, re_names=re_names),
        diagnostics=_diagnostics_table(attempts, chosen),
        method=chosen.method,
        boundary=chosen.boundary,
        formula=formula,
        group=group,
        re_formula=re_formula,
        reml=reml,
        _re_names=re_names,
    )


def _formula_variables(
    formula: str, data: pd.DataFrame, *, what: str, two_sided: bool
) -> tuple[list[str], list[str]]:
    """Return the data columns a formula uses (left side, right side); raise on bad formulas."""
    if "|" in formula:
        raise DataError(
            f"{what} {formula!r} contains '|': lme4's random-effects syntax is not part of the "
            "formula here. Write the fixed part in `formula` and the varying coefficients with "
            "`group=` and `re_formula=`, e.g. lme4's 'Reaction ~ Days + (Days | Subject)' is "
            "fit('Reaction ~ Days', data, group='Subject', re_formula='~Days')."
        )
    try:
        desc = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as err:
        raise DataError(
            f"{what} {formula!r} does not parse: {str(err).splitlines()[0]}. "
            "Write it like 'y ~ x1 + x2' (quote awkward column names with Q(\"name\"))."
        ) from None
    if two_sided and not desc.lhs_termlist:
        raise DataError(f"{what} {formula!r} has no response: write it like 'y ~ x'.")

    def columns(terms) -> list[str]:
        found: list[str] = []
        for term in terms:
            for factor in term.factors:
                found.extend(_names_in_code(factor.code))
        missing = [name for name in dict.fromkeys(found) if name not in data.columns]
        if missing:
            require_columns(data, missing)
        return list(dict.fromkeys(found))

    return columns(desc.lhs_termlist), columns(desc.rhs_termlist)


def _names_in_code(code: str) -> list[str]:
    """Variable names a patsy factor reads from the data (not function or module names)."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        raise DataError(f"the formula term {code!r} is not a valid expression.") from None
    skip: set[int] = set()
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            skip.add(id(node.func))
            if isinstance(node.func, ast.Name) and node.func.id == "Q":
                names.extend(
                    a.value
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)
                )
        elif isinstance(node, ast.Attribute):
            skip.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in skip:
            names.append(node.id)
    return names


def _build_model(formula: str, data: pd.DataFrame, *, group: str, re_formula: str | None):
    try:
        return smf.mixedlm(formula, data.copy(), groups=group, re_formula=re_formula)
    except (patsy.PatsyError, ValueError, KeyError, NameError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"statsmodels could not build the mixed model from formula {formula!r}"
            f"{'' if re_formula is None else f' and re_formula {re_formula!r}'}: {first}."
        ) from err


def _search(model: MixedLM, *, reml: bool, methods: Sequence[str]) -> list[_Attempt]:
    if isinstance(methods, str) or not methods:
        raise ValueError(
            f"methods must be a non-empty sequence of optimizer names, got {methods!r}"
        )
    attempts: list[_Attempt] = []
    for method in methods:
        attempts.append(_attempt(model, method, reml=reml))
        valid = sorted((a.llf for a in attempts if a.valid), reverse=True)
        if len(valid) >= 2 and valid[0] - valid[1] <= _AGREE_TOL:
            break
    return attempts


def _rescue(model: MixedLM, attempts: list[_Attempt], *, reml: bool) -> _Attempt:
    """Restart from the best finite attempt with a tight tolerance.

    On flat likelihoods (no true heterogeneity, say) every optimizer can stop a
    hair short of the optimum (Newton decrement just above the tolerance); a
    tight restart from the best of them then reaches a point that passes the
    checks, which still decide.
    """
    finite = [a for a in attempts if a.result is not None and np.isfinite(a.llf)]
    if not finite:
        return _Attempt(method=f"{_POLISH['method']} (restart)", result=None)
    best = max(finite, key=lambda a: a.llf)
    return _tight_restart(model, best, reml=reml, label=f"restart from {best.method}")


def _tight_restart(model: MixedLM, start: _Attempt, *, reml: bool, label: str) -> _Attempt:
    """BFGS from ``start``'s estimates with a tight gradient tolerance."""
    return _attempt(
        model,
        _POLISH["method"],
        reml=reml,
        start=start.result.params_object.get_packed(use_sqrt=True, has_fe=False),
        options={"gtol": _POLISH["gtol"]},
        label=f"{_POLISH['method']} ({label})",
    )


def _attempt(
    model: MixedLM,
    method: str,
    *,
    reml: bool,
    start: np.ndarray | None = None,
    options: dict | None = None,
    label: str | None = None,
) -> _Attempt:
    """Run one optimizer and judge the fit with checks of our own."""
    out = _Attempt(method=label or method, result=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = model.fit(reml=reml, method=[method], start_params=start, **(options or {}))
        except (np.linalg.LinAlgError, ValueError, FloatingPointError, ZeroDivisionError) as err:
            out.messages.append(f"{type(err).__name__}: {err}")
            return out
        out.result = res
        out.converged = bool(res.converged)
        out.llf = float(res.llf)
        finite = (
            np.isfinite(out.llf)
            and np.all(np.isfinite(res.fe_params))
            and np.all(np.isfinite(np.asarray(res.cov_re)))
            and np.isfinite(res.scale)
            and res.scale > 0
        )
        if finite:
            out.boundary = _is_singular(np.asarray(res.cov_re) / res.scale)
            out.decrement, out.min_eigenvalue, max_eigenvalue = _newton_check(model, res)
    out.messages.extend(dict.fromkeys(str(w.message).splitlines()[0] for w in caught if w.message))
    if not finite:
        out.messages.append("non-finite log-likelihood or estimates")
        return out
    # At a singular optimum the curvature along the vanishing direction may be ~0.
    floor = -1e-6 * max(1.0, max_eigenvalue) if out.boundary else 0.0
    curvature_ok = out.min_eigenvalue > floor
    out.valid = bool(out.decrement < _DECREMENT_TOL and curvature_ok)
    return out


def _newton_check(model: MixedLM, res) -> tuple[float, float, float]:
    """Newton decrement and extreme eigenvalues of minus the Hessian (statsmodels' parameters)."""
    packed = res.params_object.get_packed(use_sqrt=True, has_fe=False)
    try:
        grad = np.asarray(model.score(packed), dtype=float)
        jac = approx_fprime(packed, model.score, centered=True)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        return float("inf"), float("nan"), float("nan")
    neg_hess = -(jac + jac.T) / 2
    if not (np.all(np.isfinite(grad)) and np.all(np.isfinite(neg_hess))):
        return float("inf"), float("nan"), float("nan")
    eig = np.linalg.eigvalsh(neg_hess)
    decrement = float(grad @ np.linalg.pinv(neg_hess) @ grad) / 2
    return abs(decrement), float(eig.min()), float(eig.max())


def _is_singular(relative_cov: np.ndarray) -> bool:
    """lme4's isSingular rule: a diagonal element of the relative Cholesky factor below 1e-4."""
    k = relative_cov.shape[0]
    for j in range(k):
        head = relative_cov[:j, :j]
        cross = relative_cov[:j, j]
        schur = relative_cov[j, j] - (cross @ np.linalg.pinv(head) @ cross if j else 0.0)
        if np.sqrt(max(schur, 0.0)) < _THETA_TOL:
            return True
    return False


def _choose(
    attempts: list[_Attempt], *, allow_boundary: bool, formula: str, group: str
) -> _Attempt:
    valid = [a for a in attempts if a.valid]
    if not valid:
        raise ConvergenceError(
            f"no optimizer reached a verified optimum for {formula!r} grouped by {group!r} "
            f"(tried {', '.join(a.method for a in attempts)}). A fit counts as converged when "
            "a Newton step would gain less than 1e-5 in log-likelihood and the Hessian is "
            "negative definite. Try rescaling the covariates, simplifying the random part, or "
            "more optimizers via `methods=`; see the error's .diagnostics.",
            diagnostics=_diagnostics_table(attempts, None),
        )
    best = max(valid, key=lambda a: a.llf)
    # Near a boundary optimum the likelihood is flat, so a fit a hair inside the boundary can
    # tie with a singular one; the optimum is singular if any tying fit is.
    ties = [a for a in valid if a.llf >= best.llf - _AGREE_TOL]
    singular = [a for a in ties if a.boundary]
    if singular:
        best = max(singular, key=lambda a: a.llf)
    if best.boundary and not allow_boundary:
        raise ConvergenceError(
            f"the optimum for {formula!r} grouped by {group!r} lies on the boundary of the "
            "parameter space (singular fit): a random-effect variance is estimated as zero or a "
            f"correlation as ±1 (covariance of the random effects:\n{best.result.cov_re}\n). The "
            "data do not support this random part: simplify it (e.g. drop a varying slope), or "
            "pass allow_boundary=True to accept the singular fit.",
            diagnostics=_diagnostics_table(attempts, None),
        )
    return best


def _fixed_table(res, *, reml: bool) -> pd.DataFrame:
    # Standard errors conditional on the variance components (the GLS covariance, as lme4's
    # vcov()): the fixed-effects block of the Hessian. statsmodels' bse_fe inverts the full
    # Hessian, which is singular at a boundary fit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hess, _ = res.model.hessian(res.params_object)
    k = len(res.fe_params)
    ses = np.sqrt(np.diag(np.linalg.inv(-hess[:k, :k])))
    label = interval_label(0.95, "CI")
    rows = []
    for (term, est), se in zip(res.fe_params.items(), ses, strict=True):
        se = float(se)
        rows.append(
            {
                "estimator": "reml" if reml else "ml",
                "term": str(term),
                "estimate": float(est),
                "std_error": se,
                "ci_low": float(est) - _Z95 * se,
                "ci_high": float(est) + _Z95 * se,
                "interval": label,
            }
        )
    return tidy(rows)


def _variance_table(res, *, group: str, re_names: list[str]) -> pd.DataFrame:
    cov = np.asarray(res.cov_re, dtype=float)
    sds = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    rows = [
        {"component": "sd", "group": group, "term": name, "estimate": float(sd)}
        for name, sd in zip(re_names, sds, strict=True)
    ]
    for i in range(len(re_names)):
        for j in range(i + 1, len(re_names)):
            denom = sds[i] * sds[j]
            corr = cov[i, j] / denom if denom > 0 else float("nan")
            rows.append(
                {
                    "component": "corr",
                    "group": group,
                    "term": f"{re_names[i]}, {re_names[j]}",
                    "estimate": float(corr),
                }
            )
    rows.append(
        {
            "component": "sd",
            "group": "Residual",
            "term": "Residual",
            "estimate": float(np.sqrt(res.scale)),
        }
    )
    return pd.DataFrame(rows, columns=["component", "group", "term", "estimate"])


def _diagnostics_table(attempts: list[_Attempt], chosen: _Attempt | None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": a.method,
                "converged": a.converged,
                "llf": a.llf,
                "newton_decrement": a.decrement,
                "min_eigenvalue": a.min_eigenvalue,
                "boundary": a.boundary,
                "valid": a.valid,
                "chosen": a is chosen,
                "messages": "; ".join(a.messages),
            }
            for a in attempts
        ]
    )
