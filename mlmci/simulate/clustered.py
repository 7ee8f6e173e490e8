r"""Students in schools: a treatment confounded by an unobserved school-level variable.

For the propensity-score weighting chapter. Unit :math:`i` of cluster :math:`j`
(:math:`j = 1..J`, :math:`i = 1..n_j`) has two observed covariates, a treatment
:math:`D_{ij}` and an outcome :math:`Y_{ij}`; the cluster has an *unobserved*
confounder :math:`u_j` that raises both the chance of treatment and the outcome, and
also modifies the effect. With all draws independent,

.. math::

    u_j &\sim N(0, 1), \\
    x_{1ij} &= r\, u_j + \sqrt{1 - r^2}\, e_{ij}, \qquad e_{ij} \sim N(0, 1), \\
    x_{2ij} &\sim \operatorname{Bernoulli}(0.5), \\
    \operatorname{logit} e_{ij} &= s\,\{0.8\, x_{1ij} - 0.5\,(x_{2ij} - 0.5)
        + \gamma\, u_j\}, \qquad D_{ij} \sim \operatorname{Bernoulli}(e_{ij}), \\
    Y_{ij}(0) &= x_{1ij} + 0.5\, x_{2ij} + \lambda\, u_j + \varepsilon_{ij},
        \qquad \varepsilon_{ij} \sim N(0, 1), \\
    \tau_{ij} &= \beta + \beta_x\, x_{1ij} + \beta_u\, u_j, \qquad
    Y_{ij}(1) = Y_{ij}(0) + \tau_{ij}, \qquad Y_{ij} = Y_{ij}(0) + D_{ij}\,\tau_{ij}.

The symbols are the arguments ``x_confounder_corr`` (:math:`r`), ``overlap``
(:math:`s`), ``confounding`` (:math:`\gamma`), ``outcome_u`` (:math:`\lambda`),
``effect`` (:math:`\beta`), ``effect_x`` (:math:`\beta_x`) and ``effect_u``
(:math:`\beta_u`). Cluster sizes :math:`n_j` are fixed or drawn uniformly from the
integers :math:`lo..hi`, so tiny and large clusters can be mixed.

**Why estimators disagree.** :math:`x_1` has variance 1 and correlation :math:`r`
with :math:`u_j`; its cluster mean :math:`\bar x_{1j}` has correlation
:math:`r / \sqrt{r^2 + (1 - r^2)/n_j}` with :math:`u_j`, so it carries information on
the unobserved confounder, more in larger clusters: that is what a Mundlak term (the
cluster mean of :math:`x_1` in the propensity or outcome model) picks up. A
propensity model on :math:`x_1, x_2` alone leaves :math:`u_j` out, and with
:math:`\gamma \ne 0` and :math:`\lambda \ne 0` weighting by it is biased; cluster
fixed effects, or a cluster random intercept with the cluster means, remove (all or
part of) the bias. With :math:`\gamma = 0`, :math:`D` is unconfounded given
:math:`x_1, x_2` (though still not randomized: :math:`x_1` and :math:`x_2` drive both
:math:`D` and :math:`Y(0)`); with :math:`s = 0` every :math:`e_{ij} = 0.5` and
:math:`D` is a fair coin. A larger :math:`s` scales the whole index, pushing the
propensities towards 0 and 1 (poorer overlap, more extreme weights).

**Estimands.** Since :math:`E[x_1] = E[u] = 0`, the population ATE is :math:`\beta`.
Treatment and :math:`\tau` both increase in :math:`u_j` and :math:`x_{1ij}`, so the ATT
exceeds the ATE (and the ATC falls short of it) whenever ``confounding``,
``effect_u`` and ``effect_x`` are positive (with ``overlap > 0`` and
``x_confounder_corr >= 0``): in the population exactly, in a sample up to sampling
error. The sample averages reported in ``truth`` weight units equally (``ate``,
``att``, ``atc``) or clusters equally (``cluster_ate``); with unequal cluster sizes
and effects that vary with :math:`u_j` the two differ.

**Common random numbers.** :math:`u_j` is drawn first, then the sizes (only when a
range is given), then the unit draws :math:`e_{ij}`, :math:`x_{2ij}`, uniforms
:math:`V_{ij}` (:math:`D_{ij} = 1\{V_{ij} < e_{ij}\}`) and :math:`\varepsilon_{ij}`.
So under one seed :math:`u_j` does not change with ``cluster_size``, and, with the
same sizes, the covariates and :math:`Y(0)` do not change with ``confounding``,
``overlap`` or the effect arguments: designs differing in one option can be compared
on common random numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from mlmci.errors import ArgumentError
from mlmci.simulate.arguments import check_int, finite

__all__ = ["simulate_clustered_treatment"]


def simulate_clustered_treatment(
    n_clusters: int = 100,
    cluster_size: int | tuple[int, int] = 20,
    *,
    confounding: float = 1.0,
    overlap: float = 1.0,
    x_confounder_corr: float = 0.5,
    effect: float = 1.0,
    effect_x: float = 0.5,
    effect_u: float = 0.5,
    outcome_u: float = 1.0,
    seed: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate a treatment confounded by an unobserved cluster variable; return ``(data, truth)``.

    Parameters
    ----------
    n_clusters
        Number of clusters :math:`J` (at least 2).
    cluster_size
        Units per cluster: an integer (every :math:`n_j` equal, at least 2) or a pair
        ``(lo, hi)`` with ``2 <= lo <= hi``, each :math:`n_j` drawn uniformly from the
        integers ``lo..hi`` inclusive.
    confounding
        :math:`\\gamma`, the coefficient of the unobserved :math:`u_j` in the propensity
        index (0: no unobserved confounding of the treatment).
    overlap
        :math:`s \\ge 0`, the scale of the whole propensity index: larger values push
        the propensities towards 0 and 1 (poorer overlap); 0 makes every propensity 0.5.
    x_confounder_corr
        :math:`r`, the correlation of :math:`x_1` with :math:`u_j`, with :math:`|r| < 1`.
    effect
        :math:`\\beta`, the population average treatment effect.
    effect_x, effect_u
        :math:`\\beta_x, \\beta_u`, how the unit effect :math:`\\tau_{ij}` changes with
        :math:`x_{1ij}` and with :math:`u_j`.
    outcome_u
        :math:`\\lambda`, the coefficient of :math:`u_j` in :math:`Y(0)`.
    seed
        Seed for :func:`numpy.random.default_rng`; the same seed gives the same data.

    Returns
    -------
    data : pandas.DataFrame
        One row per unit, sorted by cluster: ``cluster`` (0..J-1), ``x1`` (float),
        ``x2`` (0/1), ``d`` (treatment, 0/1) and ``y`` (float); the integer columns
        are ``int64``. :math:`u_j` is unobserved, so it is in ``truth``, not here.
    truth : dict
        Floats ``ate`` (the mean of :math:`\\tau_{ij}` over all units), ``att`` and
        ``atc`` (its mean over the treated and over the controls; NaN if there are
        none), ``cluster_ate`` (the mean over clusters of the cluster's mean
        :math:`\\tau_{ij}`) and ``ate_population`` (:math:`\\beta`); numpy arrays
        ``propensity`` (:math:`e_{ij}`) and ``tau`` (:math:`\\tau_{ij}`), aligned with
        the rows of ``data``, ``u`` (:math:`u_j`, length :math:`J`) and
        ``cluster_size`` (:math:`n_j`, ``int64``); and ``params``, every argument.

    Examples
    --------
    >>> data, truth = simulate_clustered_treatment(4, (2, 6), seed=1)
    >>> data.columns.tolist()
    ['cluster', 'x1', 'x2', 'd', 'y']
    >>> len(data) == int(truth["cluster_size"].sum()), len(truth["u"])
    (True, 4)
    >>> data.groupby("cluster").size().tolist() == truth["cluster_size"].tolist()
    True
    >>> bool(np.isclose(truth["att"], truth["tau"][data["d"] == 1].mean()))
    True
    >>> _, truth = simulate_clustered_treatment(3, 5, effect_x=0.0, effect_u=0.0, seed=1)
    >>> truth["ate"], truth["att"], truth["ate_population"]
    (1.0, 1.0, 1.0)
    """
    check_int("n_clusters", n_clusters, least=2)
    if isinstance(cluster_size, tuple | list):
        if len(cluster_size) != 2:
            raise ArgumentError(
                f"cluster_size must be an integer or a pair (lo, hi), got {cluster_size!r}."
            )
        lo, hi = cluster_size
        check_int("cluster_size lo", lo, least=2)
        check_int("cluster_size hi", hi, least=2)
        if lo > hi:
            raise ArgumentError(
                f"cluster_size (lo, hi) needs lo <= hi, got {tuple(cluster_size)!r}."
            )
        size_param: int | tuple[int, int] = (int(lo), int(hi))
    else:
        check_int("cluster_size", cluster_size, least=2)
        size_param = int(cluster_size)
    for name, value in (
        ("confounding", confounding),
        ("effect", effect),
        ("effect_x", effect_x),
        ("effect_u", effect_u),
        ("outcome_u", outcome_u),
    ):
        if not finite(value):
            raise ArgumentError(f"{name} must be a finite number, got {value!r}.")
    if not (finite(overlap) and overlap >= 0):
        raise ArgumentError(f"overlap must be a finite number >= 0, got {overlap!r}.")
    if not (finite(x_confounder_corr) and abs(x_confounder_corr) < 1):
        raise ArgumentError(
            f"x_confounder_corr must lie strictly between -1 and 1, got {x_confounder_corr!r}."
        )

    rng = np.random.default_rng(seed)
    n_clusters = int(n_clusters)
    u = rng.standard_normal(n_clusters)
    if isinstance(size_param, tuple):
        sizes = rng.integers(size_param[0], size_param[1] + 1, size=n_clusters, dtype=np.int64)
    else:
        sizes = np.full(n_clusters, size_param, dtype=np.int64)
    cluster = np.repeat(np.arange(n_clusters, dtype=np.int64), sizes)
    n = cluster.size
    e = rng.standard_normal(n)
    x2 = rng.integers(0, 2, size=n, dtype=np.int64)
    v = rng.random(n)
    eps = rng.standard_normal(n)

    r = float(x_confounder_corr)
    uc = u[cluster]
    x1 = r * uc + np.sqrt(1.0 - r**2) * e
    index = overlap * (0.8 * x1 - 0.5 * (x2 - 0.5) + confounding * uc)
    propensity = special.expit(index)
    d = (v < propensity).astype(np.int64)
    y0 = 1.0 * x1 + 0.5 * x2 + outcome_u * uc + eps
    tau = effect + effect_x * x1 + effect_u * uc
    y = y0 + d * tau

    data = pd.DataFrame({"cluster": cluster, "x1": x1, "x2": x2, "d": d, "y": y})
    treated = d == 1
    cluster_mean_tau = np.bincount(cluster, weights=tau, minlength=n_clusters) / sizes
    params = {
        "n_clusters": n_clusters,
        "cluster_size": size_param,
        "confounding": float(confounding),
        "overlap": float(overlap),
        "x_confounder_corr": r,
        "effect": float(effect),
        "effect_x": float(effect_x),
        "effect_u": float(effect_u),
        "outcome_u": float(outcome_u),
        "seed": seed,
    }
    truth: dict[str, Any] = {
        "ate": float(tau.mean()),
        "att": float(tau[treated].mean()) if treated.any() else float("nan"),
        "atc": float(tau[~treated].mean()) if (~treated).any() else float("nan"),
        "ate_population": float(effect),
        "cluster_ate": float(cluster_mean_tau.mean()),
        "propensity": propensity,
        "tau": tau,
        "u": u,
        "cluster_size": sizes,
        "params": params,
    }
    return data, truth
