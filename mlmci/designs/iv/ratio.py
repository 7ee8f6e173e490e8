r"""IV as the ratio of two random-intercept regressions (indirect least squares with REML).

The just-identified IV estimate is the reduced-form (ITT) coefficient of the
instrument divided by its first-stage coefficient. :func:`fit_ratio` fits both
by the mixed-model engine with a random site intercept,

.. math::

    y_{ij} = a + \pi_y z_{ij} + x_{ij}'c_y [+ \lambda_y \bar z_j] + u_j + e_{ij},\qquad
    d_{ij} = b + \pi_d z_{ij} + x_{ij}'c_d [+ \lambda_d \bar z_j] + v_j + \epsilon_{ij},

and returns :math:`\hat\pi_y / \hat\pi_d`. Without the site mean
:math:`\bar z_j` (Mundlak), GLS uses the between-site variation of the
instrument, so a site share assigned that correlates with the site level
biases it (Part I's lesson); with :math:`\bar z_j`, only within-site variation
identifies :math:`\pi`. The standard error is the delta method on the joint
cluster-robust (by site) covariance of the two GLS coefficients, t intervals
on ``G - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmci.designs.iv.design import IVData, group_sums
from mlmci.designs.iv.multisite import ratio_with_se
from mlmci.errors import ArgumentError, DataError
from mlmci.identification import dependent_columns
from mlmci.sandwich import random_intercept_scores


@dataclass(frozen=True)
class RatioFit:
    """The ratio, its SE, the two coefficients and the two REML fits."""

    estimate: float
    std_error: float
    itt: float
    first_stage: float
    cov: np.ndarray
    df: float
    native: tuple
    boundary: bool


def fit_ratio(design: IVData, *, mundlak: bool, allow_boundary: bool) -> RatioFit:
    """Fit the reduced form and first stage by REML with a random site intercept; take the ratio."""
    from mlmci import mixed

    if design.codes is None:
        raise ArgumentError("the random-intercept methods need `site`.")
    if design.z.shape[1] != 1:
        raise ArgumentError(
            f"the random-intercept ratio takes one instrument, got {list(design.instruments)}."
        )
    n_sites = design.n_sites
    codes = design.codes
    sizes = np.bincount(codes, minlength=n_sites)
    cols = {"_z": design.z[:, 0]}
    cols.update({f"_x{k}": design.x[:, k] for k in range(design.x.shape[1])})
    zbar = group_sums(codes, design.z[:, 0], n_sites) / sizes
    # With the same share assigned in every site, the site mean is collinear with the
    # intercept and not needed: without between-site variation of the instrument, the
    # random-intercept fit already identifies its coefficient within sites only.
    if mundlak and np.ptp(zbar) > 1e-12 * max(1.0, float(np.max(np.abs(zbar)))):
        cols["_zbar"] = zbar[codes]
    frame = pd.DataFrame({**cols, "_y": design.y, "_d": design.d, "_site": codes})
    rhs = " + ".join(cols)
    x = np.column_stack([np.ones(len(frame)), frame[list(cols)].to_numpy(float)])
    if dependent_columns(x):
        names = [design.instruments[0], *design.covariates]
        raise DataError(
            f"the intercept, {names} and the site mean of the instrument (with "
            "method='re_mundlak') are collinear: drop a covariate that is constant or a "
            "combination of the others."
        )
    fits, influence, coefs = [], [], []
    for lhs in ("_y", "_d"):
        res = mixed.fit(f"{lhs} ~ 1 + {rhs} + (1 | _site)", frame, allow_boundary=allow_boundary)
        beta = res.beta.to_numpy(float)
        tau2 = float(res.cov_re().to_numpy()[0, 0])
        bread_inv, scores = random_intercept_scores(
            x, frame[lhs].to_numpy(float) - x @ beta, codes, res.sigma**2, tau2
        )
        fits.append(res)
        influence.append(scores @ bread_inv.T[:, 1])  # the instrument's coefficient
        coefs.append(beta[1])
    psi = np.column_stack(influence)
    cov = psi.T @ psi * n_sites / (n_sites - 1)
    estimate, se = ratio_with_se(coefs[0], coefs[1], cov)
    return RatioFit(
        estimate=estimate,
        std_error=se,
        itt=float(coefs[0]),
        first_stage=float(coefs[1]),
        cov=cov,
        df=float(n_sites - 1),
        native=tuple(fits),
        boundary=any(f.boundary for f in fits),
    )
