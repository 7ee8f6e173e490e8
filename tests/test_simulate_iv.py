"""Tests of mlmci.simulate.simulate_multisite_iv: the design, the identities, the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlmci.errors import ArgumentError
from mlmci.simulate import simulate_multisite_iv

SITE_SERIES = ("site_late", "site_first_stage", "site_itt", "site_ate")
FLOATS = (
    "mean_late",
    "mean_ate",
    "hyper_mean",
    "complier_weighted",
    "fe_2sls_weight",
    "late_sd",
    "compliance_effect_cov",
)


def _arm_contrast(data: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per site: the difference in means of ``column`` by ``z`` and its two-sample SE."""
    g = data.groupby(["site", "z"])[column].agg(["mean", "var", "count"]).unstack("z")
    diff = g[("mean", 1)] - g[("mean", 0)]
    se = np.sqrt(g[("var", 1)] / g[("count", 1)] + g[("var", 0)] / g[("count", 0)])
    return pd.DataFrame({"estimate": diff, "std_error": se})


def _wald(data: pd.DataFrame) -> pd.DataFrame:
    """Per site: the Wald ratio ITT / first stage and its delta-method standard error.

    With ``r = y - ratio * d``, ``ratio - beta`` is the difference in mean ``r`` by ``z``
    divided by the first stage, so its SE is the two-sample SE of ``r`` over the first stage.
    """
    itt = _arm_contrast(data, "y")["estimate"]
    first = _arm_contrast(data, "d")["estimate"]
    ratio = itt / first
    resid = data.assign(r=data["y"] - data["site"].map(ratio) * data["d"])
    se = _arm_contrast(resid, "r")["std_error"] / first.abs()
    return pd.DataFrame({"estimate": ratio, "std_error": se})


def test_columns_dtypes_and_truth_keys():
    data, truth = simulate_multisite_iv(n_sites=6, n_per_site=25, seed=1)
    assert data.columns.tolist() == ["site", "unit", "z", "d", "x", "y"]
    for column in ("site", "unit", "z", "d"):
        assert str(data[column].dtype) == "int64"
    for column in ("x", "y"):
        assert str(data[column].dtype) == "float64"
    assert len(data) == 150
    assert data["site"].unique().tolist() == list(range(1, 7))
    assert data.groupby("site")["unit"].apply(list).tolist() == [list(range(1, 26))] * 6
    assert set(data["z"]) == {0, 1} and set(data["d"]) <= {0, 1}
    assert set(truth) == {*SITE_SERIES, *FLOATS, "params", "types"}
    for key in SITE_SERIES:
        series = truth[key]
        assert isinstance(series, pd.Series)
        assert series.index.name == "site" and series.index.tolist() == list(range(1, 7))
    for key in FLOATS:
        assert type(truth[key]) is float
    assert truth["params"]["late"] == 0.5 and truth["params"]["n_sites"] == 6
    assert "seed" not in truth["params"]
    types = truth["types"]
    assert types.index.equals(data.index)
    assert set(types) <= {"complier", "always", "never"}


def test_reproducible_by_seed():
    a, ta = simulate_multisite_iv(seed=3)
    b, tb = simulate_multisite_iv(seed=3)
    c, tc = simulate_multisite_iv(seed=4)
    d, td = simulate_multisite_iv(seed=np.random.default_rng(3))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, d)
    for key in SITE_SERIES:
        pd.testing.assert_series_equal(ta[key], tb[key])
        pd.testing.assert_series_equal(ta[key], td[key])
    pd.testing.assert_series_equal(ta["types"], tb["types"])
    assert not np.allclose(a["y"], c["y"])
    assert not np.allclose(ta["site_late"], tc["site_late"])


def test_seed_is_required():
    with pytest.raises(TypeError, match="seed"):
        simulate_multisite_iv()  # type: ignore[call-arg]
    with pytest.raises(ArgumentError, match="seed is required"):
        simulate_multisite_iv(seed=None)  # type: ignore[arg-type]


def test_site_sizes_equal_or_drawn():
    data, _ = simulate_multisite_iv(n_sites=5, n_per_site=40, seed=2)
    assert (data.groupby("site").size() == 40).all()
    data, _ = simulate_multisite_iv(n_sites=400, n_per_site=30, size_cv=0.8, seed=2)
    sizes = data.groupby("site").size()
    assert sizes.min() >= 10 and sizes.nunique() > 20
    assert sizes.std() / sizes.mean() > 0.5


