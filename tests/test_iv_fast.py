"""Tests of mlmci.designs.iv.fast: the Monte Carlo fast path equals :func:`mlmci.iv.fit`.

DESIGN.md's Monte Carlo standard: a study may fit an estimator through a closed-form
fast path when a test shows it equal to mlmci's own estimator to 1e-10 on random data.
The closed-form methods (the k-class estimators with site effects, the per-site Wald
ratios and the bivariate random-effects model, which share their code with
:func:`mlmci.iv.fit`) are held to 1e-10; the two random-intercept ratios, whose variance
components two different optimizers find, to the REML optimizers' tolerance (see
:data:`REML_TOL`).

The designs are drawn at random (one generator per seed, so a failure reproduces):
equal and unequal sites, site shares assigned that vary and correlate with the site
levels, weak first stages (many sites with a first-stage F below 10), no covariate, the
simulator's ``x``, and extra simulated covariates with a site-level component.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from reml_reference import neg2_reml
from scipy import stats

from mlmci import iv
from mlmci.designs.iv.design import group_sums
from mlmci.designs.iv.fast import FAST_METHODS, fast_estimates
from mlmci.errors import ArgumentError
from mlmci.fastpath import reml_random_intercept
from mlmci.simulate import simulate_multisite_iv
from mlmci.threads import single_blas_thread

COLS = ["estimate", "std_error", "ci_low", "ci_high"]
CLOSED_FORM = [m for m in FAST_METHODS if m not in ("re", "re_mundlak")]
#: The random-intercept ratios: mixedlm (L-BFGS-B on the relative SD, stopping at a
#: gradient norm of 1e-9..1e-6) and the fast path's bounded scalar search on the variance
#: ratio (xatol 1e-12) stop at points whose REML criteria agree to ~1e-12, but the
#: criterion is flat (quadratic) at its optimum, so their variance components differ by
#: ~1e-8 relative, and the GLS coefficients move with them: ~1e-9 in the ITT and the
#: first stage. The ratio divides that by the first stage, so a weak first stage (0.01,
#: say) makes it ~1e-7 in the LATE: an absolute tolerance (the DiD fast path's 1e-6,
#: right for its non-ratio estimates) would be too loose for a strong instrument and too
#: tight for a weak one. The ratio's SE carries the same 1/first-stage factor, so the
#: tolerance is relative to it: estimate and interval ends within 1e-6 SE, the SE within
#: 1e-6 relative. Measured over 40 random designs (weak and strong, 0-2 covariates,
#: boundary fits): at most 1.8e-7 SE (3.5e-7 absolute, on a LATE of 12 whose first stage
#: is nearly zero), SE at most 3.5e-8 relative.
REML_TOL = 1e-6

pytestmark = pytest.mark.filterwarnings("ignore::mlmci.iv.WeakInstrumentWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Small dense algebra: a multi-threaded BLAS only slows it down on a busy machine."""
    with single_blas_thread():
        yield


def random_design(seed: int, *, equal_sizes: bool, n_covariates: int):
    """A random multi-site IV design: ``(data, covariate names)``.

    ``n_covariates``: 0 (none), 1 (the simulator's ``x``) or more (``x`` and simulated
    extra columns with a site-level part and a correlation with ``x``).
    """
    rng = np.random.default_rng(seed)
    n_sites = int(rng.integers(6, 31))
    data, _ = simulate_multisite_iv(
        n_sites=n_sites,
        n_per_site=int(rng.integers(25, 101)),
        size_cv=0.0 if equal_sizes else float(rng.uniform(0.2, 0.6)),
        assign_share_sd=float(rng.uniform(0.3, 1.0)),
        level_sd=float(rng.uniform(0.3, 1.5)),
        level_assign_corr=float(rng.uniform(0.3, 0.9)),
        # a complier share of 0.1-0.2 leaves most sites with a first-stage F below 10
        compliance=float(rng.choice([0.1, 0.15, 0.2, 0.6])),
        compliance_sd=float(rng.choice([0.0, 0.5])),
        late_sd=float(rng.uniform(0.0, 0.5)),
        selection=float(rng.uniform(0.0, 1.0)),
        seed=seed,
    )
    # A site without a complier or always-taker has a constant treatment and no LATE (both
    # paths refuse it): drop such sites and renumber the rest 1..J.
    varies = data.groupby("site")["d"].transform("std") > 0
    data = data[varies].reset_index(drop=True)
    data["site"] = pd.factorize(data["site"], sort=True)[0] + 1
    n_sites = int(data["site"].max())
    covariates = ["x"][:n_covariates]
    site_part = rng.normal(size=n_sites)
    for k in range(1, n_covariates):
        data[f"w{k}"] = (
            rng.normal(size=len(data)) + 0.5 * data["x"] + site_part[data["site"] - 1] * k
        )
        covariates.append(f"w{k}")
    return data, covariates


