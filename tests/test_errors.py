"""Every deliberate error of mlmci's public API derives from MlmciError.

Each case calls a public function with one bad input and checks the class: an
``MlmciError`` subclass (so ``except mlmci.MlmciError`` catches them all) that is
also a ``ValueError`` or ``TypeError`` (so plain Python conventions keep working).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlmci import MlmciError, bayes, effects, meta, mixed, montecarlo, pooling, results
from mlmci.engines import OLS, REML
from mlmci.simulate import simulate_classroom, simulate_experiment

FRAME = pd.DataFrame({"g": np.repeat(np.arange(5), 4), "y": np.arange(20.0), "x": 1.0})
EXPERIMENT, _ = simulate_experiment(n_groups=4, group_size=8, seed=1)

CASES = {
    "mixed: not a DataFrame": lambda: mixed.fit("y ~ 1 + (1 | g)", {"y": [1.0]}),
    "mixed: missing column": lambda: mixed.fit("y ~ z + (1 | g)", FRAME),
    "mixed: no random part": lambda: mixed.fit("y ~ x", FRAME),
    "mixed: bad family": lambda: mixed.fit("y ~ 1 + (1 | g)", FRAME, family="poisson"),
    "effects: unknown method": lambda: effects.fit(
        EXPERIMENT, "y", "treated", "group", method="pooled"
    ),
    "effects: senseless engine": lambda: effects.fit(
        EXPERIMENT, "y", "treated", "group", method="no_pooling", engine=REML()
    ),
    "effects: bad cov_type": lambda: effects.fit(
        EXPERIMENT, "y", "treated", "group", method="no_pooling", engine=OLS(cov_type="x")
    ),
    "effects: bad prob": lambda: effects.fit(
        EXPERIMENT, "y", "treated", "group", method="no_pooling", prob=1.5
    ),
    "pooling: missing column": lambda: pooling.compare(FRAME, "nope", "g"),
    "meta: two sites": lambda: meta.fit([1.0, 2.0], [0.1, 0.1]),
    "montecarlo: no replications": lambda: montecarlo.run(lambda rng: None, [{}], reps=0, seed=1),
    "montecarlo: unknown metric": lambda: montecarlo.compare(
        pd.DataFrame(), "a", "b", metric="power"
    ),
    "results: bad prob label": lambda: results.interval_label(2.0, "CI"),
    "bayes: bad backend": lambda: bayes.SamplerSettings(backend="stan"),
    "bayes: bad sampler type": lambda: bayes.fit("y ~ x", FRAME, sampler=3.5),
    "simulate: bad dgp": lambda: simulate_classroom(dgp="other", seed=1),
    "simulate: bad size": lambda: simulate_experiment(n_groups=0, seed=1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_deliberate_errors_derive_from_mlmci_error(case: str) -> None:
    with pytest.raises(MlmciError) as info:
        CASES[case]()
    assert isinstance(info.value, ValueError | TypeError)
    assert str(info.value)  # a message that says what is wrong
