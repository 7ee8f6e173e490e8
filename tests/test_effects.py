"""Tests of mlmci.effects: group effects under no, complete and partial pooling, and Bayes."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from mlmci import bayes, effects, mixed
from mlmci.engines import OLS, REML, Bayes
from mlmci.errors import ConvergenceError, DataError, DataTypeError
from mlmci.results import TIDY_COLUMNS
from mlmci.simulate import simulate_experiment

FREQUENTIST = ("no_pooling", "complete_pooling", "partial_pooling")


def _fit(data, method, **options):
    """Fit with ``method``; ``"bayes"`` is partial pooling on the Bayes engine."""
    if method == "bayes":
        engine = Bayes(
            sampler=options.pop("sampler", None),
            gate=options.pop("gate", True),
            model_options=options.pop("model_options", {}),
        )
        options = {**options, "engine": engine}
        method = "partial_pooling"
    return effects.fit(data, "y", "treated", "group", method=method, **options)


@pytest.fixture(scope="session")
def homogeneous():
    """No true heterogeneity: every group has the same effect, 0.3."""
    data, _ = simulate_experiment(n_groups=30, group_size=20, tau=0.0, seed=11)
    return data, {m: _fit(data, m) for m in FREQUENTIST}


@pytest.fixture(scope="session")
def modified():
    """Heterogeneous effects with a group-level modifier w and a unit covariate x."""
    data, _ = simulate_experiment(
        n_groups=12, group_size=14, tau=0.6, modifier=0.5, beta_x=1.0, size_cv=0.4, seed=4
    )
    fitted = _fit(data, "partial_pooling", covariates=["x"], modifiers=["w"])
    return data, fitted


# --- shape and labels ----------------------------------------------------------------------


@pytest.mark.parametrize("method", FREQUENTIST)
def test_tables_have_the_tidy_shape(homogeneous, method):
    data, fits = homogeneous
    res = fits[method]
    groups = res.groups
    assert list(groups.columns) == [*TIDY_COLUMNS[:2], "group", *TIDY_COLUMNS[2:], "n", "n_treated"]
    assert groups["group"].tolist() == list(range(1, 31))
    assert (groups["estimator"] == method).all() and (groups["term"] == "treated").all()
    assert (groups["ci_low"] < groups["estimate"]).all()
    assert (groups["estimate"] < groups["ci_high"]).all()
    np.testing.assert_array_equal(groups["n"], data.groupby("group").size())
    np.testing.assert_array_equal(groups["n_treated"], data.groupby("group")["treated"].sum())
    expected = {
        "no_pooling": [("ATE", "95% CI")],
        "complete_pooling": [("ATE", "95% CI"), ("new group", "95% PI (tau = 0)")],
        "partial_pooling": [("ATE", "95% CI"), ("new group", "95% PI (approx.)")],
    }[method]
    assert list(zip(res.population["term"], res.population["interval"], strict=True)) == expected
    label = "95% CI (approx.)" if method == "partial_pooling" else "95% CI"
    assert (groups["interval"] == label).all()
    assert repr(res).startswith("Group effects, " + method.replace("_", " ") + " (30 groups")
    table = res.tidy()
    assert table["term"].tolist()[: len(expected)] == [term for term, _ in expected]
    assert res.effect()["term"] == "ATE" and "<table" in res._repr_html_()


@pytest.mark.parametrize("method", FREQUENTIST)
def test_tidy_at_another_prob_equals_a_fit_at_that_prob(homogeneous, method):
    data, fits = homogeneous
    again = _fit(data, method, prob=0.8).tidy(prob=0.8)
    pd.testing.assert_frame_equal(fits[method].tidy(prob=0.8), again)


def test_prob_sets_the_interval(homogeneous):
    data, fits = homogeneous
    wide = fits["no_pooling"].groups
    narrow = _fit(data, "no_pooling", prob=0.8).groups
    assert (narrow["interval"] == "80% CI").all()
    np.testing.assert_allclose(narrow["estimate"], wide["estimate"])
    assert ((narrow["ci_high"] - narrow["ci_low"]) < (wide["ci_high"] - wide["ci_low"])).all()


def test_group_effects_is_fit_groups(homogeneous):
    data, fits = homogeneous
    table = effects.group_effects(data, "y", "treated", "group", method="no_pooling")
    pd.testing.assert_frame_equal(table, fits["no_pooling"].groups)


def test_string_group_labels_are_kept():
    data, _ = simulate_experiment(n_groups=4, group_size=10, seed=1)
    data["group"] = data["group"].map({1: "d", 2: "b", 3: "c", 4: "a"})
    table = effects.group_effects(data, "y", "treated", "group", method="no_pooling")
    assert table["group"].tolist() == ["a", "b", "c", "d"]
    arms = data.groupby(["group", "treated"])["y"].mean().unstack()
    by_hand = (arms[1] - arms[0]).loc[["a", "b", "c", "d"]]
    np.testing.assert_allclose(table["estimate"], by_hand)


# --- no and complete pooling against independent computations --------------------------------


def test_no_pooling_is_each_groups_difference_in_means_with_neyman_hc2():
    data, _ = simulate_experiment(n_groups=5, group_size=12, tau=0.5, seed=2)
    res = _fit(data, "no_pooling", engine=OLS(cov_type="HC2"))
    arms = data.groupby(["group", "treated"])["y"].agg(["mean", "var", "count"]).unstack()
    diff = arms[("mean", 1)] - arms[("mean", 0)]
    neyman = arms[("var", 1)] / arms[("count", 1)] + arms[("var", 0)] / arms[("count", 0)]
    np.testing.assert_allclose(res.groups["estimate"], diff.to_numpy())
    np.testing.assert_allclose(res.groups["std_error"] ** 2, neyman.to_numpy())
    ate = res.population.iloc[0]
    assert ate["estimate"] == pytest.approx(diff.mean())
    assert ate["std_error"] ** 2 == pytest.approx(neyman.sum() / 25)


def test_no_pooling_classical_se_uses_the_pooled_residual_variance():
    data, _ = simulate_experiment(n_groups=4, group_size=10, tau=0.5, seed=3)
    res = _fit(data, "no_pooling")
    arms = data.groupby(["group", "treated"])["y"]
    residual = data["y"] - arms.transform("mean")
    sigma2 = (residual**2).sum() / (len(data) - 8)
    counts = arms.size().unstack()
    expected = sigma2 * (1 / counts[0] + 1 / counts[1])
    np.testing.assert_allclose(res.groups["std_error"] ** 2, expected.to_numpy())
    # t interval with the residual degrees of freedom
    from scipy import stats

    half = stats.t.ppf(0.975, len(data) - 8) * res.groups["std_error"]
    np.testing.assert_allclose(res.groups["ci_high"] - res.groups["estimate"], half)


def test_complete_pooling_is_the_group_fixed_effects_regression():
    data, _ = simulate_experiment(n_groups=6, group_size=15, tau=0.5, beta_x=1.0, seed=5)
    res = _fit(data, "complete_pooling", covariates=["x"])
    ols = smf.ols("y ~ C(group) + treated + x", data).fit()
    assert (res.groups["estimate"] == res.groups["estimate"].iloc[0]).all()
    assert res.groups["estimate"].iloc[0] == pytest.approx(ols.params["treated"])
    assert res.groups["std_error"].iloc[0] == pytest.approx(ols.bse["treated"])
    low, high = ols.conf_int().loc["treated"]
    assert res.population.iloc[0][["ci_low", "ci_high"]].tolist() == pytest.approx([low, high])
    assert res.tau == 0.0


def test_complete_pooling_with_a_modifier_follows_the_modifier():
    data, _ = simulate_experiment(
        n_groups=8, group_size=20, tau=0.0, modifier=1.0, covariate="binary", seed=6
    )
    res = _fit(data, "complete_pooling", modifiers=["w"])
    ols = smf.ols("y ~ C(group) + treated + treated:w", data).fit()
    w = data.groupby("group")["w"].first().to_numpy()
    expected = ols.params["treated"] + ols.params["treated:w"] * w
    np.testing.assert_allclose(res.groups["estimate"], expected)
    assert res.groups["estimate"].nunique() == 2


def test_modifiers_change_nothing_for_no_pooling(modified):
    data, _ = modified
    plain = _fit(data, "no_pooling", covariates=["x"]).groups
    with_w = _fit(data, "no_pooling", covariates=["x"], modifiers=["w"]).groups
    pd.testing.assert_frame_equal(plain, with_w)


def test_categorical_covariate_with_an_unused_level():
    data, _ = simulate_experiment(n_groups=6, group_size=16, tau=0.5, seed=15)
    data["kind"] = pd.Categorical(
        np.where(data["x"] > 0, "high", "low"), categories=["low", "high", "never"]
    )
    for method in FREQUENTIST:
        res = _fit(data, method, covariates=["kind"])
        assert np.isfinite(res.groups["std_error"]).all()
    plain = _fit(data.assign(kind=data["kind"].astype(str)), "no_pooling", covariates=["kind"])
    np.testing.assert_allclose(
        plain.groups["estimate"], _fit(data, "no_pooling", covariates=["kind"]).groups["estimate"]
    )


def test_bool_treatment_equals_0_1():
    data, _ = simulate_experiment(n_groups=4, group_size=10, seed=7)
    as_bool = data.assign(treated=data["treated"].astype(bool))
    pd.testing.assert_frame_equal(
        _fit(as_bool, "no_pooling").groups, _fit(data, "no_pooling").groups
    )


# --- partial pooling --------------------------------------------------------------------------


def test_zero_heterogeneity_partial_pooling_shrinks_toward_the_overall_effect(homogeneous):
    _, fits = homogeneous
    pp, no = fits["partial_pooling"].groups, fits["no_pooling"].groups
    overall = float(fits["partial_pooling"].population["estimate"].iloc[0])
    assert pp["estimate"].std() < 0.5 * no["estimate"].std()
    to_pp = (pp["estimate"] - overall).abs()
    to_no = (no["estimate"] - overall).abs()
    # With correlated intercepts and slopes a slope BLUP also moves with the group's
    # intercept, so "closer" holds group by group only up to a fraction of the group's SE.
    assert (to_pp <= to_no + 0.5 * no["std_error"]).all()
    assert (to_pp < to_no).mean() >= 0.9
    # Shrunken estimates come with narrower intervals than each group alone gives.
    assert (pp["std_error"] < no["std_error"]).all()


def test_huge_groups_partial_pooling_approaches_no_pooling():
    data, _ = simulate_experiment(n_groups=10, group_size=2000, tau=0.5, seed=12)
    pp = _fit(data, "partial_pooling").groups
    no = _fit(data, "no_pooling").groups
    gap = (pp["estimate"] - no["estimate"]).abs()
    assert (gap < 0.25 * no["std_error"]).all()
    np.testing.assert_allclose(pp["std_error"], no["std_error"], rtol=0.05)


def test_partial_pooling_matches_hendersons_mixed_model_equations(modified):
    # Solve Henderson's equations densely, independently of the per-group algebra: the
    # group effect is lambda_j' beta + b_j(slope), its variance the matching block of C^-1.
    data, fitted = modified
    res = fitted.model
    assert not res.boundary
    g = data["group"].to_numpy()
    labels = np.unique(g)
    t = data["treated"].to_numpy(float)
    w = data["w"].to_numpy()
    x = np.column_stack([np.ones(len(data)), t, w, t * w, data["x"]])
    assert list(res.beta.index) == ["Intercept", "t", "m0", "t:m0", "c0"]
    z = np.zeros((len(data), 2 * len(labels)))
    for j, label in enumerate(labels):
        rows = g == label
        z[rows, 2 * j] = 1.0
        z[rows, 2 * j + 1] = t[rows]
    sigma2 = res.sigma**2
    g_inv = np.kron(np.eye(len(labels)), np.linalg.inv(res.cov_re().to_numpy()))
    lhs = np.block([[x.T @ x, x.T @ z], [z.T @ x, z.T @ z + sigma2 * g_inv]]) / sigma2
    solution = np.linalg.solve(lhs, np.concatenate([x.T, z.T]) @ data["y"].to_numpy() / sigma2)
    inverse = np.linalg.inv(lhs)
    w_group = data.groupby("group")["w"].first().to_numpy()
    for j in range(len(labels)):
        contrast = np.zeros(lhs.shape[0])
        contrast[1], contrast[3] = 1.0, w_group[j]
        contrast[x.shape[1] + 2 * j + 1] = 1.0
        row = fitted.groups.iloc[j]
        assert row["estimate"] == pytest.approx(contrast @ solution, rel=1e-6)
        assert row["std_error"] ** 2 == pytest.approx(contrast @ inverse @ contrast, rel=1e-6)


def test_partial_pooling_population_rows(modified):
    data, fitted = modified
    ate, new = fitted.population.itertuples(index=False)
    beta = fitted.model.beta
    w_bar = data.groupby("group")["w"].first().mean()
    assert ate.estimate == pytest.approx(beta["t"] + beta["t:m0"] * w_bar)
    assert new.estimate == pytest.approx(ate.estimate)
    sd = fitted.model.variance_components.set_index(["group", "term"]).loc[("g", "t"), "estimate"]
    assert fitted.tau == pytest.approx(sd)
    assert new.std_error == pytest.approx(np.hypot(ate.std_error, fitted.tau))
    assert new.ci_high - new.ci_low == pytest.approx(2 * 1.959964 * new.std_error, rel=1e-6)


def test_partial_pooling_ate_se_is_the_mixed_model_se(homogeneous):
    _, fits = homogeneous
    fitted = fits["partial_pooling"]
    fixed = fitted.model.fixed.set_index("term").loc["t"]
    ate = fitted.population.iloc[0]
    assert ate["estimate"] == pytest.approx(fixed["estimate"])
    assert ate["std_error"] == pytest.approx(fixed["std_error"], rel=1e-4)


def test_partial_pooling_accepts_or_refuses_a_boundary_fit():
    # Make every group's treated-minus-control difference the same: the observed spread of
    # group effects is then zero, below any sampling noise, so the REML optimum of the effect
    # variance is exactly on the boundary whatever optimizer finds it. The verdict is lme4's
    # rule applied to the estimate, which the second assertion pins.
    data, _ = simulate_experiment(n_groups=10, group_size=10, tau=0.0, seed=3)
    treated = data["treated"] == 1
    gap = data[treated].groupby("group")["y"].mean() - data[~treated].groupby("group")["y"].mean()
    data["y"] = data["y"] - treated * (gap.reindex(data["group"]).to_numpy() - gap.mean())
    accepted = _fit(data, "partial_pooling")
    assert accepted.model.boundary
    lower = accepted.model.native._theta_lower_bounds()
    assert accepted.model.boundary == mixed.is_singular(accepted.model.theta, lower)
    assert accepted.tau < 1e-3
    assert np.isfinite(accepted.groups["std_error"]).all()
    with pytest.raises(ConvergenceError, match="boundary"):
        _fit(data, "partial_pooling", engine=REML(allow_boundary=False))


# --- Bayes ------------------------------------------------------------------------------------


def _fake_bayes(monkeypatch, *, n_groups, modifiers=False, order=None, seed=5):
    """Replace bayes.fit with a posterior we know, in bambi's variable names."""
    rng = np.random.default_rng(0)
    chains, draws = 2, 300
    codes = [str(c) for c in (order if order is not None else range(n_groups))]
    posterior = {
        "Intercept": rng.normal(size=(chains, draws)),
        "t": rng.normal(0.3, 0.1, size=(chains, draws)),
        "t|g": rng.normal(0, 0.4, size=(chains, draws, n_groups)),
        "t|g_sigma": np.abs(rng.normal(0.4, 0.05, size=(chains, draws))),
    }
    if modifiers:
        posterior["t:m0"] = rng.normal(0.5, 0.1, size=(chains, draws))
    idata = az.from_dict(
        posterior=posterior, dims={"t|g": ["g__factor_dim"]}, coords={"g__factor_dim": codes}
    )
    calls = {}

    def fake_fit(formula, data, *, sampler=None, gate=True, **options):
        calls.update(formula=formula, data=data, sampler=sampler, gate=gate, options=options)
        settings = bayes.SamplerSettings(chains=chains, draws=draws, seed=seed, cores=1)
        return bayes.BayesFit(model=None, idata=idata, settings=settings, diagnostics=None)

    monkeypatch.setattr(bayes, "fit", fake_fit)
    return posterior, codes, calls