def test_complete_randomization_within_site():
    # A common share: exactly clip(round(p n_j), 1, n_j - 1) units assigned in each site.
    data, _ = simulate_multisite_iv(
        n_sites=200, n_per_site=30, size_cv=0.6, assign_share=0.3, seed=5
    )
    arms = data.groupby("site")["z"].agg(["sum", "count"])
    expected = np.clip(np.round(0.3 * arms["count"]), 1, arms["count"] - 1)
    np.testing.assert_array_equal(arms["sum"], expected)
    # Tiny sites and extreme, varying shares: still both arms everywhere.
    data, _ = simulate_multisite_iv(
        n_sites=300,
        n_per_site=2,
        min_site_size=2,
        assign_share=0.9,
        assign_share_sd=3.0,
        seed=6,
    )
    arms = data.groupby("site")["z"].agg(["sum", "count"])
    assert (arms["sum"] == 1).all() and (arms["count"] == 2).all()
    # Varying shares do vary.
    data, _ = simulate_multisite_iv(n_sites=100, assign_share_sd=1.0, seed=7)
    share = data.groupby("site")["z"].mean()
    assert share.min() < 0.3 and share.max() > 0.7


def test_treatment_follows_the_compliance_type():
    data, truth = simulate_multisite_iv(n_sites=200, n_per_site=50, always_taker=0.1, seed=8)
    types = truth["types"]
    compliers, always, never = (types == t for t in ("complier", "always", "never"))
    assert (data.loc[compliers, "d"] == data.loc[compliers, "z"]).all()
    assert (data.loc[always, "d"] == 1).all() and (data.loc[never, "d"] == 0).all()
    assert always.any() and never.any() and compliers.any()
    # Types are independent Bernoulli draws: the complier count matches sum(gamma_j) within
    # four binomial SEs, and the always-taker count matches n * a.
    gamma = data["site"].map(truth["site_first_stage"])
    z = (compliers.sum() - gamma.sum()) / np.sqrt((gamma * (1 - gamma)).sum())
    assert abs(z) < 4
    n = len(data)
    assert abs(always.sum() - 0.1 * n) < 4 * np.sqrt(n * 0.1 * 0.9)
    # ... and independent of assignment.
    share_z1 = compliers[data["z"] == 1].mean()
    share_z0 = compliers[data["z"] == 0].mean()
    p = compliers.mean()
    se = np.sqrt(p * (1 - p) * (1 / (data["z"] == 1).sum() + 1 / (data["z"] == 0).sum()))
    assert abs(share_z1 - share_z0) < 4 * se


def test_truth_aggregates_are_the_stated_formulas():
    data, truth = simulate_multisite_iv(
        n_sites=40,
        size_cv=0.7,
        assign_share_sd=0.8,
        compliance_sd=1.0,
        compliance_effect_corr=0.6,
        noncomplier_shift=0.3,
        seed=9,
    )
    beta, gamma = truth["site_late"], truth["site_first_stage"]
    np.testing.assert_allclose(truth["site_itt"], gamma * beta, rtol=1e-15)
    np.testing.assert_allclose(truth["site_ate"], beta + (1 - gamma) * 0.3, rtol=1e-15)
    assert (gamma > 0).all() and (gamma < 1 - 0.05).all()
    n = data.groupby("site").size()
    p_hat = data.groupby("site")["z"].mean()
    assert truth["mean_late"] == pytest.approx(beta.mean(), rel=1e-12)
    assert truth["mean_ate"] == pytest.approx(truth["site_ate"].mean(), rel=1e-12)
    assert truth["hyper_mean"] == 0.5
    assert truth["complier_weighted"] == pytest.approx(
        (n * gamma * beta).sum() / (n * gamma).sum(), rel=1e-12
    )
    w = n * p_hat * (1 - p_hat) * gamma
    assert truth["fe_2sls_weight"] == pytest.approx((w * beta).sum() / w.sum(), rel=1e-12)
    assert truth["late_sd"] == pytest.approx(beta.std(ddof=1), rel=1e-12)
    assert truth["compliance_effect_cov"] == pytest.approx(
        np.cov(gamma, beta, ddof=1)[0, 1], rel=1e-12
    )


def test_constant_compliance_and_effects():
    _, truth = simulate_multisite_iv(
        n_sites=10, compliance=0.7, compliance_sd=0.0, late=-0.2, late_sd=0.0, seed=10
    )
    np.testing.assert_allclose(truth["site_first_stage"], 0.7, rtol=1e-14)
    np.testing.assert_allclose(truth["site_late"], -0.2, rtol=1e-14)
    assert truth["late_sd"] == 0.0 and truth["compliance_effect_cov"] == pytest.approx(0.0)
    assert truth["complier_weighted"] == pytest.approx(-0.2)


