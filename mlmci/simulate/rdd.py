r"""A multi-site sharp regression discontinuity with known site jumps.

Site :math:`j = 1..J` has :math:`n_j` units with a running variable uniform on
:math:`(-1, 1)`, drawn *stratified* (one draw in each of :math:`n_j` equal bins, so
every site has units on both sides near the cutoff: about :math:`n_j h / 2` within
bandwidth :math:`h` on each side), and a common cutoff at 0
(:math:`D_{ij} = 1\{x_{ij} \ge 0\}`).
The outcome is

.. math::

    y_{ij} = \alpha_j + \beta_j x_{ij} + D_{ij}(\tau_j + \delta_j x_{ij} + \kappa x_{ij}^2)
             + \varepsilon_{ij},\qquad
    \varepsilon_{ij} \sim N(0, \sigma^2),

with site levels :math:`\alpha_j \sim N(0, \sigma_\alpha^2)`, site slopes
:math:`\beta_j \sim N(\beta, \sigma_\beta^2)` (the same on both sides of the
cutoff unless :math:`\delta_j \sim N(0, \sigma_\delta^2)` changes the slope
above it), a common curvature :math:`\kappa` above the cutoff (which biases a
local-linear jump by about :math:`-\kappa h^2/10` at bandwidth :math:`h`, triangular
kernel) and **site jumps**

.. math::

    \tau_j = \tau + \sigma_\tau z_j + \gamma\,\frac{n_j - \bar n}{\bar n},
    \qquad z_j \sim N(0, 1),

where ``size_slope`` :math:`\gamma` makes the jumps correlated with site size
(then the precision-weighted and size-weighted averages differ from the
site average). Site sizes are :math:`n_j = \max(16, \mathrm{round}(n\,g_j))` with
:math:`g_j` gamma distributed with mean 1 and coefficient of variation ``size_cv``.

``truth`` holds the site jumps (``"jumps"``, a Series indexed by site), their
unweighted mean over these sites (``"site_average"``), the mean of the
distribution they are drawn from (``"mean_jump"`` :math:`= \tau`, the hyper-mean
a random-effects model targets when :math:`\gamma = 0`), the size-weighted
average (``"size_weighted"``), and the parameters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["simulate_rdd"]


def simulate_rdd(
    *,
    n_sites: int = 30,
    n_per_site: int = 60,
    size_cv: float = 0.0,
    jump: float = 1.0,
    jump_sd: float = 0.5,
    size_slope: float = 0.0,
    slope: float = 1.0,
    slope_sd: float = 0.0,
    slope_change_sd: float = 0.0,
    curvature: float = 0.0,
    level_sd: float = 1.0,
    sigma: float = 1.0,
    seed: int | np.random.Generator | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Simulate a multi-site sharp RD with cutoff 0; return ``(data, truth)``.

    Parameters
    ----------
    n_sites
        Number of sites (at least 2).
    n_per_site
        Mean number of units per site (at least 16).
    size_cv
        Coefficient of variation of site sizes (0: every site has ``n_per_site``).
    jump, jump_sd, size_slope
        Mean, SD and size-dependence of the site jumps (module docstring).
    slope, slope_sd, slope_change_sd
        Mean and SD of the site slopes, and SD of each site's change in slope at
        the cutoff.
    curvature
        Common quadratic term :math:`\\kappa x^2` above the cutoff.
    level_sd, sigma
        SD of site levels and of the unit noise.
    seed
        Seed or Generator of every random draw.

    Returns
    -------
    data : pandas.DataFrame
        Columns ``site`` (int), ``x`` (running variable), ``treated`` (0/1), ``y``.
    truth : dict
        ``jumps`` (Series by site), ``site_average``, ``mean_jump``,
        ``size_weighted`` and the parameters as floats.

    Examples
    --------
    >>> data, truth = simulate_rdd(n_sites=5, n_per_site=40, seed=1)
    >>> data.columns.tolist(), len(truth["jumps"])
    (['site', 'x', 'treated', 'y'], 5)
    >>> bool((data["treated"] == (data["x"] >= 0)).all())
    True
    """
    if n_sites < 2 or n_per_site < 16:
        raise ValueError(
            f"need n_sites >= 2 and n_per_site >= 16, got {n_sites!r} and {n_per_site!r}."
        )
    for name, value in [
        ("size_cv", size_cv),
        ("jump_sd", jump_sd),
        ("slope_sd", slope_sd),
        ("slope_change_sd", slope_change_sd),
        ("level_sd", level_sd),
        ("sigma", sigma),
    ]:
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value!r}.")
    rng = np.random.default_rng(seed)
    if size_cv > 0:
        shape = 1.0 / size_cv**2
        factors = rng.gamma(shape, 1.0 / shape, size=n_sites)
    else:
        factors = np.ones(n_sites)
    sizes = np.maximum(16, np.round(n_per_site * factors)).astype(int)
    jumps = jump + jump_sd * rng.normal(size=n_sites)
    jumps = jumps + size_slope * (sizes - sizes.mean()) / sizes.mean()
    levels = level_sd * rng.normal(size=n_sites)
    slopes = slope + slope_sd * rng.normal(size=n_sites)
    changes = slope_change_sd * rng.normal(size=n_sites)
    site = np.repeat(np.arange(n_sites), sizes)
    # Stratified uniform draws: unit k of a site of size n falls in bin k of (-1, 1).
    rank = np.arange(site.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    x = -1.0 + 2.0 * (rank + rng.uniform(size=site.size)) / sizes[site]
    treated = (x >= 0).astype(int)
    y = (
        levels[site]
        + slopes[site] * x
        + treated * (jumps[site] + changes[site] * x + curvature * x**2)
        + sigma * rng.normal(size=site.size)
    )
    data = pd.DataFrame({"site": site, "x": x, "treated": treated, "y": y})
    truth = {
        "jumps": pd.Series(jumps, index=pd.RangeIndex(n_sites, name="site"), name="jump"),
        "site_average": float(jumps.mean()),
        "mean_jump": float(jump),
        "size_weighted": float((sizes * jumps).sum() / sizes.sum()),
        "jump_sd": float(jump_sd),
        "slope_sd": float(slope_sd),
        "sigma": float(sigma),
    }
    return data, truth
