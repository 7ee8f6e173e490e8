"""Tests of mlmci.simulate.simulate_experiment: the design, the effects, and truth recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlmci import effects, montecarlo
from mlmci.simulate import simulate_experiment


def test_columns_design_and_truth_keys():
    data, truth = simulate_experiment(n_groups=6, group_size=9, treated_share=0.3, seed=1)
    assert data.columns.tolist() == ["group", "unit", "w", "x", "treated", "y"]
    assert str(data["treated"].dtype) == "int64"
    assert len(data) == 54
    per_group = data.groupby("group")
    assert per_group["unit"].apply(list).tolist() == [list(range(1, 10))] * 6
    # floor(0.3 * 9 + 1/2) = 3 treated in every group
    assert per_group["treated"].sum().tolist() == [3] * 6
    assert per_group["w"].nunique().max() == 1
    assert set(truth) >= {"ate", "tau", "tau_total", "effects", "mean_effect", "sample_ate"}
    assert truth["effects"].index.tolist() == list(range(1, 7))
    assert isinstance(truth["ate"], float) and isinstance(truth["mean_effect"], float)


def test_every_group_has_both_arms_even_when_tiny_or_lopsided():
    data, _ = simulate_experiment(n_groups=50, group_size=2, treated_share=0.95, seed=2)
    arms = data.groupby("group")["treated"].agg(["sum", "count"])
    assert (arms["sum"] == 1).all() and (arms["count"] == 2).all()


def test_given_and_drawn_group_sizes():
    sizes = [2, 5, 9, 30]
    data, truth = simulate_experiment(n_groups=4, group_size=sizes, seed=3)
    assert data.groupby("group").size().tolist() == sizes
    assert truth["group_sizes"].tolist() == sizes
    data, truth = simulate_experiment(n_groups=400, group_size=30, size_cv=0.8, seed=4)
    n = truth["group_sizes"]
    assert n.min() >= 2 and n.nunique() > 20
    assert abs(n.mean() - 30) < 4 * 30 * 0.8 / np.sqrt(400)
    assert n.std() / n.mean() == pytest.approx(0.8, abs=0.15)
    np.testing.assert_array_equal(data.groupby("group").size(), n)


def test_same_seed_same_data_other_seed_other_data():
    first, truth1 = simulate_experiment(seed=5)
    again, truth2 = simulate_experiment(seed=5)
    other, _ = simulate_experiment(seed=6)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_series_equal(truth1["effects"], truth2["effects"])
    assert not np.allclose(first["y"], other["y"])


def test_noise_free_outcome_is_the_structural_equation():
    data, truth = simulate_experiment(
        n_groups=5, group_size=6, tau=0.7, sd_group=0.0, sd_unit=0.0, beta_x=2.0, seed=7
    )
    tau_j = data["group"].map(truth["effects"])
    np.testing.assert_allclose(data["y"], 2.0 * data["x"] + tau_j * data["treated"])


@pytest.mark.parametrize(("covariate", "mean_w"), [("normal", 0.0), ("binary", 0.5)])
def test_modifier_without_residual_heterogeneity(covariate, mean_w):
    data, truth = simulate_experiment(
        n_groups=30, tau=0.0, modifier=0.8, covariate=covariate, ate=0.2, seed=8
    )
    w = data.groupby("group")["w"].first()
    np.testing.assert_allclose(truth["effects"], 0.2 + 0.8 * (w - mean_w))
    var_w = 1.0 if covariate == "normal" else 0.25
    assert truth["tau_total"] == pytest.approx(0.8 * np.sqrt(var_w))
    if covariate == "binary":
        assert set(w.unique()) == {0.0, 1.0}


def test_zero_tau_gives_identical_effects():
    _, truth = simulate_experiment(n_groups=10, tau=0.0, ate=-0.4, seed=9)
    assert (truth["effects"] == -0.4).all()
    assert truth["mean_effect"] == pytest.approx(-0.4)


@pytest.mark.parametrize("effect_dist", ["normal", "two_point", "student_t"])
def test_effect_distribution_has_the_stated_mean_and_sd(effect_dist):
    n = 20000
    _, truth = simulate_experiment(
        n_groups=n, group_size=2, ate=0.3, tau=0.5, effect_dist=effect_dist, seed=10
    )
    tau_j = truth["effects"]
    assert abs(tau_j.mean() - 0.3) < 4 * 0.5 / np.sqrt(n)
    if effect_dist != "student_t":  # with 3 df the sample SD converges slowly (see below)
        assert tau_j.std() == pytest.approx(0.5, rel=0.03)
    skew = float(tau_j.skew())
    if effect_dist == "two_point":
        q = 0.1
        assert tau_j.nunique() == 2
        assert sorted(tau_j.unique()) == pytest.approx(
            [0.3 - 0.5 * np.sqrt(q / (1 - q)), 0.3 + 0.5 * np.sqrt((1 - q) / q)]
        )
        assert skew == pytest.approx((1 - 2 * q) / np.sqrt(q * (1 - q)), rel=0.1)
    elif effect_dist == "student_t":
        # t with 3 df: the sample SD converges slowly, heavy tails show in the kurtosis
        assert float(tau_j.kurt()) > 3
    else:
        assert abs(skew) < 0.1


def test_heavy_tailed_effects_have_sd_tau_in_expectation():
    sds = [
        simulate_experiment(
            n_groups=2000, group_size=2, tau=0.5, effect_dist="student_t", effect_df=5, seed=s
        )[1]["effects"].std()
        for s in range(20)
    ]
    assert np.mean(np.square(sds)) == pytest.approx(0.25, rel=0.1)


def test_size_correlated_effects():
    _, truth = simulate_experiment(
        n_groups=20000, group_size=20, size_cv=0.8, ate=0.3, tau=0.5, size_corr=0.6, seed=21
    )
    tau_j, n = truth["effects"], truth["group_sizes"]
    # the unweighted superpopulation mean and SD are still ate and tau ...
    assert abs(tau_j.mean() - 0.3) < 4 * 0.5 / np.sqrt(20000)
    assert tau_j.std() == pytest.approx(0.5, rel=0.03)
    # ... the deviations correlate with log size (rounding of sizes blurs it a little) ...
    assert np.corrcoef(tau_j, np.log(n))[0, 1] == pytest.approx(0.6, abs=0.05)
    # ... so the size-weighted average is larger than ate
    assert truth["sample_ate"] > 0.3 + 0.1


def test_size_corr_zero_keeps_the_old_draws():
    first, truth = simulate_experiment(n_groups=7, group_size=9, size_cv=0.5, seed=22)
    again, same = simulate_experiment(n_groups=7, group_size=9, size_cv=0.5, size_corr=0.0, seed=22)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_series_equal(truth["effects"], same["effects"])


def test_sample_averages_of_the_effects():
    _, truth = simulate_experiment(n_groups=5, group_size=[2, 4, 6, 8, 10], tau=1.0, seed=11)
    tau_j, n = truth["effects"], truth["group_sizes"]
    assert truth["mean_effect"] == pytest.approx(tau_j.mean())
    assert truth["sample_ate"] == pytest.approx((tau_j * n).sum() / n.sum())


@pytest.mark.parametrize(
    "options",
    [
        {"n_groups": 1},
        {"n_groups": 2.5},
        {"group_size": 1},
        {"group_size": True},
        {"n_groups": 3, "group_size": [5, 5]},
        {"n_groups": 2, "group_size": [5, 1]},
        {"n_groups": 2, "group_size": [5, 5], "size_cv": 0.5},
        {"size_cv": -1.0},
        {"tau": -0.1},
        {"sd_unit": float("nan")},
        {"ate": float("inf")},
        {"treated_share": 1.0},
        {"two_point_prob": 0.0},
        {"effect_dist": "cauchy"},
        {"effect_dist": "student_t", "effect_df": 2.0},
        {"size_corr": 0.5},
        {"size_corr": 1.5, "size_cv": 0.5},
        {"n_groups": 2, "group_size": [5, 5], "size_corr": 0.5},
        {"covariate": "uniform"},
    ],
)
def test_bad_arguments_raise_value_error(options):
    with pytest.raises(ValueError):
        simulate_experiment(**options)


# --- the truth is recovered by the right estimator ---------------------------------------------


def _no_pooling_replication(rng, n_groups, group_size):
    data, truth = simulate_experiment(
        n_groups=n_groups, group_size=group_size, tau=0.5, size_cv=0.5, seed=rng
    )
    table = effects.group_effects(data, "y", "treated", "group", method="no_pooling")
    table["truth"] = table["group"].map(truth["effects"])
    return table


def test_no_pooling_group_effects_are_unbiased_and_cover():
    reps, n_groups = 100, 8
    draws = montecarlo.run(
        _no_pooling_replication, [{"n_groups": n_groups, "group_size": 12}], reps=reps, seed=2024
    )
    row = montecarlo.score(draws).iloc[0]
    assert row["n_reps"] == reps and row["n"] == reps * n_groups
    assert abs(row["bias"]) < 4 * row["bias_mcse"]
    # An estimated MCSE is itself noisy (small when coverage happens to be high), so the
    # tolerance is at least the binomial SE at the nominal 95%.
    nominal = np.sqrt(0.95 * 0.05 / (reps * n_groups))
    assert abs(row["coverage"] - 0.95) < 4 * max(row["coverage_mcse"], nominal)
    assert row["rmse_mcse"] > 0


def test_partial_pooling_recovers_ate_and_tau():
    n_groups, size, tau = 200, 20, 0.4
    data, truth = simulate_experiment(n_groups=n_groups, group_size=size, tau=tau, seed=13)
    fitted = effects.fit(data, "y", "treated", "group", method="partial_pooling")
    ate = fitted.population.set_index("term").loc["ATE"]
    # The GLS SE of the mean slope includes the sampling of groups: compare with mu itself.
    assert abs(ate["estimate"] - truth["ate"]) < 3 * ate["std_error"]
    # Large-J approximation: the group contrasts vary with tau^2 + s^2, s^2 = 4 sigma^2 / n,
    # so SE(tau^2) ~ sqrt(2 / J) (tau^2 + s^2) and SE(tau) ~ SE(tau^2) / (2 tau).
    s2 = 4 * 1.0 / size
    se_tau = np.sqrt(2 / n_groups) * (tau**2 + s2) / (2 * tau)
    assert abs(fitted.tau - tau) < 3 * se_tau
    # and it beats no pooling on the group effects when tau is comparable to their noise
    no = effects.group_effects(data, "y", "treated", "group", method="no_pooling")
    both = pd.concat([fitted.groups, no])
    both = both.assign(truth=both["group"].map(truth["effects"]), rep=0)
    scores = montecarlo.score(both).set_index("estimator")
    assert scores.loc["partial_pooling", "rmse"] < 0.8 * scores.loc["no_pooling", "rmse"]
