"""Tests of mlmci.plots.forest."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from pandas.testing import assert_frame_equal

from mlmci.errors import DataError
from mlmci.plots import forest
from mlmci.results import tidy


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def table() -> pd.DataFrame:
    rows = []
    for est, shift in (("pooled", 0.4), ("fe", 0.0), ("mundlak", 0.0)):
        for term, value in (("x", 1.0), ("z", 0.5)):
            if est == "fe" and term == "z":
                continue  # FE cannot estimate z: no row
            rows.append(
                {
                    "estimator": est,
                    "term": term,
                    "estimate": value + shift,
                    "std_error": 0.1,
                    "ci_low": value + shift - 0.2,
                    "ci_high": value + shift + 0.2,
                    "interval": "95% CI",
                }
            )
    return tidy(rows)


def _points(ax: Axes) -> np.ndarray:
    """The (x, y) of every point marker drawn on ``ax``."""
    lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
    return np.vstack([line.get_xydata() for line in lines])


def test_one_marker_and_interval_per_row(table):
    ax = forest(table)
    assert isinstance(ax, Axes)
    points = _points(ax)
    assert len(points) == len(table)
    assert sorted(points[:, 0]) == sorted(table.estimate)
    segments = [
        s for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()
    ]
    assert len(segments) == len(table)
    spans = sorted((s[0][0], s[1][0]) for s in segments)
    assert spans == sorted(zip(table.ci_low, table.ci_high, strict=True))


def test_labels_rows_and_legend(table):
    ax = forest(table, title="Union premium")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "z"]
    assert ax.get_xlabel() == "estimate (95% CI)"
    assert ax.get_ylabel() == "term"
    assert ax.get_title() == "Union premium"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["pooled", "fe", "mundlak"]
    # estimators of one term are dodged: distinct heights within the term's row
    points = _points(ax)
    x_rows = points[np.isclose(points[:, 0], 1.4) | np.isclose(points[:, 0], 1.0)][:, 1]
    assert len(set(np.round(x_rows, 6))) == 3
    assert np.all(np.abs(x_rows - 0) < 0.5)


def test_truth_is_drawn_for_plotted_terms_only(table):
    ax = forest(table, truth={"x": 1.0, "z": 0.5, "unplotted": 9.0})
    truth_lines = [c for c in ax.collections if c.get_label() == "truth"]
    assert len(truth_lines) == 1
    xs = sorted(seg[0][0] for seg in truth_lines[0].get_segments())
    assert xs == [0.5, 1.0]
    assert "truth" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_draws_on_a_given_axes_and_filters(table):
    _, given = plt.subplots()
    ax = forest(table, ax=given, terms=["z"], estimators=["mundlak", "pooled"])
    assert ax is given
    assert [t.get_text() for t in ax.get_yticklabels()] == ["z"]
    assert len(_points(ax)) == 2


def test_table_without_estimator_column(table):
    one = table[table.estimator == "fe"].drop(columns=["estimator", "interval"])
    ax = forest(one)
    assert len(_points(ax)) == 1
    assert ax.get_legend() is None
    assert ax.get_xlabel() == "estimate"


def test_input_is_unchanged(table):
    before = table.copy()
    forest(table, truth={"x": 1.0})
    assert_frame_equal(table, before)


def test_bad_input(table):
    with pytest.raises(DataError, match="ci_high"):
        forest(table.drop(columns="ci_high"))
    nan = table.copy()
    nan.loc[0, "estimate"] = np.nan
    with pytest.raises(DataError, match="missing"):
        forest(nan)
    with pytest.raises(DataError, match="nope"):
        forest(table, terms=["nope"])
    with pytest.raises(DataError, match="nope"):
        forest(table, estimators=["nope"])