def test_noise_free_outcome_is_the_structural_equation():
    data, truth = simulate_multisite_iv(
        n_sites=8,
        n_per_site=30,
        level_sd=0.0,
        noise_sd=0.0,
        noncomplier_shift=0.7,
        covariate_effect=2.0,
        selection=0.4,
        always_taker=0.2,
        seed=11,
    )
    types = truth["types"]
    effect = data["site"].map(truth["site_late"]) + 0.7 * (types != "complier")
    s = types.map({"always": 1.0, "never": -1.0, "complier": 0.0})
    np.testing.assert_allclose(data["y"], 2.0 * data["x"] + effect * data["d"] + 0.4 * s)


def test_options_that_leave_the_truth_unchanged():
    # Common random numbers: effect noise, selection and sizes do not move the site draws.
    base, tb = simulate_multisite_iv(seed=12)
    noisy, tn = simulate_multisite_iv(seed=12, effect_sd=0.5, selection=0.0)
    for key in SITE_SERIES:
        pd.testing.assert_series_equal(tb[key], tn[key])
    pd.testing.assert_series_equal(tb["types"], tn["types"])
    pd.testing.assert_frame_equal(
        base[["site", "unit", "z", "d", "x"]], noisy[["site", "unit", "z", "d", "x"]]
    )
    assert not np.allclose(base["y"], noisy["y"])
    _, tsized = simulate_multisite_iv(seed=12, size_cv=0.5, n_per_site=200)
    pd.testing.assert_series_equal(tb["site_late"], tsized["site_late"])
    pd.testing.assert_series_equal(tb["site_first_stage"], tsized["site_first_stage"])


@pytest.fixture(scope="module")
def big_sites():
    """Three huge sites with every complication that must not move the Wald estimand."""
    return simulate_multisite_iv(
        n_sites=3,
        n_per_site=200_000,
        compliance_sd=1.0,
        late_sd=1.0,
        always_taker=0.15,
        noncomplier_shift=1.0,
        effect_sd=0.5,
        selection=0.8,
        seed=13,
    )


def test_first_stage_itt_and_wald_ratio_recover_the_site_truth(big_sites):
    data, truth = big_sites
    first = _arm_contrast(data, "d")
    itt = _arm_contrast(data, "y")
    wald = _wald(data)
    for estimate, target in (
        (first, truth["site_first_stage"]),
        (itt, truth["site_itt"]),
        (wald, truth["site_late"]),
    ):
        z = (estimate["estimate"] - target) / estimate["std_error"]
        assert (z.abs() < 4).all(), z
    assert (wald["std_error"] < 0.02).all()
    # With noncomplier_shift = 1 the site ATE is far from what the Wald ratio estimates.
    gap = (wald["estimate"] - truth["site_ate"]).abs() / wald["std_error"]
    assert (gap > 10).all()


def _naive_gap(data: pd.DataFrame, late: pd.Series) -> pd.Series:
    """Per site: (difference in mean y by d - beta_j) / its two-sample SE."""
    g = data.groupby(["site", "d"])["y"].agg(["mean", "var", "count"]).unstack("d")
    diff = g[("mean", 1)] - g[("mean", 0)]
    se = np.sqrt(g[("var", 1)] / g[("count", 1)] + g[("var", 0)] / g[("count", 0)])
    return (diff - late) / se


def test_selection_biases_the_naive_comparison(big_sites):
    data, truth = big_sites
    assert (_naive_gap(data, truth["site_late"]) > 10).all()
    # Without selection (and with equal effects for every type) comparing by d is unbiased.
    data, truth = simulate_multisite_iv(
        n_sites=3, n_per_site=200_000, late_sd=1.0, selection=0.0, seed=14
    )
    assert (_naive_gap(data, truth["site_late"]).abs() < 4).all()


def test_level_assign_corr_links_site_mean_of_z_to_site_level():
    # With no effect and no selection the site mean of y is the site level plus noise.
    def corr(kappa: float) -> float:
        data, _ = simulate_multisite_iv(
            n_sites=600,
            n_per_site=20,
            assign_share_sd=1.0,
            level_assign_corr=kappa,
            late=0.0,
            late_sd=0.0,
            selection=0.0,
            covariate_effect=0.0,
            noise_sd=0.5,
            seed=15,
        )
        means = data.groupby("site")[["z", "y"]].mean()
        return float(np.corrcoef(means["z"], means["y"])[0, 1])

    bound = 4 / np.sqrt(600)  # four SEs of a correlation of zero over 600 sites
    assert corr(0.8) > bound
    assert corr(-0.8) < -bound
    assert abs(corr(0.0)) < bound


