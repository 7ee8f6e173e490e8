"""The book's plots. Each takes a tidy table (or data) and returns its matplotlib Axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from mlmci.errors import DataError
from mlmci.validation import as_list, require_columns, require_dataframe, require_numeric


def forest(
    table: pd.DataFrame,
    *,
    ax: Axes | None = None,
    truth: Mapping[str, float] | None = None,
    terms: Sequence[str] | None = None,
    estimators: Sequence[str] | None = None,
    title: str = "Estimates and intervals",
    xlabel: str | None = None,
) -> Axes:
    """Forest plot of a tidy table: one row per term, one point and interval per estimator.

    Parameters
    ----------
    table
        A tidy result table (:func:`mlmci.results.tidy`) with at least the
        columns ``term, estimate, ci_low, ci_high``; with an ``estimator``
        column, the estimators of a term are drawn side by side within its
        row, each in its own colour, with a legend.
    ax
        The Axes to draw on; a new figure is created if None.
    truth
        Optional true values by term, drawn as a black vertical tick across
        the term's row (terms absent from the plot are ignored).
    terms, estimators
        Which terms and estimators to show, and in which order (top to
        bottom); by default all, in order of first appearance.
    title
        The Axes title.
    xlabel
        The x-axis label; by default "estimate" followed by the interval
        named in the table's ``interval`` column (e.g. "estimate (95% CI)").

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    DataError
        A required column is absent, a value is missing, or a requested term
        or estimator is not in the table.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> table = pd.DataFrame({"estimator": ["fe", "re"], "term": ["x", "x"],
    ...                       "estimate": [1.0, 1.3], "ci_low": [0.8, 1.1],
    ...                       "ci_high": [1.2, 1.5], "interval": "95% CI"})
    >>> ax = forest(table, truth={"x": 1.0})
    >>> [t.get_text() for t in ax.get_yticklabels()], ax.get_xlabel()
    (['x'], 'estimate (95% CI)')
    """
    require_dataframe(table, name="table")
    needed = ["term", "estimate", "ci_low", "ci_high"]
    require_columns(table, needed)
    require_numeric(table, needed[1:])
    bad = table[needed].isna().any(axis=1)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} row(s) of the table have a missing term, estimate or interval "
            f"(first at index {table.index[bad.to_numpy()][0]!r}); drop them before plotting."
        )

    frame = table.copy()
    if "estimator" not in frame.columns:
        frame["estimator"] = ""
    term_order = _order(frame["term"], terms, "term")
    estimator_order = _order(frame["estimator"], estimators, "estimator")
    frame = frame[frame["term"].isin(term_order) & frame["estimator"].isin(estimator_order)]

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(term_order) * len(estimator_order)))

    n_est = len(estimator_order)
    band = 0.8  # height of a term's row taken up by its estimators
    step = band / n_est
    offsets = {e: -band / 2 + step * (k + 0.5) for k, e in enumerate(estimator_order)}
    row = {t: i for i, t in enumerate(term_order)}
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])

    for k, est in enumerate(estimator_order):
        part = frame[frame["estimator"] == est]
        if part.empty:
            continue
        ys = np.array([row[t] + offsets[est] for t in part["term"]])
        color = colors[k % len(colors)]
        ax.hlines(ys, part["ci_low"], part["ci_high"], color=color, linewidth=2)
        ax.plot(
            part["estimate"],
            ys,
            linestyle="none",
            marker="o",
            color=color,
            label=est if est else None,
        )

    if truth:
        shown = [t for t in term_order if t in truth]
        if shown:
            ax.vlines(
                [float(truth[t]) for t in shown],
                [row[t] - band / 2 for t in shown],
                [row[t] + band / 2 for t in shown],
                color="black",
                linestyle="--",
                linewidth=1.5,
                label="truth",
            )

    ax.set_yticks(range(len(term_order)), [str(t) for t in term_order])
    ax.set_ylim(len(term_order) - 0.5, -0.5)  # first term on top
    ax.grid(axis="x", alpha=0.3)
    if xlabel is None:
        labels = table["interval"].dropna().unique() if "interval" in table.columns else []
        xlabel = f"estimate ({labels[0]})" if len(labels) == 1 else "estimate"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("term")
    ax.set_title(title)
    if n_est > 1 or truth:
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="best", fontsize="small")
    return ax


def _order(values: pd.Series, wanted: Sequence[str] | None, what: str) -> list:
    present = list(dict.fromkeys(values))
    if wanted is None:
        return present
    wanted = as_list(wanted, what)
    missing = [w for w in wanted if w not in present]
    if missing:
        raise DataError(f"{what}(s) {missing} not in the table; it has {present}.")
    return wanted


def love(
    table: pd.DataFrame,
    *,
    axes: Sequence[Axes] | None = None,
    threshold: float = 0.1,
    title: str = "Covariate balance",
) -> list[Axes]:
    """Love plot of a balance table: standardized differences before and after weighting.

    One panel per component (overall, within clusters, between clusters), one row
    per covariate, an open circle for the unweighted and a filled one for the
    weighted difference, and dashed lines at ``±threshold``.

    Parameters
    ----------
    table
        A balance table as :meth:`mlmci.weighting.WeightingResult.balance` returns
        it: columns ``covariate, component, unweighted, weighted``.
    axes
        One Axes per component to draw on; a new figure is created if None.
    threshold
        The balance rule of thumb drawn as dashed lines (0.1 by default).
    title
        The figure's title.

    Returns
    -------
    list of matplotlib.axes.Axes

    Raises
    ------
    DataError
        A required column is absent or holds a non-numeric difference.

    Examples
    --------
    >>> import pandas as pd
    >>> from mlmci.plots import love
    >>> table = pd.DataFrame({"covariate": ["x", "x"], "component": ["overall", "between"],
    ...                       "unweighted": [0.5, 0.4], "weighted": [0.02, 0.01]})
    >>> [ax.get_title() for ax in love(table)]
    ['overall', 'between']
    """
    table = require_dataframe(table, name="table")
    require_columns(table, ["covariate", "component", "unweighted", "weighted"])
    require_numeric(table, ["unweighted", "weighted"])
    components = list(dict.fromkeys(table["component"]))
    covariates = list(dict.fromkeys(table["covariate"]))
    if axes is None:
        fig, axes = plt.subplots(
            1,
            len(components),
            figsize=(3.2 * len(components), 0.45 * len(covariates) + 1.6),
            sharey=True,
            squeeze=False,
        )
        axes = list(axes[0])
        fig.suptitle(title)
    elif len(axes) != len(components):
        raise DataError(
            f"love() needs {len(components)} Axes (one per component), got {len(axes)}."
        )
    rows = {c: i for i, c in enumerate(reversed(covariates))}
    for ax, component in zip(axes, components, strict=True):
        part = table[table["component"] == component]
        y = part["covariate"].map(rows).to_numpy(float)
        ax.scatter(part["unweighted"], y, facecolors="none", edgecolors="C3", label="unweighted")
        ax.scatter(part["weighted"], y, color="C0", label="weighted")
        for value in (-threshold, threshold):
            ax.axvline(value, color="grey", linestyle="--", linewidth=0.8)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_yticks(list(rows.values()), list(rows))
        ax.set_title(component)
        ax.set_xlabel("standardized difference")
    axes[0].legend(loc="best", fontsize="small")
    return list(axes)
