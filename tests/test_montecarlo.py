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


def test_score_with_one_row_per_replication():
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
            "rep": [0, 1, 2],
        }
    )
    row = montecarlo.score(draws).iloc[0]
    assert row["n_reps"] == 3 and row["n"] == 3
    assert row["bias"] == pytest.approx(2 / 3)
    sd = math.sqrt(((-1 - 2 / 3) ** 2 + (1 - 2 / 3) ** 2 + (2 - 2 / 3) ** 2) / 2)
    assert row["bias_mcse"] == pytest.approx(sd / math.sqrt(3))
    assert row["rmse"] == pytest.approx(math.sqrt(2.0))
    # MSE = 2; squared errors 1, 1, 4: MCSE(MSE) = sqrt(6 / 6) = 1; delta method / (2 RMSE).
    assert row["rmse_mcse"] == pytest.approx(1 / (2 * math.sqrt(2.0)))
    assert row["coverage"] == pytest.approx(2 / 3)
    # the sd / sqrt(R) of the 0/1 coverage indicators (ddof 1)
    assert row["coverage_mcse"] == pytest.approx(np.std([1, 1, 0], ddof=1) / math.sqrt(3))
    assert row["mean_std_error"] == pytest.approx(5 / 3)


def _toy_groups() -> pd.DataFrame:
    rows = [
        # estimator, rep, group, estimate, ci_low, ci_high
        ("a", 0, 1, 1.0, 0.2, 1.8),
        ("a", 0, 2, -0.5, -1.0, 0.0),
        ("a", 1, 1, 0.2, -0.5, 0.5),
        ("a", 1, 2, 2.0, 1.5, 2.5),
        ("b", 0, 1, 0.0, -1.0, 1.0),
        ("b", 0, 2, 0.4, 0.0, 1.2),
        ("b", 1, 1, -0.1, -0.3, 0.1),
        ("b", 1, 2, 0.5, 0.4, 0.6),
    ]
    table = pd.DataFrame(
        rows, columns=["estimator", "rep", "group", "estimate", "ci_low", "ci_high"]
    )
    return table.assign(term="effect", truth=table["group"].map({1: 0.5, 2: 1.0}))


def test_score_clusters_rows_of_one_replication():
    # Several rows per replication (one per group) share a fit: the replications, not
    # the rows, are the independent units of the MCSE.
    table = montecarlo.score(_toy_groups()).set_index("estimator")
    a = table.loc["a"]
    # errors: rep 0: 0.5, -1.5; rep 1: -0.3, 1.0
    assert a["n_reps"] == 2 and a["n"] == 4
    assert a["bias"] == pytest.approx((0.5 - 1.5 - 0.3 + 1.0) / 4)
    assert a["bias_mcse"] == pytest.approx(abs((0.5 - 1.5) / 2 - (-0.3 + 1.0) / 2) / 2)
    mse0, mse1 = (0.25 + 2.25) / 2, (0.09 + 1.0) / 2
    rmse = np.sqrt((mse0 + mse1) / 2)
    assert a["rmse"] == pytest.approx(rmse)
    assert a["rmse_mcse"] == pytest.approx(abs(mse0 - mse1) / 2 / (2 * rmse))
    # covered: rep 0: yes, no; rep 1: yes (0.5 on the upper limit counts), no
    assert a["coverage"] == pytest.approx(0.5)
    assert a["coverage_mcse"] == pytest.approx(0.0)
    # sign errors: rep 0: group 2 (-0.5 vs 1.0); rep 1: none
    assert a["sign_error"] == pytest.approx(0.25)
    assert a["sign_error_mcse"] == pytest.approx(abs(0.5 - 0.0) / 2)
    assert a["mean_width"] == pytest.approx((1.6 + 1.0 + 1.0 + 1.0) / 4)
    b = table.loc["b"]
    # an estimate of exactly 0 is a sign error (rep 0, group 1); so is -0.1 vs 0.5
    assert b["sign_error"] == pytest.approx(0.5)
    assert b["coverage"] == pytest.approx(0.5)  # covered: rep 0 both, rep 1 neither
    assert b["coverage_mcse"] == pytest.approx(0.5)


def test_score_leaves_out_zero_truths_from_sign_errors():
    draws = _toy_groups()
    draws["truth"] = [0.0, 1.0, 0.5, 1.0] * 2
    b = montecarlo.score(draws).set_index("estimator").loc["b"]
    # eligible: rep 0 group 2 (right), rep 1 groups 1 (wrong) and 2 (right): 1 of 3
    assert b["sign_error"] == pytest.approx(1 / 3)
    # ratio estimator with replications as clusters: a = (0, 1), b = (1, 2), m = 1/3
    residual = np.array([0 - 1 / 3 * 1, 1 - 1 / 3 * 2])
    expected = np.sqrt((residual**2).sum() / 2) / 1.5
    assert b["sign_error_mcse"] == pytest.approx(expected)
    assert np.isnan(montecarlo.score(draws.assign(truth=0.0))["sign_error"]).all()


