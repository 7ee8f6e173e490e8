"""Tests of mlmci.dag.draw_dag."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch

from mlmci.dag import draw_dag

NODES = {"X": (0.0, 0.0), "Y": (2.0, 0.0), "U": (1.0, 1.0), "G": (1.0, -1.0)}
EDGES = [("X", "Y"), ("U", "X"), ("U", "Y")]


def _circles(ax: Axes) -> list[Circle]:
    return [p for p in ax.patches if isinstance(p, Circle)]


def _arrows(ax: Axes) -> list[FancyArrowPatch]:
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def test_returns_axes_with_one_circle_per_node_at_its_position():
    ax = draw_dag(NODES, EDGES)
    assert isinstance(ax, Axes)
    circles = _circles(ax)
    assert len(circles) == len(NODES)
    assert sorted(c.center for c in circles) == sorted(NODES.values())


def test_unobserved_nodes_are_dashed_and_others_solid():
    ax = draw_dag(NODES, EDGES, unobserved=["U"])
    styles = {c.center: c.get_linestyle() for c in _circles(ax)}
    assert styles[NODES["U"]] == "--"
    for name in ("X", "Y", "G"):
        assert styles[NODES[name]] == "-", name


def test_one_arrow_per_edge_and_per_modifier():
    ax = draw_dag(NODES, EDGES, modifies=[("G", ("X", "Y"))])
    arrows = _arrows(ax)
    assert len(arrows) == len(EDGES) + 1
    dotted = [a for a in arrows if a.get_linestyle() not in ("-", "solid")]
    assert len(dotted) == 1


def test_without_modifiers_arrows_match_edges():
    ax = draw_dag(NODES, EDGES[:2])
    assert len(_arrows(ax)) == 2


def test_labels_replace_names_and_default_to_names():
    ax = draw_dag(NODES, EDGES, labels={"U": r"$u_j$"})
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["X", "Y", r"$u_j$", "G"])


def test_title_is_set_and_empty_by_default():
    assert draw_dag(NODES, EDGES, title="Unit effects confound X").get_title() == (
        "Unit effects confound X"
    )
    assert draw_dag(NODES, EDGES).get_title() == ""


def test_draws_on_a_given_axes_and_all_nodes_are_in_view():
    _, given = plt.subplots()
    ax = draw_dag(NODES, EDGES, ax=given)
    assert ax is given
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for x, y in NODES.values():
        assert x0 < x < x1 and y0 < y < y1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"edges": [("X", "Z")]},
        {"edges": EDGES, "unobserved": ["Z"]},
        {"edges": EDGES, "modifies": [("Z", ("X", "Y"))]},
    ],
)
def test_unknown_node_raises_naming_it(kwargs):
    with pytest.raises(ValueError, match="'Z'"):
        draw_dag(NODES, **kwargs)


def test_modifier_of_a_missing_edge_raises():
    with pytest.raises(ValueError, match="not among the edges"):
        draw_dag(NODES, EDGES, modifies=[("G", ("Y", "X"))])


def test_edges_may_be_any_iterable():
    ax = draw_dag(NODES, iter(EDGES), modifies=iter([("G", ("X", "Y"))]))
    assert len(_arrows(ax)) == len(EDGES) + 1
