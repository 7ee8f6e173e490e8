"""Tests of the classroom simulator: the matching model recovers each DGP's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from pandas.testing import assert_frame_equal

from mlmci import mixed
from mlmci.simulate import simulate_classroom


def test_shape_columns_and_truth() -> None:
    data, truth = simulate_classroom(dgp="modification", n_classrooms=6, n_students=4, seed=0)
    assert data.shape == (24, 4)
    assert list(data.columns) == ["classroom", "student", "effort", "score"]
    assert data.groupby("classroom").size().eq(4).all()
    assert truth["dgp"] == "modification"
    slopes = truth["classroom_slopes"]
    assert isinstance(slopes, pd.Series)
    assert list(slopes.index) == sorted(data["classroom"].unique())
    assert truth["mean_classroom_slope"] == pytest.approx(slopes.mean())
    assert isinstance(truth["beta"], float)
    assert isinstance(truth["tau"], float)


def test_confounding_has_one_slope() -> None:
    _, truth = simulate_classroom(dgp="confounding", n_classrooms=5, n_students=3, seed=0)
    assert truth["tau"] == 0.0
    assert (truth["classroom_slopes"] == truth["beta"]).all()
    assert truth["confounding"] > 0


def test_seed_reproduces_and_seeds_differ() -> None:
    a, _ = simulate_classroom(dgp="confounding", n_classrooms=5, n_students=3, seed=11)
    b, _ = simulate_classroom(dgp="confounding", n_classrooms=5, n_students=3, seed=11)
    c, _ = simulate_classroom(dgp="confounding", n_classrooms=5, n_students=3, seed=12)
    assert_frame_equal(a, b)
    assert not np.allclose(a["score"], c["score"])


def test_confounding_dgp_dummies_recover_the_slope_pooled_ols_does_not() -> None:
    data, truth = simulate_classroom(dgp="confounding", n_classrooms=60, n_students=20, seed=3)
    dummies = smf.ols("score ~ effort + C(classroom)", data).fit()
    assert abs(dummies.params["effort"] - truth["beta"]) < 4 * dummies.bse["effort"]
    pooled = smf.ols("score ~ effort", data).fit(
        cov_type="cluster", cov_kwds={"groups": data["classroom"]}
    )
    gap = pooled.params["effort"] - truth["beta"]
    assert gap > 4 * pooled.bse["effort"]
    # The documented limit of the pooled slope: beta + gamma s_u^2 / (gamma^2 s_u^2 + s_x^2).
    g, su2, sx2 = truth["confounding"], truth["sd_classroom"] ** 2, truth["sd_effort"] ** 2
    limit = truth["beta"] + g * su2 / (g**2 * su2 + sx2)
    assert abs(pooled.params["effort"] - limit) < 4 * pooled.bse["effort"]


def test_modification_dgp_varying_slopes_recover_mean_and_sd() -> None:
    n_classrooms, n_students = 100, 20
    data, truth = simulate_classroom(
        dgp="modification", n_classrooms=n_classrooms, n_students=n_students, seed=5
    )
    res = mixed.fit("score ~ effort + (effort | classroom)", data)
    slope = res.fixed.set_index("term").loc["effort"]
    assert abs(slope["estimate"] - truth["beta"]) < 4 * slope["std_error"]
    vc = res.variance_components
    tau_hat = float(
        vc.loc[(vc["component"] == "sd") & (vc["term"] == "effort"), "estimate"].iloc[0]
    )
    # Approximate sampling SD of tau-hat: a classroom's own slope has variance tau^2 + s^2,
    # s^2 = sd_score^2 / (n sd_effort^2); its sample variance over J classrooms has SD
    # (tau^2 + s^2) sqrt(2 / (J - 1)); the delta method divides by 2 tau.
    tau = truth["tau"]
    s2 = truth["sd_score"] ** 2 / (n_students * truth["sd_effort"] ** 2)
    se_tau = (tau**2 + s2) / (tau * np.sqrt(2 * (n_classrooms - 1)))
    assert abs(tau_hat - tau) < 4 * se_tau
    blups = res.group_coefficients()["effort"]
    truth_slopes = truth["classroom_slopes"].reindex(blups.index)
    assert np.corrcoef(blups, truth_slopes)[0, 1] > 0.8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dgp": "mediation"},
        {"dgp": "confounding", "tau": 0.5},
        {"dgp": "modification", "n_classrooms": 1},
        {"dgp": "modification", "n_students": 2.5},
        {"dgp": "modification", "tau": -1.0},
        {"dgp": "confounding", "sd_score": float("nan")},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        simulate_classroom(seed=0, **kwargs)
