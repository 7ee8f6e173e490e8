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
from mlmci.transforms import group_sums

__all__ = ["outcome_by_arm"]


def outcome_by_arm(
    design: WeightingData, structure: str, *, allow_boundary: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted ``(mu0, mu1)`` for every unit from the arm-wise outcome models."""
    x, _ = model_columns(design, structure)  # the propensity fit reports what is left out
    preds = []
    for arm in (0.0, 1.0):
        rows = design.d == arm
        if structure == "pooled":
            preds.append(_ols(x[rows], design.y[rows], x))
        elif structure == "fe":
            preds.append(_within(x, design, rows))
        else:
            preds.append(_reml(x, design, rows, allow_boundary=allow_boundary))
    return preds[0], preds[1]


def _ols(x_fit: np.ndarray, y_fit: np.ndarray, x_all: np.ndarray) -> np.ndarray:
    ones = np.ones((len(x_fit), 1))
    coef, *_ = np.linalg.lstsq(np.hstack([ones, x_fit]), y_fit, rcond=None)
    return coef[0] + x_all @ coef[1:]


def _within(x: np.ndarray, design: WeightingData, rows: np.ndarray) -> np.ndarray:
    """OLS with cluster intercepts in the rows ``rows``; predictions for every row."""
    g = design.n_clusters
    codes, y, xs = design.codes[rows], design.y[rows], x[rows]
    sizes = np.bincount(codes, minlength=g).astype(float)
    # Clusters absent from the arm get no intercept; the caller has refused them already.
    safe = np.where(sizes > 0, sizes, 1.0)
    y_mean = group_sums(codes, y, g) / safe
    x_mean = group_sums(codes, xs, g) / safe[:, None]
    if xs.shape[1]:
        beta, *_ = np.linalg.lstsq(xs - x_mean[codes], y - y_mean[codes], rcond=None)
    else:
        beta = np.zeros(0)
    alpha = y_mean - x_mean @ beta
    return alpha[design.codes] + x @ beta


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
    return beta[0] + x @ beta[1:] + blups.to_numpy(float)[design.codes]
