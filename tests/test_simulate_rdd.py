"""mlmci.simulate.simulate_rdd: a multi-site sharp RD with known site jumps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlmci.rdd import local_linear
from mlmci.simulate import simulate_rdd


def test_shape_and_columns():
    data, truth = simulate_rdd(n_sites=7, n_per_site=50, seed=0)
    # Stratified: every site has units in each quarter of (-1, 1).
    quarters = pd.cut(data["x"], [-1, -0.5, 0, 0.5, 1]).cat.codes
    assert (data.assign(q=quarters).groupby("site")["q"].nunique() == 4).all()
    assert data.columns.tolist() == ["site", "x", "treated", "y"]
    assert len(data) == 350 and data["site"].nunique() == 7
    assert data["x"].between(-1, 1).all()
    assert (data["treated"] == (data["x"] >= 0).astype(int)).all()
    assert truth["jumps"].index.tolist() == list(range(7))
    for key in ("site_average", "mean_jump", "size_weighted", "jump_sd", "slope_sd", "sigma"):
        assert isinstance(truth[key], float)
    assert truth["site_average"] == pytest.approx(truth["jumps"].mean())


def test_reproducible():
    a, ta = simulate_rdd(seed=3)
    b, tb = simulate_rdd(seed=3)
    c, _ = simulate_rdd(seed=4)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_series_equal(ta["jumps"], tb["jumps"])
    assert not a["y"].equals(c["y"])


def test_no_heterogeneity_and_unequal_sizes():
    data, truth = simulate_rdd(n_sites=40, n_per_site=30, jump_sd=0.0, size_cv=0.8, seed=1)
    assert np.allclose(truth["jumps"], 1.0)
    sizes = data.groupby("site").size()
    assert sizes.min() >= 16 and sizes.std() / sizes.mean() > 0.4


def test_size_slope_correlates_jumps_with_size():
    data, truth = simulate_rdd(
        n_sites=60, n_per_site=40, size_cv=0.7, jump_sd=0.1, size_slope=1.0, seed=2
    )
    sizes = data.groupby("site").size()
    assert np.corrcoef(sizes, truth["jumps"])[0, 1] > 0.8
    assert truth["size_weighted"] > truth["site_average"]


def test_truth_recovered_by_local_linear():
    # Large sites, no curvature: each site's local-linear jump is within noise of its truth.
    data, truth = simulate_rdd(
        n_sites=5, n_per_site=20000, jump_sd=1.0, slope_sd=1.0, slope_change_sd=0.5, seed=9
    )
    fit = local_linear(data["y"], data["x"], data["site"], h=0.5)
    z = (fit["estimate"] - truth["jumps"].to_numpy()) / fit["std_error"]
    assert np.all(np.abs(z) < 4)
    assert np.all(fit["std_error"] < 0.1)


def test_curvature_biases_local_linear():
    # kappa x^2 above the cutoff only: the local-linear jump is biased by about -kappa h^2 / 10
    # (triangular kernel), so the bias shrinks with the bandwidth.
    data, _ = simulate_rdd(n_sites=2, n_per_site=100000, curvature=3.0, jump_sd=0.0, seed=4)
    wide = local_linear(data["y"], data["x"], data["site"], h=1.0)
    narrow = local_linear(data["y"], data["x"], data["site"], h=0.2)
    assert np.all(np.abs(wide["estimate"] - (1.0 - 0.3)) < 4 * wide["std_error"])
    assert np.all(np.abs(narrow["estimate"] - 1.0) < 4 * narrow["std_error"] + 0.02)


@pytest.mark.parametrize(
    "kwargs", [{"n_sites": 1}, {"n_per_site": 10}, {"jump_sd": -1.0}, {"sigma": -0.1}]
)
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        simulate_rdd(**kwargs)
