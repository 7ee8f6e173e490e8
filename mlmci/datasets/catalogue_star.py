"""Catalogue entry ``star_classes``: Project STAR, kindergarten, with teacher traits and classes.

AER's ``STAR`` does not identify kindergarten classes, but it records the class type
and four traits of each student's kindergarten teacher (experience, degree, career
ladder, ethnicity). Students of one school with the same class type and the same four
teacher traits almost surely shared a teacher: that combination is the
``pseudo_class``. The rows are exactly those of ``star`` (same students, same order,
same values); only teacher columns and the proxy are added.
"""

from __future__ import annotations

import pandas as pd

from mlmci.datasets.card import DataCard
from mlmci.datasets.catalogue import _STAR, Entry, _star_kindergarten
from mlmci.datasets.sources import Derived, RDataset

__all__ = ["STAR_ENTRIES"]

#: The teacher traits that, with school and class type, define a pseudo-class.
PSEUDO_CLASS_KEYS = (
    "school",
    "class_type",
    "teacher_experience",
    "teacher_degree",
    "teacher_ladder",
    "teacher_ethnicity",
)


def _star_classes(raw: pd.DataFrame) -> pd.DataFrame:
    """``star`` plus the kindergarten teacher's degree, ladder and ethnicity, and the proxy."""
    base = _star_kindergarten(raw)
    teacher = raw.set_index(raw["rownames"].astype("int64")).loc[
        base["student"], ["degreek", "ladderk", "tethnicityk"]
    ]
    frame = base.assign(
        teacher_degree=teacher["degreek"].to_numpy(),
        teacher_ladder=teacher["ladderk"].to_numpy(),
        teacher_ethnicity=teacher["tethnicityk"].to_numpy(),
    )
    # A missing trait is a value of its own here (the class shares it), not a reason to drop.
    keys = frame[list(PSEUDO_CLASS_KEYS)].astype(object).fillna("(missing)").astype(str)
    # Numbered 1, 2, ... in the sorted order of the keys (stable across pandas versions).
    frame["pseudo_class"] = (keys.groupby(list(keys.columns), sort=True).ngroup() + 1).astype(
        "int64"
    )
    return frame


_DEGREES = ("bachelor", "master", "master+", "specialist")
_LADDERS = ("apprentice", "probation", "pending", "level1", "level2", "level3")

_STAR_CLASSES = Entry(
    source=Derived(
        RDataset("AER", "STAR"),
        _star_classes,
        "the kindergarten sample of `star`, with the kindergarten teacher's traits and a "
        "pseudo-class identifier",
    ),
    categories={
        **_STAR.categories,
        "teacher_degree": _DEGREES,
        "teacher_ladder": _LADDERS,
        "teacher_ethnicity": ("cauc", "afam"),
    },
    card=DataCard(
        name="star_classes",
        title=(
            "Project STAR, kindergarten, with teacher traits and pseudo-classes (school x "
            "class type x teacher traits)"
        ),
        source=_STAR.card.source + " The teacher columns degreek, ladderk and tethnicityk too.",
        citation=_STAR.card.citation,
        unit=_STAR.card.unit,
        n_rows=5748,
        n_cols=17,
        groups=(
            "The 5748 students of `star` in 79 schools and 322 pseudo-classes (126 small, 99 "
            "regular, 97 regular+aide; Krueger 1999 reports 325 kindergarten classes: 127 "
            "small, 99 regular, 99 regular+aide), 4 to 41 students each (median 18)."
        ),
        codebook={
            **_STAR.card.codebook,
            "teacher_degree": (
                "Kindergarten teacher's highest degree: categorical, levels 'bachelor', "
                "'master', 'master+', 'specialist' (AER: degreek)."
            ),
            "teacher_ladder": (
                "Kindergarten teacher's career-ladder level: categorical, levels 'apprentice', "
                "'probation', 'pending', 'level1', 'level2', 'level3' (AER: ladderk; "
                "missing for 500 students)."
            ),
            "teacher_ethnicity": (
                "Kindergarten teacher's ethnicity: categorical, levels 'cauc', 'afam' (AER: "
                "tethnicityk; missing for 22 students)."
            ),
            "pseudo_class": (
                "Proxy for the kindergarten class, 1-322: one code per distinct (school, "
                "class_type, teacher_experience, teacher_degree, teacher_ladder, "
                "teacher_ethnicity), a missing trait counting as a value. Two teachers of one "
                "school and class type with identical traits merge into one pseudo-class (a "
                "few pseudo-classes are larger than any real class: 1 small one above 17 "
                "students, 2 regular ones above 25)."
            ),
        },
        dtypes={
            **_STAR.card.dtypes,
            "teacher_degree": "category",
            "teacher_ladder": "category",
            "teacher_ethnicity": "category",
            "pseudo_class": "int64",
        },
        licence=_STAR.card.licence,
        notes=(
            "Rows, order and the first 13 columns are exactly those of `star` (see its card). "
            "The proxy approximates the unit randomized within a school (the class and its "
            "teacher): use it for class-level random effects or class-clustered standard "
            "errors, knowing that it merges a few classes whose teachers look alike."
        ),
    ),
)

STAR_ENTRIES: tuple[Entry, ...] = (_STAR_CLASSES,)