def test_bayes_summarizes_group_effect_draws(monkeypatch):
    data, _ = simulate_experiment(n_groups=4, group_size=10, seed=8)
    order = [2, 0, 3, 1]  # the posterior's group order need not be sorted
    posterior, _, calls = _fake_bayes(monkeypatch, n_groups=4, order=order)
    res = _fit(
        data, "bayes", sampler={"draws": 300}, gate=False, model_options={"noncentered": False}
    )
    assert calls["formula"] == "y ~ t + (1 + t | g)"
    assert calls["sampler"] == {"draws": 300} and calls["gate"] is False
    assert calls["options"] == {"noncentered": False}
    groups = res.groups
    assert (groups["interval"] == "94% HDI").all()
    for j in range(4):
        draws = posterior["t"] + posterior["t|g"][..., order.index(j)]
        row = groups.iloc[j]
        assert row["group"] == j + 1
        assert row["estimate"] == pytest.approx(draws.mean())
        assert row["std_error"] == pytest.approx(draws.std(ddof=1))
        low, high = az.hdi(draws[..., None], hdi_prob=0.94)[0]
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    np.testing.assert_allclose(
        res.draws.sel(group=2).to_numpy(), posterior["t"] + posterior["t|g"][..., 3]
    )
    ate, new = res.population.itertuples(index=False)
    assert (ate.term, ate.interval) == ("ATE", "94% HDI")
    assert ate.estimate == pytest.approx(posterior["t"].mean())
    assert (new.term, new.interval) == ("new group", "94% HDI (predictive)")
    sigma = posterior["t|g_sigma"]
    expected = posterior["t"] + sigma * np.random.default_rng(5).standard_normal(sigma.shape)
    assert new.estimate == pytest.approx(expected.mean())
    assert new.std_error == pytest.approx(expected.std(ddof=1))
    assert res.tau == pytest.approx(sigma.mean())


def test_bayes_with_a_modifier(monkeypatch):
    data, _ = simulate_experiment(n_groups=3, group_size=10, modifier=1.0, seed=9)
    posterior, _, calls = _fake_bayes(monkeypatch, n_groups=3, modifiers=True)
    res = _fit(data, "bayes", modifiers=["w"], prob=0.9)
    assert calls["formula"] == "y ~ t + m0 + t:m0 + (1 + t | g)"
    w = data.groupby("group")["w"].first().to_numpy()
    expected = (
        posterior["t"][..., None] + posterior["t:m0"][..., None] * w + posterior["t|g"]
    ).mean(axis=(0, 1))
    np.testing.assert_allclose(res.groups["estimate"], expected)
    assert (res.groups["interval"] == "90% HDI").all()
    ate = res.population.iloc[0]
    assert ate["estimate"] == pytest.approx((posterior["t"] + posterior["t:m0"] * w.mean()).mean())


@pytest.mark.slow
def test_bayes_real_tiny_fit_agrees_with_partial_pooling():
    data, _ = simulate_experiment(n_groups=6, group_size=24, tau=0.5, seed=10)
    res = _fit(
        data,
        "bayes",
        sampler={"draws": 200, "tune": 200, "chains": 2, "cores": 1},
        gate=bayes.GateThresholds(rhat_max=1.1, ess_min=50, max_divergences=20),
    )
    pp = _fit(data, "partial_pooling")
    assert res.groups["group"].tolist() == list(range(1, 7))
    assert res.draws.dims == ("chain", "draw", "group")
    assert res.draws.shape == (2, 200, 6)
    np.testing.assert_allclose(res.groups["estimate"], res.draws.mean(("chain", "draw")))
    # Same model, different inference: the two agree to a fraction of the posterior SD.
    gap = (res.groups["estimate"] - pp.groups["estimate"]).abs()
    assert (gap < res.groups["std_error"]).all()
    ate, new = res.population.itertuples(index=False)
    assert new.ci_high - new.ci_low > ate.ci_high - ate.ci_low
    assert res.tau > 0


