"""Tests of mlmci.simulate.simulate_clustered_treatment: the design, the identities, the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from mlmci.errors import ArgumentError
from mlmci.simulate import simulate_clustered_treatment

ARRAYS = ("propensity", "tau", "u", "cluster_size")
FLOATS = ("ate", "att", "atc", "ate_population", "cluster_ate")


def _ols(y: np.ndarray, columns: list[np.ndarray], cluster: np.ndarray):
    """OLS of ``y`` on an intercept and ``columns``: coefficients and cluster-robust SEs."""
    x = np.column_stack([np.ones_like(y), *columns])
    bread = np.linalg.inv(x.T @ x)
    coef = bread @ (x.T @ y)
    scores = x * (y - x @ coef)[:, None]
    meat_rows = np.zeros((cluster.max() + 1, x.shape[1]))
    np.add.at(meat_rows, cluster, scores)
    cov = bread @ (meat_rows.T @ meat_rows) @ bread
    return coef, np.sqrt(np.diag(cov))


def _demean(values: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    means = np.bincount(cluster, weights=values) / np.bincount(cluster)
    return values - means[cluster]


def test_same_seed_same_draws_other_seed_other_draws():
    a, ta = simulate_clustered_treatment(6, (2, 9), seed=3)
    b, tb = simulate_clustered_treatment(6, (2, 9), seed=3)
    c, tc = simulate_clustered_treatment(6, (2, 9), seed=4)
    pd.testing.assert_frame_equal(a, b)
    for key in ARRAYS:
        np.testing.assert_array_equal(ta[key], tb[key])
    for key in FLOATS:
        assert ta[key] == tb[key]
    assert ta["params"] == tb["params"]
    assert not np.allclose(ta["u"], tc["u"])
    n = min(len(a), len(c))
    assert not np.allclose(a["y"][:n], c["y"][:n])


def test_columns_dtypes_and_shapes():
    data, truth = simulate_clustered_treatment(7, 5, seed=1)
    assert data.columns.tolist() == ["cluster", "x1", "x2", "d", "y"]
    assert data.shape == (35, 5)
    assert data.index.equals(pd.RangeIndex(35))
    for column in ("cluster", "x2", "d"):
        assert data[column].dtype == np.int64
    for column in ("x1", "y"):
        assert data[column].dtype == np.float64
    np.testing.assert_array_equal(data["cluster"], np.repeat(np.arange(7), 5))
    assert set(data["x2"]) <= {0, 1} and set(data["d"]) <= {0, 1}
    assert truth["propensity"].shape == truth["tau"].shape == (35,)
    assert truth["u"].shape == (7,)
    assert truth["cluster_size"].dtype == np.int64
    np.testing.assert_array_equal(truth["cluster_size"], np.full(7, 5))
    for key in FLOATS:
        assert type(truth[key]) is float
    assert "u" not in data.columns
    assert truth["params"] == {
        "n_clusters": 7,
        "cluster_size": 5,
        "confounding": 1.0,
        "overlap": 1.0,
        "x_confounder_corr": 0.5,
        "effect": 1.0,
        "effect_x": 0.5,
        "effect_u": 0.5,
        "outcome_u": 1.0,
        "seed": 1,
    }


def test_cluster_sizes_fixed_or_drawn_from_the_range():
    data, truth = simulate_clustered_treatment(300, (2, 12), seed=2)
    sizes = data.groupby("cluster").size()
    np.testing.assert_array_equal(sizes.index, np.arange(300))
    np.testing.assert_array_equal(sizes, truth["cluster_size"])
    assert sizes.min() == 2 and sizes.max() == 12  # both ends are reachable
    assert sizes.nunique() == 11
    assert data["cluster"].is_monotonic_increasing
    assert truth["params"]["cluster_size"] == (2, 12)
    data, truth = simulate_clustered_treatment(5, (4, 4), seed=2)
    assert (data.groupby("cluster").size() == 4).all()
    data, _ = simulate_clustered_treatment(3, 2, seed=2)
    assert (data.groupby("cluster").size() == 2).all()


def test_truth_is_the_stated_formulas():
    kwargs = {
        "confounding": 0.7,
        "overlap": 1.3,
        "x_confounder_corr": -0.4,
        "effect": 0.3,
        "effect_x": 0.8,
        "effect_u": -0.6,
    }
    data, truth = simulate_clustered_treatment(40, (2, 30), seed=5, **kwargs)
    x1, x2, d = data["x1"].to_numpy(), data["x2"].to_numpy(), data["d"].to_numpy()
    uc = truth["u"][data["cluster"]]
    tau = truth["tau"]
    np.testing.assert_allclose(tau, 0.3 + 0.8 * x1 - 0.6 * uc, rtol=1e-13)
    np.testing.assert_allclose(
        truth["propensity"],
        special.expit(1.3 * (0.8 * x1 - 0.5 * (x2 - 0.5) + 0.7 * uc)),
        rtol=1e-13,
    )
    assert truth["ate"] == pytest.approx(tau.mean(), rel=1e-12)
    assert truth["att"] == pytest.approx(tau[d == 1].mean(), rel=1e-12)
    assert truth["atc"] == pytest.approx(tau[d == 0].mean(), rel=1e-12)
    by_cluster = pd.Series(tau).groupby(data["cluster"]).mean()
    assert truth["cluster_ate"] == pytest.approx(by_cluster.mean(), rel=1e-12)
    assert truth["cluster_ate"] != pytest.approx(truth["ate"], rel=1e-6)  # unequal sizes
    assert truth["ate_population"] == 0.3
    # With equal sizes the unit- and cluster-weighted ATEs coincide.
    _, truth = simulate_clustered_treatment(10, 8, seed=5)
    assert truth["cluster_ate"] == pytest.approx(truth["ate"], rel=1e-12)
    # A constant effect: every estimand is the effect.
    _, truth = simulate_clustered_treatment(10, (2, 9), effect=-0.4, effect_x=0, effect_u=0, seed=5)
    for key in FLOATS:
        assert truth[key] == pytest.approx(-0.4, rel=1e-12)


def test_outcome_is_y0_plus_d_tau():
    """In a large draw, y - d * tau regresses on (x1, x2, u) with the DGP's coefficients."""
    data, truth = simulate_clustered_treatment(2000, 30, outcome_u=0.7, seed=6)
    cluster = data["cluster"].to_numpy()
    y0 = data["y"].to_numpy() - data["d"].to_numpy() * truth["tau"]
    columns = [data["x1"].to_numpy(), data["x2"].to_numpy(), truth["u"][cluster]]
    coef, se = _ols(y0, columns, cluster)
    z = (coef - np.array([0.0, 1.0, 0.5, 0.7])) / se
    assert (np.abs(z) < 4).all(), z
    residual = y0 - np.column_stack([np.ones_like(y0), *columns]) @ coef
    assert residual.std() == pytest.approx(1.0, abs=0.02)
    # The noise is independent of the treatment.
    r = np.corrcoef(residual, data["d"])[0, 1]
    assert abs(r) < 4 / np.sqrt(len(data))


def test_x1_has_unit_variance_and_its_cluster_mean_tracks_u():
    for corr, size in ((0.5, 5), (-0.3, 20)):
        data, truth = simulate_clustered_treatment(3000, size, x_confounder_corr=corr, seed=7)
        assert data["x1"].var() == pytest.approx(1.0, abs=0.05)
        x1_bar = data.groupby("cluster")["x1"].mean().to_numpy()
        observed = np.corrcoef(x1_bar, truth["u"])[0, 1]
        implied = corr / np.sqrt(corr**2 + (1 - corr**2) / size)
        se = (1 - implied**2) / np.sqrt(3000)
        assert abs(observed - implied) < 4 * se, (corr, size, observed, implied)
    # x2 is an independent fair coin.
    assert data["x2"].mean() == pytest.approx(0.5, abs=4 * 0.5 / np.sqrt(len(data)))
    assert abs(np.corrcoef(data["x2"], data["x1"])[0, 1]) < 4 / np.sqrt(len(data))


def test_share_treated_rises_with_the_cluster_confounder():
    def corr(confounding: float, x_confounder_corr: float) -> float:
        data, truth = simulate_clustered_treatment(
            800,
            25,
            confounding=confounding,
            x_confounder_corr=x_confounder_corr,
            seed=8,
        )
        share = data.groupby("cluster")["d"].mean().to_numpy()
        return float(np.corrcoef(share, truth["u"])[0, 1])

    bound = 4 / np.sqrt(800)  # four SEs of a zero correlation over 800 clusters
    assert corr(1.0, 0.5) > 0.6
    assert corr(1.0, 0.0) > 0.6
    assert corr(-1.0, 0.0) < -0.6
    assert abs(corr(0.0, 0.0)) < bound
    assert corr(0.0, 0.5) > bound  # through x1 alone


def test_overlap_scales_the_propensity_index():
    def extreme_share(overlap: float) -> tuple[float, pd.DataFrame]:
        data, truth = simulate_clustered_treatment(200, 20, overlap=overlap, seed=9)
        e = truth["propensity"]
        return float(np.mean((e < 0.05) | (e > 0.95))), data

    shares = []
    for overlap in (0.5, 1.0, 2.0, 4.0):
        share, data = extreme_share(overlap)
        shares.append(share)
        if overlap == 0.5:
            base = data
        else:  # common random numbers: only the treatment (and so y) changes
            pd.testing.assert_frame_equal(
                base[["cluster", "x1", "x2"]], data[["cluster", "x1", "x2"]]
            )
    assert np.all(np.diff(shares) > 0), shares
    assert shares[0] < 0.01 and shares[-1] > 0.3
    _, truth = simulate_clustered_treatment(10, 5, overlap=0.0, seed=9)
    np.testing.assert_array_equal(truth["propensity"], 0.5)


