"""The IV chapter's datasets (star_grades, card, mroz): cards, invariants, published numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from mlmci import datasets

# Written out independently of the data cards, so a card that drifts fails here.
SHAPES = {"star_grades": (26796, 21), "card": (3010, 34), "mroz": (753, 22)}


@pytest.fixture(scope="module")
def grades() -> pd.DataFrame:
    return datasets.load("star_grades")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_card_matches_data(name):
    frame = datasets.load(name)
    card = datasets.describe(name)
    assert frame.shape == card.shape == SHAPES[name]
    assert list(frame.columns) == list(card.codebook)
    assert {c: str(t) for c, t in frame.dtypes.items()} == dict(card.dtypes)
    assert isinstance(frame.index, pd.RangeIndex)
    assert all(text.strip() for text in card.codebook.values())
    frame.iloc[0, 0] = -1  # a copy: later loads are unaffected
    assert datasets.load(name).iloc[0, 0] != -1


def test_star_grades_dtypes_and_levels(grades):
    for col in ("student", "grade", "school", "small", "system", "entry_grade", "entry_school"):
        assert str(grades[col].dtype) == "int64", col
    for col in ("read", "math", "score_sum", "free_lunch", "teacher_experience"):
        assert str(grades[col].dtype) == "float64", col
    levels = ["regular", "small", "regular+aide"]
    assert list(grades["class_type"].cat.categories) == levels
    assert list(grades["initial_type"].cat.categories) == levels
    assert list(grades["teacher_degree"].cat.categories)[-1] == "phd"
    assert list(grades["teacher_ladder"].cat.categories)[-1] == "notladder"
    assert set(grades["free_lunch"].dropna().unique()) == {0.0, 1.0}
    assert grades["class_type"].notna().all() and grades["school"].notna().all()


def test_star_grades_one_row_per_student_grade(grades):
    assert not grades.duplicated(["student", "grade"]).any()
    assert grades["student"].nunique() == 11598
    assert grades.groupby("grade").size().to_dict() == {0: 6325, 1: 6829, 2: 6840, 3: 6802}
    assert grades.groupby("student").size().value_counts().sort_index().to_dict() == {
        1: 4314,
        2: 2455,
        3: 1744,
        4: 3085,
    }
    assert grades["school"].nunique() == 80
    per_school = grades.groupby("school")
    assert per_school[["school_type", "system"]].nunique().max().max() == 1


def test_star_grades_scores_keep_missing_values(grades):
    both = grades["read"].notna() & grades["math"].notna()
    assert both.groupby(grades["grade"]).sum().to_dict() == {0: 5786, 1: 6379, 2: 6049, 3: 5967}
    missing = grades["score_sum"].isna().groupby(grades["grade"]).sum().to_dict()
    assert missing == {0: 539, 1: 450, 2: 791, 3: 835}
    np.testing.assert_array_equal(grades["score_sum"], grades["read"] + grades["math"])
    assert ((grades["small"] == 1) == (grades["class_type"] == "small")).all()


def test_star_grades_instrument_columns(grades):
    per_student = grades.groupby("student")
    for col in ("initial_type", "initial_small", "entry_grade", "entry_school"):
        assert per_student[col].nunique().max() == 1, col
    assert (grades["entry_grade"] == per_student["grade"].transform("min")).all()
    entry = grades[grades["grade"] == grades["entry_grade"]]
    assert entry["student"].is_unique and len(entry) == 11598
    assert (entry["initial_type"].astype(str) == entry["class_type"].astype(str)).all()
    assert (entry["entry_school"] == entry["school"]).all()
    assert ((grades["initial_small"] == 1) == (grades["initial_type"] == "small")).all()
    entrants = entry.groupby("entry_grade").size().to_dict()
    assert entrants == {0: 6325, 1: 2313, 2: 1679, 3: 1281}
    small_entrants = entry.groupby("entry_grade")["initial_small"].sum().to_dict()
    assert small_entrants == {0: 1900, 1: 384, 2: 366, 3: 373}


def test_star_grades_switchers_match_the_notes(grades):
    per_student = grades.groupby("student")
    changed_type = (
        (grades["class_type"].astype(str) != grades["initial_type"].astype(str))
        .groupby(grades["student"])
        .any()
    )
    counts = {
        "school": int((per_student["school"].nunique() > 1).sum()),
        "type": int(changed_type.sum()),
        "small": int((per_student["small"].nunique() > 1).sum()),
    }
    assert counts == {"school": 446, "type": 2610, "small": 891}
    off = (grades["small"] != grades["initial_small"]).groupby(grades["grade"]).sum().to_dict()
    assert off == {0: 0, 1: 356, 2: 486, 3: 678}
    # Consecutive rows of one student: 474 of the 15198 change school.
    previous = per_student["school"].shift()
    assert (
        int(previous.notna().sum()),
        int((previous.notna() & (previous != grades["school"])).sum()),
    ) == (15198, 474)
    # Students absent from a grade between two grades in the experiment.
    span = per_student["grade"].agg(["min", "max", "size"])
    assert int((span["max"] - span["min"] + 1 > span["size"]).sum()) == 219
    notes = datasets.describe("star_grades").notes
    for number in (
        "26796",
        "446",
        "474",
        "15198",
        "2610",
        "891",
        "219",
        "5786",
        "6379",
        "6049",
        "5967",
    ):
        assert number in notes, number
    groups = datasets.describe("star_grades").groups
    for number in ("6325", "2313", "1679", "1281"):
        assert number in groups, number


def test_star_grades_kindergarten_rows_agree_with_star(grades):
    kinder = grades[grades["grade"] == 0]
    star = datasets.load("star_classes")
    both = star.merge(kinder, on="student", suffixes=("_star", ""), validate="one_to_one")
    assert len(both) == len(star) == 5748
    assert len(kinder) - len(both) == 6325 - 5748
    same = ["school", "class_type", "small", "read", "math", "gender", "ethnicity"]
    same += ["free_lunch", "teacher_experience", "school_type", "system"]
    same += ["teacher_degree", "teacher_ladder", "teacher_ethnicity"]
    for col in same:
        ours, theirs = both[col], both[f"{col}_star"]
        if isinstance(ours.dtype, pd.CategoricalDtype):
            ours, theirs = ours.astype(object), theirs.astype(object)
        pd.testing.assert_series_equal(
            ours.astype("float64") if col in ("read", "math", "free_lunch") else ours,
            theirs.astype("float64") if col in ("read", "math", "free_lunch") else theirs,
            check_names=False,
            check_dtype=False,
        )
    np.testing.assert_array_equal(both["score_sum"], 2 * both["score"])
    assert (both["entry_grade"] == 0).all()


# Stock and Watson (2007), Table 13.1: (small, se), (regular+aide, se), (intercept, se), N.
STOCK_WATSON_13_1 = {
    0: ((13.90, 2.45), (0.31, 2.27), (918.04, 1.63), 5786),
    1: ((29.78, 2.83), (11.96, 2.65), (1039.39, 1.78), 6379),
    2: ((19.39, 2.71), (3.48, 2.54), (1157.81, 1.82), 6049),
    3: ((15.59, 2.40), (-0.29, 2.27), (1228.51, 1.68), 5967),
}


def _differences_fit(grades: pd.DataFrame, grade: int):
    rows = grades[(grades["grade"] == grade) & grades["read"].notna() & grades["math"].notna()]
    design = pd.DataFrame(
        {
            "const": 1.0,
            "small": (rows["class_type"] == "small").astype("float64"),
            "aide": (rows["class_type"] == "regular+aide").astype("float64"),
        }
    )
    return sm.OLS(rows["score_sum"], design).fit(cov_type="HC1")


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_star_grades_reproduce_stock_watson_table_13_1(grades, grade):
    """Stock and Watson (2007, Table 13.1), differences estimates by grade, to the printed digits.

    OLS of the combined score (read + math) on the small-class and regular-with-aide
    dummies, one grade at a time, on the student-grades with both scores, with
    heteroskedasticity-robust HC1 standard errors. Every number reproduces with the sample
    and convention as stated: no rows beyond those lacking a score are dropped. The
    digits are those of the table as reproduced from AER's STAR by Hanck et al.,
    Introduction to Econometrics with R, section 13.3 (stargazer over
    sandwich::vcovHC(type = "HC1")); they agree with the recollection of the printed table.
    """
    fit = _differences_fit(grades, grade)
    small, aide, intercept, n = STOCK_WATSON_13_1[grade]
    assert int(fit.nobs) == n
    for term, (estimate, se) in zip(
        ("small", "aide", "const"), (small, aide, intercept), strict=True
    ):
        assert round(float(fit.params[term]), 2) == estimate, term
        assert round(float(fit.bse[term]), 2) == se, term


def test_star_grades_match_r_sandwich_hc1_at_full_printed_precision(grades):
    # R's lm + sandwich::vcovHC(type = "HC1") on AER's STAR, as printed by coeftest in Hanck
    # et al. (section 13.3): kindergarten and grade 3.
    k, g3 = _differences_fit(grades, 0), _differences_fit(grades, 3)
    assert float(k.params["small"]) == pytest.approx(13.89899, abs=5e-6)
    assert float(k.bse["small"]) == pytest.approx(2.45409, abs=5e-6)
    assert float(k.params["aide"]) == pytest.approx(0.31394, abs=5e-6)
    assert float(k.bse["aide"]) == pytest.approx(2.27098, abs=5e-6)
    assert float(g3.params["small"]) == pytest.approx(15.58660, abs=5e-6)
    assert float(g3.bse["small"]) == pytest.approx(2.39604, abs=5e-6)
    assert float(g3.params["aide"]) == pytest.approx(-0.29094, abs=5e-6)
    assert float(g3.bse["aide"]) == pytest.approx(2.27271, abs=5e-6)


def test_card_example_15_4_facts():
    card = datasets.load("card")
    assert len(card) == 3010 and card["id"].is_unique
    assert round(float(card["educ"].mean()), 2) == 13.26
    assert int(card["nearc4"].sum()) == 2053
    assert round(float(card["nearc4"].mean()), 3) == 0.682
    regions = [f"reg66{i}" for i in range(1, 10)]
    assert (card[regions].sum(axis=1) == 1).all()
    assert (card["south66"] == card[["reg665", "reg666", "reg667"]].sum(axis=1)).all()
    assert (card["exper"] == card["age"] - card["educ"] - 6).all()
    assert (card["expersq"] == card["exper"] ** 2).all()
    np.testing.assert_allclose(card["lwage"], np.log(card["wage"]), rtol=1e-6)
    assert {"kww", "iq"} <= set(card.columns) and "IQ" not in card.columns
    assert sorted(card["married"].dropna().unique()) == [1, 2, 3, 4, 5, 6]
    example = ["lwage", "educ", "nearc4", "exper", "expersq", "black", "smsa", "south"]
    assert not card[[*example, "smsa66", *regions]].isna().any().any()
    # Example 15.4's reduced form for educ (an OLS regression, not IV): .320 (.088) on nearc4.
    controls = ["exper", "expersq", "black", "smsa", "south", "smsa66", *regions[1:]]
    first = sm.OLS(card["educ"], sm.add_constant(card[["nearc4", *controls]])).fit()
    assert round(float(first.params["const"]), 2) == 16.64
    assert round(float(first.params["nearc4"]), 3) == 0.320
    assert round(float(first.bse["nearc4"]), 3) == 0.088
    assert round(float(first.rsquared), 3) == 0.477


def test_mroz_example_15_1_facts():
    mroz = datasets.load("mroz")
    assert len(mroz) == 753
    assert int(mroz["inlf"].sum()) == 428
    working = mroz["inlf"] == 1
    assert (working == (mroz["hours"] > 0)).all()
    assert (mroz["lwage"].notna() == working).all() and (mroz["wage"].notna() == working).all()
    assert int(mroz["lwage"].isna().sum()) == 325
    np.testing.assert_allclose(mroz.loc[working, "lwage"], np.log(mroz.loc[working, "wage"]), 1e-6)
    assert (mroz["expersq"] == mroz["exper"] ** 2).all()
    # Example 15.1's OLS fits on the 428 working women: log(wage) on educ, and educ on fatheduc.
    women = mroz[working]
    ols = sm.OLS(women["lwage"], sm.add_constant(women[["educ"]])).fit()
    assert (round(float(ols.params["educ"]), 3), round(float(ols.bse["educ"]), 3)) == (0.109, 0.014)
    assert round(float(ols.params["const"]), 3) == -0.185
    first = sm.OLS(women["educ"], sm.add_constant(women[["fatheduc"]])).fit()
    assert round(float(first.params["fatheduc"]), 3) == 0.269
    assert round(float(first.bse["fatheduc"]), 3) == 0.029
    assert round(float(first.rsquared), 3) == 0.173
    assert "428" in datasets.describe("mroz").notes
