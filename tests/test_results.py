"""Tests of mlmci.results: the tidy result shape and interval labels."""

from __future__ import annotations

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlmci.results import TIDY_COLUMNS, interval_label, tidy


def _row(**changes) -> dict:
    row = {
        "interval": "95% CI",
        "ci_high": 1.2,
        "estimate": 1.0,
        "term": "x",
        "std_error": 0.1,
        "ci_low": 0.8,
        "estimator": "fe",
    }
    row.update(changes)
    return row


def test_tidy_columns_constant_is_the_documented_shape():
    assert TIDY_COLUMNS == (
        "estimator",
        "term",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "interval",
    )


def test_tidy_puts_columns_in_standard_order_and_extras_last():
    out = tidy([_row(nobs=100), _row(term="w", nobs=100)])
    assert out.columns.tolist() == [*TIDY_COLUMNS, "nobs"]
    assert out["term"].tolist() == ["x", "w"]
    assert out["nobs"].tolist() == [100, 100]


def test_tidy_places_group_after_term():
    out = tidy([_row(group="a", note="n"), _row(group="b", note="n")], group=True)
    assert out.columns.tolist() == [
        "estimator",
        "term",
        "group",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "interval",
        "note",
    ]
    assert out["group"].tolist() == ["a", "b"]


def test_tidy_without_group_flag_keeps_group_as_an_extra():
    out = tidy([_row(group="a")])
    assert out.columns.tolist() == [*TIDY_COLUMNS, "group"]


def test_tidy_requires_group_when_asked():
    with pytest.raises(ValueError, match="'group'"):
        tidy([_row()], group=True)


@pytest.mark.parametrize("col", ["estimate", "std_error", "ci_low", "interval", "estimator"])
def test_tidy_names_the_missing_column(col):
    row = _row()
    del row[col]
    with pytest.raises(ValueError, match=repr(col)):
        tidy([row])


def test_tidy_casts_numbers_to_float():
    out = tidy([_row(estimate=2, std_error=1, ci_low=0, ci_high=4)])
    for col in ("estimate", "std_error", "ci_low", "ci_high"):
        assert out[col].dtype == "float64", col
    assert out.loc[0, "estimate"] == 2.0


def test_tidy_rejects_non_numeric_estimates():
    with pytest.raises(ValueError):
        tidy([_row(estimate="large")])


def test_tidy_accepts_a_frame_resets_its_index_and_leaves_it_unchanged():
    frame = pd.DataFrame([_row(), _row(term="w")], index=[7, 3])
    before = frame.copy()
    out = tidy(frame)
    assert_frame_equal(frame, before)
    assert out.index.tolist() == [0, 1]
    assert out["term"].tolist() == ["x", "w"]
    assert out.columns.tolist() == list(TIDY_COLUMNS)


@pytest.mark.parametrize(
    ("prob", "kind", "expected"),
    [
        (0.95, "CI", "95% CI"),
        (0.94, "HDI", "94% HDI"),
        (0.9, "HDI", "90% HDI"),
        (0.5, "HDI", "50% HDI"),
        (0.975, "CI", "97.5% CI"),
        (0.89, "ETI", "89% ETI"),
    ],
)
def test_interval_label(prob, kind, expected):
    assert interval_label(prob, kind) == expected


@pytest.mark.parametrize("prob", [0, 1, -0.1, 1.5, 95])
def test_interval_label_rejects_probabilities_outside_0_1(prob):
    with pytest.raises(ValueError, match="prob"):
        interval_label(prob, "CI")