# --- bad input --------------------------------------------------------------------------------


@pytest.fixture
def small():
    data, _ = simulate_experiment(n_groups=4, group_size=8, seed=13)
    return data


@pytest.mark.parametrize("method", [*effects.METHODS, "bayes"])
def test_non_binary_treatment_is_refused(small, method):
    bad = small.assign(treated=small["treated"] * 2)
    with pytest.raises(DataError, match=r"'treated' must be a binary treatment.*2"):
        _fit(bad, method)


def test_text_treatment_is_a_type_error(small):
    bad = small.assign(treated=small["treated"].map({0: "control", 1: "treated"}))
    with pytest.raises(DataTypeError, match=r"'treated'.*binary"):
        _fit(bad, "no_pooling")


def test_constant_treatment_is_refused(small):
    with pytest.raises(DataError, match="'treated' is 1 for every unit"):
        _fit(small.assign(treated=1), "complete_pooling")


@pytest.mark.parametrize("method", ["no_pooling", "partial_pooling", "bayes"])
def test_group_without_treated_or_controls_is_named(small, method):
    bad = small.copy()
    bad.loc[bad["group"] == 3, "treated"] = 0
    bad.loc[bad["group"] == 4, "treated"] = 1
    with pytest.raises(DataError) as info:
        _fit(bad, method)
    message = str(info.value)
    assert "no treated units in group(s) 3" in message
    assert "no control units in group(s) 4" in message
    assert "complete_pooling" in message


