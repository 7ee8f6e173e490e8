"""Book-wide defaults, in one place.

Every interval in mlmci is asked for with ``prob`` (as bambi and arviz name it).
A frequentist interval defaults to :data:`CI_PROB`, a Bayesian one (a highest
density interval) to :data:`HDI_PROB`; ``tests/test_config.py`` pins both.

Examples
--------
>>> from mlmci import config
>>> config.CI_PROB, config.HDI_PROB
(0.95, 0.94)
>>> config.default_prob(bayesian=True)
0.94
"""

from __future__ import annotations

#: Default probability of a confidence (or prediction) interval.
CI_PROB: float = 0.95
#: Default probability of a highest density interval (arviz's default).
HDI_PROB: float = 0.94


def default_prob(*, bayesian: bool) -> float:
    """The default interval probability for a Bayesian or a frequentist result.

    Examples
    --------
    >>> default_prob(bayesian=False), default_prob(bayesian=True)
    (0.95, 0.94)
    """
    return HDI_PROB if bayesian else CI_PROB
