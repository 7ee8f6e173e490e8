"""Tests of mlmci.simulate.simulate_staggered."""

from __future__ import annotations

import numpy as np
import pytest

from mlmci import did
from mlmci.simulate import simulate_staggered


def test_shape_columns_and_truth():
    data, truth = simulate_staggered(n_units=30, n_periods=7, seed=1, dynamic=0.2)
    assert data.shape == (210, 5)
    assert list(data.columns) == ["unit", "period", "treated", "y", "effect"]
    cells = truth["cells"]
    assert list(cells.columns) == ["cohort", "period", "event_time", "att", "n_obs", "weight"]
    assert cells["weight"].sum() == pytest.approx(1.0)
    # the ATT is the mean true effect over treated unit-periods
    assert truth["ATT"] == pytest.approx(data.loc[data.treated == 1, "effect"].mean(), abs=1e-12)
    assert truth["hyper_mean"] == pytest.approx(cells["att"].mean())
    assert (data.loc[data.treated == 0, "effect"] == 0).all()
    # dynamic effects grow with event time
    by_e = cells.groupby("event_time")["att"].mean()
    assert by_e.is_monotonic_increasing


def test_default_cohorts_and_absorbing_treatment():
    data, truth = simulate_staggered(n_units=40, n_periods=10, seed=2)
    g = did.cohorts(data, unit="unit", time="period", treatment="treated")
    assert g[np.isfinite(g)].value_counts().sort_index().to_dict() == {4.0: 4, 6.0: 8, 8.0: 12}
    assert truth["ATT"] == pytest.approx(1.0)


def test_seed_reproducible():
    a, _ = simulate_staggered(seed=5)
    b, _ = simulate_staggered(seed=5)
    c, _ = simulate_staggered(seed=6)
    assert a.equals(b) and not a.equals(c)
    d, _ = simulate_staggered(seed=np.random.default_rng(5))
    assert d.equals(a)


def test_adoption_correlated_with_unit_level():
    data, _ = simulate_staggered(n_units=300, n_periods=6, rho=1.0, sigma=0.01, seed=3)
    level = data[data.period == 1].set_index("unit")["y"]
    g = did.cohorts(data, unit="unit", time="period", treatment="treated")
    means = level.groupby(g).mean()
    # rho = 1: the earliest cohort has the highest levels, never-treated the lowest
    assert means.is_monotonic_decreasing


def test_ar1_errors_are_serially_correlated():
    data, _ = simulate_staggered(
        n_units=400, n_periods=8, ar=0.8, sigma_unit=0.0, effect=0.0, seed=4
    )
    resid = data["y"] - 0.1 * data["period"]
    wide = resid.to_numpy().reshape(400, 8)
    r = np.corrcoef(wide[:, 3], wide[:, 4])[0, 1]
    assert r == pytest.approx(0.8, abs=0.08)
    assert wide.std() == pytest.approx(1.0, abs=0.1)


def test_size_correlated_effects():
    _, truth = simulate_staggered(n_units=60, n_periods=8, size_slope=1.0, seed=5)
    cells = truth["cells"]
    per_cohort = cells.groupby("cohort").agg(att=("att", "mean"), n=("n_obs", "first"))
    assert np.corrcoef(per_cohort["att"], per_cohort["n"])[0, 1] > 0.99
    assert truth["ATT"] > truth["hyper_mean"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rho": 1.5}, "rho"),
        ({"ar": 1.0}, "ar"),
        ({"cohort_sizes": {1: 3}}, "cohort_sizes"),
        ({"cohort_sizes": {3: 100}}, "more units"),
        ({"n_units": 2}, "at least 3"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_staggered(**kwargs)
