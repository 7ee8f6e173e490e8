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


# --------------------------------------------------------------------------- love plot


@pytest.fixture
def balance() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "covariate": ["x", "z", "x", "z"],
            "component": ["overall", "overall", "between", "between"],
            "unweighted": [0.5, -0.3, 0.4, 0.0],
            "weighted": [0.02, 0.05, -0.01, 0.0],
        }
    )


def test_love_draws_one_panel_per_component_with_both_points(balance):
    from mlmci.plots import love

    axes = love(balance, threshold=0.2)
    assert [ax.get_title() for ax in axes] == ["overall", "between"]
    first = axes[0]
    unweighted, weighted = first.collections[:2]
    # One point per covariate, in the table's order from the top (x above z).
    np.testing.assert_allclose(unweighted.get_offsets()[:, 0], [0.5, -0.3])
    np.testing.assert_allclose(weighted.get_offsets()[:, 0], [0.02, 0.05])
    assert unweighted.get_offsets()[0, 1] > unweighted.get_offsets()[1, 1]
    lines = sorted(line.get_xdata()[0] for line in first.get_lines())
    assert lines == [-0.2, 0.0, 0.2]


def test_love_refuses_a_table_without_its_columns_and_wrong_axes(balance):
    from mlmci.plots import love

    with pytest.raises(DataError, match="weighted"):
        love(balance.drop(columns="weighted"))
    _, axes = plt.subplots(1, 3)
    with pytest.raises(DataError, match="2 Axes"):
        love(balance, axes=list(axes))
