"""Causal diagrams (DAGs) drawn with matplotlib, for the book's figures.

A DAG here is a mapping of node names to ``(x, y)`` positions and a list of
directed edges. Unobserved nodes are drawn dashed. Nothing is inferred from the
graph: for d-separation and adjustment sets use a graph library; this module
only draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch

from mlmci.errors import ArgumentError

Edge = tuple[str, str]


def draw_dag(
    nodes: Mapping[str, tuple[float, float]],
    edges: Iterable[Edge],
    *,
    unobserved: Iterable[str] = (),
    modifies: Iterable[tuple[str, Edge]] = (),
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Draw a causal diagram.

    Parameters
    ----------
    nodes
        Node name → ``(x, y)`` position (any scale; axes are hidden).
    edges
        Directed edges ``(cause, effect)``.
    unobserved
        Nodes drawn with a dashed outline (latent variables, e.g. a unit effect).
    modifies
        ``(modifier, (cause, effect))`` pairs: a dotted arrow from the modifier to
        the middle of the ``cause → effect`` arrow, the usual picture of effect
        modification (a varying slope).
    labels
        Text shown in a node (mathtext allowed); the name by default.
    title
        Axes title.
    ax
        Axes to draw on; a new figure is made when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If an edge or modifier names a node that has no position.

    Examples
    --------
    >>> ax = draw_dag({"X": (0, 0), "Y": (1, 0), "U": (0.5, 1)},
    ...               [("X", "Y"), ("U", "X"), ("U", "Y")], unobserved=["U"])
    >>> ax.get_title()
    ''
    """
    edges = [tuple(e) for e in edges]
    unobserved = set(unobserved)
    modifies = [(m, tuple(e)) for m, e in modifies]
    named = set(nodes)
    used = {n for e in edges for n in e} | unobserved | {m for m, _ in modifies}
    used |= {n for _, e in modifies for n in e}
    unknown = sorted(used - named)
    if unknown:
        raise ArgumentError(f"node(s) {unknown} have no position; add them to `nodes`.")
    for _, edge in modifies:
        if edge not in edges:
            raise ArgumentError(f"modified edge {edge} is not among the edges.")
    labels = dict(labels or {})
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    radius = 0.13
    for name, (x, y) in nodes.items():
        ax.add_patch(
            plt.Circle(
                (x, y),
                radius,
                facecolor="white",
                edgecolor="black",
                linestyle="--" if name in unobserved else "-",
                linewidth=1.5,
                zorder=3,
            )
        )
        ax.text(x, y, labels.get(name, name), ha="center", va="center", fontsize=12, zorder=4)
    for cause, effect in edges:
        ax.add_patch(
            FancyArrowPatch(
                nodes[cause],
                nodes[effect],
                arrowstyle="-|>",
                mutation_scale=15,
                shrinkA=14,
                shrinkB=14,
                linewidth=1.4,
                color="black",
                zorder=2,
            )
        )
    for modifier, (cause, effect) in modifies:
        (x0, y0), (x1, y1) = nodes[cause], nodes[effect]
        ax.add_patch(
            FancyArrowPatch(
                nodes[modifier],
                ((x0 + x1) / 2, (y0 + y1) / 2),
                arrowstyle="-|>",
                mutation_scale=12,
                shrinkA=14,
                shrinkB=2,
                linestyle=":",
                linewidth=1.4,
                color="tab:red",
                zorder=2,
            )
        )
    xs = [p[0] for p in nodes.values()]
    ys = [p[1] for p in nodes.values()]
    pad = 0.3
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
