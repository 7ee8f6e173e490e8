"""The book-wide defaults, pinned: changing one is a decision, not an accident."""

from __future__ import annotations

import inspect

from mlmci import bayes, config, effects, meta, mixed, pooling
from mlmci.engines import OLS, REML, Bayes


def test_interval_defaults() -> None:
    assert (config.CI_PROB, config.HDI_PROB) == (0.95, 0.94)


def test_sampler_and_gate_defaults() -> None:
    s = bayes.SETTINGS
    assert (s.chains, s.draws, s.tune, s.seed, s.backend, s.target_accept) == (
        4,
        1000,
        1000,
        20261125,
        "pymc",
        0.9,
    )
    gate = bayes.GateThresholds()
    assert (gate.rhat_max, gate.ess_min, gate.max_divergences) == (1.01, 400.0, 0)


def test_engine_and_design_defaults() -> None:
    assert OLS().cov_type == "nonrobust"
    assert REML().allow_boundary is False
    assert Bayes().gate is True and Bayes().model_options == {}
    assert mixed.SINGULAR_TOL == 1e-4
    fit = inspect.signature(mixed.fit).parameters
    assert fit["reml"].default is True and fit["allow_boundary"].default is False
    assert fit["family"].default == "gaussian"
    assert inspect.signature(effects.fit).parameters["prob"].default is None
    assert inspect.signature(pooling.compare).parameters["allow_boundary"].default is False
    assert inspect.signature(meta.fit).parameters["design"].default is None
