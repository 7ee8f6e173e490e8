"""The one result shape every mlmci estimator returns.

A tidy :class:`pandas.DataFrame` with one row per (estimator, term[, group]):

``estimator, term, estimate, std_error, ci_low, ci_high, interval``

plus a ``group`` column for per-group rows. ``interval`` names what
``ci_low``/``ci_high`` are, e.g. ``"95% CI"`` or ``"94% HDI"``.
"""

from __future__ import annotations

import pandas as pd

from mlmci.errors import ArgumentError

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
        raise ArgumentError(f"prob must lie strictly between 0 and 1, got {prob!r}.")
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
        raise ArgumentError(f"a tidy table needs the columns {missing}; got {list(frame.columns)}")
    extra = [c for c in frame.columns if c not in columns]
    out = frame[columns + extra].reset_index(drop=True)
    for col in ("estimate", "std_error", "ci_low", "ci_high"):
        out[col] = out[col].astype(float)
    return out


class Fit:
    """The result protocol every mlmci estimator's result follows.

    A subclass implements ``_tidy`` and sets the attributes below; the
    protocol gives every result the same surface:

    - :meth:`tidy` — the estimates in the tidy shape, intervals at ``prob``;
    - :meth:`effect` — the headline row, whose ``term`` is :attr:`headline`;
    - :meth:`summary` — a short text summary (also the ``repr``), and
      ``_repr_html_`` for notebooks;
    - ``native`` — the library objects underneath (never hidden);
    - ``notes`` — what a reader must know (drops, boundary fits, quick mode);
    - ``diagnostics`` — optimizer or sampler checks.

    Attributes
    ----------
    title : str
        One line naming the model, the first line of :meth:`summary`.
    headline : str or None
        The ``term`` of the headline estimate (``"ATT"``, ``"jump"``, a
        treatment's name), or ``None`` when a result has no single estimand.
    bayesian : bool
        Whether intervals are posterior intervals (default ``prob`` 0.94) or
        frequentist ones (0.95); see :mod:`mlmci.config`.
    """

    title: str = ""
    headline: str | None = None
    bayesian: bool = False
    # Set by every subclass (no class-level values, so dataclass subclasses may declare them).
    native: object
    notes: tuple[str, ...]
    diagnostics: object

    def _tidy(self, prob: float) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def tidy(self, prob: float | None = None) -> pd.DataFrame:
        """The estimates as a tidy table (see :data:`TIDY_COLUMNS`), intervals at ``prob``."""
        from mlmci.config import default_prob

        prob = default_prob(bayesian=self.bayesian) if prob is None else float(prob)
        interval_label(prob, "CI")  # validates prob
        return self._tidy(prob)

    def effect(self, prob: float | None = None) -> pd.Series:
        """The headline row of :meth:`tidy`: the one whose ``term`` is :attr:`headline`."""
        if self.headline is None:
            raise ArgumentError(f"{type(self).__name__} has no headline estimate; use tidy().")
        table = self.tidy(prob)
        rows = table[table["term"] == self.headline]
        if "group" in rows.columns:
            rows = rows[rows["group"].isna()]
        if len(rows) != 1:
            raise ArgumentError(
                f"expected one headline row with term {self.headline!r}, found {len(rows)}."
            )
        return rows.iloc[0]

    def _summary_table(self) -> pd.DataFrame:
        """The rows :meth:`summary` shows (all of :meth:`tidy` unless a subclass narrows it)."""
        return self.tidy()

    def summary(self) -> str:
        """A short text summary: the title, the estimates and the notes."""
        table = self._summary_table()
        same = [c for c in ("estimator",) if c in table and table[c].nunique() == 1]
        shown = table.drop(columns=same)
        lines = [
            self.title or type(self).__name__,
            shown.to_string(index=False, float_format="{:.4g}".format),
        ]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        import html

        table = self._summary_table()
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<div><p><strong>{html.escape(self.title or type(self).__name__)}</strong></p>"
            + table.to_html(index=False, float_format="{:.4g}".format)
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )
