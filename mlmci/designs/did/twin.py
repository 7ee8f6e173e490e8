"""The model-based twin of pooled cells: a mixed model with varying cell effects (REML).

``method="re_cells"`` fits

.. math::

    y_{it} = \\mu + \\lambda_t + \\gamma_{g(i)} + (\\delta + u_{g(i)t}) D_{it} + a_i
             + \\varepsilon_{it},\\qquad a_i \\sim N(0, \\tau_a^2),\\;
             u_{gt} \\sim N(0, \\tau_u^2),\\; \\varepsilon_{it} \\sim N(0, \\sigma^2),

by REML through :func:`mlmci.mixed.fit` (``engine=REML(...)``, the default;
``engine=Bayes(...)`` fits the same model in bambi:
:mod:`mlmci.designs.did.bayes_twin`): period effects and cohort dummies keep
what identifies the effect (as in ``"re_cohort"``), and the cohort x period
cell effects vary around a mean :math:`\\delta` (the hyper-mean) instead of
being free. Given the REML variance components, the cell effects
:math:`\\delta + u_{gt}` and their joint prediction-error covariance come from
Henderson's mixed-model equations, computed here with numpy; the ATT is rebuilt
from the cells with the design's weights. Its standard errors are model-based
(independent errors): the model has no cluster-robust version here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmci.designs.did.cohorts import Panel
from mlmci.designs.did.result import DidResult
from mlmci.engines import REML
from mlmci.errors import DataError

__all__ = ["CellDesign", "cell_design", "fit_re_cells"]


@dataclass(frozen=True)
class CellDesign:
    """The twin's data: the panel's frame with period and cohort dummies and cell codes."""

    frame: pd.DataFrame
    cells: pd.DataFrame
    fixed: list[str]  # period dummies, cohort dummies, "_dd", covariates (in that order)
    cell_id: np.ndarray  # each row's cell (untreated rows: 0, their D is 0)
    treated: np.ndarray
    singles: list[int]  # cells with a single treated observation


def cell_design(panel: Panel) -> CellDesign:
    """Dummies for periods and cohorts, and each treated row's cohort x period cell."""
    from mlmci.designs.did import estimators as est

    cells = panel.cells.reset_index(drop=True)
    if len(cells) < 3:
        raise DataError(f"varying cell effects need at least three cells; there are {len(cells)}.")
    frame = panel.frame.copy()
    period_names = []
    for j, t in enumerate(panel.times[1:]):
        frame[f"_t{j}"] = (frame["_time"] == t).astype(float)
        period_names.append(f"_t{j}")
    cohort_names = []
    for j, g in enumerate(est._cohort_levels(panel)):
        frame[f"_g{j}"] = (frame["_cohort"] == g).astype(float)
        cohort_names.append(f"_g{j}")
    lookup = {
        (c, p): k for k, (c, p) in enumerate(zip(cells["cohort"], cells["period"], strict=True))
    }
    cell_id = np.zeros(len(frame), dtype=np.int64)  # untreated rows: any level (their D is 0)
    treated = frame["_d"].to_numpy() == 1
    cell_id[treated] = [
        lookup[(c, p)]
        for c, p in zip(frame.loc[treated, "_cohort"], frame.loc[treated, "_time"], strict=True)
    ]
    frame["_cell"] = cell_id
    frame["_dd"] = frame["_d"].astype(float)
    singles = sorted(
        int(k)
        for k, n in zip(*np.unique(cell_id[treated], return_counts=True), strict=True)
        if n == 1
    )
    fixed = [*period_names, *cohort_names, "_dd", *panel.covariates]
    return CellDesign(frame, cells, fixed, cell_id, treated, singles)


def single_cell_note(design: CellDesign) -> tuple[str, ...]:
    """The note on cells with one treated observation (mostly shrinkage), if any."""
    if not design.singles:
        return ()
    cells = design.cells
    shown = ", ".join(
        f"{_f(cells.loc[k, 'cohort'])}/{_f(cells.loc[k, 'period'])}" for k in design.singles
    )
    return (
        f"cells {shown} (cohort/period) have one treated observation: their "
        "effects are mostly shrinkage toward the hyper-mean.",
    )


