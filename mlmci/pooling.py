"""Complete, no and partial pooling of group estimates, and the shrinkage plot.

For group :math:`j` with :math:`n_j` observations the three estimates are

* **complete pooling** — one regression for everyone, groups ignored: the same
  estimate for every group;
* **no pooling** — each group on its own (a separate mean, or a group dummy);
* **partial pooling** — the multilevel model's prediction for the group (the
  REML fit of :func:`mlmci.mixed.fit` plus the group's BLUP), a compromise that
  moves each no-pooling estimate part of the way toward the population mean
  :math:`\\hat\\mu`.

How far is given by the **pooling factor** (Gelman & Hill 2007, sec. 12.2; Gelman &
Pardoe 2006)

.. math::

    \\lambda_j = 1 - \\frac{\\sigma_\\alpha^2}{\\sigma_\\alpha^2 + \\sigma_y^2 / n_j}
              = \\frac{\\sigma_y^2 / n_j}{\\sigma_\\alpha^2 + \\sigma_y^2 / n_j},

with :math:`\\sigma_\\alpha` the SD of the group intercepts and :math:`\\sigma_y`
the residual SD (REML estimates): 0 means no pooling (the group keeps its own
estimate), 1 complete pooling (the group is replaced by the population mean).
Small groups and small between-group variation give large pooling factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy import stats

from mlmci import mixed
from mlmci.errors import DataError
from mlmci.results import Fit, interval_label, tidy
from mlmci.validation import (
    require_columns,
    require_dataframe,
    require_groups,
    require_no_missing,
    require_numeric,
)

__all__ = ["PoolingResult", "compare", "plot_shrinkage"]

POOLING_COLUMNS: tuple[str, ...] = (
    "group",
    "n",
    "no_pooling",
    "partial_pooling",
    "complete_pooling",
    "shrinkage_target",
    "pooling_factor",
)


@dataclass(repr=False)
class PoolingResult(Fit):
    """The three poolings of :func:`compare`, on mlmci's result protocol.

    ``tidy(prob)`` has one row per estimator (``no_pooling``, ``partial_pooling``,
    ``complete_pooling``) and group, ``term`` ``"group mean"`` (or ``"group
    intercept"`` with ``x``): no and complete pooling with classical OLS
    ``t`` intervals, partial pooling with the Wald interval of the prediction
    error variance (conditional on the REML variance components).

    Attributes
    ----------
    table : pandas.DataFrame
        The wide table: one row per group with ``group, n, no_pooling,
        partial_pooling, complete_pooling, shrinkage_target, pooling_factor``.
    y, x, group : str
        The columns compared.
    native : MixedResult
        The REML fit behind partial pooling.
    """

    table: pd.DataFrame
    y: str
    x: str | None
    group: str
    native: Any
    _se: dict = field(repr=False, default_factory=dict)  # estimator -> (std errors, df)
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:  # type: ignore[override]
        what = "group means" if self.x is None else f"group intercepts adjusting for {self.x}"
        return f"No, partial and complete pooling of {self.y}: {what} by {self.group}"

    @property
    def diagnostics(self) -> Any:  # type: ignore[override]
        return self.native.diagnostics

    def _summary_table(self) -> pd.DataFrame:
        return self.table

    def _tidy(self, prob: float) -> pd.DataFrame:
        term = "group mean" if self.x is None else "group intercept"
        rows = []
        for estimator in ("no_pooling", "partial_pooling", "complete_pooling"):
            se, df = self._se[estimator]
            q = stats.norm.ppf((1 + prob) / 2) if df is None else stats.t.ppf((1 + prob) / 2, df)
            est = self.table[estimator].to_numpy(dtype=float)
            kind = "CI (approx.)" if estimator == "partial_pooling" else "CI"
            rows.append(
                pd.DataFrame(
                    {
                        "estimator": estimator,
                        "term": term,
                        "group": self.table["group"].to_numpy(),
                        "estimate": est,
                        "std_error": se,
                        "ci_low": est - q * se,
                        "ci_high": est + q * se,
                        "interval": interval_label(prob, kind),
                        "n": self.table["n"].to_numpy(),
                    }
                )
            )
        return tidy(pd.concat(rows, ignore_index=True), group=True)


def compare(
    df: pd.DataFrame,
    y: str,
    group: str,
    x: str | None = None,
    *,
    allow_boundary: bool = False,
) -> PoolingResult:
    """Compare complete, no and partial pooling of per-group intercepts.

    Without ``x`` the estimates are group means (the varying-intercept model
    :math:`y_{ij} = \\alpha_j + \\varepsilon_{ij}`, :math:`\\alpha_j \\sim
    N(\\mu, \\sigma_\\alpha^2)`):

    * ``complete_pooling`` — the overall mean of ``y``;
    * ``no_pooling`` — the group's sample mean :math:`\\bar y_j`;
    * ``partial_pooling`` — :math:`\\hat\\alpha_j = \\hat\\mu + \\hat b_j`, which
      equals exactly :math:`\\lambda_j \\hat\\mu + (1 - \\lambda_j)\\bar y_j`, so it
      always lies between ``no_pooling`` and ``shrinkage_target`` (:math:`\\hat\\mu`).

    With ``x`` the estimates are group intercepts adjusting for ``x`` with one
    common slope (Gelman & Hill's radon model with the floor of measurement,
    :math:`y_{ij} = \\alpha_j + \\beta x_{ij} + \\varepsilon_{ij}`):

    * ``complete_pooling`` — the intercept of the OLS regression of ``y`` on ``x``;
    * ``no_pooling`` — the group's coefficient in the OLS regression of ``y`` on
      ``x`` and one dummy per group (:math:`\\bar y_j - \\hat\\beta_{FE}\\bar x_j`);
    * ``partial_pooling`` — the REML varying-intercept model's group intercept,
      :math:`\\hat\\mu + (1 - \\lambda_j)(\\bar y_j - \\hat\\beta\\bar x_j - \\hat\\mu)`
      with the REML slope :math:`\\hat\\beta`. Because the REML and dummy-variable
      slopes differ, "between no pooling and the target" holds only approximately here.

    Parameters
    ----------
    df
        One row per observation. Not modified.
    y
        The outcome column (numeric).
    group
        The grouping column.
    x
        An optional numeric covariate with a common slope (see above).
    allow_boundary
        Accept a REML estimate of :math:`\\sigma_\\alpha = 0` (then partial
        pooling is complete pooling toward :math:`\\hat\\mu` and every pooling factor
        is 1). By default this raises :class:`~mlmci.errors.ConvergenceError`.

    Returns
    -------
    PoolingResult
        ``.table``: one row per group, sorted by group, with columns ``group, n,
        no_pooling, partial_pooling, complete_pooling, shrinkage_target,
        pooling_factor``: ``shrinkage_target`` is the multilevel model's population
        mean :math:`\\hat\\mu` (GLS, close to but not equal to ``complete_pooling``)
        and ``pooling_factor`` is :math:`\\lambda_j` defined in the module notes.
        ``.tidy(prob)`` gives the three estimates of every group with intervals.

    Raises
    ------
    DataError
        A missing column or value, a single group, only one observation per
        group, or (with ``x``) an ``x`` that never varies within a group.
    DataTypeError
        ``y`` or ``x`` is not numeric.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(8), [2, 3, 5, 8, 10, 15, 20, 30])
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(0, 1, 8)[g] + rng.normal(size=g.size)})
    >>> table = compare(df, "y", "g").table
    >>> table.columns.tolist()[:5]
    ['group', 'n', 'no_pooling', 'partial_pooling', 'complete_pooling']
    >>> bool(table["pooling_factor"].is_monotonic_decreasing)
    True
    """
    df = require_dataframe(df, name="df")
    numeric = [y] if x is None else [y, x]
    require_columns(df, [*numeric, group])
    require_numeric(df, numeric)
    require_no_missing(df, [*numeric, group])
    require_groups(df, group)

    data = pd.DataFrame(
        {
            "y": df[y].to_numpy(dtype=float),
            "g": df[group].to_numpy(),
            "x": 0.0 if x is None else df[x].to_numpy(dtype=float),
        }
    )
    by = data.groupby("g", sort=True)
    n = by.size()
    ybar = by["y"].mean()
    xbar = by["x"].mean()

    # The REML fit first: it refuses a single group or all-singleton groups by name.
    formula = "y ~ 1 + (1 | g)" if x is None else "y ~ x + (1 | g)"
    res = mixed.fit(formula, data, allow_boundary=allow_boundary)
    n_obs, n_groups = len(data), len(n)
    resid_within = data["y"] - by["y"].transform("mean")
    if x is None:
        complete = float(data["y"].mean())
        no_pool = ybar
        s2_np = float((resid_within**2).sum()) / (n_obs - n_groups)
        se_np = np.sqrt(s2_np / n)
        df_np = n_obs - n_groups
        se_cp = float(data["y"].std(ddof=1)) / np.sqrt(n_obs)
        df_cp = n_obs - 1
    else:
        xw = data["x"] - by["x"].transform("mean")
        sxx = float((xw**2).sum())
        if sxx == 0.0:
            raise DataError(
                f"column {x!r} does not vary within any group of {group!r}, so the no-pooling "
                "(group dummies) slope is not identified. Drop x or use a covariate that "
                "varies within groups."
            )
        beta_fe = float((xw * resid_within).sum()) / sxx
        no_pool = ybar - beta_fe * xbar
        # The dummies' intercepts: ybar_j - b xbar_j, where ybar_j and b are uncorrelated.
        df_np = n_obs - n_groups - 1
        s2_np = float(((resid_within - beta_fe * xw) ** 2).sum()) / df_np
        se_np = np.sqrt(s2_np / n + xbar**2 * s2_np / sxx)
        design = np.column_stack([np.ones(len(data)), data["x"].to_numpy()])
        coef, *_ = np.linalg.lstsq(design, data["y"].to_numpy(), rcond=None)
        complete = float(coef[0])
        resid = data["y"].to_numpy() - design @ coef
        df_cp = n_obs - 2
        xtx_inv = np.linalg.inv(design.T @ design)
        se_cp = float(np.sqrt(resid @ resid / df_cp * xtx_inv[0, 0]))

    target = float(res.beta["Intercept"])
    intercept = np.zeros(len(res.beta))
    intercept[list(res.beta.index).index("Intercept")] = 1.0
    partial = res.predict_groups(np.tile(intercept, (n_groups, 1)), "Intercept").reindex(n.index)
    tau2 = float(res.cov_re().iloc[0, 0])
    sigma2 = res.sigma**2
    lam = (sigma2 / n) / (tau2 + sigma2 / n)

    table = pd.DataFrame(
        {
            "group": n.index.to_numpy(),
            "n": n.to_numpy(dtype=int),
            "no_pooling": no_pool.to_numpy(dtype=float),
            "partial_pooling": partial["estimate"].to_numpy(dtype=float),
            "complete_pooling": complete,
            "shrinkage_target": target,
            "pooling_factor": lam.to_numpy(dtype=float),
        },
        columns=list(POOLING_COLUMNS),
    )
    return PoolingResult(
        table=table,
        y=y,
        x=x,
        group=group,
        native=res,
        _se={
            "no_pooling": (np.asarray(se_np, dtype=float), float(df_np)),
            "partial_pooling": (partial["std_error"].to_numpy(dtype=float), None),
            "complete_pooling": (np.full(n_groups, se_cp), float(df_cp)),
        },
        notes=res.notes,
    )


def plot_shrinkage(
    table: PoolingResult | pd.DataFrame,
    *,
    ax: Axes | None = None,
    ylabel: str | None = None,
    title: str | None = None,
) -> Axes:
    """Plot how partial pooling moves each group's estimate, against group size.

    Each group is an arrow from its no-pooling estimate (open circle) to its
    partial-pooling estimate (dot), at its size on a log axis; a dashed line
    marks the complete-pooling estimate and a dotted line the multilevel model's
    population mean, the target of the shrinkage. Small groups move far, large
    groups barely. Groups of equal size are spread slightly sideways so their
    arrows do not overlap.

    Parameters
    ----------
    table
        The output of :func:`compare`, or a DataFrame with at least ``n,
        no_pooling, partial_pooling, complete_pooling`` (``shrinkage_target``
        optional).
    ax
        Axes to draw on; a new figure is made if None.
    ylabel, title
        Override the default labels.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"n": [1, 4, 20], "no_pooling": [3.0, -1.0, 0.5],
    ...                   "partial_pooling": [1.0, -0.5, 0.45], "complete_pooling": 0.3})
    >>> ax = plot_shrinkage(t)
    >>> ax.get_xscale()
    'log'
    """
    import matplotlib.pyplot as plt

    names = {"group": "group", "y": None, "x": None}
    if isinstance(table, PoolingResult):
        names = {"group": table.group, "y": table.y, "x": table.x}
        table = table.table
    require_dataframe(table, name="table")
    require_columns(table, ["n", "no_pooling", "partial_pooling", "complete_pooling"])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))

    n = table["n"].to_numpy(dtype=float)
    # Spread groups of equal size symmetrically around n (multiplicatively, for the log axis).
    rank = table.groupby("n").cumcount().to_numpy(dtype=float)
    count = table.groupby("n")["n"].transform("size").to_numpy(dtype=float)
    xpos = n * np.exp(0.06 * (rank - (count - 1) / 2) / np.sqrt(np.maximum(count, 1)))
    start = table["no_pooling"].to_numpy(dtype=float)
    end = table["partial_pooling"].to_numpy(dtype=float)

    for xi, a, b in zip(xpos, start, end, strict=True):
        ax.annotate(
            "",
            xy=(xi, b),
            xytext=(xi, a),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "0.55",
                "lw": 0.8,
                "shrinkA": 2,
                "shrinkB": 2,
            },
        )
    ax.scatter(xpos, start, s=22, facecolors="none", edgecolors="C0", label="no pooling", zorder=3)
    ax.scatter(xpos, end, s=16, color="C1", label="partial pooling (MLM)", zorder=4)
    complete = float(table["complete_pooling"].iloc[0])
    ax.axhline(complete, color="k", ls="--", lw=1, label="complete pooling")
    if "shrinkage_target" in table.columns:
        target = float(table["shrinkage_target"].iloc[0])
        ax.axhline(target, color="C1", ls=":", lw=1.2, label="MLM population mean")

    ax.set_xscale("log")
    ax.set_xlim(xpos.min() / 1.3, xpos.max() * 1.3)
    ax.set_xlabel(f"observations per {names['group']} (log scale)")
    if ylabel is None:
        y, x = names["y"], names["x"]
        what = "group intercept" if x else "group mean"
        ylabel = f"{what} of {y}" if y else f"{what} (outcome units)"
        if x:
            ylabel += f", adjusting for {x}"
    ax.set_ylabel(ylabel)
    ax.set_title(title or "Partial pooling shrinks small groups the most")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax
