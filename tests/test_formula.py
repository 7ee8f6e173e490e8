"""The one formula reader: mlmci.formula.parse_formula."""

from __future__ import annotations

import pytest

from mlmci.errors import DataError, DataTypeError
from mlmci.formula import RandomTerm, parse_formula


@pytest.mark.parametrize(
    ("formula", "columns"),
    [
        ("y ~ x", ["y", "x"]),
        ("y ~ 1", ["y"]),
        ("y ~ 0 + x + z", ["y", "x", "z"]),
        ("y ~ x - 1", ["y", "x"]),
        ("y ~ -1 + x", ["y", "x"]),
        ("y ~ a:b", ["y", "a", "b"]),
        ("y ~ a*b + a:c", ["y", "a", "b", "c"]),
        ("y ~ (a + b)**2", ["y", "a", "b"]),
        ("y ~ C(school) + x", ["y", "school", "x"]),
        ("y ~ C(school, Treatment('b'))", ["y", "school"]),
        ("y ~ I(x**2) + I(x - z)", ["y", "x", "z"]),
        ("y ~ {x / 2} + z", ["y", "x", "z"]),  # formulae's braces: I(x / 2)
        ("y ~ np.log(x) + scale(z)", ["y", "x", "z"]),
        ("p(successes, trials) ~ x", ["successes", "trials", "x"]),
        ("y ~ x + (1 | g)", ["y", "x", "g"]),
        ("y ~ x + (0 + x | g)", ["y", "x", "g"]),
        ("y ~ (1 + scale(x) | g)", ["y", "x", "g"]),
        ("y ~ (1 | g) + (1 | h)", ["y", "g", "h"]),
        ("y ~ (1 | school/class)", ["y", "school", "class"]),
        ("y ~ (1 | school:class)", ["y", "school", "class"]),
        ("y ~ x + (x || g)", ["y", "x", "g"]),
        ("y ~ x + x:z + z", ["y", "x", "z"]),  # each column once, in order of first mention
        ("`log y` ~ `dose (mg)` + (1 | `the site`)", ["log y", "dose (mg)", "the site"]),
    ],
)
def test_the_columns_of_a_formula(formula, columns):
    assert parse_formula(formula).columns == columns


def test_the_parts_of_a_formula():
    terms = parse_formula("y ~ 0 + C(a) + b:c + (1 + d || s/k) + (0 + b | h)")
    assert terms.response == ("y",)
    assert terms.fixed == ("a", "b", "c")
    assert terms.random == (
        RandomTerm(columns=("d",), factors=("s", "k"), nested=True, correlated=False),
        RandomTerm(columns=("b",), factors=("h",), nested=False, correlated=True),
    )


def test_a_varying_intercept_has_no_columns_of_its_own():
    (term,) = parse_formula("y ~ x + (1 | g)").random
    assert term == RandomTerm(columns=(), factors=("g",), nested=False, correlated=True)


def test_a_formula_without_a_random_part_has_none():
    assert parse_formula("y ~ x").random == ()


def test_a_formula_without_a_response_has_none():
    assert parse_formula("~ x").response == ()


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y x (1 | g)", "no '~'"),
        ("y ~~ x", "more than one '~'"),
        ("y ~ x +", "does not parse near 'x \\+'"),
        ("y ~ (x", "unmatched '\\('"),
        ("y ~ x)", "unmatched '\\)'"),
        ("y ~ (x + (1 | g)", "unmatched '\\('"),
        ("y ~ x | g", "a '\\|' outside"),
        ("y ~ (1 | g | h)", "two bars"),
        ("y ~ (1 ||| g)", "two bars"),
        ("y ~ ((1 | h) | g)", "a bar term inside another"),
        ("y ~ (1 | g + h)", "the grouping 'g \\+ h' is not a column"),
        ("y ~ (1 | 2)", "the grouping '2' is not a column"),
        ("y ~ (1 | )", "the grouping '' is not a column"),
        ("y ~ x.attribute", "does not parse"),
        ("y ~ x[0]", "does not parse"),
        ("y ~ 'x'", "does not parse"),
        ("y ~ x + + z$", "does not parse"),
    ],
)
def test_a_formula_that_does_not_parse_raises_a_data_error(formula, message):
    with pytest.raises(DataError, match=message):
        parse_formula(formula)


def test_a_formula_that_is_not_a_string_raises_a_type_error():
    with pytest.raises(DataTypeError, match="formula must be a string"):
        parse_formula(["y ~ x"])