_DEFAULT = REML(allow_boundary=True)


def fit_re_cells(panel: Panel, vcov: str, engine_: REML = _DEFAULT) -> DidResult:
    """Varying cell effects with random unit intercepts, period effects and cohort dummies."""
    from mlmci.designs.did import engine
    from mlmci.designs.did import estimators as est

    if vcov != "iid":
        raise DataError(
            "method='re_cells' has model-based (REML) prediction standard errors only; pass "
            "vcov='iid' — and read its intervals as assuming independent errors."
        )
    design = cell_design(panel)
    frame, cells, fixed, cell_id = design.frame, design.cells, design.fixed, design.cell_id
    formula = "_y ~ 1 + " + " + ".join(fixed) + " + (1 | _unit) + (0 + _dd | _cell)"
    # mixed.fit warns when a varying slope has one observation in a group: here a cell of a
    # single-unit cohort. That is a property of the design, reported as a note instead.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        native = engine.reml(formula, frame, allow_boundary=engine_.allow_boundary)
    for w in caught:
        if "single observation" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    vc = native.variance_components
    sd = {
        g: float(vc.loc[(vc["group"] == g) & (vc["component"] == "sd"), "estimate"].iloc[0])
        for g in ("_unit", "_cell")
    }
    sigma2 = float(native.sigma) ** 2
    x = np.column_stack([np.ones(len(frame)), frame[fixed].to_numpy(float)])
    y = frame["_y"].to_numpy(float)
    n_units, n_cells = panel.n_units, len(cells)
    z_unit = np.zeros((len(frame), n_units))
    z_unit[np.arange(len(frame)), frame["_unit"].to_numpy()] = 1.0
    z_cell = np.zeros((len(frame), n_cells))
    z_cell[np.arange(len(frame)), cell_id] = frame["_dd"].to_numpy()
    pooled_fully = sd["_cell"] ** 2 <= 1e-12 * sigma2
    z = z_unit if pooled_fully else np.column_stack([z_unit, z_cell])
    g_inv = np.concatenate(
        [np.full(n_units, 1 / sd["_unit"] ** 2)]
        + ([] if pooled_fully else [np.full(n_cells, 1 / sd["_cell"] ** 2)])
    )
    p = x.shape[1]
    lhs = np.block([[x.T @ x, x.T @ z], [z.T @ x, z.T @ z + sigma2 * np.diag(g_inv)]])
    rhs = np.concatenate([x.T @ y, z.T @ y])
    c_inv = np.linalg.inv(lhs)
    sol = c_inv @ rhs
    k_d = 1 + fixed.index("_dd")
    contrast = np.zeros((n_cells, lhs.shape[0]))
    contrast[:, k_d] = 1.0
    if not pooled_fully:
        contrast[np.arange(n_cells), p + n_units + np.arange(n_cells)] = 1.0
    estimate = contrast @ sol
    cov = sigma2 * contrast @ c_inv @ contrast.T
    notes = [
        "varying cell effects: SEs are model-based (REML, independent errors); under "
        "serially correlated errors they are too small."
    ]
    notes.extend(single_cell_note(design))
    if pooled_fully:
        notes.append(
            "the REML estimate of the SD of the cell effects is zero: every cell "
            "equals the hyper-mean."
        )
    out = est._result(panel, "re_cells", cells, estimate, cov, None, vcov, native, notes=notes)
    out.extra = [
        {
            "term": "hyper-mean",
            "estimate": float(sol[k_d]),
            "std_error": float(np.sqrt(sigma2 * c_inv[k_d, k_d])),
        }
    ]
    out.diagnostics = {
        "sigma": float(native.sigma),
        "tau_unit": sd["_unit"],
        "tau_cell": sd["_cell"],
        "gls_gap": float(np.abs(sol[:p] - native.beta.to_numpy(float)).max()),
    }
    return out


def _f(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
