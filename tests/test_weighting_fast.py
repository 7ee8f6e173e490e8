"""Tests of mlmci.designs.weighting.fast: the numpy fast path equals the library engines.

On random designs (one generator per seed, so a failure reproduces): balanced and
unbalanced clusters of 3 to 50 units, covariates with a cluster-level part, large means
and unequal scales, random-intercept SDs from 0 (the boundary) to 1.5.

- The pooled and fixed-effects logits and the OLS outcome models are Newton's method or
  least squares on the same likelihood as statsmodels: held to 1e-8 (fixed-effects
  logit 1e-7); measured ~1e-14.
- The random-intercept logit: the fast path's Laplace deviance is mixedlm's at the same
  parameters (to 1e-9 relative; measured ~1e-14), its optimum is at least as good as
  mixedlm's, and its estimates agree with mixedlm's to :data:`GLMM_RTOL`. mixedlm
  minimizes the same deviance with L-BFGS-B on 3-point finite-difference gradients and
  an inner tolerance of 1e-6, so it stops a little short of the optimum: over 36 random
  designs (these and 24 more) the fast path's beta differed by at most 5e-6 (relative,
  or absolute for a coefficient below 0.1), sigma by 4e-6 relative, the fitted
  propensities by 3e-7 (absolute). The tolerances below leave 20 times that. lme4's
  ``glmer`` with its PIRLS run to ``tolPwrss = 1e-12`` (``tests/reference/lme4_extras.R``;
  at its default 1e-7 it stops ~3e-4 short) reaches the fast path's optimum to 2e-7
  (``test_random_intercept_logit_matches_tight_lme4``).
- The random-intercept outcome models (REML): predictions within :data:`REML_ATOL` of
  mixedlm's fixed effects plus BLUPs, and a REML criterion no worse than mixedlm's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from reml_reference import neg2_reml
from scipy.special import expit

from mlmci import mixed
from mlmci.designs.weighting import fast
from mlmci.errors import ArgumentError, ConvergenceError, DataError
from mlmci.threads import single_blas_thread
from mlmci.transforms import group_sums

#: beta (relative; absolute below 0.1) and sigma (relative) against mixedlm: see the
#: module docstring (measured at most 5e-6).
GLMM_RTOL = 1e-4
#: fitted propensities against mixedlm (absolute; measured at most 3e-7).
GLMM_P_ATOL = 1e-5
#: REML predictions against mixedlm, outcomes of SD ~1-3 (measured at most ~1e-7).
REML_ATOL = 1e-5
REF = "tests/reference/lme4_glmm_data.csv"
LME4_GLMM = "tests/reference/lme4_glmm.csv"


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Small dense algebra: a multi-threaded BLAS only slows it down on a busy machine."""
    with single_blas_thread():
        yield


def random_design(seed: int, *, balanced: bool, k: int, sd: float, n_groups: int | None = None):
    """``x, d, codes, G`` with clusters of 3-50 units and a random intercept of SD ``sd``."""
    rng = np.random.default_rng(seed)
    g = n_groups or int(rng.integers(15, 60))
    sizes = np.full(g, int(rng.integers(3, 51))) if balanced else rng.integers(3, 51, g)
    codes = np.repeat(np.arange(g), sizes)
    n = codes.size
    scale = rng.uniform(0.5, 5.0, k)
    x = (rng.normal(size=(n, k)) + 0.7 * rng.normal(size=(g, k))[codes]) * scale
    x += rng.uniform(-3.0, 3.0, k) * scale  # non-zero means
    index = -0.3 + (x / scale) @ rng.uniform(-0.5, 0.5, k) + sd * rng.normal(size=g)[codes]
    d = (rng.random(n) < expit(index)).astype(float)
    return x, d, codes, g


def frame(x: np.ndarray, codes: np.ndarray, **columns) -> tuple[pd.DataFrame, list[str]]:
    names = [f"x{j + 1}" for j in range(x.shape[1])]
    return pd.DataFrame(x, columns=names).assign(g=codes, **columns), names


def with_means(data: pd.DataFrame, names: list[str]) -> list[str]:
    for c in names:
        data[f"{c}_mean"] = data.groupby("g")[c].transform("mean")
    return [*names, *(f"{c}_mean" for c in names)]


