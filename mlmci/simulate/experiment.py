"""A multi-group randomized experiment with heterogeneous treatment effects, with known truth.

Units :math:`i = 1..n_j` in groups :math:`j = 1..J` (schools, sites, clinics). Each
group has its own treatment effect :math:`\\tau_j`, drawn once from a superpopulation of
groups, and treatment is randomized *within* each group (a block-randomized experiment,
as in Project STAR):

.. math::

    w_j &\\sim N(0, 1) \\text{ or } \\mathrm{Bernoulli}(1/2)
        \\quad \\text{(an observed group-level covariate)} \\\\
    v_j &\\sim F_v, \\qquad E[v_j] = 0,\\ \\mathrm{SD}(v_j) = \\tau \\\\
    \\tau_j &= \\mu + \\gamma\\,(w_j - E[w]) + v_j \\\\
    u_j &\\sim N(0, \\sigma_u^2) \\\\
    Y_{ij} &= u_j + \\beta_x x_{ij} + \\tau_j T_{ij} + \\varepsilon_{ij},
        \\qquad x_{ij} \\sim N(0, 1),\\ \\varepsilon_{ij} \\sim N(0, \\sigma^2)

* :math:`\\mu` (``ate``) is the average treatment effect over the superpopulation of
  groups, :math:`E[\\tau_j]`;
* :math:`\\tau` (``tau``) is the SD of the part of the effects the covariate does not
  explain (``tau=0``: no heterogeneity beyond :math:`w`); :math:`F_v` is normal
  (``effect_dist="normal"``) or a skewed two-point mixture (``"two_point"``): with
  probability :math:`q` the value :math:`\\tau\\sqrt{(1-q)/q}`, else
  :math:`-\\tau\\sqrt{q/(1-q)}` (mean 0, SD :math:`\\tau`, skewness
  :math:`(1-2q)/\\sqrt{q(1-q)}`, 2.67 for the default :math:`q = 0.1`: most groups a
  little below the mean, a few far above it), or heavy-tailed (``"student_t"``:
  :math:`\\tau\\, t_\\nu \\sqrt{(\\nu - 2)/\\nu}`, a Student :math:`t` with
  :math:`\\nu` = ``effect_df`` degrees of freedom rescaled to SD :math:`\\tau`);
* :math:`\\rho` (``size_corr``) correlates the effects with group size: with drawn sizes
  (``size_cv > 0``), :math:`v_j = \\tau(\\rho z_j + \\sqrt{1-\\rho^2}\\,e_j)`, where
  :math:`z_j` is :math:`\\log g_j` standardized by its exact superpopulation mean
  :math:`\\psi(k) - \\log k` and SD :math:`\\sqrt{\\psi'(k)}` (:math:`k = 1/c^2`) and
  :math:`e_j` is drawn from :math:`F_v` scaled to SD 1. :math:`E[\\tau_j] = \\mu` still,
  but a size-weighted average of the :math:`\\tau_j` is not :math:`\\mu` (larger than
  :math:`\\mu` for :math:`\\rho > 0`): estimators that weight groups differently then
  target different averages;
* :math:`\\gamma` (``modifier``) makes the effect depend on :math:`w_j`. A model that
  omits :math:`w` as a modifier of the treatment slope then shrinks every group toward
  one mean when the effects cluster by :math:`w` (the "omitted covariate" failure mode
  of partial pooling; most visible with a binary :math:`w`);
* within group :math:`j` exactly :math:`m_j = \\min(\\max(\\lfloor p\\,n_j + 1/2 \\rfloor, 1),
  n_j - 1)` units are treated, chosen at random (``treated_share`` :math:`p`), so
  every group has treated and control units;
* group sizes :math:`n_j` are constant, given, or drawn as
  :math:`n_j = \\max(2, \\lfloor \\bar n\\,g_j + 1/2 \\rfloor)` with
  :math:`g_j \\sim \\mathrm{Gamma}(1/c^2, c^2)` (mean 1, coefficient of variation
  :math:`c` = ``size_cv``).

The effect is constant within a group, so a group's CATE — the mean of
:math:`Y_{ij}(1) - Y_{ij}(0)` over its units, in the sample or in the group's
population — is exactly the drawn :math:`\\tau_j`; ``truth["effects"]`` holds these
:math:`\\tau_j`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from mlmci.errors import ArgumentError
from mlmci.simulate.arguments import check_int

__all__ = ["simulate_experiment"]

_EFFECT_DISTS = ("normal", "two_point", "student_t")
_COVARIATES = {"normal": 0.0, "binary": 0.5}  # name -> E[w]
_COVARIATE_VAR = {"normal": 1.0, "binary": 0.25}


def simulate_experiment(
    *,
    n_groups: int = 40,
    group_size: int | Sequence[int] = 20,
    size_cv: float = 0.0,
    ate: float = 0.3,
    tau: float = 0.2,
    treated_share: float = 0.5,
    effect_dist: Literal["normal", "two_point", "student_t"] = "normal",
    two_point_prob: float = 0.1,
    effect_df: float = 3.0,
    size_corr: float = 0.0,
    modifier: float = 0.0,
    covariate: Literal["normal", "binary"] = "normal",
    sd_group: float = 0.5,
    sd_unit: float = 1.0,
    beta_x: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate a block-randomized experiment with group-specific effects (see the module notes).

    Parameters
    ----------
    n_groups
        Number of groups :math:`J` (at least 2).
    group_size
        Units per group: one integer :math:`\\bar n` (at least 2) for every group (or the
        mean size when ``size_cv > 0``), or a sequence of ``n_groups`` integers.
    size_cv
        Coefficient of variation of the group sizes, drawn from a gamma distribution
        (0, the default, gives equal sizes). Only with an integer ``group_size``.
    ate
        :math:`\\mu = E[\\tau_j]`, the average effect over the superpopulation of groups.
    tau
        SD of the group effects not explained by the covariate (:math:`\\tau \\ge 0`).
    treated_share
        Share :math:`p` of each group that is treated, in (0, 1).
    effect_dist
        Distribution of :math:`v_j`: ``"normal"``, the skewed ``"two_point"`` mixture or
        the heavy-tailed ``"student_t"``.
    two_point_prob
        :math:`q`, the probability of the high point of the two-point mixture, in (0, 1).
    effect_df
        :math:`\\nu`, the degrees of freedom of ``"student_t"`` effects (> 2, so that their
        SD is :math:`\\tau`).
    size_corr
        :math:`\\rho`, the correlation of the effects' deviations with the standardized log
        group size, in [-1, 1]; non-zero only with drawn sizes (``size_cv > 0``).
    modifier
        :math:`\\gamma`, the change in the effect per unit of :math:`w_j`.
    covariate
        Distribution of :math:`w_j`: ``"normal"`` (standard normal) or ``"binary"`` (0/1
        with probability 1/2).
    sd_group, sd_unit
        :math:`\\sigma_u` (SD of the group baselines) and :math:`\\sigma` (unit noise).
    beta_x
        Coefficient of the unit-level covariate :math:`x_{ij}` (0: ``x`` is pure noise;
        otherwise adjusting for it sharpens every estimate).
    seed
        Seed or numpy Generator; the same seed gives the same data.

    Returns
    -------
    data : pandas.DataFrame
        One row per unit, columns ``group`` (1..J), ``unit`` (1..n_j within the group),
        ``w`` (group-level covariate, constant within a group), ``x`` (unit covariate),
        ``treated`` (0/1, ``int64``) and ``y`` (outcome).
    truth : dict
        ``ate`` (:math:`\\mu`), ``tau`` (:math:`\\tau`), ``tau_total`` (SD of
        :math:`\\tau_j` in the superpopulation, :math:`\\sqrt{\\tau^2 + \\gamma^2
        \\mathrm{Var}(w)}`), ``modifier``, ``effect_dist``, ``covariate``,
        ``two_point_prob``, ``effect_df``, ``size_corr``, ``sd_group``, ``sd_unit``,
        ``beta_x``, ``treated_share``
        (plain floats or strings); ``effects`` (Series of the drawn :math:`\\tau_j`
        indexed by group: the group CATEs), ``mean_effect`` (their unweighted mean, the
        average effect over this sample's groups), ``sample_ate`` (their mean weighted by
        group size, the average effect over this sample's units) and ``group_sizes``
        (Series of :math:`n_j`).

    Examples
    --------
    >>> data, truth = simulate_experiment(n_groups=4, group_size=6, tau=0.0, seed=1)
    >>> data.shape, data.columns.tolist()
    ((24, 6), ['group', 'unit', 'w', 'x', 'treated', 'y'])
    >>> data.groupby("group")["treated"].sum().tolist()
    [3, 3, 3, 3]
    >>> truth["effects"].tolist()
    [0.3, 0.3, 0.3, 0.3]
    """
    check_int("n_groups", n_groups, least=2)
    sizes_given = not isinstance(group_size, int | np.integer) or isinstance(group_size, bool)
    if sizes_given:
        sizes = _given_sizes(group_size, n_groups)
        if size_cv:
            raise ArgumentError(
                "size_cv draws the group sizes, so it needs an integer group_size (the mean "
                f"size); got a sequence of sizes and size_cv={size_cv!r}."
            )
    else:
        check_int("group_size", group_size, least=2)
    for name, value in (
        ("size_cv", size_cv),
        ("tau", tau),
        ("sd_group", sd_group),
        ("sd_unit", sd_unit),
    ):
        if not np.isfinite(value) or value < 0:
            raise ArgumentError(f"{name} must be a finite number >= 0, got {value!r}.")
    for name, value in (("ate", ate), ("modifier", modifier), ("beta_x", beta_x)):
        if not np.isfinite(value):
            raise ArgumentError(f"{name} must be a finite number, got {value!r}.")
    for name, value in (("treated_share", treated_share), ("two_point_prob", two_point_prob)):
        if not 0 < value < 1:
            raise ArgumentError(f"{name} must lie strictly between 0 and 1, got {value!r}.")
    if not (np.isfinite(effect_df) and effect_df > 2):
        raise ArgumentError(f"effect_df must be a finite number > 2, got {effect_df!r}.")
    if not (np.isfinite(size_corr) and -1 <= size_corr <= 1):
        raise ArgumentError(f"size_corr must lie in [-1, 1], got {size_corr!r}.")
    if size_corr and not (size_cv > 0 and not sizes_given):
        raise ArgumentError(
            "size_corr correlates the effects with drawn group sizes, so it needs an integer "
            f"group_size and size_cv > 0; got size_cv={size_cv!r}."
        )
    if effect_dist not in _EFFECT_DISTS:
        raise ArgumentError(f"effect_dist must be one of {_EFFECT_DISTS}, got {effect_dist!r}.")
    if covariate not in _COVARIATES:
        raise ArgumentError(f"covariate must be one of {tuple(_COVARIATES)}, got {covariate!r}.")

    rng = np.random.default_rng(seed)
    if not sizes_given:
        if size_cv > 0:
            shape = 1.0 / size_cv**2
            draws = rng.gamma(shape, 1.0 / shape, n_groups)
            sizes = np.maximum(2, np.floor(group_size * draws + 0.5)).astype(np.int64)
        else:
            sizes = np.full(n_groups, int(group_size), dtype=np.int64)

    if covariate == "normal":
        w = rng.normal(0.0, 1.0, n_groups)
    else:
        w = rng.binomial(1, 0.5, n_groups).astype(float)
    if effect_dist == "normal":
        e = rng.normal(0.0, 1.0, n_groups)
    elif effect_dist == "two_point":
        q = two_point_prob
        high = rng.random(n_groups) < q
        e = np.where(high, np.sqrt((1 - q) / q), -np.sqrt(q / (1 - q)))
    else:
        e = rng.standard_t(effect_df, n_groups) * np.sqrt((effect_df - 2) / effect_df)
    if size_corr:
        shape = 1.0 / size_cv**2
        z = (np.log(draws) - (special.digamma(shape) - np.log(shape))) / np.sqrt(
            special.polygamma(1, shape)
        )
        e = size_corr * z + np.sqrt(1 - size_corr**2) * e
    v = tau * e
    effects = ate + modifier * (w - _COVARIATES[covariate]) + v
    baselines = rng.normal(0.0, sd_group, n_groups)

    g = np.repeat(np.arange(n_groups), sizes)
    treated = np.zeros(g.size, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for start, size in zip(starts, sizes, strict=True):
        m = min(max(int(np.floor(treated_share * size + 0.5)), 1), int(size) - 1)
        treated[start + rng.choice(size, size=m, replace=False)] = 1
    x = rng.normal(0.0, 1.0, g.size)
    y = baselines[g] + beta_x * x + effects[g] * treated + rng.normal(0.0, sd_unit, g.size)

    labels = np.arange(1, n_groups + 1)
    data = pd.DataFrame(
        {
            "group": labels[g],
            "unit": np.concatenate([np.arange(1, n + 1) for n in sizes]),
            "w": w[g],
            "x": x,
            "treated": treated,
            "y": y,
        }
    )
    index = pd.Index(labels, name="group")
    truth: dict[str, Any] = {
        "ate": float(ate),
        "tau": float(tau),
        "tau_total": float(np.sqrt(tau**2 + modifier**2 * _COVARIATE_VAR[covariate])),
        "modifier": float(modifier),
        "effect_dist": effect_dist,
        "covariate": covariate,
        "two_point_prob": float(two_point_prob),
        "effect_df": float(effect_df),
        "size_corr": float(size_corr),
        "sd_group": float(sd_group),
        "sd_unit": float(sd_unit),
        "beta_x": float(beta_x),
        "treated_share": float(treated_share),
        "effects": pd.Series(effects, index=index, name="effect"),
        "mean_effect": float(effects.mean()),
        "sample_ate": float(np.average(effects, weights=sizes)),
        "group_sizes": pd.Series(sizes, index=index, name="n"),
    }
    return data, truth


def _given_sizes(group_size: object, n_groups: int) -> np.ndarray:
    sizes = np.asarray(group_size)
    if sizes.ndim != 1 or len(sizes) != n_groups:
        raise ArgumentError(
            f"group_size must be one integer or a sequence of n_groups={n_groups} integers; "
            f"got {group_size!r}."
        )
    if not np.issubdtype(sizes.dtype, np.integer) or (sizes < 2).any():
        raise ArgumentError(
            "every group size must be an integer >= 2 (a group needs a treated and a control "
            f"unit); got {sizes.tolist()}."
        )
    return sizes.astype(np.int64)