def test_compliance_effect_corr_makes_the_covariance_positive_on_average():
    def draws(rho: float) -> np.ndarray:
        rows = []
        for seed in range(300):
            _, t = simulate_multisite_iv(
                n_per_site=10,
                compliance_sd=1.0,
                compliance_effect_corr=rho,
                seed=seed,
            )
            rows.append((t["compliance_effect_cov"], t["complier_weighted"] - t["mean_late"]))
        return np.array(rows)

    for rho, sign in ((0.8, 1), (0.0, 0), (-0.8, -1)):
        values = draws(rho)
        mean = values.mean(axis=0)
        mcse = values.std(axis=0, ddof=1) / np.sqrt(len(values))
        if sign == 0:
            assert (np.abs(mean) < 4 * mcse).all(), (mean, mcse)
        else:
            # Positive covariance, and the complier-weighted LATE exceeds the site average.
            assert (sign * mean > 4 * mcse).all(), (mean, mcse)


def test_site_fe_2sls_targets_its_weighted_average():
    data, truth = simulate_multisite_iv(
        n_sites=20,
        n_per_site=20_000,
        assign_share_sd=0.8,
        level_assign_corr=0.7,
        compliance_sd=1.0,
        late_sd=0.5,
        compliance_effect_corr=0.9,
        seed=16,
    )
    # Just-identified 2SLS with site fixed effects, in closed form, with a robust SE.
    site_mean = data.groupby("site")[["z", "d", "y"]].transform("mean")
    z_dm = data["z"] - site_mean["z"]
    d_dm, y_dm = data["d"] - site_mean["d"], data["y"] - site_mean["y"]
    estimate = (z_dm @ y_dm) / (z_dm @ d_dm)
    resid = y_dm - estimate * d_dm
    se = np.sqrt((z_dm**2 * resid**2).sum()) / abs(z_dm @ d_dm)
    assert abs(estimate - truth["fe_2sls_weight"]) < 4 * se
    # The weighting matters here: the site-average LATE is many SEs away.
    assert abs(truth["fe_2sls_weight"] - truth["mean_late"]) > 8 * se


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_sites": 1}, "^n_sites must"),
        ({"n_sites": 2.5}, "^n_sites must"),
        ({"n_sites": True}, "^n_sites must"),
        ({"n_per_site": 5}, "^n_per_site must be at least min_site_size"),
        ({"min_site_size": 1}, "^min_site_size must"),
        ({"size_cv": -0.1}, "^size_cv must"),
        ({"assign_share": 1.0}, "^assign_share must"),
        ({"assign_share": 0.0}, "^assign_share must"),
        ({"assign_share_sd": float("nan")}, "^assign_share_sd must"),
        ({"level_sd": -1.0}, "^level_sd must"),
        ({"always_taker": 1.0}, "^always_taker must"),
        ({"always_taker": -0.1}, "^always_taker must"),
        ({"compliance": 0.96}, r"^compliance must .* 1 - always_taker = 0\.95"),
        ({"compliance": 0.0}, "^compliance must"),
        ({"always_taker": 0.5, "compliance": 0.5}, "^compliance must"),
        ({"compliance_sd": -1.0}, "^compliance_sd must"),
        ({"late": float("inf")}, "^late must"),
        ({"late_sd": -0.1}, "^late_sd must"),
        ({"level_assign_corr": 1.5, "assign_share_sd": 1.0}, "^level_assign_corr must"),
        ({"level_assign_corr": 0.5}, "^level_assign_corr .* assign_share_sd > 0"),
        ({"compliance_effect_corr": -2.0}, "^compliance_effect_corr must"),
        ({"compliance_effect_corr": 0.5, "compliance_sd": 0.0}, "^compliance_effect_corr .*"),
        ({"compliance_effect_corr": 0.5, "late_sd": 0.0}, "^compliance_effect_corr .*"),
        ({"noncomplier_shift": float("nan")}, "^noncomplier_shift must"),
        ({"effect_sd": -1.0}, "^effect_sd must"),
        ({"covariate_effect": None}, "^covariate_effect must"),
        ({"selection": "big"}, "^selection must"),
        ({"noise_sd": -1.0}, "^noise_sd must"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        simulate_multisite_iv(seed=0, **kwargs)
