"""Outcome models for augmented IPW, fitted separately among the treated and the controls.

Each structure predicts both potential outcomes, ``mu0`` and ``mu1``, for every
unit, from a linear model fitted in one arm:

- ``"pooled"``: OLS on the covariates;
- ``"fe"``: OLS with one intercept per cluster (the within estimator, intercepts
  recovered from the cluster means), so a cluster needs units in both arms;
- ``"re"``: a random-intercept linear model (REML, :func:`mlmci.mixed.fit`); a
  unit's prediction adds its cluster's BLUP, which is zero (the mean) for a cluster
  with no unit in that arm;
- ``"mundlak"``: as ``"re"``, with the cluster means of the covariates (over all
  units of the cluster, both arms) added.

Fitting each arm separately lets the covariates' effects differ by arm, so the
augmentation does not assume a constant treatment effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlmci.designs.weighting.design import WeightingData
from mlmci.designs.weighting.propensity import model_columns
from mlmci.errors import DataError
from mlmci.identification import dependent_columns
from mlmci.transforms import group_means

__all__ = ["outcome_by_arm"]


def outcome_by_arm(
    design: WeightingData, structure: str, *, allow_boundary: bool = True
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Predicted ``(mu0, mu1)`` for every unit, and the two fits (``"control"``, ``"treated"``).

    A fit is the coefficients (``"pooled"``: intercept then slopes; ``"fe"``: the
    slopes) or the :class:`~mlmci.mixed.MixedResult` (``"re"``, ``"mundlak"``).
    """
    x, _ = model_columns(design, structure)  # the propensity fit reports what is left out
    preds, fits = [], {}
    for arm, name in ((0.0, "control"), (1.0, "treated")):
        rows = design.d == arm
        if structure == "pooled":
            pred, fits[name] = _ols(x[rows], design.y[rows], x, name)
        elif structure == "fe":
            pred, fits[name] = _within(x, design, rows, name)
        else:
            pred, fits[name] = _reml(x, design, rows, allow_boundary=allow_boundary)
        preds.append(pred)
    return preds[0], preds[1], fits


def _full_rank(x: np.ndarray, arm: str, scale: np.ndarray | None = None) -> None:
    # The columns are independent in the whole sample (model_columns), not always in
    # one arm: a dummy that is 0 for every treated unit, say.
    if dependent_columns(x, scale=scale):
        raise DataError(
            f"the outcome model's covariates are collinear among the {arm} units (a "
            "covariate constant in that arm?): drop it or use another outcome model."
        )


def _ols(x_fit: np.ndarray, y_fit: np.ndarray, x_all: np.ndarray, arm: str):
    design = np.hstack([np.ones((len(x_fit), 1)), x_fit])
    _full_rank(design, arm)
    coef, *_ = np.linalg.lstsq(design, y_fit, rcond=None)
    return coef[0] + x_all @ coef[1:], coef


def _within(x: np.ndarray, design: WeightingData, rows: np.ndarray, arm: str):
    """OLS with cluster intercepts in the rows ``rows``; predictions for every row."""
    g = design.n_clusters
    codes, y, xs = design.codes[rows], design.y[rows], x[rows]
    # Clusters absent from the arm get no intercept; the caller has refused them already.
    y_mean, x_mean = group_means(codes, y, g), group_means(codes, xs, g)
    if xs.shape[1]:
        demeaned = xs - x_mean[codes]
        # Judged against the raw columns: a covariate constant within the arm's
        # clusters leaves rounding noise after demeaning, not variation.
        _full_rank(demeaned, arm, np.linalg.norm(xs, axis=0))
        beta, *_ = np.linalg.lstsq(demeaned, y - y_mean[codes], rcond=None)
    else:
        beta = np.zeros(0)
    alpha = y_mean - x_mean @ beta
    return alpha[design.codes] + x @ beta, beta


def _reml(
    x: np.ndarray, design: WeightingData, rows: np.ndarray, *, allow_boundary: bool
) -> np.ndarray:
    from mlmci import mixed

    names = [f"x{k}" for k in range(x.shape[1])]
    frame = pd.DataFrame(x[rows], columns=names).assign(y=design.y[rows], g=design.codes[rows])
    formula = "y ~ " + " + ".join(["1", *names]) + " + (1 | g)"
    res = mixed.fit(formula, frame, allow_boundary=allow_boundary)
    blups = res.ranef("g")["Intercept"].reindex(range(design.n_clusters)).fillna(0.0)
    beta = res.beta.to_numpy()
    return beta[0] + x @ beta[1:] + blups.to_numpy(float)[design.codes], res
