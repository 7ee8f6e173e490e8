r"""A staggered-adoption panel with known cohort x period effects.

Units :math:`i = 1..N` are observed in periods :math:`t = 1..T`. Cohort
:math:`g` (the first treated period) has :math:`n_g` units; the rest are never
treated. The outcome is

.. math::

    y_{it} = \alpha_i + \lambda_t + \tau_{g(i),t}\,D_{it} + \varepsilon_{it},
    \qquad \varepsilon_{it} = \phi\,\varepsilon_{i,t-1} + \sqrt{1-\phi^2}\,\sigma\,\eta_{it},

with unit levels :math:`\alpha_i \sim N(0, \sigma_\alpha^2)`, period effects
:math:`\lambda_t = 0.1\,t`, stationary AR(1) errors of variance :math:`\sigma^2`
and :math:`D_{it} = 1\{t \ge g(i)\}`. **Adoption is correlated with the unit
level**: units are ranked by the score
:math:`\rho\,\alpha_i/\sigma_\alpha + \sqrt{1-\rho^2}\,\nu_i` and the highest
scores adopt first (earliest cohort first, never-treated last), so with
:math:`\rho > 0` early adopters have high levels — harmless for estimators
with unit fixed effects, a bias for a plain random intercept.

The cell effects are

.. math::

    \tau_{g,t} = \tau + \delta\,(t - g) + \gamma\,\frac{n_g - \bar n}{\bar n}
                 + \sigma_g z_g + \sigma_c z_{g,t},\qquad z \sim N(0, 1),

a base effect, a dynamic slope in event time, a term that makes effects
correlated with cohort size (``size_slope``), cohort deviations and cell
deviations. ``truth["ATT"]`` is the average of :math:`\tau_{g,t}` over the
treated unit-periods (each cell weighted by its number of units), the estimand
of every ATT in :mod:`mlmci.did`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["simulate_staggered"]


def simulate_staggered(
    *,
    n_units: int = 60,
    n_periods: int = 8,
    cohort_sizes: Mapping[int, int] | None = None,
    rho: float = 0.6,
    effect: float = 1.0,
    dynamic: float = 0.0,
    size_slope: float = 0.0,
    cohort_sd: float = 0.0,
    cell_sd: float = 0.0,
    ar: float = 0.0,
    sigma: float = 1.0,
    sigma_unit: float = 1.0,
    seed: int | np.random.Generator | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Simulate a staggered-adoption panel; return ``(data, truth)``.

    Parameters
    ----------
    n_units, n_periods
        Panel size (balanced: every unit in periods 1..n_periods).
    cohort_sizes
        First treated period -> number of units (default: three cohorts
        adopting at 40%, 60% and 80% of the panel, with 10%, 20% and 30% of
        the units). Periods must be in 2..n_periods; units left over are never
        treated.
    rho
        Correlation of the adoption score with the unit level (0 <= rho <= 1).
    effect, dynamic, size_slope, cohort_sd, cell_sd
        The cell effects (module docstring).
    ar
        AR(1) coefficient of the errors (``abs(ar) < 1``).
    sigma, sigma_unit
        SD of the errors and of the unit levels.
    seed
        Seed or numpy Generator.

    Returns
    -------
    data : pandas.DataFrame
        ``unit, period, treated, y, effect`` (``effect`` the true
        :math:`\\tau_{g,t} D_{it}`), one row per unit and period.
    truth : dict
        ``"ATT"`` (float), ``"hyper_mean"`` (float: the unweighted mean of the
        cell effects) and ``"cells"``: a DataFrame with ``cohort, period,
        event_time, att, n_obs, weight``.

    Examples
    --------
    >>> data, truth = simulate_staggered(n_units=20, n_periods=5, seed=1)
    >>> data.shape, sorted(truth)
    ((100, 5), ['ATT', 'cells', 'hyper_mean'])
    >>> round(truth["ATT"], 6)
    1.0
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if n_units < 3 or n_periods < 2:
        raise ValueError("need at least 3 units and 2 periods.")
    if not 0 <= rho <= 1:
        raise ValueError(f"rho must lie in [0, 1], got {rho!r}.")
    if not -1 < ar < 1:
        raise ValueError(f"ar must lie in (-1, 1), got {ar!r}.")
    if cohort_sizes is None:
        starts = [max(2, round(f * n_periods)) for f in (0.4, 0.6, 0.8)]
        sizes = [round(f * n_units) for f in (0.1, 0.2, 0.3)]
        cohort_sizes = dict(zip(starts, sizes, strict=True))
    cohort_sizes = {int(g): int(n) for g, n in sorted(cohort_sizes.items())}
    if any(g < 2 or g > n_periods for g in cohort_sizes) or any(
        n < 1 for n in cohort_sizes.values()
    ):
        raise ValueError("cohort_sizes: periods must be in 2..n_periods and sizes positive.")
    if sum(cohort_sizes.values()) > n_units:
        raise ValueError("cohort_sizes assign more units than n_units.")

    alpha = rng.normal(0.0, sigma_unit, n_units)
    standard = alpha / sigma_unit if sigma_unit > 0 else np.zeros(n_units)
    score = rho * standard + np.sqrt(1 - rho**2) * rng.normal(size=n_units)
    order = np.argsort(-score, kind="stable")
    cohort = np.full(n_units, np.inf)
    start = 0
    for g, n in cohort_sizes.items():
        cohort[order[start : start + n]] = g
        start += n

    periods = np.arange(1, n_periods + 1)
    mean_size = float(np.mean(list(cohort_sizes.values())))
    cohort_dev = {g: cohort_sd * rng.normal() for g in cohort_sizes}
    c_list, p_list, n_list, base = [], [], [], []
    for g, n in cohort_sizes.items():
        post = periods[periods >= g]
        c_list.append(np.full(post.size, float(g)))
        p_list.append(post.astype(float))
        n_list.append(np.full(post.size, n))
        base.append(
            effect + dynamic * (post - g) + size_slope * (n - mean_size) / mean_size + cohort_dev[g]
        )
    cell_c, cell_p = np.concatenate(c_list), np.concatenate(p_list)
    att = np.concatenate(base) + cell_sd * rng.normal(size=cell_c.size)
    n_obs = np.concatenate(n_list)
    cells = pd.DataFrame(
        {
            "cohort": cell_c,
            "period": cell_p,
            "event_time": cell_p - cell_c,
            "att": att,
            "n_obs": n_obs,
            "weight": n_obs / n_obs.sum(),
        }
    )

    eps = np.empty((n_units, n_periods))
    eps[:, 0] = rng.normal(0.0, sigma, n_units)
    innov = rng.normal(0.0, sigma * np.sqrt(1 - ar**2), (n_units, n_periods))
    for t in range(1, n_periods):
        eps[:, t] = ar * eps[:, t - 1] + innov[:, t]
    treated = periods[None, :] >= cohort[:, None]
    # tau[i, t]: the effect of unit i's cohort in period t (0 before adoption / never).
    table = np.zeros((len(cohort_sizes) + 1, n_periods))
    index = {g: k for k, g in enumerate(cohort_sizes)}
    for c, p, a in zip(cell_c, cell_p, att, strict=True):
        table[index[int(c)], int(p) - 1] = a
    row = np.array(
        [
            index.get(int(c), len(cohort_sizes)) if np.isfinite(c) else len(cohort_sizes)
            for c in cohort
        ]
    )
    tau = table[row] * treated
    y = alpha[:, None] + 0.1 * periods[None, :] + tau + eps
    data = pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n_units), n_periods),
            "period": np.tile(periods, n_units),
            "treated": treated.ravel().astype(np.int64),
            "y": y.ravel(),
            "effect": tau.ravel(),
        }
    )
    truth = {
        "ATT": float(cells["weight"] @ cells["att"]),
        "hyper_mean": float(cells["att"].mean()),
        "cells": cells,
    }
    return data, truth
