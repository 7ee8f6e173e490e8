"""A direct REML criterion for random-intercept models, to check fast paths against."""

from __future__ import annotations

import numpy as np

from mlmci.transforms import group_sums


def neg2_reml(x, y, codes, n_groups, sigma2, tau2) -> float:
    """-2 REML log-likelihood (up to a constant) of a random-intercept model, directly."""
    sizes = np.bincount(codes, minlength=n_groups).astype(float)
    shrink = tau2 / (sigma2 + sizes * tau2)

    def v_inv(a):
        means = group_sums(codes, a, n_groups)
        return (a - (shrink[:, None] if a.ndim > 1 else shrink)[codes] * means[codes]) / sigma2

    vx = v_inv(x)
    a = x.T @ vx
    beta = np.linalg.solve(a, vx.T @ y)
    r = y - x @ beta
    present = sizes > 0
    logdet = float(((sizes - 1) * np.log(sigma2) + np.log(sigma2 + sizes * tau2))[present].sum())
    return logdet + float(np.linalg.slogdet(a)[1]) + float(r @ v_inv(r))