def run_fast(data: pd.DataFrame, covariates: list[str], methods, prob: float) -> pd.DataFrame:
    return fast_estimates(
        data["y"].to_numpy(),
        data["d"].to_numpy(),
        data["z"].to_numpy(),
        data[covariates].to_numpy(float),
        data["site"].to_numpy() - 1,  # the simulator's sites are 1..J, sorted
        methods,
        prob=prob,
    )


def run_library(data: pd.DataFrame, covariates: list[str], method: str, prob: float):
    res = iv.fit(
        data, "y", treatment="d", instrument="z", covariates=covariates, site="site", method=method
    )
    return res.tidy(prob=prob)


def assert_same_rows(fast: pd.DataFrame, lib: pd.DataFrame, method: str, data: pd.DataFrame):
    """Row by row: the headline, the site rows (site j+1 is fast code j), ``site_average``."""
    got = fast[fast["estimator"] == method]
    head_got = got[got["group"].isna() & (got["term"] == "d")]
    head_lib = lib[lib["group"].isna() & (lib["term"] == "d")]
    assert len(head_got) == len(head_lib) == 1
    if method in ("re", "re_mundlak"):
        _assert_reml_close(head_got[COLS].to_numpy(float)[0], head_lib[COLS].to_numpy(float)[0])
        return
    np.testing.assert_allclose(
        head_got[COLS].to_numpy(float), head_lib[COLS].to_numpy(float), rtol=1e-10, atol=1e-10
    )
    sites_got, sites_lib = got[got["group"].notna()], lib[lib["group"].notna()]
    if method not in ("per_site", "multisite_re"):
        assert sites_got.empty and sites_lib.empty
        return
    labels = sorted(data["site"].unique())
    assert sites_lib["group"].tolist() == labels
    assert sites_got["group"].tolist() == [label - 1 for label in labels]
    assert (sites_got["term"] == "d").all() and (sites_lib["term"] == "d").all()
    np.testing.assert_allclose(
        sites_got[COLS].to_numpy(float), sites_lib[COLS].to_numpy(float), rtol=1e-10, atol=1e-10
    )
    if method == "multisite_re":
        avg_got = got[got["term"] == "site_average"]
        avg_lib = lib[lib["term"] == "site_average"]
        assert len(avg_got) == len(avg_lib) == 1
        assert avg_got["estimate"].item() == pytest.approx(
            avg_lib["estimate"].item(), rel=1e-10, abs=1e-10
        )
        # no SE, so no interval, in either
        assert avg_got[COLS[1:]].isna().all(axis=None) and avg_lib[COLS[1:]].isna().all(axis=None)
    else:
        assert (got["term"] == "d").all()


def _assert_reml_close(got: np.ndarray, want: np.ndarray) -> None:
    se = want[1]
    assert abs(got[1] - se) <= REML_TOL * se
    for k in (0, 2, 3):  # estimate, ci_low, ci_high
        assert abs(got[k] - want[k]) <= REML_TOL * se, (COLS[k], got[k], want[k])


# --------------------------------------------------------------------------- equal to iv.fit

#: seed, equal sizes, number of covariates: every combination of sizes and covariates
#: occurs, each on several random designs.
DESIGNS = [(seed, seed % 2 == 0, seed % 4) for seed in range(12)]


@pytest.mark.parametrize("seed, equal_sizes, n_covariates", DESIGNS)
def test_fast_estimates_equal_iv_fit(seed, equal_sizes, n_covariates):
    data, covariates = random_design(seed, equal_sizes=equal_sizes, n_covariates=n_covariates)
    # the "re" methods need equal-sized sites (the closed-form REML)
    methods = list(FAST_METHODS) if equal_sizes else CLOSED_FORM
    fast = run_fast(data, covariates, methods, prob=0.9)
    assert fast["estimator"].drop_duplicates().tolist() == methods
    for method in methods:
        assert_same_rows(fast, run_library(data, covariates, method, prob=0.9), method, data)


def test_designs_include_weak_first_stages():
    """The random designs above are not all easy: several have many weak sites."""
    weak_share = []
    for seed, equal_sizes, n_covariates in DESIGNS:
        data, covariates = random_design(seed, equal_sizes=equal_sizes, n_covariates=n_covariates)
        kw = dict(treatment="d", instrument="z", covariates=covariates, site="site")
        res = iv.fit(data, "y", **kw, method="per_site")
        weak_share.append(float((res.sites["first_stage_f"] < iv.WEAK_F).mean()))
    assert sum(share > 0.5 for share in weak_share) >= 3