def test_score_counts_failures_and_boundary_fits():
    draws = _toy_groups().assign(failed=0, boundary=0)
    lost = (draws["estimator"] == "a") & (draws["rep"] == 1)
    draws.loc[lost, ["failed", "estimate"]] = [1, np.nan]
    draws.loc[(draws["estimator"] == "b") & (draws["rep"] == 0), "boundary"] = 1
    table = montecarlo.score(draws).set_index("estimator")
    assert table.loc["a", "fail_rate"] == pytest.approx(0.5)
    assert table.loc["a", "n_reps"] == 1  # the failed replication is not scored
    # One failed row standing for a whole replication counts as one failed replication.
    one_row = draws[~(lost & (draws["group"] == 2))]
    assert montecarlo.score(one_row).set_index("estimator").loc["a", "fail_rate"] == 0.5
    assert table.loc["b", "boundary_rate"] == pytest.approx(0.5)


def test_score_separates_cells():
    draws = pd.concat(
        [_draw(np.random.default_rng(i), s).assign(cell=s, rep=i) for i, s in enumerate([0.0, 9.0])]
    )
    scored = montecarlo.score(draws, by=["cell"])
    assert scored["cell"].tolist() == [0.0, 9.0]
    assert scored["rmse_mcse"].isna().all()  # one replication per cell: no MCSE


def _paired(reps: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    common = rng.normal(size=reps)  # noise both estimators share (the same data set)
    own = rng.normal(size=(2, reps))
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "estimator": name,
                    "term": "b",
                    "rep": np.arange(reps),
                    "estimate": common + scale * own[k],
                    "ci_low": -10.0,
                    "ci_high": 10.0,
                    "truth": 0.0,
                }
            )
            for k, (name, scale) in enumerate([("small", 0.1), ("large", 0.3)])
        ]
    )


def test_compare_is_paired_and_gives_the_verdict():
    draws = _paired()
    row = montecarlo.compare(draws, "small", "large").iloc[0]
    scored = montecarlo.score(draws).set_index("estimator")["rmse"]
    assert row["difference"] == pytest.approx(scored["small"] - scored["large"])
    # The paired MCSE is far below the unpaired one: the shared noise cancels.
    unpaired = np.hypot(*montecarlo.score(draws).set_index("estimator")["rmse_mcse"])
    assert row["mcse"] < unpaired / 3
    assert row["verdict"] == "better"
    assert montecarlo.compare(draws, "large", "small")["verdict"].item() == "worse"
    same = draws.assign(estimator=draws["estimator"].replace({"large": "twin"}))
    same.loc[same["estimator"] == "twin", "estimate"] = same.loc[
        same["estimator"] == "small", "estimate"
    ].to_numpy()
    assert montecarlo.compare(same, "small", "twin")["verdict"].item() == "indistinguishable"


def test_compare_by_hand_on_two_replications():
    draws = _toy_groups()
    row = montecarlo.compare(draws, "a", "b", metric="mse").iloc[0]
    # per-replication MSEs: a (1.25, 0.545), b (0.25 + 0.36 = 0.61 / 2, ...) -- by hand:
    sq = (draws["estimate"] - draws["truth"]) ** 2
    per = sq.groupby([draws["estimator"], draws["rep"]]).mean().unstack()
    d = per.loc["a"] - per.loc["b"]
    assert row["difference"] == pytest.approx(d.mean())
    assert row["mcse"] == pytest.approx(d.std(ddof=1) / np.sqrt(2))


def test_compare_drops_a_replication_where_either_failed():
    draws = _paired(reps=50).assign(failed=0)
    draws.loc[(draws["estimator"] == "large") & (draws["rep"] < 5), ["failed", "estimate"]] = [
        1,
        np.nan,
    ]
    assert montecarlo.compare(draws, "small", "large")["n_reps"].item() == 45
    with pytest.raises(DataError, match="metric"):
        montecarlo.compare(draws, "small", "large", metric="power")
    with pytest.raises(DataError, match="nope"):
        montecarlo.compare(draws, "small", "nope")


def test_score_refuses_missing_columns_and_missing_values():
    draws = _draw(np.random.default_rng(0), 0.0).assign(rep=0)
    with pytest.raises(DataError, match="rep"):
        montecarlo.score(draws.drop(columns="rep"))
    with pytest.raises(DataError, match="truth"):
        montecarlo.score(draws.drop(columns="truth"))
    with pytest.raises(DataError, match="estimate"):
        montecarlo.score(draws.assign(estimate=np.nan))


def test_sentence_states_only_what_the_verdict_allows():
    row = {"metric": "rmse", "difference": 0.05, "mcse": 0.01, "verdict": "worse"}
    assert montecarlo.sentence(row, "A", "B") == (
        "the RMSE of A is higher than that of B by 0.050 (5 paired MCSEs)"
    )
    tie = {"metric": "abs_bias", "difference": -0.01, "mcse": 0.02, "verdict": "indistinguishable"}
    assert montecarlo.sentence(tie, "A", "B").startswith("A and B are within Monte Carlo error")
    assert "absolute bias difference -0.010" in montecarlo.sentence(tie, "A", "B")


def test_sentence_refuses_an_unknown_metric():
    with pytest.raises(KeyError):
        montecarlo.sentence({"metric": "mae", "difference": 0, "mcse": 1, "verdict": "x"}, "A", "B")


def test_with_mcse_formats_each_row_and_needs_both_columns():
    scores = pd.DataFrame({"coverage": [0.951, 0.8], "coverage_mcse": [0.0098, 0.02]})
    assert montecarlo.with_mcse(scores, "coverage", digits=2).tolist() == [
        "0.95 (0.01)",
        "0.80 (0.02)",
    ]
    with pytest.raises(DataError, match="coverage_mcse"):
        montecarlo.with_mcse(scores.drop(columns="coverage_mcse"), "coverage")
