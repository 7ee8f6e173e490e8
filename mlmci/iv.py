"""Instrumental variables, with and without hierarchical terms.

:func:`fit` estimates the effect of an endogenous treatment with ``method``
naming the estimator: OLS (the biased baseline), 2SLS and LIML (linearmodels),
with site fixed effects and with the instrument interacted with every site
(many instruments); the ratio of random-intercept reduced form and first stage,
without and with the site mean of the instrument (Mundlak); site-by-site Wald
ratios; and the bivariate random-effects model of the site ITT and first-stage
effects (REML, or Bayesian with ``engine=Bayes(...)``). The implementation
lives in ``mlmci.designs.iv``; the numpy fast path for Monte Carlo studies in
``mlmci.designs.iv.fast``.

Examples
--------
>>> from mlmci import iv
>>> from mlmci.simulate import simulate_multisite_iv
>>> data, truth = simulate_multisite_iv(n_sites=20, n_per_site=200, seed=1)
>>> res = iv.fit(data, "y", treatment="d", instrument="z", site="site", method="multisite_re")
>>> res.effect()["term"], len(res.sites)
('d', 20)
"""

from mlmci.designs.iv import METHODS, WEAK_F, IVResult, WeakInstrumentWarning, fit

__all__ = ["METHODS", "WEAK_F", "IVResult", "WeakInstrumentWarning", "fit"]
