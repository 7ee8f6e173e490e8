"""Adoption cohorts of a staggered panel, and the refusals of what DiD cannot handle.

:func:`cohorts` derives each unit's *cohort* — the first period in which it is
treated — from an absorbing 0/1 treatment indicator. It refuses, naming the
units or cohorts, what the DiD estimators here cannot use as given:

- a treatment that switches off (treated, then untreated again);
- a unit treated in its first observed period (no untreated period of its own);
- a cohort with no untreated comparison in some period after it adopts (every
  unit already treated), unless the caller drops those periods;
- duplicated (unit, period) rows, a treatment that is not 0/1, missing values.

Never-treated units get the cohort ``NEVER`` (``numpy.inf``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmci.errors import DataError
from mlmci.validation import (
    as_list,
    require_columns,
    require_dataframe,
    require_no_missing,
    require_numeric,
)

__all__ = ["NEVER", "Panel", "cohorts", "prepare"]

#: The cohort of a never-treated unit.
NEVER = np.inf


def _shown(values: Sequence, limit: int = 10) -> str:
    values = list(values)
    text = ", ".join(map(str, values[:limit]))
    return text + (f" ... ({len(values)} in all)" if len(values) > limit else "")


def _checked_frame(
    data: pd.DataFrame, *, unit: str, time: str, treatment: str, extra: Sequence[str] = ()
) -> pd.DataFrame:
    data = require_dataframe(data)
    cols = [unit, time, treatment, *extra]
    require_columns(data, cols)
    require_no_missing(data, cols)
    require_numeric(data, [time, treatment, *extra])
    frame = data[list(dict.fromkeys(cols))].copy()
    bad = sorted(set(frame[treatment].unique()) - {0, 1})
    if bad:
        raise DataError(
            f"the treatment {treatment!r} must be 0/1; it has the values {_shown(bad)}. "
            "Recode it (a continuous dose is not a staggered-adoption treatment)."
        )
    frame[treatment] = frame[treatment].astype(int)
    dup = frame.duplicated([unit, time], keep=False)
    if dup.any():
        units = pd.unique(frame.loc[dup, unit])
        raise DataError(
            f"units {_shown(units)} have more than one row in some period of {time!r}: "
            "a panel needs one row per unit and period."
        )
    return frame


def cohorts(data: pd.DataFrame, *, unit: str, time: str, treatment: str) -> pd.Series:
    """Each unit's adoption cohort: the first period with ``treatment == 1``.

    Parameters
    ----------
    data
        A panel, one row per unit and period. Not modified.
    unit, time, treatment
        Columns: the unit identifier, the (numeric) period, and a 0/1
        treatment indicator that never switches off.

    Returns
    -------
    pandas.Series
        Indexed by unit (sorted), named ``"cohort"``: the first treated period,
        or ``NEVER`` (``inf``) for units never treated.

    Raises
    ------
    DataError
        The treatment switches off for some units, or a unit is treated in its
        first observed period (both name the units); the treatment is not 0/1;
        a (unit, period) pair repeats; no unit is ever treated.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"u": [1, 1, 1, 2, 2, 2], "t": [1, 2, 3] * 2,
    ...                    "d": [0, 1, 1, 0, 0, 0]})
    >>> cohorts(df, unit="u", time="t", treatment="d").tolist()
    [2.0, inf]
    >>> df.loc[2, "d"] = 0
    >>> cohorts(df, unit="u", time="t", treatment="d")
    Traceback (most recent call last):
    ...
    mlmci.errors.DataError: the treatment 'd' switches off (1 then 0) for unit(s) 1: ...
    """
    frame = _checked_frame(data, unit=unit, time=time, treatment=treatment)
    frame = frame.sort_values([unit, time])
    step = frame.groupby(unit, sort=False)[treatment].diff()
    off = pd.unique(frame.loc[step < 0, unit])
    if len(off):
        raise DataError(
            f"the treatment {treatment!r} switches off (1 then 0) for unit(s) {_shown(off)}: "
            "staggered-adoption DiD needs an absorbing treatment. Define adoption as "
            "'ever treated so far' (e.g. groupby(unit)[treatment].cummax()) if that is the "
            "estimand, or use a design for treatments that switch."
        )
    first = frame.groupby(unit, sort=True).first()
    at_start = first.index[first[treatment] == 1].tolist()
    if at_start:
        raise DataError(
            f"unit(s) {_shown(at_start)} are treated in their first observed period, so they "
            "have no untreated period to compare with: drop them (or add their earlier "
            "periods)."
        )
    treated = frame[frame[treatment] == 1]
    start = treated.groupby(unit)[time].min()
    out = pd.Series(NEVER, index=first.index, name="cohort", dtype=float)
    out.loc[start.index] = start.astype(float)
    if not np.isfinite(out).any():
        raise DataError(f"no unit is ever treated ({treatment!r} is 0 in every row).")
    return out


@dataclass(frozen=True)
class Panel:
    """A checked staggered panel: the frame with standard columns, and its cells.

    ``frame`` has the columns ``_unit`` (integer codes), ``_time``, ``_y``,
    ``_d``, ``_cohort`` and the covariates; ``cells`` one row per treated
    cohort x period cell (``cohort, period, event_time, n_obs, weight``), the
    weights being the shares of treated observations (the ATT's weights).
    """

    frame: pd.DataFrame
    cells: pd.DataFrame
    units: np.ndarray
    times: np.ndarray
    cohort_of_unit: pd.Series
    covariates: tuple[str, ...]
    balanced: bool

    @property
    def n_units(self) -> int:
        return len(self.units)


def prepare(
    data: pd.DataFrame,
    y: str,
    *,
    unit: str,
    time: str,
    treatment: str,
    covariates: Sequence[str] = (),
    control: str = "not_yet",
) -> Panel:
    """Check a staggered panel and lay out its treated cells (used by every DiD method).

    ``control`` is ``"not_yet"`` (never- and not-yet-treated units are the
    comparison: extended TWFE, imputation) or ``"never"`` (never-treated
    units only: Callaway-Sant'Anna, Sun-Abraham); the check that every cohort
    has an untreated comparison follows it.
    """
    covariates = as_list(covariates, "covariates")
    frame = _checked_frame(data, unit=unit, time=time, treatment=treatment, extra=[y, *covariates])
    cohort = cohorts(frame, unit=unit, time=time, treatment=treatment)
    frame = frame.sort_values([unit, time]).reset_index(drop=True)
    codes, units = pd.factorize(frame[unit], sort=True)
    out = pd.DataFrame(
        {
            "_unit": codes.astype(np.int64),
            "_time": frame[time].to_numpy(dtype=float),
            "_y": frame[y].to_numpy(dtype=float),
            "_d": frame[treatment].to_numpy(dtype=np.int64),
        }
    )
    out["_cohort"] = frame[unit].map(cohort).to_numpy(dtype=float)
    for col in covariates:
        out[col] = frame[col].to_numpy(dtype=float)
    if out["_unit"].nunique() < 2:
        raise DataError("a DiD needs at least two units.")
    times = np.sort(out["_time"].unique())
    never = ~np.isfinite(out["_cohort"])
    if control == "never" and not never.any():
        raise DataError(
            "no unit is never treated, so there is no never-treated comparison group; use a "
            "method with not-yet-treated comparisons (method='etwfe')."
        )
    if control not in ("never", "not_yet"):
        raise DataError(f"control must be 'never' or 'not_yet', got {control!r}.")
    # Every period in which some cohort is treated needs an untreated unit.
    untreated_at = out[out["_d"] == 0].groupby("_time").size()
    if control == "never":
        untreated_at = out[never].groupby("_time").size()
    treated = out[out["_d"] == 1]
    bare = sorted(set(treated["_time"]) - set(untreated_at.index))
    if bare:
        hit = sorted(treated.loc[treated["_time"].isin(bare), "_cohort"].unique())
        raise DataError(
            f"cohort(s) {_shown([_fmt(g) for g in hit])} have no untreated comparison unit in "
            f"period(s) {_shown([_fmt(t) for t in bare])}: every unit is treated then, so "
            "their effects there are not identified. Drop those periods (e.g. keep periods "
            "before the last cohort adopts) or use never-treated units as controls."
        )
    cells = (
        treated.groupby(["_cohort", "_time"])
        .size()
        .rename("n_obs")
        .reset_index()
        .rename(columns={"_cohort": "cohort", "_time": "period"})
    )
    cells["event_time"] = cells["period"] - cells["cohort"]
    cells["weight"] = cells["n_obs"] / cells["n_obs"].sum()
    balanced = bool(out.groupby("_unit").size().eq(len(times)).all())
    return Panel(
        frame=out,
        cells=cells,
        units=np.asarray(units),
        times=times,
        cohort_of_unit=cohort,
        covariates=tuple(covariates),
        balanced=balanced,
    )


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
