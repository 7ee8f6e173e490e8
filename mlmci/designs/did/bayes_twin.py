r"""The Bayesian twin of ``method="re_cells"``: the same model in bambi, through the gate.

``did.fit(..., method="re_cells", vcov="iid", engine=Bayes(...))`` fits the model
of :mod:`mlmci.designs.did.twin`,

.. math::

    y_{it} = \mu + \lambda_t + \gamma_{g(i)} + (\delta + u_{g(i)t}) D_{it} + a_i
             + x_{it}'\beta + \varepsilon_{it},\qquad a_i \sim N(0, \tau_a^2),\;
             u_{gt} \sim N(0, \tau_u^2),\; \varepsilon_{it} \sim N(0, \sigma^2),

as the bambi formula ``y ~ 1 + periods + cohorts + d + x + (1 | unit) + (0 + d | cell)``
with bambi's default priors and parametrization (non-centred group terms:
:math:`u_{gt} = \tau_u z_{gt}`), sampled by :func:`mlmci.bayes.fit` with the
book-wide settings and the convergence gate (``Bayes(sampler=..., gate=...,
model_options=...)`` change them). The group-specific terms are mean-zero and
the hyper-mean :math:`\delta` is the common ``d`` coefficient, as bambi needs
(``DESIGN.md``: with ``noncentered=True`` a non-zero prior mean on group
effects would be dropped).

The estimand is the REML twin's: the posterior of each cell effect is
:math:`\delta + u_{gt}` draw by draw, and the ATT's posterior is the weighted
sum of the cell draws with the design's weights (the cells' shares of the
treated observations) — not the hyper-mean :math:`\delta`, which is reported
as its own row. Intervals are HDIs; like the REML twin's they are model-based
and assume independent errors.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlmci.designs.did.cohorts import Panel
from mlmci.designs.did.result import DidResult, cell_columns
from mlmci.engines import Bayes
from mlmci.errors import DataError
from mlmci.results import interval_label, tidy

__all__ = ["DidBayesResult", "fit_bayes_cells"]

# bambi's names of the model's parameters, given the column names fit_bayes_cells uses.
_D, _CELL, _UNIT = "did_d", "did_d|did_cell", "1|did_unit"


def _hdi(x: np.ndarray, prob: float) -> tuple[float, float]:
    import arviz as az

    low, high = az.hdi(np.asarray(x, float).ravel(), hdi_prob=prob)
    return float(low), float(high)


@dataclass(repr=False)
class DidBayesResult(DidResult):
    """The Bayesian varying-cell-effects DiD (``method="re_cells"``, ``engine=Bayes(...)``).

    ``tidy(prob)`` (posterior means, SDs and HDIs at ``prob``, 0.94 by default)
    has the ``"ATT"`` row (the headline: the posterior of the design-weighted
    sum of the cells), ``"hyper-mean"`` (:math:`\\delta`), ``"sd(cell effects)"``
    (:math:`\\tau_u`), ``"sd(unit intercepts)"`` (:math:`\\tau_a`) and one
    ``"ATT(g,t)"`` row per cell with ``cohort``, ``period``, ``event_time``,
    ``weight`` and ``n_obs``, as every :class:`DidResult`.

    Attributes
    ----------
    att_draws : numpy.ndarray
        ``(n_draws,)``, chains stacked: ``cell_draws @ cells["weight"]``.
    cell_draws : numpy.ndarray
        ``(n_draws, n_cells)``: :math:`\\delta + u_{gt}`, in the order of ``cells``.
    hyper_draws, sd_cell_draws, sd_unit_draws : numpy.ndarray
        ``(n_draws,)`` draws of :math:`\\delta`, :math:`\\tau_u`, :math:`\\tau_a`.
    idata, model : arviz.InferenceData, bambi.Model
        The posterior (bambi's names) and the model (``native`` holds both, and
        the :class:`~mlmci.bayes.BayesFit`).
    diagnostics : pandas.DataFrame
        R-hat and ESS of every parameter (the convergence gate's table).
    gated : bool
        Whether the posterior went through the gate (not in quick mode).
    divergences : int
        Divergent transitions of the sampler (0 when mocked).
    seconds : float
        Wall time of building and sampling the model.
    """

    att_draws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cell_draws: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    hyper_draws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sd_cell_draws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sd_unit_draws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    idata: object = None
    model: object = None
    gated: bool = True
    settings: object = None
    panel: Panel | None = None
    divergences: int = 0
    seconds: float = float("nan")
    bayesian: bool = True
    interval_kind: str = "HDI"

    @property
    def title(self) -> str:  # type: ignore[override]
        s = self.settings
        return (
            "DiD: varying cell effects (Bayesian: bambi, "
            f"{s.backend}, {s.chains} x {s.draws} draws; model-based, independent errors)"
        )

    def _draw_row(self, term: str, x: np.ndarray, prob: float, **extra) -> dict:
        low, high = _hdi(x, prob)
        return {
            "estimator": "re_cells_bayes",
            "term": term,
            "estimate": float(np.mean(x)),
            "std_error": float(np.std(x, ddof=1)),
            "ci_low": low,
            "ci_high": high,
            "interval": interval_label(prob, "HDI"),
            **extra,
        }

    def _tidy(self, prob: float) -> pd.DataFrame:
        from mlmci.bayes import _refuse_ungated_in_book

        _refuse_ungated_in_book(self.gated)
        nan = float("nan")
        blank = {"cohort": nan, "period": nan, "event_time": nan, "weight": nan}
        n_treated = self._treated_obs()
        rows = [
            self._draw_row(term, x, prob, **blank, n_obs=n_treated)
            for term, x in (
                ("ATT", self.att_draws),
                ("hyper-mean", self.hyper_draws),
                ("sd(cell effects)", self.sd_cell_draws),
                ("sd(unit intercepts)", self.sd_unit_draws),
            )
        ]
        for k, cell in enumerate(self.cells.itertuples(index=False)):
            rows.append(
                self._draw_row("ATT(g,t)", self.cell_draws[:, k], prob, **cell_columns(cell))
            )
        out = tidy(rows)
        out["n_obs"] = out["n_obs"].astype(int)
        return out

    def aggregate(self, weights: pd.Series | np.ndarray, *, prob: float | None = None) -> pd.Series:
        """Any weighted average of the cells (weights normalized): posterior, HDI at ``prob``."""
        from mlmci.config import HDI_PROB

        w = np.asarray(weights, dtype=float)
        if w.shape != (len(self.cells),) or w.sum() <= 0 or not np.all(np.isfinite(w)):
            raise DataError(
                f"weights must be {len(self.cells)} finite numbers with a positive sum."
            )
        prob = HDI_PROB if prob is None else float(prob)
        row = self._draw_row("ATT", self.cell_draws @ (w / w.sum()), prob)
        return pd.Series(
            {k: row[k] for k in ("estimate", "std_error", "ci_low", "ci_high", "interval")}
        )

    def event_study(self, prob: float | None = None) -> pd.DataFrame:
        """Cells averaged by event time (weights: treated observations), from the draws."""
        from mlmci.config import HDI_PROB

        prob = HDI_PROB if prob is None else float(prob)
        cells = self.cells.reset_index(drop=True)
        rows = []
        for e, grp in cells.groupby("event_time", sort=True):
            w = grp["n_obs"].to_numpy(float)
            x = self.cell_draws[:, grp.index] @ (w / w.sum())
            rows.append(
                self._draw_row(
                    "ATT(e)", x, prob, event_time=float(e), n_obs=int(grp["n_obs"].sum())
                )
            )
        return tidy(rows)

    def replicates(self, kind: str = "posterior", *, draws: int = 200, seed: int = 0):
        """Replicated outcomes ``(draws, units, periods)`` from the prior or the posterior.

        For predictive checks on a balanced panel: ``kind="posterior"`` draws
        new outcomes given about ``draws`` posterior draws, thinned evenly in
        every chain (bambi's ``predict``),
        ``kind="prior"`` from the prior predictive distribution. Units are in
        sorted order, periods in time order (as ``fast_estimates`` takes them).
        """
        import logging
        import warnings

        if self.panel is None or not self.panel.balanced:
            raise DataError("replicates() needs the balanced panel the model was fitted to.")
        if kind not in ("posterior", "prior"):
            raise DataError(f"kind must be 'posterior' or 'prior', got {kind!r}.")
        log = logging.getLogger("pymc")
        level = log.level
        log.setLevel(logging.ERROR)  # "Sampling: [...]" would reach a page's stderr
        try:
            if kind == "prior":
                with warnings.catch_warnings():
                    # bambi 0.17 passes PyMC's deprecated `samples=`: not the caller's doing
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pp = self.model.prior_predictive(draws=draws, random_seed=seed)
                values = pp.prior_predictive["did_y"].to_numpy().reshape(-1, len(self.panel.frame))
            else:
                post = self.idata.posterior
                step = max(1, (post.sizes["chain"] * post.sizes["draw"]) // draws)
                sub = self.idata.copy()
                sub.posterior = post.isel(draw=slice(None, None, step))  # thinned evenly
                pp = self.model.predict(sub, kind="response", inplace=False, random_seed=seed + 1)
                values = pp.posterior_predictive["did_y"].to_numpy()
                values = values.reshape(-1, len(self.panel.frame))
        finally:
            log.setLevel(level)
        frame = self.panel.frame
        out = np.empty((values.shape[0], self.panel.n_units, len(self.panel.times)))
        cols = np.searchsorted(self.panel.times, frame["_time"].to_numpy(float))
        out[:, frame["_unit"].to_numpy(), cols] = values
        return out


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def fit_bayes_cells(panel: Panel, engine_: Bayes) -> DidBayesResult:
    """Sample the varying-cell-effects model in bambi (see the module docstring)."""
    from mlmci.bayes import _divergences
    from mlmci.designs.did import engine
    from mlmci.designs.did.twin import cell_design, single_cell_note

    design = cell_design(panel)
    cells = design.cells
    labels = [
        f"{_label(c)}/{_label(p)}" for c, p in zip(cells["cohort"], cells["period"], strict=True)
    ]
    names = {f: f"did{f}" for f in design.fixed if f.startswith(("_t", "_g"))}
    names["_dd"] = _D
    names.update({c: f"did_x{j}" for j, c in enumerate(panel.covariates)})
    src = design.frame
    frame = pd.DataFrame({new: src[old].to_numpy(float) for old, new in names.items()})
    frame["did_y"] = src["_y"].to_numpy(float)
    frame["did_unit"] = pd.Categorical(
        [str(u) for u in src["_unit"]], categories=[str(u) for u in range(panel.n_units)]
    )
    frame["did_cell"] = pd.Categorical([labels[k] for k in design.cell_id], categories=labels)
    fixed = " + ".join(names[f] for f in design.fixed)
    formula = f"did_y ~ 1 + {fixed} + (1 | did_unit) + (0 + {_D} | did_cell)"
    start = _time.perf_counter()
    fit = engine.bayes(formula, frame, engine_)
    seconds = _time.perf_counter() - start
    idata = fit.idata
    cell_draws = engine.draws(idata, _D)[:, None] + engine.draws(idata, _CELL, labels)
    weights = cells["weight"].to_numpy(float)
    att_draws = cell_draws @ weights
    cells = cells.copy()
    cells["estimate"] = cell_draws.mean(axis=0)
    cells["std_error"] = cell_draws.std(axis=0, ddof=1)
    notes = (
        "varying cell effects: the HDIs are model-based (the posterior of a model with "
        "independent errors); under serially correlated errors they are too narrow.",
        *single_cell_note(design),
        *fit.notes,
    )
    return DidBayesResult(
        method="re_cells",
        att=float(att_draws.mean()),
        att_se=float(att_draws.std(ddof=1)),
        cells=cells[["cohort", "period", "event_time", "estimate", "std_error", "weight", "n_obs"]],
        cell_cov=np.atleast_2d(np.cov(cell_draws, rowvar=False)),
        df=None,
        vcov="iid",
        native={"model": fit.model, "idata": idata, "fit": fit},
        notes=notes,
        diagnostics=fit.diagnostics,
        att_draws=att_draws,
        cell_draws=cell_draws,
        hyper_draws=engine.draws(idata, _D),
        sd_cell_draws=engine.draws(idata, _CELL + "_sigma"),
        sd_unit_draws=engine.draws(idata, _UNIT + "_sigma"),
        idata=idata,
        model=fit.model,
        gated=fit.gated,
        settings=fit.settings,
        panel=panel,
        divergences=_divergences(idata),
        seconds=seconds,
    )
