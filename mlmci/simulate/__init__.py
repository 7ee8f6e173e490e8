"""Data-generating processes with known truth.

Each simulator is a function ``simulate_<design>(*, ..., seed)`` that returns
``(data, truth)``: a long :class:`pandas.DataFrame` and a dict of plain floats
holding the true parameter values, keyed by the term names the estimators
report (so ``truth`` can be passed straight to :func:`mlmci.plots.forest`).
Every random draw comes from ``numpy.random.default_rng(seed)``.

Simulators:

- :func:`simulate_panel` — unit effects correlated with a regressor, plus a
  time-invariant covariate (fixed vs random effects, Mundlak);
- :func:`simulate_classroom` — the classroom as a confounder or as an effect
  modifier (regression adjustment vs varying slopes);
- :func:`simulate_experiment` — a multi-group randomized experiment with
  heterogeneous group effects (no, complete and partial pooling of group CATEs);
- :func:`simulate_staggered` — staggered adoption correlated with unit levels,
  with known cohort x period effects (difference-in-differences);
- :func:`simulate_rdd` — a multi-site regression discontinuity with known site
  jumps, slopes and curvature;
- :func:`simulate_multisite_iv` — a multi-site randomized trial with non-compliance
  (assignment as the instrument), with known site LATEs, complier shares and
  compliance–effect covariance (instrumental variables);
- :func:`simulate_clustered_treatment` — a treatment confounded by an unobserved
  cluster-level variable, with known ATE, ATT and cluster-weighted ATE (propensity-score
  weighting with clustered data).
"""

from mlmci.simulate.classroom import simulate_classroom
from mlmci.simulate.clustered import simulate_clustered_treatment
from mlmci.simulate.experiment import simulate_experiment
from mlmci.simulate.iv import simulate_multisite_iv
from mlmci.simulate.panel import simulate_panel
from mlmci.simulate.rdd import simulate_rdd
from mlmci.simulate.staggered import simulate_staggered

__all__ = [
    "simulate_classroom",
    "simulate_clustered_treatment",
    "simulate_experiment",
    "simulate_multisite_iv",
    "simulate_panel",
    "simulate_rdd",
    "simulate_staggered",
]
