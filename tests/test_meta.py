"""Tests of mlmci.meta: REML between-site variance, empirical Bayes, aggregation, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlmci import meta
from mlmci.errors import DataError
from mlmci.meta import _TAU_TOL as TAU_TOL
from mlmci.results import TIDY_COLUMNS


def _draw(k: int, seed: int, *, tau: float = 0.3, correlated: bool = False):
    rng = np.random.default_rng(seed)
    if correlated:
        a = rng.normal(size=(k, k))
        cov = 0.05 * (a @ a.T / k + np.eye(k))
    else:
        cov = np.diag(rng.uniform(0.01, 0.2, k))
    est = 0.5 + rng.normal(0, tau, k) + rng.multivariate_normal(np.zeros(k), cov)
    return est, cov


@settings(max_examples=25, deadline=None)
@given(k=st.integers(3, 25), seed=st.integers(0, 10_000), s=st.floats(0.01, 2.0))
@example(k=6, seed=5384, s=0.8671875)  # a flat criterion: tau^2 known to 1.8e-8 only
def test_equal_variances_give_the_closed_form_reml(k: int, seed: int, s: float) -> None:
    # With equal sampling variances s and an intercept, REML's tau^2 is max(0, var(est) - s).
    est = np.random.default_rng(seed).normal(0, 1, k)
    res = meta.fit(est, np.full(k, s))
    expected = max(0.0, float(np.var(est, ddof=1)) - s)
    # The rule that decides the precision: a bounded Brent search on a criterion that is
    # flat in tau^2 when s dominates fixes tau^2 only to about sqrt(machine epsilon) times
    # the problem's scale (seen: 1.8e-8 absolute with tau^2 = 0.011, s = 0.87, k = 6), and
    # the boundary rule sets tau^2 below _TAU_TOL * s to zero.
    scale = float(np.var(est, ddof=1)) + s
    assert res.tau2 == pytest.approx(expected, rel=1e-6, abs=max(1e-7 * scale, TAU_TOL * s))
    assert res.effect()["estimate"] == pytest.approx(est.mean())


def test_prediction_covariance_solves_hendersons_equations() -> None:
    est, cov = _draw(8, 3, correlated=True)
    x = pd.DataFrame({"mean": np.ones(8), "z": np.linspace(-1, 1, 8)})
    res = meta.fit(est, cov, design=x)
    # Henderson's mixed model equations with R = S, G = tau^2 I, Z = I, solved densely.
    s_inv = np.linalg.inv(cov)
    xm = x.to_numpy()
    lhs = np.block([[xm.T @ s_inv @ xm, xm.T @ s_inv], [s_inv @ xm, s_inv + np.eye(8) / res.tau2]])
    sol = np.linalg.solve(lhs, np.concatenate([xm.T @ s_inv @ est, s_inv @ est]))
    c_inv = np.linalg.inv(lhs)
    lift = np.hstack([xm, np.eye(8)])
    np.testing.assert_allclose(res.shrunken, lift @ sol, rtol=1e-8)
    np.testing.assert_allclose(res.prediction_cov, lift @ c_inv @ lift.T, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(res.beta, sol[:2], rtol=1e-8)


def test_shrunken_estimates_lie_between_raw_and_mean() -> None:
    est, cov = _draw(12, 5)
    res = meta.fit(est, np.diag(cov))
    mean = res.effect()["estimate"]
    lo, hi = np.minimum(est, mean), np.maximum(est, mean)
    assert ((res.shrunken >= lo - 1e-12) & (res.shrunken <= hi + 1e-12)).all()
    sites = res.tidy().dropna(subset=["group"])
    expected = np.diag(cov) / (np.diag(cov) + res.tau2)
    np.testing.assert_allclose(sites["shrinkage"], expected)
    np.testing.assert_allclose(
        sites["estimate"],
        mean + (1 - expected) * (est - mean),
        rtol=1e-8,
    )


def test_a_diagonal_covariance_equals_the_variances() -> None:
    est, cov = _draw(10, 7)
    a, b = meta.fit(est, cov), meta.fit(est, np.diag(cov))
    assert a.tau2 == pytest.approx(b.tau2)
    np.testing.assert_allclose(a.shrunken, b.shrunken)


def test_no_spread_pools_fully_and_says_so() -> None:
    res = meta.fit([1.0, 1.0, 1.0, 1.0], [0.1, 0.2, 0.3, 0.4])
    assert res.tau2 == 0.0
    np.testing.assert_allclose(res.shrunken, 1.0)
    assert "zero" in res.notes[0] and "zero" in res.summary()


def test_aggregate_rebuilds_a_design_weighted_average() -> None:
    est, cov = _draw(6, 11, correlated=True)
    res = meta.fit(pd.Series(est, index=list("abcdef")), cov)
    w = pd.Series([1, 2, 3, 0, 0, 4], index=list("fedcba"))
    agg = res.aggregate(w)
    wv = w.reindex(list("abcdef")).to_numpy() / w.sum()
    assert agg["estimate"] == pytest.approx(wv @ res.shrunken)
    assert agg["std_error"] == pytest.approx(np.sqrt(wv @ res.prediction_cov @ wv))
    with pytest.raises(DataError, match="lack"):
        res.aggregate(pd.Series([1.0], index=["a"]))
    with pytest.raises(DataError, match="6 finite"):
        res.aggregate([1, 2])


def test_protocol() -> None:
    est, cov = _draw(5, 2)
    res = meta.fit(est, np.diag(cov), labels=["s1", "s2", "s3", "s4", "s5"])
    table = res.tidy(prob=0.9)
    assert list(table.columns[:8]) == [*TIDY_COLUMNS[:2], "group", *TIDY_COLUMNS[2:]]
    assert table["group"].dropna().tolist() == ["s1", "s2", "s3", "s4", "s5"]
    assert res.effect()["term"] == "mean"
    assert res.summary().startswith("Random-effects meta-analysis")
    assert "<table" in res._repr_html_()


@pytest.mark.parametrize(
    ("estimates", "sampling", "match"),
    [
        ([1.0, 2.0], [0.1, 0.1], "three sites"),
        ([1.0, np.nan, 2.0], [0.1, 0.1, 0.1], "not finite"),
        ([1.0, 2.0, 3.0], [0.1, 0.0, 0.1], "positive"),
        ([1.0, 2.0, 3.0], [0.1, 0.1], "3 estimates"),
        ([1.0, 2.0, 3.0], -np.eye(3), "positive definite"),
        ([1.0, 2.0, 3.0], np.ones((2, 2)), "3 x 3"),
    ],
)
def test_bad_input(estimates, sampling, match) -> None:
    with pytest.raises(DataError, match=match):
        meta.fit(estimates, sampling)
