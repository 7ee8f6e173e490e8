"""Input checks shared by every mlmci function.

Each check raises a :mod:`mlmci.errors` exception whose message names the
offending column or value and says how to fix it, instead of letting a
dependency fail deep inside its own code.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from mlmci.errors import DataError, DataTypeError


def require_dataframe(data: object, *, name: str = "data") -> pd.DataFrame:
    """Return ``data`` if it is a DataFrame, else raise :class:`~mlmci.errors.DataTypeError`.

    Examples
    --------
    >>> require_dataframe([1, 2])
    Traceback (most recent call last):
    ...
    mlmci.errors.DataTypeError: `data` must be a pandas DataFrame, got list. ...
    """
    if not isinstance(data, pd.DataFrame):
        raise DataTypeError(
            f"`{name}` must be a pandas DataFrame, got {type(data).__name__}. "
            "Wrap your data with pandas.DataFrame(...) first."
        )
    return data


def as_list(value: str | Iterable[str], name: str) -> list[str]:
    """Return one name or a sequence of names as a list, e.g. ``"x"`` → ``["x"]``.

    Raises :class:`~mlmci.errors.DataTypeError` when ``value`` is neither.

    Examples
    --------
    >>> as_list("x", "cols"), as_list(("x", "z"), "cols")
    (['x'], ['x', 'z'])
    """
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise DataTypeError(
            f"`{name}` must be a column name or a list of column names, got {value!r}."
        ) from None


def require_columns(data: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise :class:`~mlmci.errors.DataError` naming each of ``columns`` absent from ``data``.

    Examples
    --------
    >>> import pandas as pd
    >>> require_columns(pd.DataFrame({"y": [1.0]}), ["y", "x"])
    Traceback (most recent call last):
    ...
    mlmci.errors.DataError: column(s) ['x'] not found in the data. Available columns: y.
    """
    missing = [c for c in columns if c not in data.columns]
    if missing:
        available = ", ".join(map(str, data.columns[:20]))
        more = " ..." if data.shape[1] > 20 else ""
        raise DataError(
            f"column(s) {missing} not found in the data. Available columns: {available}{more}."
        )


def require_numeric(data: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise :class:`~mlmci.errors.DataTypeError` for any column that is not numeric or boolean.

    Examples
    --------
    >>> import pandas as pd
    >>> require_numeric(pd.DataFrame({"g": ["a", "b"]}), ["g"])
    Traceback (most recent call last):
    ...
    mlmci.errors.DataTypeError: column 'g' has dtype ..., but a numeric column is needed. ...
    """
    for col in columns:
        dtype = data[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise DataTypeError(
                f"column {col!r} has dtype {dtype}, but a numeric column is needed. "
                f"Convert it (e.g. pandas.to_numeric, or dummy-code a categorical "
                f"with pandas.get_dummies) before passing it."
            )


def require_no_missing(data: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise :class:`~mlmci.errors.DataError` if any of ``columns`` holds a missing value.

    mlmci never drops rows silently: the caller decides what to do with them.

    Examples
    --------
    >>> import pandas as pd
    >>> require_no_missing(pd.DataFrame({"x": [1.0, None]}), ["x"])
    Traceback (most recent call last):
    ...
    mlmci.errors.DataError: missing values in 'x' (1 missing). ...
    """
    counts = {c: int(data[c].isna().sum()) for c in columns}
    bad = {c: n for c, n in counts.items() if n}
    if bad:
        listed = ", ".join(f"{c!r} ({n} missing)" for c, n in bad.items())
        raise DataError(
            f"missing values in {listed}. mlmci does not drop rows silently: drop or "
            f"impute them first, e.g. data.dropna(subset={list(bad)})."
        )


def require_groups(data: pd.DataFrame, group: str, *, min_groups: int = 2) -> None:
    """Raise :class:`~mlmci.errors.DataError` if ``group`` has fewer than ``min_groups`` values.

    Examples
    --------
    >>> import pandas as pd
    >>> require_groups(pd.DataFrame({"g": [1, 1]}), "g")
    Traceback (most recent call last):
    ...
    mlmci.errors.DataError: column 'g' has 1 distinct group(s); at least 2 are needed ...
    """
    n = data[group].nunique(dropna=True)
    if n < min_groups:
        raise DataError(
            f"column {group!r} has {n} distinct group(s); at least {min_groups} are needed "
            "to separate within-group from between-group variation."
        )