def test_complete_pooling_accepts_a_group_without_controls(small):
    bad = small.copy()
    bad.loc[bad["group"] == 4, "treated"] = 1
    res = _fit(bad, "complete_pooling")
    assert len(res.groups) == 4


@pytest.mark.parametrize("column", ["y", "treated", "group", "x"])
def test_missing_values_are_named(small, column):
    bad = small.astype({column: float})
    bad.loc[2, column] = np.nan
    with pytest.raises(DataError, match=f"'{column}' \\(1 missing\\)"):
        _fit(bad, "no_pooling", covariates=["x"])


def test_missing_column_is_named(small):
    with pytest.raises(DataError, match="nope"):
        _fit(small, "no_pooling", covariates=["nope"])


def test_single_group_is_refused(small):
    with pytest.raises(DataError, match="1 distinct group"):
        _fit(small[small["group"] == 1], "complete_pooling")


def test_modifier_varying_within_groups_is_refused(small):
    with pytest.raises(DataError, match=r"modifier column\(s\) \['x'\] vary within groups"):
        _fit(small, "partial_pooling", modifiers=["x"])


def test_modifier_constant_across_groups_is_refused(small):
    with pytest.raises(DataError, match="does not vary within groups"):
        _fit(small.assign(w=1.0), "complete_pooling", modifiers=["w"])


