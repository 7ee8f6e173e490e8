"""The data card: what a dataset is, where it comes from, and what every column means."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mlmci.errors import ArgumentError


@dataclass(frozen=True)
class DataCard:
    """Documentation of one dataset shipped through :mod:`mlmci.datasets`.

    Attributes
    ----------
    name : str
        The name to pass to :func:`mlmci.datasets.load`.
    title : str
        One line saying what the data are.
    source : str
        The installed package and object the rows are read from.
    citation : str
        The original study and the textbook the data are known from.
    unit : str
        The unit of observation (what one row is), e.g. ``"person-year"``.
    n_rows, n_cols : int
        Shape of the loaded DataFrame.
    groups : str
        The grouping structure, e.g. ``"545 men, each observed in 1980-1987"``.
    codebook : Mapping[str, str]
        Column name -> description, for every column of the loaded DataFrame,
        in column order. Read-only.
    dtypes : Mapping[str, str]
        Column name -> pandas dtype of the loaded column (``"int64"``,
        ``"float64"``, ``"category"``). Read-only.
    licence : str
        What is known of the terms under which the data are distributed.
    notes : str
        How the loaded frame differs from the source (renamed columns, dtypes)
        and anything a user should know before analysing it.

    Examples
    --------
    >>> from mlmci import datasets
    >>> card = datasets.describe("sleepstudy")
    >>> card.shape
    (180, 3)
    >>> card.unit
    'subject-day'
    >>> list(card.codebook)
    ['reaction', 'days', 'subject']
    """

    name: str
    title: str
    source: str
    citation: str
    unit: str
    n_rows: int
    n_cols: int
    groups: str
    codebook: Mapping[str, str]
    dtypes: Mapping[str, str]
    licence: str
    notes: str = ""

    def __post_init__(self) -> None:
        # A card is shared by every describe() call, so its mappings must be read-only.
        object.__setattr__(self, "codebook", MappingProxyType(dict(self.codebook)))
        object.__setattr__(self, "dtypes", MappingProxyType(dict(self.dtypes)))
        if list(self.dtypes) != list(self.codebook):
            raise ArgumentError(
                f"data card {self.name!r}: dtypes and codebook must list the same columns in "
                f"the same order; codebook has {list(self.codebook)}, dtypes {list(self.dtypes)}."
            )
        if len(self.codebook) != self.n_cols:
            raise ArgumentError(
                f"data card {self.name!r}: n_cols is {self.n_cols} but the codebook describes "
                f"{len(self.codebook)} columns."
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)``, as ``DataFrame.shape`` of the loaded data."""
        return (self.n_rows, self.n_cols)

    def _header_fields(self) -> list[tuple[str, str]]:
        fields = [
            ("Source", self.source),
            ("Citation", self.citation),
            ("Unit", self.unit),
            ("Shape", f"{self.n_rows} rows × {self.n_cols} columns"),
            ("Groups", self.groups),
            ("Licence", self.licence),
        ]
        if self.notes:
            fields.append(("Notes", self.notes))
        return fields

    def __str__(self) -> str:
        width = 100
        lines = [f"{self.name}: {self.title}", ""]
        for label, text in self._header_fields():
            lines.extend(
                textwrap.wrap(
                    text,
                    width=width,
                    initial_indent=f"{label + ':':<10}",
                    subsequent_indent=" " * 10,
                )
            )
        lines.extend(["", "Codebook:"])
        col_width = max(len(c) for c in self.codebook) + 2
        type_width = max(len(t) for t in self.dtypes.values()) + 2
        indent = " " * (2 + col_width + type_width)
        for col, text in self.codebook.items():
            first = f"  {col:<{col_width}}{self.dtypes[col]:<{type_width}}"
            lines.extend(
                textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=indent)
            )
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        def cell(text: str) -> str:
            # A literal "|" (as in "GPL-2 | GPL-3") would split a Markdown table cell.
            return text.replace("|", "\\|").replace("\n", " ")

        lines = [f"**{self.name}**: {cell(self.title)}", "", "| field | value |", "|---|---|"]
        lines.extend(f"| {label} | {cell(text)} |" for label, text in self._header_fields())
        lines.extend(["", "| column | dtype | description |", "|---|---|---|"])
        lines.extend(
            f"| `{col}` | {self.dtypes[col]} | {cell(text)} |"
            for col, text in self.codebook.items()
        )
        return "\n".join(lines)
