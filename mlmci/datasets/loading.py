"""Load a dataset by name, describe it, list the names."""

from __future__ import annotations

import difflib
from functools import cache

import pandas as pd

from mlmci.datasets.card import DataCard
from mlmci.datasets.catalogue import CATALOGUE, Entry
from mlmci.errors import DataError, DataTypeError


def names() -> tuple[str, ...]:
    """Return the names of the available datasets, sorted.

    Returns
    -------
    tuple of str
        Every name accepted by :func:`load` and :func:`describe`.

    Examples
    --------
    >>> from mlmci import datasets
    >>> "wagepan" in datasets.names()
    True
    >>> list(datasets.names()) == sorted(datasets.names())
    True
    """
    return tuple(sorted(CATALOGUE))


def describe(name: str) -> DataCard:
    """Return the data card of a dataset: source, citation, unit, groups and codebook.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    DataCard
        Frozen; ``print`` it for a text summary, or display it in a notebook
        for a Markdown table. ``card.codebook`` describes every column of
        ``load(name)``.

    Raises
    ------
    DataTypeError
        If ``name`` is not a string.
    DataError
        If ``name`` is not an available dataset; the message lists the valid names.

    Examples
    --------
    >>> from mlmci import datasets
    >>> card = datasets.describe("wagepan")
    >>> card.unit, card.n_rows
    ('person-year', 4360)
    >>> card.codebook["nr"]
    'Person identifier (545 distinct values).'
    """
    return _entry(name).card


def load(name: str) -> pd.DataFrame:
    """Return a dataset as a new pandas DataFrame, read offline from an installed package.

    Every call returns a fresh copy: changing it does not affect later calls.
    Columns have lower snake-case names, group identifiers are ``int64`` and
    text labels are categoricals; :func:`describe` documents each column and
    where the data come from.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    pandas.DataFrame
        With a default RangeIndex and the columns of ``describe(name).codebook``.

    Raises
    ------
    DataTypeError
        If ``name`` is not a string.
    DataError
        If ``name`` is not an available dataset (the message lists the valid
        names), or if the installed source package cannot provide the data or
        provides data that differ from the data card.

    Examples
    --------
    >>> from mlmci import datasets
    >>> sleep = datasets.load("sleepstudy")
    >>> sleep.shape
    (180, 3)
    >>> sleep.groupby("subject").size().unique().tolist()
    [10]
    >>> radon = datasets.load("radon")
    >>> radon["county"].nunique()
    85
    """
    entry = _entry(name)
    return _prepared(entry.card.name).copy(deep=True)


def _entry(name: object) -> Entry:
    if not isinstance(name, str):
        raise DataTypeError(
            f"the dataset name must be a str, got {type(name).__name__} ({name!r}). "
            f"Valid names: {_listing()}."
        )
    try:
        return CATALOGUE[name]
    except KeyError:
        by_lower = {known.lower(): known for known in CATALOGUE}
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
        hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
        raise DataError(
            f"unknown dataset {name!r}.{hint} Valid names: {_listing()} "
            "(see mlmci.datasets.names())."
        ) from None


def _listing() -> str:
    return ", ".join(repr(known) for known in names())


@cache
def _prepared(name: str) -> pd.DataFrame:
    # Cached so that repeated loads skip decompression; load() hands out copies only.
    entry = CATALOGUE[name]
    frame = _tidy(entry.source.read(), entry)
    _check_against_card(frame, entry)
    return frame


def _tidy(raw: pd.DataFrame, entry: Entry) -> pd.DataFrame:
    frame = raw.drop(columns="rownames", errors="ignore")
    absent = [col for col in entry.rename if col not in frame.columns]
    if absent:
        raise DataError(
            f"{entry.source} has no column(s) {absent}, which the {entry.card.name!r} dataset "
            f"renames; it has {list(frame.columns)}. The installed package may be a different "
            "version than the one mlmci was written against."
        )
    frame = frame.rename(columns=dict(entry.rename))
    for col, levels in entry.categories.items():
        values = frame[col]
        categories = sorted(values.dropna().unique()) if levels is None else list(levels)
        converted = values.astype(pd.CategoricalDtype(categories))
        # astype silently turns a value outside the listed levels into NaN.
        unexpected = values[converted.isna() & values.notna()].unique().tolist()
        if unexpected:
            raise DataError(
                f"column {col!r} of {entry.source} holds value(s) {unexpected} outside the "
                f"documented levels {categories}."
            )
        frame[col] = converted
    return frame.reset_index(drop=True)


def _check_against_card(frame: pd.DataFrame, entry: Entry) -> None:
    card = entry.card
    documented = list(card.codebook)
    problems = []
    if list(frame.columns) != documented:
        problems.append(f"columns {list(frame.columns)} instead of {documented}")
    if len(frame) != card.n_rows:
        problems.append(f"{len(frame)} rows instead of {card.n_rows}")
    wrong = {
        col: str(frame[col].dtype)
        for col in documented
        if col in frame.columns and str(frame[col].dtype) != card.dtypes[col]
    }
    if wrong:
        problems.append(f"dtypes {wrong} instead of {dict(card.dtypes)}")
    if problems:
        raise DataError(
            f"{entry.source} does not match the data card of {card.name!r}: "
            + "; ".join(problems)
            + ". The installed package may be a different version than the one mlmci was "
            "written against."
        )