def test_covariate_collinear_with_treatment_is_refused(small):
    bad = small.assign(copy=small["treated"] * 3.0)
    with pytest.raises(DataError, match="not identified"):
        _fit(bad, "no_pooling", covariates=["copy"])


@pytest.mark.parametrize("method", ["no_pooling", "complete_pooling"])
def test_covariate_collinear_with_treatment_within_groups_is_refused(small, method):
    # 0.3 * treated plus a group-level shift: partialling out the groups and the treatment
    # leaves rounding noise, which the identification check does not count as variation
    # (numpy's matrix_rank, used before, did for a single covariate).
    bad = small.assign(copy=0.3 * small["treated"] + small["w"])
    with pytest.raises(DataError, match="collinear with the treatment within groups"):
        _fit(bad, method, covariates=["copy"])


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.SingularMatrixWarning")
@pytest.mark.parametrize("method", ["no_pooling", "complete_pooling"])
def test_group_level_covariate_is_absorbed_by_the_group_intercepts(small, method):
    plain = _fit(small, method).tidy()
    adjusted = _fit(small, method, covariates=["w"]).tidy()
    np.testing.assert_allclose(adjusted["estimate"], plain["estimate"], rtol=1e-8)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"method": "pooled"}, ValueError),
        ({"method": "no_pooling", "engine": OLS(cov_type="cluster")}, ValueError),
        ({"method": "no_pooling", "engine": REML()}, ValueError),
        ({"method": "partial_pooling", "engine": OLS()}, ValueError),
        ({"method": "no_pooling", "prob": 1.5}, ValueError),
        ({"method": "no_pooling", "covariates": ["treated"]}, ValueError),
        ({"method": "no_pooling", "covariates": [3]}, DataTypeError),
    ],
)
def test_bad_options(small, options, error):
    with pytest.raises(error):
        effects.fit(small, "y", "treated", "group", **options)


def test_robust_no_pooling_needs_two_units_per_arm():
    data, _ = simulate_experiment(n_groups=3, group_size=[2, 8, 8], seed=16)
    with pytest.raises(DataError, match=r"group\(s\) 1 have fewer"):
        _fit(data, "no_pooling", engine=OLS(cov_type="HC2"))
    assert np.isfinite(_fit(data, "no_pooling").groups["std_error"]).all()


def test_not_a_dataframe():
    with pytest.raises(DataTypeError, match="DataFrame"):
        effects.fit({"y": [1.0]}, "y", "treated", "group", method="no_pooling")


@pytest.mark.parametrize("method", FREQUENTIST)
def test_input_dataframe_is_unchanged(method):
    data, _ = simulate_experiment(n_groups=5, group_size=12, tau=0.4, beta_x=1.0, seed=14)
    data["group"] = data["group"].astype("category")
    data["treated"] = data["treated"].astype(bool)
    before = data.copy(deep=True)
    _fit(data, method, covariates=["x"], modifiers=["w"])
    pd.testing.assert_frame_equal(data, before)