@pytest.mark.parametrize("seed", [0, 2, 4])
@pytest.mark.parametrize("mundlak", [False, True])
def test_reml_gap_is_the_optimizers_stopping_point(seed, mundlak):
    """Why ``re`` differs at all: the two REML optima are equally good, not one wrong.

    The closed-form REML's criterion is no worse than mixedlm's (checked with a direct
    formula), and the variance components agree to the optimizers' tolerance.
    """
    from mlmci import mixed

    data, covariates = random_design(seed, equal_sizes=True, n_covariates=seed % 4)
    codes = data["site"].to_numpy() - 1
    n_sites = int(codes.max()) + 1
    size = len(codes) // n_sites
    z = data["z"].to_numpy(float)
    zbar = group_sums(codes, z, n_sites)[codes] / size
    frame = data.assign(zbar=zbar)
    rhs = " + ".join(["z", *covariates, *(["zbar"] if mundlak else [])])
    x = np.column_stack([np.ones(len(z)), frame[rhs.split(" + ")].to_numpy(float)])
    for lhs in ("y", "d"):
        yv = frame[lhs].to_numpy(float)
        beta, sigma2, tau2, *_ = reml_random_intercept(x, yv, n_sites, size)
        lib = mixed.fit(f"{lhs} ~ {rhs} + (1 | site)", frame, allow_boundary=True)
        lib_tau2 = float(lib.cov_re().to_numpy()[0, 0])
        fast_crit = neg2_reml(x, yv, codes, n_sites, sigma2, tau2)
        lib_crit = neg2_reml(x, yv, codes, n_sites, lib.sigma**2, lib_tau2)
        assert fast_crit <= lib_crit + 1e-9
        assert sigma2 == pytest.approx(lib.sigma**2, rel=1e-6)
        assert np.sqrt(tau2) == pytest.approx(np.sqrt(lib_tau2), rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(beta, lib.beta.to_numpy(), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- options


def test_unknown_method_raises_naming_it():
    data, covariates = random_design(0, equal_sizes=True, n_covariates=1)
    with pytest.raises(ArgumentError, match=r"no method\(s\) \['liml'\]"):
        run_fast(data, covariates, ["2sls", "liml"], prob=0.95)
    with pytest.raises(ArgumentError, match="gmm"):
        run_fast(data, covariates, ["gmm"], prob=0.95)


def test_prob_sets_the_interval_width():
    data, covariates = random_design(2, equal_sizes=True, n_covariates=2)
    wide = run_fast(data, covariates, FAST_METHODS, prob=0.95)
    narrow = run_fast(data, covariates, FAST_METHODS, prob=0.8)
    pd.testing.assert_frame_equal(
        wide.drop(columns=["ci_low", "ci_high"]), narrow.drop(columns=["ci_low", "ci_high"])
    )
    finite = wide["std_error"].notna().to_numpy()
    assert finite.sum() > 10 and wide.loc[~finite, "term"].eq("site_average").all()
    for frame, prob in ((wide, 0.95), (narrow, 0.8)):
        half = (frame["ci_high"] - frame["ci_low"]).to_numpy()[finite] / 2
        q = half / frame["std_error"].to_numpy()[finite]
        # normal quantiles, t on G - 1 for the random-intercept ratios
        df = int(data["site"].nunique()) - 1
        is_re = frame["estimator"].isin(["re", "re_mundlak"]).to_numpy()[finite]
        want = np.where(is_re, stats.t.ppf((1 + prob) / 2, df), stats.norm.ppf((1 + prob) / 2))
        np.testing.assert_allclose(q, want, rtol=1e-10)
        mid = (frame["ci_high"] + frame["ci_low"]).to_numpy()[finite] / 2
        np.testing.assert_allclose(mid, frame["estimate"].to_numpy()[finite], rtol=1e-12)
    assert (narrow["ci_low"][finite] > wide["ci_low"][finite]).all()
    assert (narrow["ci_high"][finite] < wide["ci_high"][finite]).all()


def test_default_prob_is_95_percent():
    data, covariates = random_design(4, equal_sizes=True, n_covariates=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from the fast path itself
        default = fast_estimates(
            data["y"].to_numpy(),
            data["d"].to_numpy(),
            data["z"].to_numpy(),
            np.empty((len(data), 0)),
            data["site"].to_numpy() - 1,
            ["2sls", "re"],
        )
    pd.testing.assert_frame_equal(default, run_fast(data, covariates, ["2sls", "re"], prob=0.95))


def test_inputs_are_not_modified():
    data, covariates = random_design(6, equal_sizes=True, n_covariates=2)
    arrays = [
        data["y"].to_numpy(copy=True),
        data["d"].to_numpy(copy=True),
        data["z"].to_numpy(copy=True),
        data[covariates].to_numpy(float, copy=True),
        data["site"].to_numpy(copy=True) - 1,
    ]
    before = [a.copy() for a in arrays]
    fast_estimates(*arrays, FAST_METHODS)
    for a, b in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)