def drop_constant_clusters(x, d, codes, n_groups):
    """The clusters whose treatment varies, renumbered 0..G'-1 (the fixed-effects logit)."""
    treated = np.bincount(codes, weights=d, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups)
    keep = (treated > 0) & (treated < counts)
    rows = keep[codes]
    return x[rows], d[rows], (np.cumsum(keep) - 1)[codes[rows]], int(keep.sum())


# --------------------------------------------------------------------------- pooled, fe logit


@pytest.mark.parametrize("seed", range(6))
def test_logit_pooled_equals_statsmodels(seed):
    x, d, _, _ = random_design(seed, balanced=seed % 2 == 0, k=seed % 4, sd=0.8)
    want = sm.GLM(d, sm.add_constant(x, has_constant="add"), family=sm.families.Binomial())
    np.testing.assert_allclose(fast.logit_pooled(x, d), want.fit(tol=1e-13).fittedvalues, atol=1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_logit_fe_equals_statsmodels_with_dummies(seed):
    x, d, codes, g = random_design(seed, balanced=False, k=1 + seed % 3, sd=1.0)
    x, d, codes, g = drop_constant_clusters(x, d, codes, g)
    dummies = np.eye(g)[codes]
    want = sm.GLM(d, np.column_stack([dummies, x]), family=sm.families.Binomial())
    got = fast.logit_fe(x, d, codes, g)
    np.testing.assert_allclose(got, want.fit(tol=1e-13).fittedvalues, atol=1e-7)


def test_logit_fe_without_covariates_is_the_cluster_share():
    _, d, codes, g = drop_constant_clusters(*random_design(3, balanced=False, k=1, sd=1.0))
    share = np.bincount(codes, weights=d) / np.bincount(codes)
    np.testing.assert_allclose(fast.logit_fe(np.empty((d.size, 0)), d, codes, g), share[codes])


def test_logit_fe_names_clusters_without_a_finite_intercept():
    x, d, codes, g = drop_constant_clusters(*random_design(1, balanced=False, k=2, sd=1.0))
    d = d.copy()
    d[codes == 2] = 0.0
    d[codes == 5] = 1.0
    with pytest.raises(DataError, match=r"cluster\(s\) \[2, 5\] \(2 in all\).*all 0 or all 1"):
        fast.logit_fe(x, d, codes, g)
    with pytest.raises(DataError, match=r"cluster\(s\) \[" + str(g) + r"\].*no unit"):
        fast.logit_fe(x, d, codes, g + 1)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_a_covariate_constant_within_clusters_is_refused_not_separated(scale):
    # Demeaning leaves rounding noise (~1e-16 of the raw length) that is all of its own
    # length: the check must measure it against the raw column, whatever its scale.
    x, d, codes, g = drop_constant_clusters(*random_design(4, balanced=False, k=1, sd=1.0))
    level = scale * (1.0 + np.random.default_rng(0).normal(size=g))[codes]
    x = np.column_stack([x, level])
    with pytest.raises(DataError, match="constant within clusters"):
        fast.logit_fe(x, d, codes, g)
    with pytest.raises(DataError, match="constant within clusters"):
        fast.outcome_by_arm(x, x[:, 0] + d, d, codes, g, structure="fe")


def test_separated_logit_raises_convergence_error():
    x = np.arange(20.0)[:, None]
    with pytest.raises(ConvergenceError, match="separated"):
        fast.logit_pooled(x, (x[:, 0] > 9.5).astype(float))


# --------------------------------------------------------------------------- random-intercept logit

#: seed, balanced, number of covariates, SD of the random intercept (0: the boundary).
GLMM_DESIGNS = [
    (0, False, 1, 0.3),
    (1, True, 2, 0.8),
    (2, False, 3, 1.5),
    (3, True, 1, 0.0),
    (4, False, 2, 0.5),
    (5, False, 2, 1.0),
]


def assert_matches_mixedlm(got: dict, lib: mixed.MixedResult, codes: np.ndarray) -> None:
    beta = lib.beta.to_numpy()
    scale = np.maximum(np.abs(beta), 0.1)
    np.testing.assert_array_less(np.abs(got["beta"] - beta) / scale, GLMM_RTOL)
    sigma = float(lib.theta[0])
    assert abs(got["sigma"] - sigma) <= GLMM_RTOL * max(sigma, 0.1)
    np.testing.assert_allclose(got["p"], lib.native.fitted(), atol=GLMM_P_ATOL, rtol=0)
    modes = lib.ranef()["Intercept"]
    np.testing.assert_allclose(got["modes"][modes.index.to_numpy()], modes, atol=GLMM_P_ATOL * 10)
    # The fast optimum is at least as good (the deviance is -2 log L, 1e-9 relative slack).
    assert got["deviance"] <= -2.0 * lib.llf * (1 + 1e-9)
    assert got["converged"]


@pytest.mark.parametrize("mundlak", [False, True])
@pytest.mark.parametrize("seed, balanced, k, sd", GLMM_DESIGNS)
def test_random_intercept_logit_equals_mixedlm(seed, balanced, k, sd, mundlak):
    x, d, codes, g = random_design(seed, balanced=balanced, k=k, sd=sd)
    data, names = frame(x, codes, d=d)
    terms = with_means(data, names) if mundlak else names
    lib = mixed.fit(
        f"d ~ {' + '.join(terms)} + (1 | g)", data, family="binomial", allow_boundary=True
    )
    got = fast.logit_random_intercept(x, d, codes, g, mundlak=mundlak)
    assert got["beta"].shape == (1 + len(terms),) and got["modes"].shape == (g,)
    assert_matches_mixedlm(got, lib, codes)
    assert got["boundary"] == lib.boundary


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_laplace_deviance_equals_mixedlm_at_its_estimates(seed):
    """The fast path's objective is mixedlm's (lme4's) Laplace approximation, exactly."""
    x, d, codes, g = random_design(seed, balanced=False, k=2, sd=0.8)
    data, names = frame(x, codes, d=d)
    lib = mixed.fit(f"d ~ {' + '.join(names)} + (1 | g)", data, family="binomial")
    laplace = fast._Laplace(sm.add_constant(x), d, codes, g)
    dev, grad = laplace(np.r_[lib.beta.to_numpy(), lib.theta[0] ** 2])
    assert dev == pytest.approx(-2.0 * lib.llf, rel=1e-9)
    # mixedlm's modes are the fast path's at mixedlm's parameters.
    np.testing.assert_allclose(lib.theta[0] * laplace.u, lib.ranef()["Intercept"], atol=1e-5)
    # ... and its estimates are a near-optimum: the (exact) gradient there is small.
    assert np.max(np.abs(grad)) / d.size < 1e-4


def test_laplace_gradient_is_exact():
    x, d, codes, g = random_design(7, balanced=False, k=2, sd=0.8)
    laplace = fast._Laplace(sm.add_constant(x), d, codes, g)
    point = np.array([0.1, 0.2, -0.1, 0.6])
    _, grad = laplace(point)
    step = 1e-6
    numeric = [
        (laplace(point + step * e)[0] - laplace(point - step * e)[0]) / (2 * step)
        for e in np.eye(point.size)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-4)


def test_random_intercept_logit_matches_tight_lme4():
    """lme4's glmer (PIRLS to 1e-12, tests/reference/lme4_extras.R) reaches the same optimum."""
    data = pd.read_csv(REF)
    ref = pd.read_csv(LME4_GLMM).set_index("quantity")["value"].astype(float)
    codes = pd.factorize(data["g"], sort=True)[0]
    got = fast.logit_random_intercept(
        data[["x"]].to_numpy(), data["d"].to_numpy(float), codes, int(codes.max()) + 1
    )
    np.testing.assert_allclose(got["beta"], ref[["beta:(Intercept)", "beta:x"]], rtol=1e-6)
    # A random-intercept logit's theta is the intercept's SD (the residual scale is 1).
    assert got["sigma"] == pytest.approx(ref["theta"], rel=1e-6)
    assert got["deviance"] == pytest.approx(-2 * ref["loglik"], rel=1e-10)


def test_boundary_fit_is_the_pooled_logit():
    x, d, codes, g = random_design(3, balanced=True, k=1, sd=0.0)
    got = fast.logit_random_intercept(x, d, codes, g)
    assert got["sigma"] == 0.0 and got["boundary"] and got["converged"]
    np.testing.assert_array_equal(got["modes"], np.zeros(g))
    np.testing.assert_allclose(got["p"], fast.logit_pooled(x, d), rtol=0, atol=1e-14)
    # The rule: at the pooled fit the squared cluster sums of the residuals do not
    # exceed their binomial variance (the deviance rises with sigma^2 from 0).
    p = fast.logit_pooled(x, d)
    resid = np.bincount(codes, weights=d - p)
    assert (resid**2).sum() <= np.bincount(codes, weights=p * (1 - p)).sum()


def test_random_intercept_logit_without_covariates():
    _, d, codes, g = random_design(5, balanced=False, k=1, sd=1.0)
    data = pd.DataFrame({"d": d, "g": codes})
    lib = mixed.fit("d ~ 1 + (1 | g)", data, family="binomial")
    got = fast.logit_random_intercept(np.empty((d.size, 0)), d, codes, g, mundlak=True)
    assert_matches_mixedlm(got, lib, codes)


# --------------------------------------------------------------------------- outcome models


def outcome_design(seed: int, *, k: int):
    """An unbalanced design with an outcome, where some clusters lack treated units."""
    x, d, codes, g = random_design(seed, balanced=False, k=k, sd=1.2)
    rng = np.random.default_rng(seed + 100)
    y = 1.0 + x @ rng.uniform(-1, 1, k) + 0.7 * d + rng.normal(size=g)[codes]
    y = y + rng.normal(size=d.size) * rng.uniform(0.5, 2.0)
    return x, y, d, codes, g


def both_arms(x, y, d, codes, n_groups):
    """The clusters with units in both arms, renumbered 0..G'-1 (for fixed effects)."""
    treated = np.bincount(codes, weights=d, minlength=n_groups)
    keep = ((treated > 0) & (treated < np.bincount(codes, minlength=n_groups)))[codes]
    x, d, new_codes, g = drop_constant_clusters(x, d, codes, n_groups)
    return x, y[keep], d, new_codes, g


def ols_predictions(x_arm, y_arm, x_all):
    return sm.OLS(y_arm, x_arm).fit().predict(x_all)


@pytest.mark.parametrize("seed", range(4))
def test_outcome_pooled_and_fe_equal_statsmodels_ols(seed):
    x, y, d, codes, g = outcome_design(seed, k=1 + seed % 3)
    mu = fast.outcome_by_arm(x, y, d, codes, g, structure="pooled")
    ones = sm.add_constant(x)
    for arm in (0, 1):
        rows = d == arm
        np.testing.assert_allclose(mu[arm], ols_predictions(ones[rows], y[rows], ones), atol=1e-8)
    # Fixed effects need every cluster in both arms.
    x, y, d, codes, g = both_arms(x, y, d, codes, g)
    mu = fast.outcome_by_arm(x, y, d, codes, g, structure="fe")
    dummies = np.column_stack([np.eye(g)[codes], x])
    for arm in (0, 1):
        rows = d == arm
        want = ols_predictions(dummies[rows], y[rows], dummies)
        np.testing.assert_allclose(mu[arm], want, atol=1e-8)


def test_outcome_fe_names_clusters_missing_from_an_arm():
    x, y, d, codes, g = both_arms(*outcome_design(0, k=1))
    d = d.copy()
    d[codes == 3] = 0.0
    with pytest.raises(DataError, match=r"cluster\(s\) \[3\].*no treated unit"):
        fast.outcome_by_arm(x, y, d, codes, g, structure="fe")


@pytest.mark.parametrize("structure", ["re", "mundlak"])
@pytest.mark.parametrize("seed", range(4))
def test_outcome_random_intercept_equals_mixedlm(seed, structure):
    x, y, d, codes, g = outcome_design(seed, k=1 + seed % 3)
    got = fast.outcome_by_arm(x, y, d, codes, g, structure=structure)
    data, names = frame(x, codes, y=y, d=d)
    terms = with_means(data, names) if structure == "mundlak" else names
    for arm in (0, 1):
        part = data[data["d"] == arm]
        lib = mixed.fit(f"y ~ {' + '.join(terms)} + (1 | g)", part, allow_boundary=True)
        blups = lib.ranef()["Intercept"]
        blup = pd.Series(codes).map(blups).fillna(0.0).to_numpy()  # 0: no unit in the arm
        want = sm.add_constant(data[terms].to_numpy()) @ lib.beta.to_numpy() + blup
        np.testing.assert_allclose(got[arm], want, atol=REML_ATOL, rtol=0)
        # The fast REML optimum is no worse than mixedlm's (the same criterion, directly).
        rows = d == arm
        design = sm.add_constant(data.loc[rows, terms].to_numpy())
        _, _, tau2, sigma2 = fast._reml_random_intercept(design, y[rows], codes[rows], g)
        lib_tau2 = float(lib.cov_re().to_numpy()[0, 0])
        fast_crit = neg2_reml(design, y[rows], codes[rows], g, sigma2, tau2)
        lib_crit = neg2_reml(design, y[rows], codes[rows], g, lib.sigma**2, lib_tau2)
        assert fast_crit <= lib_crit + 1e-9


def test_some_clusters_lack_treated_units():
    """The outcome designs above exercise the zero BLUP of a cluster absent from an arm."""
    missing = 0
    for seed in range(4):
        _, _, d, codes, g = outcome_design(seed, k=1)
        missing += int((np.bincount(codes, weights=d, minlength=g) == 0).sum())
    assert missing >= 3


def test_outcome_boundary_is_ols():
    """No cluster effect in the outcome: REML on the boundary gives OLS, BLUPs 0."""
    rng = np.random.default_rng(11)
    codes = np.repeat(np.arange(20), 5)
    x = rng.normal(size=(100, 1))
    d = (rng.random(100) < 0.5).astype(float)
    # Cluster means of the noise exactly 0: the between variance is below its noise level.
    e = rng.normal(size=100)
    e -= np.bincount(codes, weights=e)[codes] / 5
    y = x[:, 0] + e
    re = fast.outcome_by_arm(x, y, d, codes, 20, structure="re")
    ols = fast.outcome_by_arm(x, y, d, codes, 20, structure="pooled")
    np.testing.assert_allclose(re, ols, atol=1e-12)


# --------------------------------------------------------------------------- inputs


def test_bad_inputs_raise_clear_errors():
    x, y, d, codes, g = outcome_design(2, k=2)
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(DataError, match="x holds 1 row"):
        fast.logit_pooled(bad, d)
    with pytest.raises(DataError, match="x has 5 rows"):
        fast.logit_fe(x[:5], d, codes, g)
    with pytest.raises(DataError, match="0/1"):
        fast.logit_random_intercept(x, d + 0.5, codes, g)
    with pytest.raises(DataError, match="codes must lie in"):
        fast.logit_random_intercept(x, d, codes, g - 1)
    with pytest.raises(DataError, match="1-D array of"):
        fast.logit_fe(x, d, codes[:-1], g)
    with pytest.raises(ArgumentError, match="n_groups"):
        fast.logit_fe(x, d, codes, 0)
    y_nan = y.copy()
    y_nan[0] = np.inf
    with pytest.raises(DataError, match="y holds 1 missing or infinite"):
        fast.outcome_by_arm(x, y_nan, d, codes, g, structure="re")
    with pytest.raises(ArgumentError, match="structure must be one of"):
        fast.outcome_by_arm(x, y, d, codes, g, structure="random")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="both treated"):
        fast.logit_pooled(x, np.zeros_like(d))
    with pytest.raises(DataError, match="rank deficient"):
        fast.logit_pooled(np.column_stack([x, 2 * x[:, 0]]), d)
    with pytest.raises(DataError, match="rank deficient"):
        # a cluster-level covariate is its own cluster mean
        within = group_sums(codes, x, g)[codes]
        fast.logit_random_intercept(within, d, codes, g, mundlak=True)


def test_inputs_are_not_modified():
    x, y, d, codes, g = outcome_design(1, k=2)
    arrays = [x, y, d, codes]
    before = [a.copy() for a in arrays]
    fast.logit_pooled(x, d)
    fast.logit_random_intercept(x, d, codes, g, mundlak=True)
    for structure in fast.OUTCOME_STRUCTURES[::2]:
        fast.outcome_by_arm(x, y, d, codes, g, structure=structure)
    for a, b in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)
