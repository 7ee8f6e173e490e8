"""The shared identification check: mlmci.identification.dependent_columns."""

from __future__ import annotations

import numpy as np
import pytest

from mlmci.errors import DataError
from mlmci.identification import RANK_TOL, dependent_columns


def test_the_tolerance_is_the_documented_one():
    assert RANK_TOL == 1e-9


def test_a_full_rank_design_has_no_dependent_column():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(50), rng.normal(size=(50, 4))])
    assert dependent_columns(x) == []
    assert dependent_columns(x, list("abcde")) == []


def test_an_empty_design_has_no_dependent_column():
    assert dependent_columns(np.zeros((10, 0))) == []
    assert dependent_columns(np.zeros((0, 0)), []) == []


def test_a_design_without_rows_identifies_nothing():
    assert dependent_columns(np.zeros((0, 2)), ["a", "b"]) == ["a", "b"]


def test_a_zero_column_is_dependent_wherever_it_is():
    x = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 4.0, 0.0]])
    assert dependent_columns(x, ["zero", "x", "zero2"]) == ["zero", "zero2"]


def test_exact_collinearity_drops_the_later_column_so_order_decides():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 30))
    x = np.column_stack([a, b, a + 2 * b])
    assert dependent_columns(x, ["a", "b", "a+2b"]) == ["a+2b"]
    assert dependent_columns(x[:, ::-1], ["a+2b", "b", "a"]) == ["a"]


def test_a_constant_is_collinear_with_an_intercept_at_any_level():
    x = np.column_stack([np.ones(5), np.arange(5.0), np.full(5, 2026.0)])
    assert dependent_columns(x, ["const", "t", "year"]) == ["year"]


def test_more_columns_than_rows_leaves_the_extra_columns_dependent():
    rng = np.random.default_rng(2)
    assert dependent_columns(rng.normal(size=(2, 4))) == [2, 3]


@pytest.mark.parametrize(("factor", "verdict"), [(0.99, [1]), (1.01, [])])
def test_the_rule_is_residual_at_most_rank_tol_times_the_length(factor, verdict):
    # x1 = e1 and x2 = e1 + delta e2: the residual of x2 on x1 is exactly delta and the
    # length of x2 is 1 to double precision, so the verdict flips at delta = RANK_TOL.
    delta = factor * RANK_TOL
    x = np.array([[1.0, 1.0], [0.0, delta], [0.0, 0.0]])
    assert dependent_columns(x) == verdict


@pytest.mark.parametrize("power", [-150, -30, 0, 30, 150])
def test_the_verdict_does_not_depend_on_the_units(power):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 20))
    x = np.column_stack([a, b, a - b, 1e-7 * rng.normal(size=20) + a])
    units = np.array([1.0, 10.0**power, 1.0, 10.0**-power])
    assert dependent_columns(x * units) == [2]


def test_a_near_copy_well_above_the_tolerance_is_kept():
    rng = np.random.default_rng(4)
    a, e = rng.normal(size=(2, 1000))
    x = np.column_stack([a, a + 1e-6 * e])  # relative residual about 1e-6
    assert dependent_columns(x) == []


def test_a_dependent_column_never_enters_the_basis():
    # x2 is x1 up to 1e-12 (dependent); had its residual direction e2 joined the basis,
    # x3 = e2 would look dependent too.
    x = np.array([[1.0, 1.0, 0.0], [0.0, 1e-12, 1.0], [0.0, 0.0, 0.0]])
    assert dependent_columns(x) == [1]


def test_scale_measures_a_demeaned_column_against_its_raw_length():
    # A covariate constant within groups, demeaned: rounding noise of ~1e-16 of its raw
    # length, which is all of its own length.
    raw = np.array([0.1, 0.1, 0.1, 0.7, 0.7, 0.7]) * 3
    noise = np.array([1e-17, 0.0, -1e-17, 0.0, 2e-17, -2e-17])
    varying = np.array([1.0, -1.0, 0.0, 2.0, 0.0, -2.0])
    x = np.column_stack([varying, noise])
    assert dependent_columns(x) == []
    scale = np.linalg.norm(np.column_stack([varying, raw]), axis=0)
    assert dependent_columns(x, ["x", "z"], scale=scale) == ["z"]


def test_it_agrees_with_the_rank_on_designs_with_planted_collinearity():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n, k = rng.integers(3, 40), rng.integers(1, 8)
        x = rng.normal(size=(n, k)) * 10.0 ** rng.integers(-3, 4, size=k)
        if k > 2:
            x[:, -1] = x[:, : k - 1] @ rng.normal(size=k - 1)
        assert k - len(dependent_columns(x)) == np.linalg.matrix_rank(x)


def test_integer_and_boolean_designs_are_accepted():
    x = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 1]])
    assert dependent_columns(x) == [2]
    assert dependent_columns(x.astype(bool)) == [2]


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        (np.ones(3), {}, "2-D"),
        (np.array([["a", "b"]]), {}, "2-D"),
        (np.array([[1.0, np.nan]]), {}, "missing or infinite"),
        (np.array([[1.0, np.inf]]), {}, "missing or infinite"),
        (np.ones((3, 2)), {"names": ["a"]}, "1 names for a design with 2 columns"),
        (np.ones((3, 2)), {"scale": [1.0]}, "one finite, non-negative length"),
        (np.ones((3, 2)), {"scale": [1.0, -1.0]}, "one finite, non-negative length"),
        (np.ones((3, 2)), {"scale": [1.0, np.nan]}, "one finite, non-negative length"),
    ],
)
def test_bad_input_raises_a_data_error(x, kwargs, message):
    with pytest.raises(DataError, match=message) as info:
        dependent_columns(x, **kwargs)
    assert isinstance(info.value, ValueError)
