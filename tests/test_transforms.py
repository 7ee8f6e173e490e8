"""Tests of mlmci.transforms.within_between."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from mlmci.errors import DataError, DataTypeError
from mlmci.transforms import within_between


@pytest.fixture
def unbalanced() -> pd.DataFrame:
    # groups of sizes 1, 2 and 4, in shuffled row order
    return pd.DataFrame(
        {
            "g": ["b", "a", "c", "b", "c", "c", "c"],
            "x": [4.0, 10.0, 1.0, 6.0, 2.0, 3.0, 6.0],
            "w": [1, 1, 0, 0, 1, 1, 1],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )


def test_group_means_and_deviations_on_unbalanced_groups(unbalanced):
    out = within_between(unbalanced, ["x", "w"], "g")
    expected_mean = {"a": 10.0, "b": 5.0, "c": 3.0}
    assert out["x_between"].tolist() == [expected_mean[g] for g in unbalanced["g"]]
    assert out["w_between"].tolist() == pytest.approx([0.5, 1.0, 0.75, 0.5, 0.75, 0.75, 0.75])
    np.testing.assert_allclose(out["x_within"], unbalanced["x"] - out["x_between"])
    sums = out.groupby("g")[["x_within", "w_within"]].sum()
    np.testing.assert_allclose(sums.to_numpy(), 0.0, atol=1e-12)


def test_returns_a_copy_with_new_columns_appended(unbalanced):
    before = unbalanced.copy()
    out = within_between(unbalanced, "x", "g")
    assert_frame_equal(unbalanced, before)
    assert out is not unbalanced
    assert out.columns.tolist() == ["g", "x", "w", "x_between", "x_within"]
    assert out.index.equals(unbalanced.index)
    assert_frame_equal(out[["g", "x", "w"]], before)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_decomposition_is_exact_for_any_group_sizes(sizes, seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(groups)
    df = pd.DataFrame({"g": groups, "x": rng.normal(size=groups.size) * 10})
    out = within_between(df, "x", "g")
    np.testing.assert_allclose(out["x_between"] + out["x_within"], df["x"], atol=1e-9)
    means = df.groupby("g")["x"].mean()
    np.testing.assert_allclose(out["x_between"], means.loc[df["g"]].to_numpy())
    np.testing.assert_allclose(out.groupby("g")["x_within"].sum(), 0.0, atol=1e-9)


def test_missing_value_raises_naming_the_column(unbalanced):
    unbalanced.loc[13, "x"] = np.nan
    with pytest.raises(DataError, match="'x'"):
        within_between(unbalanced, ["x", "w"], "g")


def test_missing_available_uses_the_observed_values(unbalanced):
    unbalanced.loc[13, "x"] = np.nan  # group b keeps only x = 4
    out = within_between(unbalanced, "x", "g", missing="available")
    assert out.loc[10, "x_between"] == 4.0
    assert out.loc[13, "x_between"] == 4.0
    assert np.isnan(out.loc[13, "x_within"])
    assert out.loc[10, "x_within"] == 0.0


def test_missing_group_always_raises(unbalanced):
    unbalanced["g"] = unbalanced["g"].astype(object)
    unbalanced.loc[11, "g"] = None
    with pytest.raises(DataError, match="'g'"):
        within_between(unbalanced, "x", "g", missing="available")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cols": "nope", "group": "g"}, DataError, "nope"),
        ({"cols": "x", "group": "nope"}, DataError, "nope"),
        ({"cols": "g", "group": "g"}, DataError, "group column"),
        ({"cols": [], "group": "g"}, DataError, "empty"),
        ({"cols": ["x", "x"], "group": "g"}, DataError, "more than once"),
        ({"cols": "x", "group": "g", "missing": "drop"}, DataError, "missing"),
    ],
)
def test_bad_arguments(unbalanced, kwargs, error, match):
    with pytest.raises(error, match=match):
        within_between(unbalanced, **kwargs)


def test_non_numeric_column_raises(unbalanced):
    unbalanced["s"] = list("abcdefg")
    with pytest.raises(DataTypeError, match="'s'"):
        within_between(unbalanced, "s", "g")


def test_existing_output_column_is_not_overwritten(unbalanced):
    unbalanced["x_within"] = 0.0
    with pytest.raises(DataError, match="x_within"):
        within_between(unbalanced, "x", "g")


def test_not_a_dataframe_raises():
    with pytest.raises(DataTypeError, match="DataFrame"):
        within_between({"g": [1], "x": [1.0]}, "x", "g")


def test_group_sums_equal_pandas_groupby_for_any_shape():
    import numpy as np

    from mlmci.transforms import group_sums

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=40)
    values = rng.normal(size=(40, 2, 3))
    got = group_sums(codes, values, 6)  # group 5 is empty: its sums are zero
    want = pd.DataFrame(values.reshape(40, -1)).groupby(codes).sum().reindex(range(6), fill_value=0)
    np.testing.assert_allclose(got.reshape(6, -1), want.to_numpy(), atol=1e-12)
    assert group_sums(codes, np.zeros((40, 0)), 6).shape == (6, 0)


def test_group_means_match_pandas_and_leave_empty_groups_at_zero():
    from mlmci.transforms import group_means

    rng = np.random.default_rng(4)
    codes = rng.integers(0, 5, 60)
    codes[codes == 3] = 4  # group 3 has no rows
    values = rng.normal(size=(60, 2))
    got = group_means(codes, values, 5)
    expected = pd.DataFrame(values).groupby(codes).mean().reindex(range(5), fill_value=0.0)
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-14)
    assert got.shape == (5, 2) and group_means(codes, values[:, 0], 5).shape == (5,)