def test_randomized_difference_in_means_is_unbiased():
    # overlap = 0: every propensity is 0.5, so the raw contrast estimates the ATE.
    data, _ = simulate_clustered_treatment(
        2000, 25, overlap=0.0, effect_x=0.0, effect_u=0.0, seed=10
    )
    cluster, d = data["cluster"].to_numpy(), data["d"].to_numpy().astype(float)
    coef, se = _ols(data["y"].to_numpy(), [d], cluster)
    assert abs(coef[1] - 1.0) < 4 * se[1], (coef, se)
    assert abs(data["d"].mean() - 0.5) < 4 * 0.5 / np.sqrt(len(data))


def test_without_cluster_confounding_adjusting_for_x_is_unbiased():
    # confounding = 0: D depends on x1 and x2 only, and E[Y(0) | x1, x2] is linear,
    # so OLS of y on d, x1, x2 recovers a constant effect; the raw contrast does not.
    data, _ = simulate_clustered_treatment(
        2000, 25, confounding=0.0, effect_x=0.0, effect_u=0.0, seed=11
    )
    cluster, d = data["cluster"].to_numpy(), data["d"].to_numpy().astype(float)
    y, x1, x2 = data["y"].to_numpy(), data["x1"].to_numpy(), data["x2"].to_numpy()
    coef, se = _ols(y, [d, x1, x2], cluster)
    assert abs(coef[1] - 1.0) < 4 * se[1], (coef, se)
    coef, se = _ols(y, [d], cluster)
    assert (coef[1] - 1.0) / se[1] > 10


def test_cluster_confounding_biases_pooled_estimates_upward():
    data, truth = simulate_clustered_treatment(
        2000, 25, confounding=1.0, effect_x=0.0, effect_u=0.0, seed=12
    )
    cluster, d = data["cluster"].to_numpy(), data["d"].to_numpy().astype(float)
    y, x1, x2 = data["y"].to_numpy(), data["x1"].to_numpy(), data["x2"].to_numpy()
    assert truth["ate"] == truth["att"] == 1.0
    coef, se = _ols(y, [d], cluster)  # pooled difference in means
    assert (coef[1] - 1.0) / se[1] > 20, (coef, se)
    coef, se = _ols(y, [d, x1, x2], cluster)  # x adjusted, u left out
    assert (coef[1] - 1.0) / se[1] > 10, (coef, se)
    # Cluster fixed effects remove the cluster-level confounder.
    dm = [_demean(v, cluster) for v in (y, d, x1, x2)]
    coef, se = _ols(dm[0], dm[1:], cluster)
    assert abs(coef[1] - 1.0) < 4 * se[1], (coef, se)


def test_att_exceeds_ate_when_effects_rise_with_u_and_x1():
    data, truth = simulate_clustered_treatment(1000, 20, seed=13)
    tau, d = truth["tau"], data["d"].to_numpy()
    assert truth["att"] > truth["ate"] > truth["atc"]
    # att - atc is the slope of tau on d; its cluster-robust SE says the gap is not noise.
    gap = truth["att"] - truth["atc"]
    cluster = data["cluster"].to_numpy()
    coef, se = _ols(tau, [d.astype(float)], cluster)
    assert coef[1] == pytest.approx(gap, rel=1e-10)
    assert gap / se[1] > 10
    # The sample ATE is near the population ATE.
    cluster_tau = np.bincount(cluster, weights=tau) / truth["cluster_size"]
    assert abs(truth["ate"] - 1.0) < 4 * cluster_tau.std(ddof=1) / np.sqrt(1000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_clusters": 1}, "^n_clusters must"),
        ({"n_clusters": 2.5}, "^n_clusters must"),
        ({"n_clusters": True}, "^n_clusters must"),
        ({"cluster_size": 1}, "^cluster_size must"),
        ({"cluster_size": 3.0}, "^cluster_size must"),
        ({"cluster_size": "20"}, "^cluster_size must"),
        ({"cluster_size": (1, 5)}, "^cluster_size lo must"),
        ({"cluster_size": (5, 3)}, r"^cluster_size \(lo, hi\) needs lo <= hi"),
        ({"cluster_size": (2, 5.5)}, "^cluster_size hi must"),
        ({"cluster_size": (2,)}, "^cluster_size must be an integer or a pair"),
        ({"cluster_size": (2, 3, 4)}, "^cluster_size must be an integer or a pair"),
        ({"x_confounder_corr": 1.0}, "^x_confounder_corr must"),
        ({"x_confounder_corr": -1.0}, "^x_confounder_corr must"),
        ({"x_confounder_corr": 1.5}, "^x_confounder_corr must"),
        ({"x_confounder_corr": float("nan")}, "^x_confounder_corr must"),
        ({"overlap": -0.5}, "^overlap must"),
        ({"overlap": float("inf")}, "^overlap must"),
        ({"confounding": float("nan")}, "^confounding must"),
        ({"effect": float("inf")}, "^effect must"),
        ({"effect_x": None}, "^effect_x must"),
        ({"effect_u": "big"}, "^effect_u must"),
        ({"outcome_u": float("-inf")}, "^outcome_u must"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        simulate_clustered_treatment(seed=0, **kwargs)
