"""Tests of mlmci.fastpath: the closed-form estimators equal mlmci.panel.compare."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from mlmci.errors import DataError, DataTypeError
from mlmci.fastpath import compare_table
from mlmci.panel import COV_TYPES, IdentificationWarning, compare
from mlmci.results import TIDY_COLUMNS
from mlmci.simulate import simulate_panel

NUMBERS = ["estimate", "std_error", "ci_low", "ci_high"]


def _slow(data, y, x, *, invariant=(), cov_type="clustered", prob=0.95):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentificationWarning)
        cmp = compare(data, y, x, entity="id", time="t", invariant=invariant, cov_type=cov_type)
    return cmp.tidy(prob=prob)


def _assert_same(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    assert fast.columns.tolist() == list(TIDY_COLUMNS)
    assert_frame_equal(
        fast[["estimator", "term", "interval"]].astype(object),
        slow[["estimator", "term", "interval"]].astype(object),
    )
    # Relative 1e-10 (the DESIGN's bar for a Monte Carlo fast path); the tiny
    # absolute floor only matters for a number that is itself ~0, whose
    # relative rounding error is unbounded.
    np.testing.assert_allclose(fast[NUMBERS], slow[NUMBERS], rtol=1e-10, atol=1e-13)


def _panel(rng, n_entities, n_periods, k, n_invariant, sigma_u, unbalanced, scale=1.0):
    n = n_entities * n_periods
    effect = np.repeat(rng.normal(scale=sigma_u, size=n_entities), n_periods)
    data = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n_entities) * 7 + 3, n_periods),
            "t": np.tile(np.arange(n_periods), n_entities),
        }
    )
    zs = [f"z{j}" for j in range(n_invariant)]
    for name in zs:
        data[name] = scale * np.repeat(rng.normal(size=n_entities), n_periods)
    xs = [f"x{j}" for j in range(k)]
    for name in xs:
        data[name] = scale * (rng.normal(size=n) + rng.uniform(-1, 1) * effect)
    noise = rng.normal(size=n) * rng.uniform(0.5, 2.0, size=n)  # heteroskedastic
    data["y"] = data[[*xs, *zs]].sum(axis=1) / scale + effect + noise
    if unbalanced:
        data = data[rng.random(n) > 0.3]
    return data.sample(frac=1.0, random_state=int(rng.integers(2**31))), xs, zs


@settings(max_examples=30, deadline=None)
@given(
    n_entities=st.integers(8, 30),
    n_periods=st.integers(2, 6),
    k=st.integers(1, 3),
    n_invariant=st.integers(0, 2),
    # sigma_u = 0 often puts the RE variance of the effects at its zero bound
    sigma_u=st.sampled_from([0.0, 0.3, 1.0, 3.0]),
    unbalanced=st.booleans(),
    cov_type=st.sampled_from(COV_TYPES),
    prob=st.sampled_from([0.9, 0.95]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_path_equals_compare(
    n_entities, n_periods, k, n_invariant, sigma_u, unbalanced, cov_type, prob, seed
):
    rng = np.random.default_rng(seed)
    data, xs, zs = _panel(rng, n_entities, n_periods, k, n_invariant, sigma_u, unbalanced)
    assume(data["id"].nunique() > 2 + k + n_invariant)  # between regression keeps df
    assume(data["t"].nunique() >= 2 and len(data) > data["id"].nunique() + k + 1)
    # a draw in which an entity-mean design is degenerate is compare's job, not ours
    try:
        fast = compare_table(data, "y", xs, entity="id", invariant=zs, cov_type=cov_type, prob=prob)
    except DataError as exc:
        assume("rank deficient" not in str(exc))
        raise
    _assert_same(fast, _slow(data, "y", xs, invariant=zs, cov_type=cov_type, prob=prob))


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("missing_share", [0.0, 0.3])
def test_fast_path_equals_compare_on_the_chapter_design(cov_type, missing_share):
    data, _ = simulate_panel(
        n_entities=100, n_periods=5, corr=0.6, missing_share=missing_share, seed=7
    )
    data = data.rename(columns={"unit": "id", "period": "t"})
    fast = compare_table(data, "y", "x", entity="id", invariant="z", cov_type=cov_type)
    _assert_same(fast, _slow(data, "y", "x", invariant="z", cov_type=cov_type))


def test_random_effects_at_the_zero_bound_is_pooled_ols():
    # seed 0: the between residuals are too small for any effect variance, so
    # sigma2_u is clipped at 0, theta = 0, and GLS is pooled OLS.
    data, _ = simulate_panel(n_entities=30, n_periods=4, sigma_u=0.0, seed=0)
    data = data.rename(columns={"unit": "id", "period": "t"})
    fast = compare_table(data, "y", "x", entity="id", invariant="z", cov_type="unadjusted")
    _assert_same(fast, _slow(data, "y", "x", invariant="z", cov_type="unadjusted"))
    rows = fast.set_index(["estimator", "term"])
    for term in ["x", "z"]:
        assert rows.loc[("re", term), "estimate"] == pytest.approx(
            rows.loc[("pooled", term), "estimate"], rel=1e-12
        )


def test_large_units_do_not_break_the_equality():
    rng = np.random.default_rng(3)
    data, xs, zs = _panel(rng, 25, 4, 2, 1, 1.0, True, scale=1e4)
    _assert_same(
        compare_table(data, "y", xs, entity="id", invariant=zs),
        _slow(data, "y", xs, invariant=zs),
    )


def test_rows_and_terms():
    data, _ = simulate_panel(n_entities=30, n_periods=4, corr=0.5, seed=1)
    fast = compare_table(data, "y", "x", entity="unit", invariant="z")
    pairs = list(zip(fast.estimator, fast.term, strict=True))
    assert pairs == [
        ("pooled", "x"),
        ("pooled", "z"),
        ("between", "x"),
        ("between", "z"),
        ("re", "x"),
        ("re", "z"),
        ("fe", "x"),
        ("mundlak", "x"),
        ("mundlak", "z"),
        ("mundlak", "x_mean"),
    ]
    assert (fast.interval == "95% CI").all()
    est = fast.set_index(["estimator", "term"]).estimate
    assert est[("fe", "x")] == pytest.approx(est[("mundlak", "x")], abs=1e-12)
    assert est[("fe", "x")] != pytest.approx(est[("pooled", "x")], abs=1e-3)


@pytest.mark.parametrize("terms", [["x", "z"], "x_mean", ["const", "x"]])
def test_terms_select_rows_as_table_does(terms):
    data, _ = simulate_panel(n_entities=30, n_periods=4, corr=0.5, seed=2)
    data = data.rename(columns={"unit": "id", "period": "t"})
    fast = compare_table(data, "y", "x", entity="id", invariant="z", terms=terms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentificationWarning)
        slow = compare(data, "y", "x", entity="id", time="t", invariant="z").tidy(terms=terms)
    _assert_same(fast, slow)


def test_unknown_term(small):
    with pytest.raises(DataError, match="nope"):
        compare_table(small, "y", "x", entity="unit", terms=["x", "nope"])


def test_row_order_does_not_matter_and_input_is_unchanged():
    data, _ = simulate_panel(n_entities=20, n_periods=4, corr=0.3, missing_share=0.2, seed=4)
    before = data.copy()
    first = compare_table(data, "y", "x", entity="unit", invariant="z")
    assert_frame_equal(data, before)
    shuffled = data.sample(frac=1.0, random_state=0)
    again = compare_table(shuffled, "y", "x", entity="unit", invariant="z")
    np.testing.assert_allclose(again[NUMBERS], first[NUMBERS], rtol=1e-10)


# ------------------------------------------------------------------- bad input


@pytest.fixture
def small():
    data, _ = simulate_panel(n_entities=10, n_periods=3, seed=5)
    return data


def test_missing_column(small):
    with pytest.raises(DataError, match="nope"):
        compare_table(small, "y", ["x", "nope"], entity="unit")


def test_missing_value(small):
    small.loc[3, "x"] = np.nan
    with pytest.raises(DataError, match="'x'"):
        compare_table(small, "y", "x", entity="unit")


def test_infinite_value(small):
    small.loc[3, "y"] = np.inf
    with pytest.raises(DataError, match="infinite"):
        compare_table(small, "y", "x", entity="unit")


def test_non_numeric_regressor(small):
    small["s"] = "a"
    with pytest.raises(DataTypeError, match="'s'"):
        compare_table(small, "y", ["x", "s"], entity="unit")


def test_single_entity(small):
    with pytest.raises(DataError, match="at least two"):
        compare_table(small[small.unit == 1], "y", "x", entity="unit")


def test_invariant_that_varies(small):
    with pytest.raises(DataError, match="'x'"):
        compare_table(small, "y", "z", entity="unit", invariant="x")


def test_time_invariant_regressor_in_x_is_refused(small):
    with pytest.raises(DataError, match=r"rank deficient.*mlmci\.panel\.compare"):
        compare_table(small, "y", ["x", "z"], entity="unit")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": []}, "empty"),
        ({"x": ["x", "x"]}, "distinct"),
        ({"x": ["x", "unit"]}, "distinct"),
        ({"x": "x", "cov_type": "hc3"}, "cov_type"),
        ({"x": "x", "prob": 1.5}, "prob"),
    ],
)
def test_bad_specification(small, kwargs, match):
    with pytest.raises((DataError, ValueError), match=match):
        compare_table(small, "y", entity="unit", **kwargs)


def test_too_few_observations_for_the_variance_components():
    data, _ = simulate_panel(n_entities=3, n_periods=2, seed=1)
    data["x2"] = np.random.default_rng(0).normal(size=len(data))
    with pytest.raises(DataError):
        compare_table(data, "y", ["x", "x2"], entity="unit", invariant="z")
