"""The one result shape every mlmci estimator returns.

A tidy :class:`pandas.DataFrame` with one row per (estimator, term[, group]):

``estimator, term, estimate, std_error, ci_low, ci_high, interval``

plus a ``group`` column for per-group rows. ``interval`` names what
``ci_low``/``ci_high`` are, e.g. ``"95% CI"`` or ``"94% HDI"``.
"""

from __future__ import annotations

import pandas as pd

#: The columns of a tidy result table, in order.
TIDY_COLUMNS: tuple[str, ...] = (
    "estimator",
    "term",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "interval",
)


def interval_label(prob: float, kind: str) -> str:
    """Label an interval by its probability and kind.

    Examples
    --------
    >>> interval_label(0.95, "CI"), interval_label(0.94, "HDI")
    ('95% CI', '94% HDI')
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must lie strictly between 0 and 1, got {prob!r}.")
    return f"{prob * 100:.4g}% {kind}"


def tidy(rows: pd.DataFrame | list[dict], *, group: bool = False) -> pd.DataFrame:
    """Return ``rows`` as a tidy table with the standard columns in the standard order.

    Parameters
    ----------
    rows
        A DataFrame or a list of dicts holding at least the :data:`TIDY_COLUMNS`.
    group
        Whether a ``group`` column (per-group rows) is expected; it is placed
        after ``term``.

    Examples
    --------
    >>> tidy([{"estimator": "fe", "term": "x", "estimate": 1.0, "std_error": 0.1,
    ...        "ci_low": 0.8, "ci_high": 1.2, "interval": "95% CI"}]).columns.tolist()
    ['estimator', 'term', 'estimate', 'std_error', 'ci_low', 'ci_high', 'interval']
    """
    frame = pd.DataFrame(rows)
    columns = list(TIDY_COLUMNS)
    if group:
        columns.insert(2, "group")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"a tidy table needs the columns {missing}; got {list(frame.columns)}")
    extra = [c for c in frame.columns if c not in columns]
    out = frame[columns + extra].reset_index(drop=True)
    for col in ("estimate", "std_error", "ci_low", "ci_high"):
        out[col] = out[col].astype(float)
    return out
