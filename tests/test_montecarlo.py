"""Tests of mlmci.montecarlo: reproducible streams, the quick mode, and the scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlmci import montecarlo, runmode
from mlmci.errors import DataError


def _draw(rng: np.random.Generator, shift: float) -> pd.DataFrame:
    x = rng.normal(shift, 1.0)
    return pd.DataFrame(
        {
            "estimator": ["e"],
            "term": ["t"],
            "estimate": [x],
            "std_error": [1.0],
            "ci_low": [x - 1.96],
            "ci_high": [x + 1.96],
            "interval": ["95% CI"],
            "truth": [shift],
        }
    )


def test_run_stacks_cells_and_replications_with_their_labels(monkeypatch):
    monkeypatch.delenv(runmode.QUICK_ENV, raising=False)
    out = montecarlo.run(_draw, [{"shift": 0.0}, {"shift": 5.0}], reps=7, seed=3)
    assert len(out) == 14
    assert out.groupby("shift")["rep"].apply(list).tolist() == [list(range(7))] * 2
    assert (out["truth"] == out["shift"]).all()


def test_run_gives_the_same_draws_whatever_the_number_of_workers(monkeypatch):
    monkeypatch.delenv(runmode.QUICK_ENV, raising=False)
    grid = [{"shift": 0.0}, {"shift": 1.0}]
    serial = montecarlo.run(_draw, grid, reps=6, seed=11, n_jobs=1)
    parallel = montecarlo.run(_draw, grid, reps=6, seed=11, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)
    other_seed = montecarlo.run(_draw, grid, reps=6, seed=12, n_jobs=1)
    assert not np.allclose(serial["estimate"], other_seed["estimate"])


def test_quick_mode_caps_the_replications(monkeypatch):
    monkeypatch.setenv(runmode.QUICK_ENV, "1")
    out = montecarlo.run(_draw, [{"shift": 0.0}], reps=50, seed=1)
    assert len(out) == runmode.QUICK_REPS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"reps": 0, "grid": [{}]}, "reps"), ({"reps": 3, "grid": []}, "grid is empty")],
)
def test_run_refuses_an_empty_study(kwargs, message):
    with pytest.raises(ValueError, match=message):
        montecarlo.run(_draw, seed=1, **kwargs)


def test_run_refuses_a_replication_that_returns_no_table():
    with pytest.raises(DataError, match="returned float"):
        montecarlo.run(lambda rng: 1.0, [{}], reps=2, seed=1)


def test_score_matches_hand_computed_values():
    # Errors -1, 1, 2 around truth 0; intervals cover the first two only.
    draws = pd.DataFrame(
        {
            "estimator": "e",
            "term": "t",
            "estimate": [-1.0, 1.0, 2.0],
            "std_error": [1.0, 1.0, 3.0],
            "ci_low": [-2.0, 0.0, 1.0],
            "ci_high": [0.0, 2.0, 3.0],
            "truth": 0.0,
        }
    )
    row = montecarlo.score(draws).iloc[0]
    assert row["n_reps"] == 3
    assert row["bias"] == pytest.approx(2 / 3)
    sd = math.sqrt(((-1 - 2 / 3) ** 2 + (1 - 2 / 3) ** 2 + (2 - 2 / 3) ** 2) / 2)
    assert row["bias_mcse"] == pytest.approx(sd / math.sqrt(3))
    assert row["rmse"] == pytest.approx(math.sqrt(2.0))
    # MSE = 2; squared errors 1, 1, 4: MCSE(MSE) = sqrt(6 / 6) = 1; delta method / (2 RMSE).
    assert row["rmse_mcse"] == pytest.approx(1 / (2 * math.sqrt(2.0)))
    assert row["coverage"] == pytest.approx(2 / 3)
    assert row["coverage_mcse"] == pytest.approx(math.sqrt((2 / 3) * (1 / 3) / 3))
    assert row["mean_std_error"] == pytest.approx(5 / 3)


def test_score_separates_cells():
    draws = pd.concat(
        [_draw(np.random.default_rng(i), s).assign(cell=s) for i, s in enumerate([0.0, 9.0])]
    )
    scored = montecarlo.score(draws, by=["cell"])
    assert scored["cell"].tolist() == [0.0, 9.0]


def test_score_refuses_missing_columns_and_missing_values():
    draws = _draw(np.random.default_rng(0), 0.0)
    with pytest.raises(DataError, match="truth"):
        montecarlo.score(draws.drop(columns="truth"))
    with pytest.raises(DataError, match="estimate"):
        montecarlo.score(draws.assign(estimate=np.nan))
