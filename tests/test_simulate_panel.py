"""Tests of mlmci.simulate.simulate_panel."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlmci.errors import DataError
from mlmci.panel import compare
from mlmci.simulate import simulate_panel


def test_shape_columns_and_truth():
    data, truth = simulate_panel(
        n_entities=7, n_periods=4, beta_within=2.0, gamma=-1.0, intercept=3.0, seed=1
    )
    assert data.columns.tolist() == ["unit", "period", "y", "x", "z"]
    assert len(data) == 28
    assert data.groupby("unit").size().eq(4).all()
    assert sorted(data.period.unique()) == [1, 2, 3, 4]
    assert not data.duplicated(["unit", "period"]).any()
    assert data.groupby("unit")["z"].nunique().eq(1).all()
    assert truth == {
        "x": 2.0,
        "z": -1.0,
        "const": 3.0,
        "corr": 0.0,
        "sigma_u": 1.0,
        "sigma_e": 1.0,
    }
    assert all(type(v) is float for v in truth.values())


def test_same_seed_same_data_and_different_seed_different_data():
    a, _ = simulate_panel(n_entities=5, n_periods=3, corr=0.3, seed=42)
    b, _ = simulate_panel(n_entities=5, n_periods=3, corr=0.3, seed=42)
    c, _ = simulate_panel(n_entities=5, n_periods=3, corr=0.3, seed=43)
    assert_frame_equal(a, b)
    assert not np.allclose(a.y, c.y)


def test_noise_free_outcome_follows_the_equation():
    data, truth = simulate_panel(
        n_entities=6, n_periods=3, sigma_u=0.0, sigma_e=0.0, intercept=0.5, seed=2
    )
    expected = truth["const"] + truth["x"] * data.x + truth["z"] * data.z
    np.testing.assert_allclose(data.y, expected)


def test_missing_share_gives_an_unbalanced_panel_keeping_every_unit():
    data, _ = simulate_panel(n_entities=200, n_periods=3, missing_share=0.6, seed=3)
    assert data.unit.nunique() == 200
    assert 0.3 * 600 < len(data) < 0.5 * 600  # about 40% of the rows survive
    assert data.groupby("unit").size().min() >= 1
    assert data.groupby("unit").size().nunique() > 1


def test_corr_sets_the_correlation_of_unit_effect_and_regressor_level():
    # With no transitory part of x and no idiosyncratic error, the unit mean of
    # y - x - gamma*z is the unit effect u_i and x is its persistent level c_i.
    data, truth = simulate_panel(
        n_entities=4000, n_periods=2, corr=0.7, sigma_e=0.0, sigma_x_within=0.0, seed=4
    )
    unit = data.groupby("unit").mean()
    u = unit.y - truth["x"] * unit.x - truth["z"] * unit.z
    assert np.corrcoef(u, unit.x)[0, 1] == pytest.approx(0.7, abs=0.03)


@pytest.fixture(scope="module")
def estimates():
    """x estimates of every estimator on one large panel per correlation strength."""
    out = {}
    for corr in (0.0, 0.8):
        data, _ = simulate_panel(n_entities=1500, n_periods=4, corr=corr, seed=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cmp = compare(
                data, "y", "x", entity="unit", time="period", invariant="z", cov_type="unadjusted"
            )
        tab = cmp.tidy(terms=["x", "z"])
        out[corr] = tab.set_index(["estimator", "term"])
    return out


def test_without_correlation_every_estimator_recovers_the_within_effect(estimates):
    tab = estimates[0.0]
    for est in ("pooled", "re", "fe", "mundlak"):
        row = tab.loc[(est, "x")]
        assert abs(row.estimate - 1.0) < 4 * row.std_error, est


def test_with_correlation_pooled_and_re_are_biased_fe_and_mundlak_are_not(estimates):
    tab = estimates[0.8]
    for est in ("pooled", "re", "between"):
        row = tab.loc[(est, "x")]
        assert row.estimate - 1.0 > 6 * row.std_error, est
    fe, mundlak = tab.loc[("fe", "x")], tab.loc[("mundlak", "x")]
    assert abs(fe.estimate - 1.0) < 4 * fe.std_error
    assert mundlak.estimate == pytest.approx(fe.estimate, abs=1e-10)
    z = tab.loc[("mundlak", "z")]
    assert abs(z.estimate - 0.5) < 4 * z.std_error


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_entities": 1}, "n_entities"),
        ({"n_periods": 1}, "n_periods"),
        ({"n_entities": 2.5}, "n_entities"),
        ({"corr": 1.5}, "corr"),
        ({"sigma_e": -1.0}, "sigma_e"),
        ({"sigma_u": 0.0, "corr": 0.5}, "sigma_u is 0"),
        ({"missing_share": 1.0}, "missing_share"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"n_entities": 5, "n_periods": 3, "seed": 0, **kwargs}
    with pytest.raises(DataError, match=match):
        simulate_panel(**args)


def test_returns_a_fresh_dataframe():
    data, _ = simulate_panel(n_entities=3, n_periods=2, seed=0)
    assert isinstance(data, pd.DataFrame)
    assert data.index.equals(pd.RangeIndex(6))
