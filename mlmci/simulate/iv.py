r"""A multi-site randomized trial with non-compliance (an IV design) with known site LATEs.

In the style of Raudenbush, Reardon & Nomi (2012): in every site :math:`j = 1..J` an
offer :math:`Z` (the instrument) is randomized, take-up :math:`D` is imperfect, and
both the share of compliers and their effect vary between sites.

Site sizes are :math:`n_j = \max(n_{\min}, \mathrm{round}(n\,g_j))` with :math:`g_j`
gamma distributed with mean 1 and coefficient of variation ``size_cv`` (as in
:func:`~mlmci.simulate.simulate_rdd`). With site draws
:math:`q_j, r_j, w_j, v_j \sim N(0, 1)`, all independent,

.. math::

    p_j &= \operatorname{expit}\{\operatorname{logit}(\pi) + \sigma_p\, q_j\},
    \qquad m_j = \min\{\max[\mathrm{round}(p_j n_j),\, 1],\, n_j - 1\}, \\
    \alpha_j &= \sigma_\alpha\,(\kappa\, q_j + \sqrt{1 - \kappa^2}\, r_j), \\
    \gamma_j &= (1 - a)\,\operatorname{expit}\{\operatorname{logit}[c / (1 - a)]
               + \sigma_\gamma\, w_j\}, \\
    \beta_j &= \beta + \sigma_\beta\,(\rho\, w_j + \sqrt{1 - \rho^2}\, v_j).

Exactly :math:`m_j` of the :math:`n_j` units of site :math:`j`, chosen at random, get
:math:`Z_{ij} = 1` (complete randomization within site; every site has both arms).
Independently of :math:`Z`, each unit is an *always-taker* with probability :math:`a`,
a *complier* with probability :math:`\gamma_j` and a *never-taker* otherwise
(:math:`0 < \gamma_j < 1 - a`); :math:`D_{ij} = Z_{ij}` for compliers, 1 for
always-takers and 0 for never-takers. The outcome is

.. math::

    Y_{ij} = \alpha_j + \lambda\, x_{ij} + b_{ij} D_{ij} + \eta\, s_{ij} + \varepsilon_{ij},
    \qquad b_{ij} = \beta_j + \delta\,1\{\text{not a complier}\} + \sigma_b\, e_{ij},

with a pre-treatment covariate :math:`x_{ij} \sim N(0, 1)`, :math:`s_{ij} = +1` for
always-takers, :math:`-1` for never-takers and 0 for compliers, and
:math:`e_{ij}, \varepsilon_{ij} / \sigma \sim N(0, 1)`. The symbols are the arguments
``assign_share`` (:math:`\pi`), ``assign_share_sd`` (:math:`\sigma_p`), ``level_sd``
(:math:`\sigma_\alpha`), ``level_assign_corr`` (:math:`\kappa`), ``always_taker``
(:math:`a`), ``compliance`` (:math:`c`), ``compliance_sd`` (:math:`\sigma_\gamma`),
``late`` (:math:`\beta`), ``late_sd`` (:math:`\sigma_\beta`),
``compliance_effect_corr`` (:math:`\rho`), ``noncomplier_shift`` (:math:`\delta`),
``effect_sd`` (:math:`\sigma_b`), ``covariate_effect`` (:math:`\lambda`), ``selection``
(:math:`\eta`) and ``noise_sd`` (:math:`\sigma`).

**What is identified.** :math:`Z` is randomized within site and independent of the
type, and always- and never-takers have the same :math:`D`, hence the same
distribution of :math:`Y`, in both arms. So in the site's population the first stage
is :math:`E[D \mid Z{=}1] - E[D \mid Z{=}0] = (a + \gamma_j) - a = \gamma_j` and the
intention-to-treat effect is :math:`E[Y \mid Z{=}1] - E[Y \mid Z{=}0] = \gamma_j\beta_j`
*exactly*: the always- and never-taker terms cancel whatever :math:`\delta` and
:math:`\eta`, and :math:`e_{ij}` has mean zero. Their ratio, the site Wald estimand, is
the site LATE :math:`\beta_j`; the site ATE is :math:`\beta_j + (1 - \gamma_j)\delta`.

**Why estimators disagree.** :math:`\eta > 0` puts high-:math:`Y(0)` always-takers
among the treated and low-:math:`Y(0)` never-takers among the untreated, so OLS of
:math:`Y` on :math:`D` is biased; :math:`Z` is not affected. :math:`\kappa \ne 0`
(with :math:`\sigma_p > 0`) makes the site mean of :math:`Z` correlated with the site
level :math:`\alpha_j`: a random-intercept model without the site mean of :math:`Z`
(Mundlak) or site fixed effects is then biased, site-fixed-effects 2SLS is not.
:math:`\rho \ne 0` is the compliance–effect covariance of Reardon, Unlu, Zhu & Bloom
(2014): sites with more compliers have larger (:math:`\rho > 0`) effects, so
compliance-weighted averages — what 2SLS targets — exceed the site-average LATE.

**Truth** reports the population site parameters :math:`\beta_j, \gamma_j` (not the
realized complier shares or the sample mean of :math:`b_{ij}` over a site's compliers,
which differ from them by sampling error), and these averages of them:

* ``mean_late`` :math:`= J^{-1}\sum_j \beta_j`, the site-average LATE over these sites
  (finite population); ``hyper_mean`` :math:`= \beta = E[\beta_j]`, the mean for a new
  site (super-population);
* ``complier_weighted`` :math:`= \sum_j n_j\gamma_j\beta_j / \sum_j n_j\gamma_j`, the
  LATE over all compliers of these sites (what pooled 2SLS targets when every site has
  the same assignment share and levels are unrelated to assignment);
* ``fe_2sls_weight`` :math:`= \sum_j \omega_j\beta_j / \sum_j \omega_j` with
  :math:`\omega_j = n_j \hat p_j (1 - \hat p_j) \gamma_j`, :math:`\hat p_j = m_j / n_j`:
  the probability limit of site-fixed-effects 2SLS, whose numerator is
  :math:`\sum_j n_j \hat p_j(1-\hat p_j)\,\mathrm{ITT}_j` and denominator
  :math:`\sum_j n_j \hat p_j(1-\hat p_j)\,\gamma_j` (sites weighted by the
  within-site variance of :math:`Z` times their compliance).

Site draws come first, so under one seed :math:`\alpha_j, \gamma_j, \beta_j` (and
:math:`p_j`) do not change with ``size_cv``, ``n_per_site`` or any unit-level option,
and the unit draws do not change with ``effect_sd``, ``selection`` and the like:
designs that differ in one option can be compared on common random numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from mlmci.errors import ArgumentError
from mlmci.simulate.arguments import check_int, finite

__all__ = ["simulate_multisite_iv"]

_TYPES = np.array(["complier", "always", "never"], dtype=object)


def simulate_multisite_iv(
    *,
    n_sites: int = 30,
    n_per_site: int = 100,
    min_site_size: int = 10,
    size_cv: float = 0.0,
    assign_share: float = 0.5,
    assign_share_sd: float = 0.0,
    level_sd: float = 1.0,
    level_assign_corr: float = 0.0,
    always_taker: float = 0.05,
    compliance: float = 0.6,
    compliance_sd: float = 0.5,
    late: float = 0.5,
    late_sd: float = 0.25,
    compliance_effect_corr: float = 0.0,
    noncomplier_shift: float = 0.0,
    effect_sd: float = 0.0,
    covariate_effect: float = 0.5,
    selection: float = 0.5,
    noise_sd: float = 1.0,
    seed: int | np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate a multi-site randomized trial with non-compliance; return ``(data, truth)``.

    Parameters
    ----------
    n_sites
        Number of sites :math:`J` (at least 2).
    n_per_site
        Units per site (the mean size when ``size_cv > 0``), at least ``min_site_size``.
    min_site_size
        Smallest site size :math:`n_{\\min}` (at least 2, so both arms are present).
    size_cv
        Coefficient of variation of the gamma-distributed site sizes (0: equal sizes).
    assign_share, assign_share_sd
        :math:`\\pi`, the typical share assigned :math:`Z = 1`, in (0, 1), and
        :math:`\\sigma_p`, the SD of the site shares on the logit scale (0: the same
        share everywhere).
    level_sd, level_assign_corr
        :math:`\\sigma_\\alpha`, the SD of the site levels, and :math:`\\kappa` in
        [-1, 1], their correlation with the site's logit assignment share (non-zero
        only with ``level_sd > 0`` and ``assign_share_sd > 0``).
    always_taker
        :math:`a`, the probability of an always-taker, in [0, 1).
    compliance, compliance_sd
        :math:`c`, the typical complier share, in (0, 1 - ``always_taker``) (the rest
        are never-takers), and :math:`\\sigma_\\gamma`, the SD of the site complier
        shares on the logit scale of :math:`\\gamma_j / (1 - a)`.
    late, late_sd
        :math:`\\beta = E[\\beta_j]` and :math:`\\sigma_\\beta`, the mean and SD of the
        site complier effects (site LATEs).
    compliance_effect_corr
        :math:`\\rho` in [-1, 1], the correlation of the site LATEs with the logit
        compliance draw :math:`w_j` (non-zero only with ``compliance_sd > 0`` and
        ``late_sd > 0``).
    noncomplier_shift
        :math:`\\delta`, added to the effect of always- and never-takers (so the site
        ATE is :math:`\\beta_j + (1 - \\gamma_j)\\delta`, not :math:`\\beta_j`).
    effect_sd
        :math:`\\sigma_b`, the SD of mean-zero unit-level effect noise (``truth`` keeps
        the population :math:`\\beta_j`).
    covariate_effect
        :math:`\\lambda`, the coefficient of the pre-treatment covariate ``x``.
    selection
        :math:`\\eta`: always-takers have :math:`Y(0)` higher by :math:`\\eta`,
        never-takers lower by :math:`\\eta` (biases OLS of ``y`` on ``d``).
    noise_sd
        :math:`\\sigma`, the SD of the unit noise.
    seed
        Seed or numpy Generator of every random draw (required).

    Returns
    -------
    data : pandas.DataFrame
        One row per unit: ``site`` (1..J), ``unit`` (1..n_j within the site), ``z``
        (assignment, 0/1), ``d`` (treatment received, 0/1) — all ``int64`` — and the
        floats ``x`` (covariate) and ``y`` (outcome). The compliance type is not
        observable, so it is in ``truth``, not here.
    truth : dict
        Series indexed by ``site``: ``site_late`` (:math:`\\beta_j`),
        ``site_first_stage`` (:math:`\\gamma_j`), ``site_itt``
        (:math:`\\gamma_j\\beta_j`) and ``site_ate``
        (:math:`\\beta_j + (1-\\gamma_j)\\delta`); floats ``mean_late``, ``mean_ate``
        (unweighted means over these sites), ``hyper_mean`` (:math:`\\beta`),
        ``complier_weighted``, ``fe_2sls_weight`` (module docstring), ``late_sd`` and
        ``compliance_effect_cov`` (the realized SD of :math:`\\beta_j` and covariance of
        :math:`(\\gamma_j, \\beta_j)` across sites, both with divisor :math:`J - 1`);
        ``params`` (the arguments except ``seed``) and ``types``, a Series aligned
        with the rows of ``data``: ``"complier"``, ``"always"`` or ``"never"``.

    Examples
    --------
    >>> data, truth = simulate_multisite_iv(n_sites=4, n_per_site=20, seed=1)
    >>> data.shape, data.columns.tolist()
    ((80, 6), ['site', 'unit', 'z', 'd', 'x', 'y'])
    >>> data.groupby("site")["z"].sum().tolist()
    [10, 10, 10, 10]
    >>> compliers = truth["types"] == "complier"
    >>> bool((data.loc[compliers, "d"] == data.loc[compliers, "z"]).all())
    True
    >>> bool(np.allclose(truth["site_itt"], truth["site_first_stage"] * truth["site_late"]))
    True
    """
    check_int("n_sites", n_sites, least=2)
    check_int("min_site_size", min_site_size, least=2)
    check_int("n_per_site", n_per_site, least=2)
    if n_per_site < min_site_size:
        raise ArgumentError(
            f"n_per_site must be at least min_site_size={min_site_size}, got {n_per_site!r} "
            "(lower min_site_size for smaller sites)."
        )
    for name, value in (
        ("size_cv", size_cv),
        ("assign_share_sd", assign_share_sd),
        ("level_sd", level_sd),
        ("compliance_sd", compliance_sd),
        ("late_sd", late_sd),
        ("effect_sd", effect_sd),
        ("noise_sd", noise_sd),
    ):
        if not finite(value) or value < 0:
            raise ArgumentError(f"{name} must be a finite number >= 0, got {value!r}.")
    for name, value in (
        ("late", late),
        ("noncomplier_shift", noncomplier_shift),
        ("covariate_effect", covariate_effect),
        ("selection", selection),
    ):
        if not finite(value):
            raise ArgumentError(f"{name} must be a finite number, got {value!r}.")
    if not (finite(assign_share) and 0 < assign_share < 1):
        raise ArgumentError(
            f"assign_share must lie strictly between 0 and 1, got {assign_share!r}."
        )
    if not (finite(always_taker) and 0 <= always_taker < 1):
        raise ArgumentError(f"always_taker must lie in [0, 1), got {always_taker!r}.")
    if not (finite(compliance) and 0 < compliance < 1 - always_taker):
        raise ArgumentError(
            "compliance must lie strictly between 0 and 1 - always_taker = "
            f"{1 - always_taker:g} (the rest of the units are never-takers; an instrument "
            f"needs compliers), got {compliance!r}."
        )
    for name, value in (
        ("level_assign_corr", level_assign_corr),
        ("compliance_effect_corr", compliance_effect_corr),
    ):
        if not (finite(value) and -1 <= value <= 1):
            raise ArgumentError(f"{name} must lie in [-1, 1], got {value!r}.")
    if level_assign_corr and not (level_sd > 0 and assign_share_sd > 0):
        raise ArgumentError(
            "level_assign_corr correlates the site levels with the site assignment shares, so "
            f"it needs level_sd > 0 and assign_share_sd > 0; got level_sd={level_sd!r} and "
            f"assign_share_sd={assign_share_sd!r}."
        )
    if compliance_effect_corr and not (compliance_sd > 0 and late_sd > 0):
        raise ArgumentError(
            "compliance_effect_corr correlates the site LATEs with the site complier shares, "
            f"so it needs compliance_sd > 0 and late_sd > 0; got compliance_sd="
            f"{compliance_sd!r} and late_sd={late_sd!r}."
        )
    if seed is None:
        raise ArgumentError(
            "seed is required (an integer or a numpy Generator), so the data can be reproduced."
        )

    rng = np.random.default_rng(seed)
    # Site draws first (common random numbers across sizes and unit-level options).
    q, r, w, v = rng.standard_normal((4, n_sites))
    if size_cv > 0:
        shape = 1.0 / size_cv**2
        factors = rng.gamma(shape, 1.0 / shape, size=n_sites)
    else:
        factors = np.ones(n_sites)
    sizes = np.maximum(min_site_size, np.round(n_per_site * factors)).astype(np.int64)

    share = special.expit(special.logit(assign_share) + assign_share_sd * q)
    n_assigned = np.clip(np.round(share * sizes), 1, sizes - 1).astype(np.int64)
    kappa, rho, a = level_assign_corr, compliance_effect_corr, always_taker
    levels = level_sd * (kappa * q + np.sqrt(1 - kappa**2) * r)
    first_stage = (1 - a) * special.expit(special.logit(compliance / (1 - a)) + compliance_sd * w)
    lates = late + late_sd * (rho * w + np.sqrt(1 - rho**2) * v)

    n_units = int(sizes.sum())
    site = np.repeat(np.arange(n_sites), sizes)
    starts = np.cumsum(sizes) - sizes
    position = np.arange(n_units) - starts[site]
    keys, u = rng.random((2, n_units))
    x, e, eps = rng.standard_normal((3, n_units))
    # Complete randomization: within each site, the m_j units with the smallest keys get Z=1.
    rank = np.empty(n_units, dtype=np.int64)
    rank[np.lexsort((keys, site))] = position
    z = (rank < n_assigned[site]).astype(np.int64)
    # Type: 0 complier, 1 always-taker, 2 never-taker, independent of Z.
    kind = np.where(u < a, 1, np.where(u < a + first_stage[site], 0, 2))
    d = np.where(kind == 0, z, (kind == 1).astype(np.int64)).astype(np.int64)
    s = np.select([kind == 1, kind == 2], [1.0, -1.0], 0.0)
    effect = lates[site] + noncomplier_shift * (kind != 0) + effect_sd * e
    y = levels[site] + covariate_effect * x + effect * d + selection * s + noise_sd * eps

    labels = np.arange(1, n_sites + 1, dtype=np.int64)
    data = pd.DataFrame(
        {
            "site": labels[site],
            "unit": position + 1,
            "z": z,
            "d": d,
            "x": x,
            "y": y,
        }
    )
    index = pd.Index(labels, name="site")
    p_hat = n_assigned / sizes
    fe_weights = sizes * p_hat * (1 - p_hat) * first_stage
    ates = lates + (1 - first_stage) * noncomplier_shift
    params = {
        "n_sites": int(n_sites),
        "n_per_site": int(n_per_site),
        "min_site_size": int(min_site_size),
        "size_cv": float(size_cv),
        "assign_share": float(assign_share),
        "assign_share_sd": float(assign_share_sd),
        "level_sd": float(level_sd),
        "level_assign_corr": float(level_assign_corr),
        "always_taker": float(always_taker),
        "compliance": float(compliance),
        "compliance_sd": float(compliance_sd),
        "late": float(late),
        "late_sd": float(late_sd),
        "compliance_effect_corr": float(compliance_effect_corr),
        "noncomplier_shift": float(noncomplier_shift),
        "effect_sd": float(effect_sd),
        "covariate_effect": float(covariate_effect),
        "selection": float(selection),
        "noise_sd": float(noise_sd),
    }
    truth: dict[str, Any] = {
        "site_late": pd.Series(lates, index=index, name="late"),
        "site_first_stage": pd.Series(first_stage, index=index, name="first_stage"),
        "site_itt": pd.Series(first_stage * lates, index=index, name="itt"),
        "site_ate": pd.Series(ates, index=index, name="ate"),
        "mean_late": float(lates.mean()),
        "mean_ate": float(ates.mean()),
        "hyper_mean": float(late),
        "complier_weighted": float(np.average(lates, weights=sizes * first_stage)),
        "fe_2sls_weight": float(np.average(lates, weights=fe_weights)),
        "late_sd": float(np.std(lates, ddof=1)),
        "compliance_effect_cov": float(np.cov(first_stage, lates, ddof=1)[0, 1]),
        "params": params,
        "types": pd.Series(_TYPES[kind], index=data.index, name="type"),
    }
    return data, truth
