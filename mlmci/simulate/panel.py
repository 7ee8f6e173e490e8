"""Panel data with unit effects correlated with a regressor (the FE/RE/Mundlak chapter)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlmci.errors import DataError


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise DataError(message)


def simulate_panel(
    *,
    n_entities: int,
    n_periods: int,
    beta_within: float = 1.0,
    gamma: float = 0.5,
    corr: float = 0.0,
    sigma_u: float = 1.0,
    sigma_e: float = 1.0,
    sigma_x_between: float = 1.0,
    sigma_x_within: float = 1.0,
    intercept: float = 0.0,
    missing_share: float = 0.0,
    seed: int | np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, float]]:
    r"""Simulate a linear panel whose unit effects may be correlated with the regressor.

    For units :math:`i = 1..N` and periods :math:`t = 1..T`:

    .. math::

        u_i &\sim N(0, \sigma_u^2), \quad w_i \sim N(0, 1), \quad z_i \sim N(0, 1),\\
        c_i &= \sigma_{xb}\,\bigl(\rho\, u_i / \sigma_u + \sqrt{1 - \rho^2}\, w_i\bigr),\\
        x_{it} &= c_i + v_{it}, \quad v_{it} \sim N(0, \sigma_{xw}^2),\\
        y_{it} &= \alpha + \beta\, x_{it} + \gamma\, z_i + u_i + \varepsilon_{it},
        \quad \varepsilon_{it} \sim N(0, \sigma_e^2),

    all draws independent. :math:`u_i` is the unobserved unit effect,
    :math:`c_i` the unit's persistent level of ``x`` and :math:`\rho` =
    ``corr`` = :math:`\operatorname{corr}(u_i, c_i)`; :math:`z_i` is an
    observed time-invariant covariate, independent of :math:`u_i` and ``x``.

    What the estimators recover:

    * ``corr = 0``: the unit effect is unrelated to ``x``; pooled OLS, random
      effects, fixed effects and Mundlak are all consistent for
      :math:`\beta`, random effects most efficiently.
    * ``corr != 0``: ``x`` is confounded by :math:`u_i`. Pooled OLS, between
      and random effects are biased for :math:`\beta`; fixed effects is
      unbiased; the Mundlak model gives exactly the fixed effects estimate of
      :math:`\beta` and, since :math:`z_i` is independent of :math:`u_i`,
      also consistently estimates :math:`\gamma`, which fixed effects cannot.

    Parameters
    ----------
    n_entities, n_periods
        Panel size :math:`N` and :math:`T` (at least 2 each).
    beta_within
        :math:`\beta`, the causal (within-unit) effect of ``x``.
    gamma
        :math:`\gamma`, the effect of the time-invariant covariate ``z``.
    corr
        :math:`\rho` in [-1, 1], the correlation between the unit effect and
        the unit's level of ``x``: the strength of confounding.
    sigma_u, sigma_e
        Standard deviations of the unit effect and of the idiosyncratic error.
    sigma_x_between, sigma_x_within
        Standard deviations of the persistent (:math:`c_i`) and transitory
        (:math:`v_{it}`) parts of ``x``.
    intercept
        :math:`\alpha`.
    missing_share
        Share of unit-periods deleted completely at random, in [0, 1); 0 gives
        a balanced panel. Every unit keeps at least one period.
    seed
        Seed (or Generator) for :func:`numpy.random.default_rng`.

    Returns
    -------
    data : pandas.DataFrame
        Columns ``unit``, ``period`` (1..T), ``y``, ``x``, ``z``; one row per
        observed unit-period, sorted by unit and period.
    truth : dict of str to float
        ``{"x": beta_within, "z": gamma, "const": intercept, "corr": corr,
        "sigma_u": sigma_u, "sigma_e": sigma_e}``.

    Examples
    --------
    >>> data, truth = simulate_panel(n_entities=3, n_periods=2, corr=0.5, seed=0)
    >>> data.columns.tolist(), len(data), truth["x"]
    (['unit', 'period', 'y', 'x', 'z'], 6, 1.0)
    """
    for name, value in (("n_entities", n_entities), ("n_periods", n_periods)):
        _require(
            isinstance(value, (int, np.integer)) and value >= 2,
            f"{name} must be an integer of at least 2, got {value!r}.",
        )
    _require(-1.0 <= corr <= 1.0, f"corr must lie in [-1, 1], got {corr!r}.")
    for name, value in (
        ("sigma_u", sigma_u),
        ("sigma_e", sigma_e),
        ("sigma_x_between", sigma_x_between),
        ("sigma_x_within", sigma_x_within),
    ):
        _require(value >= 0, f"{name} must be non-negative, got {value!r}.")
    _require(
        sigma_u > 0 or corr == 0,
        "corr must be 0 when sigma_u is 0: there is no unit effect to correlate with.",
    )
    _require(
        0.0 <= missing_share < 1.0, f"missing_share must lie in [0, 1), got {missing_share!r}."
    )

    rng = np.random.default_rng(seed)
    n, t = int(n_entities), int(n_periods)
    u = rng.normal(0.0, sigma_u, size=n)
    w = rng.normal(size=n)
    z = rng.normal(size=n)
    u_std = u / sigma_u if sigma_u > 0 else np.zeros(n)
    c = sigma_x_between * (corr * u_std + np.sqrt(1.0 - corr**2) * w)
    x = c[:, None] + rng.normal(0.0, sigma_x_within, size=(n, t))
    eps = rng.normal(0.0, sigma_e, size=(n, t))
    y = intercept + beta_within * x + gamma * z[:, None] + u[:, None] + eps

    keep = rng.random((n, t)) >= missing_share
    empty = np.flatnonzero(~keep.any(axis=1))
    keep[empty, rng.integers(0, t, size=empty.size)] = True

    unit, period = np.nonzero(keep)
    data = pd.DataFrame(
        {
            "unit": unit + 1,
            "period": period + 1,
            "y": y[unit, period],
            "x": x[unit, period],
            "z": z[unit],
        }
    )
    truth = {
        "x": float(beta_within),
        "z": float(gamma),
        "const": float(intercept),
        "corr": float(corr),
        "sigma_u": float(sigma_u),
        "sigma_e": float(sigma_e),
    }
    return data, truth
