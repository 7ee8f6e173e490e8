"""Tests of mlmci.validation: the input checks shared by every mlmci function."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlmci.errors import DataError, DataTypeError, MlmciError
from mlmci.validation import (
    as_list,
    require_columns,
    require_dataframe,
    require_groups,
    require_no_missing,
    require_numeric,
)


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, 3.0, 4.0],
            "n": [1, 2, 3, 4],
            "flag": [True, False, True, False],
            "city": ["a", "b", "a", "b"],
            "gap": [1.0, np.nan, 3.0, np.nan],
            "one": ["k", "k", "k", "k"],
        }
    )


def test_error_classes_are_mlmci_and_builtin_subclasses():
    assert issubclass(DataError, MlmciError) and issubclass(DataError, ValueError)
    assert issubclass(DataTypeError, MlmciError) and issubclass(DataTypeError, TypeError)


@pytest.mark.parametrize("bad", [[1, 2], {"y": [1.0]}, np.zeros((2, 2)), pd.Series([1.0]), None])
def test_require_dataframe_rejects_non_frames(bad):
    with pytest.raises(DataTypeError, match=type(bad).__name__) as info:
        require_dataframe(bad)
    assert isinstance(info.value, TypeError)
    assert "`data`" in str(info.value)


def test_require_dataframe_names_the_argument_and_passes_frames(df):
    with pytest.raises(TypeError, match="`panel`"):
        require_dataframe([1], name="panel")
    assert require_dataframe(df) is df


def test_require_columns_names_every_missing_column(df):
    with pytest.raises(DataError) as info:
        require_columns(df, ["y", "wage", "year"])
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "'wage'" in message and "'year'" in message
    assert "'y'" not in message.split("Available")[0]
    assert "Available columns: y, n, flag" in message


def test_require_columns_truncates_a_long_column_list():
    wide = pd.DataFrame({f"c{i}": [0] for i in range(30)})
    with pytest.raises(DataError) as info:
        require_columns(wide, ["zzz"])
    message = str(info.value)
    assert "c19" in message and "c20" not in message and "..." in message


def test_require_columns_passes_when_all_present(df):
    require_columns(df, ["y", "city"])
    require_columns(df, [])


@pytest.mark.parametrize("col", ["city", "one"])
def test_require_numeric_rejects_text_columns(df, col):
    with pytest.raises(DataTypeError, match=repr(col)) as info:
        require_numeric(df, ["y", col])
    assert isinstance(info.value, TypeError)
    assert "numeric" in str(info.value)


def test_require_numeric_rejects_categoricals(df):
    cat = df.assign(city=df["city"].astype("category"))
    with pytest.raises(DataTypeError, match="'city'"):
        require_numeric(cat, ["city"])


def test_require_numeric_accepts_float_int_and_bool(df):
    require_numeric(df, ["y", "n", "flag", "gap"])


def test_require_no_missing_names_column_and_count(df):
    with pytest.raises(DataError) as info:
        require_no_missing(df, ["y", "gap"])
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "'gap' (2 missing)" in message
    assert "'y'" not in message


def test_require_no_missing_sees_none_in_text_columns(df):
    text = df.assign(city=["a", None, "a", "b"])
    with pytest.raises(DataError, match=r"'city' \(1 missing\)"):
        require_no_missing(text, ["city"])


def test_require_no_missing_passes_and_ignores_unlisted_columns(df):
    require_no_missing(df, ["y", "n", "city"])


def test_require_groups_needs_enough_groups(df):
    with pytest.raises(DataError, match="'one' has 1 distinct") as info:
        require_groups(df, "one")
    assert isinstance(info.value, ValueError)
    with pytest.raises(DataError, match="at least 3"):
        require_groups(df, "city", min_groups=3)
    require_groups(df, "city")
    require_groups(df, "n", min_groups=4)


def test_require_groups_does_not_count_missing_as_a_group(df):
    with pytest.raises(DataError, match="'gap' has 2 distinct"):
        require_groups(df, "gap", min_groups=3)


def test_checks_do_not_modify_the_input(df):
    before = df.copy()
    require_dataframe(df)
    require_columns(df, ["y"])
    require_numeric(df, ["y", "n"])
    require_no_missing(df, ["y"])
    require_groups(df, "city")
    with pytest.raises(DataError):
        require_no_missing(df, ["gap"])
    assert_frame_equal(df, before)


def test_as_list_wraps_one_name_and_lists_a_sequence():
    assert as_list("x", "cols") == ["x"]
    assert as_list(("x", "z"), "cols") == ["x", "z"]
    assert as_list(iter(["a"]), "cols") == ["a"]


def test_as_list_refuses_a_non_sequence_naming_the_argument():
    with pytest.raises(DataTypeError, match="`cols`"):
        as_list(3, "cols")
