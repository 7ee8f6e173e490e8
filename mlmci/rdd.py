"""Sharp regression discontinuity designs, one site or many, with and without pooling.

:func:`fit` estimates the jump of ``E[y | running]`` at the cutoff with ``method``
naming the estimator:

- ``"rdrobust"`` — one local-linear fit on all the data (sites, if given, are
  ignored), through **rdrobust** (Calonico, Cattaneo & Titiunik 2014): the
  MSE-optimal bandwidth, the conventional estimate and SE, and the robust
  bias-corrected interval. Targets the jump averaged over the sites with weights
  proportional to each site's density at the cutoff.
- ``"per_site"`` — one rdrobust fit per site at **one common bandwidth** (the
  pooled rdrobust bandwidths ``h`` and ``b`` unless ``bandwidth`` is given), so
  site jumps are comparable. The headline ``"jump"`` is the unweighted mean of the
  site jumps (the average over *these* sites); ``"jump (N-weighted)"`` weights
  them by the observations inside the bandwidth (rdmulti's "weighted" estimate).
- ``"eb"`` — the per-site conventional estimates and variances combined by a
  REML random-effects meta-analysis (:func:`mlmci.meta.fit`): the headline is the
  hyper-mean (the mean of the distribution of site jumps; a precision-weighted
  estimand), the site rows are the empirical Bayes (shrunken) jumps.
- ``"mlm"`` — one multilevel local-linear model on the observations inside the
  common bandwidth, weighted by the triangular kernel (prior weights),
  ``y ~ D + x + D:x + (1 + D | site)``: varying intercepts and jumps, common
  slopes (REML, :func:`mlmci.mixed.fit`). Pooling the slopes is an assumption:
  sites whose slopes truly differ get biased jumps. The headline is the fixed
  ``D`` coefficient (the hyper-mean), site rows are ``D + b_j`` with Henderson's
  prediction-error SE.
  With ``engine=Bayes(...)`` the same model is sampled in PyMC through the
  convergence gate (:mod:`mlmci.designs.rdd.twin`, the site effects integrated
  out and then drawn from their conditional posterior): posterior means and HDIs,
  the headline ``"jump"``, ``"sd(jump)"`` and one row per site.

Every tidy row holds the conventional estimate; ``ci_low``/``ci_high`` are the
robust bias-corrected interval where rdrobust provides one (``interval`` says
which), the conventional interval is in ``conv_ci_low``/``conv_ci_high``. EB and
MLM intervals are conventional (not bias-corrected), and labelled so.

:func:`density_test` is the manipulation test of Cattaneo, Jansson & Ma (2020) through
**rddensity**. :func:`local_linear` is the numpy closed form of the conventional local-linear
estimate (triangular kernel, HC0/HC1 variance) for many sites at once — the fast
path for Monte Carlo studies, tested equal to rdrobust.

rdrobust, rddensity and rdmulti are GPL-3 licensed.

Examples
--------
>>> from mlmci import rdd
>>> from mlmci.simulate import simulate_rdd
>>> data, truth = simulate_rdd(n_sites=8, n_per_site=200, seed=2)
>>> res = rdd.fit(data, "y", running="x", site="site", method="eb", bandwidth=0.6)
>>> res.effect()["term"], len(res.tidy()) == 1 + 8
('jump', True)
"""

from mlmci.designs.rdd import METHODS, RDResult, density_test, fit, local_linear

__all__ = ["METHODS", "RDResult", "density_test", "fit", "local_linear"]
