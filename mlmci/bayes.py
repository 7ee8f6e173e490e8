"""Bayesian fits with bambi, the book-wide sampler settings and the convergence gate.

Every Bayesian number in the book goes through :func:`fit`, which builds a
:class:`bambi.Model`, samples it with :data:`SETTINGS` (4 seeded chains) and
refuses to return a posterior that fails :func:`check_convergence`.

Examples
--------
>>> from mlmci import bayes
>>> bayes.SETTINGS.chains, bayes.SETTINGS.backend
(4, 'pymc')
>>> quick = bayes.SETTINGS.replace(draws=200, tune=200)
>>> quick.draws
200
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import arviz as az
import numpy as np
import pandas as pd

from mlmci import runmode
from mlmci.config import HDI_PROB
from mlmci.errors import ArgumentError, ConvergenceError, DataError, DataTypeError
from mlmci.formula import parse_formula
from mlmci.results import Fit, interval_label, tidy
from mlmci.validation import as_list, require_columns, require_dataframe, require_no_missing

Backend = Literal["pymc", "nutpie"]

# Re-exported: the names callers and tests know mlmci.bayes by.
PROGRESS_ENV = runmode.PROGRESS_ENV
QUICK_ENV = runmode.QUICK_ENV
QUICK_DRAWS = runmode.QUICK_DRAWS


@dataclass(frozen=True)
class SamplerSettings:
    """How every posterior in the book is sampled.

    Attributes
    ----------
    chains, draws, tune
        Number of chains, kept draws per chain and tuning steps per chain.
    seed
        Seed of the sampler; the same seed gives the same draws.
    backend
        ``"pymc"`` (PyMC's NUTS) or ``"nutpie"`` (faster per effective draw once
        compiled, slower on its first, compiling run).
    target_accept
        NUTS target acceptance rate; higher means smaller steps and fewer divergences.
    cores
        Parallel chains (at most the machine's cores).
    progressbar
        Show the sampler's progress bar. ``None`` reads ``MLMCI_PROGRESS`` (on unless
        it is ``0``), so a long local run shows progress while the book stays clean.
    """

    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    seed: int = 20261125
    backend: Backend = "pymc"
    target_accept: float = 0.9
    cores: int = dataclasses.field(default_factory=lambda: min(4, os.cpu_count() or 1))
    progressbar: bool | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("pymc", "nutpie"):
            raise ArgumentError(f"backend must be 'pymc' or 'nutpie', got {self.backend!r}.")
        for name in ("chains", "draws", "cores"):
            if int(getattr(self, name)) < 1:
                raise ArgumentError(f"{name} must be at least 1, got {getattr(self, name)!r}.")
        if self.tune < 0:
            raise ArgumentError(f"tune must be non-negative, got {self.tune!r}.")
        if not 0 < self.target_accept < 1:
            raise ArgumentError(f"target_accept must lie in (0, 1), got {self.target_accept!r}.")

    def replace(self, **changes: Any) -> SamplerSettings:
        """Return a copy with some settings changed, e.g. ``SETTINGS.replace(draws=2000)``."""
        return dataclasses.replace(self, **changes)

    @property
    def show_progress(self) -> bool:
        """Whether progress is shown, after resolving ``progressbar=None``."""
        return runmode.progress() if self.progressbar is None else bool(self.progressbar)


#: The book-wide settings. Chapters change them per model with ``SETTINGS.replace``.
SETTINGS = SamplerSettings()


@dataclass(frozen=True)
class GateThresholds:
    """What a posterior must meet to pass :func:`check_convergence`."""

    rhat_max: float = 1.01
    ess_min: float = 400.0
    max_divergences: int = 0


@dataclass(repr=False)
class BayesFit(Fit):
    """A fitted bambi model and its posterior (mlmci's result protocol).

    ``tidy(prob=0.94, var_names=None)`` gives posterior means, SDs and HDIs
    (:func:`summarize`); ``summary()`` is a short text version.

    Attributes
    ----------
    model : bambi.Model
        The model, e.g. for ``bambi.interpret`` or posterior predictions.
    idata : arviz.InferenceData
        The posterior draws and sampler statistics.
    settings : SamplerSettings
        The settings the posterior was sampled with.
    diagnostics : pandas.DataFrame
        R-hat, bulk and tail ESS per parameter (from :func:`check_convergence`).
    gated : bool
        Whether the posterior passed the convergence gate. An ungated posterior
        (``gate=False``, or quick mode, whose draws are mocked) says so in
        ``notes``, and the book build refuses to render it.
    """

    model: Any
    idata: az.InferenceData
    settings: SamplerSettings
    diagnostics: pd.DataFrame
    gated: bool = True
    formula: str = ""
    bayesian: bool = True

    @property
    def native(self) -> dict[str, Any]:  # type: ignore[override]
        """The bambi model and the arviz InferenceData."""
        return {"model": self.model, "idata": self.idata}

    @property
    def title(self) -> str:  # type: ignore[override]
        s = self.settings
        return f"Bayesian model (bambi, {s.backend}, {s.chains} x {s.draws} draws): {self.formula}"

    @property
    def notes(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.gated:
            return ()
        if runmode.quick():
            return (
                "quick mode: mocked draws from the prior, not a posterior; never for the book.",
            )
        return ("ungated: this posterior did not go through the convergence gate.",)

    def tidy(
        self, prob: float | None = None, *, var_names: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Posterior means, SDs and HDIs in the tidy shape; see :func:`summarize`."""
        _refuse_ungated_in_book(self.gated)
        return summarize(self.idata, prob=HDI_PROB if prob is None else prob, var_names=var_names)

    def _summary_table(self) -> pd.DataFrame:
        # Group-level rows would fill a page; the summary shows the common parameters.
        table = self.tidy()
        return table[table["group"].isna()].drop(columns=["group"])


def _refuse_ungated_in_book(gated: bool) -> None:
    if not gated and runmode.book():
        raise ConvergenceError(
            "the book never shows an ungated posterior (gate=False or quick mode); sample "
            "with the gate on, or show the failing diagnostics instead."
        )


def _divergences(idata: az.InferenceData) -> int:
    stats = getattr(idata, "sample_stats", None)
    if stats is None or "diverging" not in stats:
        return 0
    return int(np.asarray(stats["diverging"]).sum())


def _select(idata: az.InferenceData, var_names: Sequence[str] | None) -> list[str]:
    if not hasattr(idata, "posterior"):
        raise DataError("the InferenceData has no `posterior` group; nothing to check.")
    available = list(idata.posterior.data_vars)
    if var_names is None:
        return available
    var_names = as_list(var_names, "var_names")
    missing = [v for v in var_names if v not in available]
    if missing:
        raise DataError(f"variables {missing} are not in the posterior; it has {available}.")
    return list(var_names)


def diagnose(idata: az.InferenceData, *, var_names: Sequence[str] | None = None) -> pd.DataFrame:
    """R-hat, bulk ESS and tail ESS of every parameter (one row per scalar element).

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> idata = az.from_dict(posterior={"mu": np.random.default_rng(0).normal(size=(4, 500))})
    >>> diagnose(idata).columns.tolist()
    ['r_hat', 'ess_bulk', 'ess_tail']
    """
    names = _select(idata, var_names)
    table = az.summary(idata, var_names=names, kind="diagnostics", round_to="none")
    return table[["r_hat", "ess_bulk", "ess_tail"]].rename_axis("parameter")


def check_convergence(
    idata: az.InferenceData,
    *,
    var_names: Sequence[str] | None = None,
    rhat_max: float = GateThresholds.rhat_max,
    ess_min: float = GateThresholds.ess_min,
    max_divergences: int = GateThresholds.max_divergences,
) -> pd.DataFrame:
    """The convergence gate: raise unless every parameter converged.

    A posterior passes when every parameter has R-hat ≤ ``rhat_max`` and bulk and
    tail effective sample sizes ≥ ``ess_min``, and the sampler reported at most
    ``max_divergences`` divergent transitions.

    Parameters
    ----------
    idata
        The InferenceData to check (a ``posterior`` group, ideally ``sample_stats``).
    var_names
        Parameters to check; all posterior variables by default.
    rhat_max, ess_min, max_divergences
        The thresholds (Vehtari et al. 2021 recommend R-hat ≤ 1.01 and ESS ≥ 400
        for four chains).

    Returns
    -------
    pandas.DataFrame
        The diagnostics (``r_hat``, ``ess_bulk``, ``ess_tail``) of every parameter.

    Raises
    ------
    ConvergenceError
        Listing every failing parameter with its R-hat and ESS, and the number of
        divergences; ``error.diagnostics`` holds the failing rows.

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> good = az.from_dict(posterior={"mu": rng.normal(size=(4, 1000))})
    >>> bool(check_convergence(good).loc["mu", "r_hat"] < 1.01)
    True
    >>> stuck = az.from_dict(posterior={"mu": rng.normal(size=(4, 1000)) + np.arange(4)[:, None]})
    >>> check_convergence(stuck)
    Traceback (most recent call last):
    ...
    mlmci.errors.ConvergenceError: the posterior failed the convergence gate ...
    """
    diagnostics = diagnose(idata, var_names=var_names)
    failing = diagnostics[
        (diagnostics["r_hat"] > rhat_max)
        | (diagnostics["ess_bulk"] < ess_min)
        | (diagnostics["ess_tail"] < ess_min)
        | diagnostics.isna().any(axis=1)
    ]
    divergences = _divergences(idata)
    if len(failing) or divergences > max_divergences:
        lines = [
            f"  {name}: R-hat {row.r_hat:.3f}, bulk ESS {row.ess_bulk:.0f}, "
            f"tail ESS {row.ess_tail:.0f}"
            for name, row in failing.iterrows()
        ]
        shown = lines[:25] + ([f"  ... and {len(lines) - 25} more"] if len(lines) > 25 else [])
        message = (
            "the posterior failed the convergence gate "
            f"(R-hat ≤ {rhat_max}, bulk and tail ESS ≥ {ess_min:g}, "
            f"divergences ≤ {max_divergences}).\n"
            f"{len(failing)} parameter(s) failed:\n" + "\n".join(shown) + "\n"
            f"divergent transitions: {divergences}.\n"
            "Draw more (SETTINGS.replace(draws=..., tune=...)), raise target_accept, "
            "or reparametrize (e.g. noncentered=False when groups are data-rich)."
        )
        raise ConvergenceError(message, diagnostics=failing)
    return diagnostics


def _element_label(coords: Mapping[str, Any]) -> str:
    return ", ".join(str(v) for v in coords.values())


def summarize(
    idata: az.InferenceData,
    *,
    prob: float = 0.94,
    var_names: Sequence[str] | None = None,
    estimator: str = "bayes",
) -> pd.DataFrame:
    """Posterior means, SDs and HDIs in the tidy result shape.

    ``estimate`` is the posterior mean, ``std_error`` the posterior SD, and
    ``ci_low``/``ci_high`` the highest-density interval of probability ``prob``
    (the ``interval`` column says e.g. ``"94% HDI"``). Parameters with a group
    dimension (bambi's ``1|g``) give one row per group, named in ``group``.

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> rng = np.random.default_rng(1)
    >>> idata = az.from_dict(posterior={"b": rng.normal(2.0, 0.5, size=(4, 500))})
    >>> row = summarize(idata, prob=0.9).iloc[0]
    >>> row.term, row.interval, round(float(row.estimate), 1)
    ('b', '90% HDI', 2.0)
    """
    label = interval_label(prob, "HDI")
    names = _select(idata, var_names)
    rows: list[dict[str, Any]] = []
    for name in names:
        draws = idata.posterior[name]
        hdi = az.hdi(draws, hdi_prob=prob)[name]
        mean = draws.mean(("chain", "draw"))
        sd = draws.std(("chain", "draw"), ddof=1)
        extra = [d for d in draws.dims if d not in ("chain", "draw")]
        if not extra:
            rows.append(
                {
                    "estimator": estimator,
                    "term": name,
                    "group": None,
                    "estimate": float(mean),
                    "std_error": float(sd),
                    "ci_low": float(hdi.sel(hdi="lower")),
                    "ci_high": float(hdi.sel(hdi="higher")),
                    "interval": label,
                }
            )
            continue
        shape = [draws.sizes[d] for d in extra]
        for position in np.ndindex(*shape):
            index = dict(zip(extra, position, strict=True))
            labels = {d: draws[d].values[i] for d, i in index.items()}
            rows.append(
                {
                    "estimator": estimator,
                    "term": name,
                    "group": _element_label(labels),
                    "estimate": float(mean.isel(index)),
                    "std_error": float(sd.isel(index)),
                    "ci_low": float(hdi.isel(index).sel(hdi="lower")),
                    "ci_high": float(hdi.isel(index).sel(hdi="higher")),
                    "interval": label,
                }
            )
    return tidy(rows, group=True)


@contextlib.contextmanager
def _quiet_sampler(enabled: bool) -> Iterator[None]:
    """Silence PyMC's and bambi's progress logs (the gate reports what matters)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("pymc", "bambi", "pytensor")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _resolve_settings(sampler: SamplerSettings | Mapping[str, Any] | None) -> SamplerSettings:
    if sampler is None:
        return SETTINGS
    if isinstance(sampler, SamplerSettings):
        return sampler
    if isinstance(sampler, Mapping):
        unknown = set(sampler) - {f.name for f in dataclasses.fields(SamplerSettings)}
        if unknown:
            raise ArgumentError(
                f"unknown sampler setting(s) {sorted(unknown)}; valid ones are "
                f"{[f.name for f in dataclasses.fields(SamplerSettings)]}."
            )
        return SETTINGS.replace(**sampler)
    raise DataTypeError(
        f"sampler must be a SamplerSettings, a dict of overrides or None, got {type(sampler)}."
    )


def _quick_settings(settings: SamplerSettings) -> SamplerSettings:
    """Quick mode (chapter tests): few draws, and PyMC's sampler, which the mock replaces."""
    return settings.replace(
        draws=min(settings.draws, QUICK_DRAWS), tune=min(settings.tune, QUICK_DRAWS), backend="pymc"
    )


def _sampler_kwargs(settings: SamplerSettings) -> dict[str, Any]:
    """The arguments bambi's ``Model.fit`` and ``pymc.sample`` share."""
    return {
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "cores": min(settings.cores, settings.chains),
        "random_seed": settings.seed,
        "target_accept": settings.target_accept,
        "progressbar": settings.show_progress,
        "compute_convergence_checks": False,
    }


def _gate(
    idata: az.InferenceData, gate: bool | GateThresholds, gated: bool, var_names=None
) -> pd.DataFrame:
    """The diagnostics: through the convergence gate when ``gated``, else only reported."""
    if not gated:
        return diagnose(idata, var_names=var_names)
    thresholds = gate if isinstance(gate, GateThresholds) else GateThresholds()
    return check_convergence(idata, var_names=var_names, **dataclasses.asdict(thresholds))


def fit(
    formula: str,
    data: pd.DataFrame,
    *,
    family: str = "gaussian",
    priors: Mapping[str, Any] | None = None,
    sampler: SamplerSettings | Mapping[str, Any] | None = None,
    gate: bool | GateThresholds = True,
    **model_options: Any,
) -> BayesFit:
    """Build a bambi model, sample it with the book-wide settings and apply the gate.

    Parameters
    ----------
    formula
        A bambi (formulae) formula, e.g. ``"y ~ x + (1 | g)"``.
    data
        The data; it is copied, never modified. Rows with missing values in the
        model's variables raise an error instead of being dropped.
    family, priors
        Passed to :class:`bambi.Model`.
    sampler
        :class:`SamplerSettings`, or a dict of overrides of :data:`SETTINGS`
        (e.g. ``{"draws": 2000}``); :data:`SETTINGS` by default.
    gate
        ``True`` applies :func:`check_convergence` with the default thresholds,
        a :class:`GateThresholds` applies those, ``False`` skips it (for quick
        experiments only: the book build refuses an ungated posterior). With
        ``MLMCI_QUICK=1`` (chapter tests) the draws are mocked (prior draws through
        ``pymc.testing.mock_sample``) and the result is marked ungated.
    **model_options
        Other :class:`bambi.Model` options (``noncentered``, ``link``, ...).

    Returns
    -------
    BayesFit
        The model, its InferenceData, the settings and the diagnostics.

    Raises
    ------
    ConvergenceError
        When the posterior fails the gate.
    DataError
        When a variable of the formula has missing values or is absent.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=200)})
    >>> df["y"] = 1 + 2 * df["x"] + rng.normal(size=200)
    >>> res = fit("y ~ x", df, sampler={"draws": 500, "tune": 500, "progressbar": False})
    >>> round(float(res.tidy(prob=0.94).set_index("term").loc["x", "estimate"]))
    2
    """
    import bambi as bmb  # heavy import, kept out of ``import mlmci``

    require_dataframe(data)
    settings = _resolve_settings(sampler)
    variables = set(parse_formula(formula).columns)
    external = set(model_options.get("extra_namespace") or {})
    require_columns(data, sorted(variables - external))
    require_no_missing(data, sorted(variables - external))
    try:
        model = bmb.Model(formula, data.copy(), family=family, priors=priors, **model_options)
    except Exception as exc:  # formulae/bambi raise many types for a bad formula
        raise DataError(f"bambi could not build the model {formula!r}: {exc}") from exc
    quick = runmode.quick()
    _refuse_ungated_in_book(gated=not (gate is False or quick))
    if quick:
        # Chapter smoke tests: draws from the prior stand in for MCMC (pymc.testing's mock),
        # so every cell runs in seconds; the result is marked ungated.
        settings = _quick_settings(settings)
    with _quiet_sampler(not settings.show_progress), _mocked_sampling(quick):
        idata = model.fit(**_sampler_kwargs(settings), inference_method=settings.backend)
    gated = not (gate is False or quick)
    diagnostics = _gate(idata, gate, gated)
    return BayesFit(
        model=model,
        idata=idata,
        settings=settings,
        diagnostics=diagnostics,
        gated=gated,
        formula=formula,
    )


@contextlib.contextmanager
def _mocked_sampling(mock: bool) -> Iterator[None]:
    """Replace ``pymc.sample`` by ``pymc.testing.mock_sample`` (prior draws) while on."""
    if not mock:
        yield
        return
    import pymc as pm
    from pymc.testing import mock_sample

    original = pm.sample
    pm.sample = mock_sample
    try:
        yield
    finally:
        pm.sample = original


def sample(
    model: Any,
    *,
    sampler: SamplerSettings | Mapping[str, Any] | None = None,
    gate: bool | GateThresholds = True,
    var_names: Sequence[str] | None = None,
) -> tuple[az.InferenceData, pd.DataFrame, bool, SamplerSettings]:
    """Sample a PyMC model (one bambi cannot express) with the book's settings and gate.

    The PyMC counterpart of :func:`fit`: the same :data:`SETTINGS`, quiet
    logs, quick-mode mocking (``MLMCI_QUICK=1``) and convergence gate on
    ``var_names`` (all free parameters by default). Returns the InferenceData,
    the diagnostics, whether the gate was applied, and the settings used.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> with pm.Model() as model:
    ...     mu = pm.Normal("mu", 0, 10)
    ...     _ = pm.Normal("y", mu, 1, observed=np.random.default_rng(0).normal(3, 1, 100))
    >>> idata, diag, gated, _ = sample(model, sampler={"draws": 500, "progressbar": False})
    >>> gated, round(float(idata.posterior["mu"].mean()))
    (True, 3)
    """
    import pymc as pm

    settings = _resolve_settings(sampler)
    quick = runmode.quick()
    gated = not (gate is False or quick)
    _refuse_ungated_in_book(gated)
    if quick:
        settings = _quick_settings(settings)  # as fit(): the settings returned say so
    with (
        _quiet_sampler(not settings.show_progress),
        _mocked_sampling(quick),
        model,
        warnings.catch_warnings(),
    ):
        if quick:
            # The mock draws from the prior, which ignores a Potential (the result says it
            # is no posterior); PyMC's warning would reach a chapter test's stderr.
            warnings.filterwarnings("ignore", "The effect of Potentials", UserWarning)
        idata = pm.sample(**_sampler_kwargs(settings), nuts_sampler=settings.backend)
    return idata, _gate(idata, gate, gated, var_names), gated, settings


def prior_draws(
    model: Any, var_names: Sequence[str], *, draws: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Draws of scalar variables from a PyMC model's prior, one column each.

    The prior check of a hand-written model (:func:`sample`'s counterpart): what
    the group SDs, say, may be before the data speak. PyMC's "Sampling: [...]"
    log is kept off the page, and a likelihood written as a Potential is ignored,
    as prior sampling should.

    Examples
    --------
    >>> import pymc as pm
    >>> with pm.Model() as model:
    ...     sd = pm.HalfNormal("sd", 2.0)
    >>> table = prior_draws(model, ["sd"], draws=500, seed=1)
    >>> table.shape, bool((table["sd"] > 0).all())
    ((500, 1), True)
    """
    import pymc as pm

    unknown = [n for n in var_names if n not in model.named_vars]
    if unknown:
        raise ArgumentError(f"the model has no variable(s) {unknown}.")
    log = logging.getLogger("pymc")
    level = log.level
    log.setLevel(logging.ERROR)  # "Sampling: [...]" would reach a page's stderr
    try:
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Potentials are ignored": intended
            prior = pm.sample_prior_predictive(
                draws=draws, random_seed=seed, var_names=list(var_names)
            )
    finally:
        log.setLevel(level)
    return pd.DataFrame({n: prior.prior[n].to_numpy().ravel() for n in var_names})
