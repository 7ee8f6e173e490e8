"""Tests of mlmci.iv: published numbers, identities, recovery of the truth, refusals, protocol.

Published numbers are Wooldridge's (*Introductory Econometrics*, Examples 15.1 and 15.4)
on his ``mroz`` and ``card`` files, and AER's ``ivreg`` at full precision (R script
``tests/reference/aer_card.R``, stored output ``aer_card.csv``, rerun live when ``Rscript``
is on PATH). The bivariate random-effects REML is compared with metafor in
``tests/test_reference_metafor.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from linearmodels.iv import IV2SLS
from scipy import special, stats

from mlmci import datasets, iv, mixed
from mlmci.engines import OLS, REML
from mlmci.errors import ArgumentError, ConvergenceError, DataError, DataTypeError
from mlmci.simulate import simulate_multisite_iv
from mlmci.threads import single_blas_thread

REF = Path(__file__).resolve().parent / "reference"
AER_SCRIPT = REF / "aer_card.R"
AER_STORED = REF / "aer_card.csv"
CARD_CONTROLS = ["exper", "expersq", "black", "smsa", "south", "smsa66"] + [
    f"reg66{i}" for i in range(2, 10)
]
CARD_COLUMNS = ["lwage", "educ", "nearc4", *CARD_CONTROLS]
KW = dict(treatment="d", instrument="z", covariates=["x"], site="site")
#: Every method fitted by the default engines (Bayes is tested with the twin model).
METHODS = list(iv.METHODS)


def _fit(data, method, engine=None, **kw):
    return iv.fit(data, "y", **{**KW, **kw}, method=method, engine=engine)


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Small dense algebra: a multi-threaded BLAS only slows it down on a busy machine."""
    with single_blas_thread():
        yield


@pytest.fixture(scope="module")
def card() -> pd.DataFrame:
    return datasets.load("card")


@pytest.fixture(scope="module")
def card_fits(card) -> dict[tuple[str, str], iv.IVResult]:
    """Example 15.4's 2SLS and OLS, with classical and robust SEs."""
    return {
        (method, cov_type): _card_fit(card, method, cov_type)
        for method in ("2sls", "ols")
        for cov_type in ("unadjusted", "robust")
    }


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    """A small heterogeneous design with unequal sites and varying assignment shares."""
    data, _ = simulate_multisite_iv(
        n_sites=12, n_per_site=60, size_cv=0.4, assign_share_sd=0.5, late_sd=0.3, seed=3
    )
    return data


def _card_fit(card, method="2sls", cov_type="unadjusted") -> iv.IVResult:
    return iv.fit(
        card,
        "lwage",
        treatment="educ",
        instrument="nearc4",
        covariates=CARD_CONTROLS,
        method=method,
        engine=OLS(cov_type=cov_type),
    )


# --------------------------------------------------------------------------- published numbers


def test_card_wooldridge_example_15_4(card, card_fits):
    """2SLS .1315 (printed .132), SE .055; OLS .075 (.003); n = 3010."""
    res = card_fits["2sls", "unadjusted"]
    row = res.effect()
    assert row["term"] == "educ" and row["n_obs"] == 3010
    assert round(row["estimate"], 4) == 0.1315
    assert round(row["std_error"], 3) == 0.055
    assert res.rows["df"].item() == 3010 - 16  # t intervals on n - k
    # Both classical conventions round to the published .055; mlmci's is the one with the
    # residual variance on n - k (linearmodels' debiased=True), not on n.
    frame = card.assign(const=1.0)
    model = IV2SLS(frame["lwage"], frame[["const", *CARD_CONTROLS]], frame["educ"], frame["nearc4"])
    on_n = model.fit(cov_type="unadjusted", debiased=False)
    on_n_k = model.fit(cov_type="unadjusted", debiased=True)
    assert round(float(on_n.std_errors["educ"]), 3) == 0.055
    assert row["std_error"] == pytest.approx(float(on_n_k.std_errors["educ"]), rel=1e-10)
    assert row["std_error"] == pytest.approx(
        float(on_n.std_errors["educ"]) * np.sqrt(3010 / (3010 - 16)), rel=1e-10
    )
    assert row["estimate"] == pytest.approx(float(on_n.params["educ"]), rel=1e-10)
    # the first-stage F is linearmodels' partial F (classical): 13.26
    assert res.diagnostics["first_stage_f"] == pytest.approx(
        float(on_n_k.first_stage.diagnostics["f.stat"].iloc[0]), rel=1e-8
    )
    ols = card_fits["ols", "unadjusted"].effect()
    assert (round(ols["estimate"], 3), round(ols["std_error"], 3)) == (0.075, 0.003)


def test_mroz_wooldridge_example_15_1():
    """Simple IV of lwage on educ with fatheduc, working women: .0592 (.0351), n = 428."""
    mroz = datasets.load("mroz")
    working = mroz[mroz["lwage"].notna()]
    assert (working["inlf"] == 1).all()
    res = iv.fit(
        working,
        "lwage",
        treatment="educ",
        instrument="fatheduc",
        engine=OLS(cov_type="unadjusted"),
    )
    row = res.effect()
    assert row["n_obs"] == 428
    assert (round(row["estimate"], 4), round(row["std_error"], 4)) == (0.0592, 0.0351)
    # The missing wages of the women not in the labour force are refused, not dropped.
    with pytest.raises(DataError, match=r"missing values in 'lwage' \(325 missing\)"):
        iv.fit(mroz, "lwage", treatment="educ", instrument="fatheduc")


def _check_against_aer(card_fits, reference: pd.DataFrame) -> None:
    ref = reference.set_index("model")
    unadjusted, robust = card_fits["2sls", "unadjusted"], card_fits["2sls", "robust"]
    for res, column in ((unadjusted, "se_classical"), (robust, "se_hc0")):
        row = res.effect()
        assert row["estimate"] == pytest.approx(ref.loc["ivreg", "estimate"], rel=1e-9)
        assert row["std_error"] == pytest.approx(ref.loc["ivreg", column], rel=1e-9)
    assert unadjusted.diagnostics["first_stage_f"] == pytest.approx(
        ref.loc["ivreg", "weak_f"], rel=1e-9
    )
    assert unadjusted.rows["df"].item() == ref.loc["ivreg", "df_residual"]
    for cov_type, column in (("unadjusted", "se_classical"), ("robust", "se_hc0")):
        ols = card_fits["ols", cov_type].effect()
        assert ols["estimate"] == pytest.approx(ref.loc["lm", "estimate"], rel=1e-9)
        assert ols["std_error"] == pytest.approx(ref.loc["lm", column], rel=1e-9)


def test_card_reproduces_stored_aer_ivreg(card_fits):
    reference = pd.read_csv(AER_STORED)
    _check_against_aer(card_fits, reference)
    assert {"r_version", "aer_version", "sandwich_version"} <= set(reference.columns)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript is not on PATH")
def test_card_reproduces_aer_ivreg_live(card, card_fits, tmp_path):
    data_csv, out_csv = tmp_path / "card.csv", tmp_path / "aer_card.csv"
    card[CARD_COLUMNS].to_csv(data_csv, index=False)
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": os.environ["PATH"]}
    subprocess.run(
        ["Rscript", str(AER_SCRIPT), str(data_csv), str(out_csv)],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    live = pd.read_csv(out_csv)
    _check_against_aer(card_fits, live)
    stored = pd.read_csv(AER_STORED)
    numbers = ["estimate", "se_classical", "se_hc0", "nobs", "df_residual"]
    np.testing.assert_allclose(live[numbers], stored[numbers], rtol=1e-10)
    np.testing.assert_allclose(live["weak_f"].iloc[0], stored["weak_f"].iloc[0], rtol=1e-10)


# --------------------------------------------------------------------------- identities


def _dummies(data: pd.DataFrame) -> pd.DataFrame:
    return pd.get_dummies(data["site"], prefix="s", dtype=float)


@pytest.mark.parametrize("method", ["2sls", "2sls_interacted"])
def test_site_effects_equal_explicit_dummies(sim, method):
    """Absorbing site intercepts = linearmodels with site dummies; the conventions of the SEs.

    Robust (HC0) and unadjusted (n - k with k counting the dummies) SEs agree to 1e-8.
    Clustered: linearmodels' debiased factor G/(G-1) (n-1)/(n-k) counts the G dummies in
    k; mlmci's (Stata's ``xtivreg, fe``) does not, as the intercepts nest in the clusters,
    so its SE is linearmodels' times sqrt((n - k - G) / (n - k)).
    """
    dummies = _dummies(sim)
    exog = pd.concat([sim[["x"]], dummies], axis=1)
    if method == "2sls":
        inst = sim[["z"]]
    else:
        inst = dummies.mul(sim["z"], axis=0).add_prefix("z:")
    model = IV2SLS(sim["y"], exog, sim["d"], inst)
    n, g, k = len(sim), sim["site"].nunique(), 2  # k: the treatment and x
    references = {
        "robust": model.fit(cov_type="robust"),
        "unadjusted": model.fit(cov_type="unadjusted", debiased=True),
        "clustered": model.fit(cov_type="clustered", clusters=sim["site"], debiased=True),
    }
    factors = {"robust": 1.0, "unadjusted": 1.0, "clustered": np.sqrt((n - k - g) / (n - k))}
    for cov_type, ref in references.items():
        res = _fit(sim, method, OLS(cov_type=cov_type))
        row = res.effect()
        assert row["estimate"] == pytest.approx(float(ref.params["d"]), rel=1e-8, abs=1e-10)
        se = float(ref.std_errors["d"]) * factors[cov_type]
        assert row["std_error"] == pytest.approx(se, rel=1e-8)
    df = {c: _fit(sim, method, OLS(cov_type=c)).rows["df"].item() for c in references}
    assert np.isnan(df["robust"]) and df["unadjusted"] == n - k - g and df["clustered"] == g - 1


@pytest.mark.parametrize("site", [None, "site"])
def test_liml_equals_2sls_when_just_identified(sim, site):
    tsls = _fit(sim, "2sls", site=site)
    liml = _fit(sim, "liml", site=site)
    assert liml.diagnostics["kappa"] == pytest.approx(1.0, abs=1e-10)
    for column in ("estimate", "std_error"):
        assert liml.effect()[column] == pytest.approx(tsls.effect()[column], rel=1e-10)
    # overidentified (one instrument per site), LIML's kappa exceeds 1 and the estimates differ
    many = _fit(sim, "liml_interacted")
    assert many.diagnostics["kappa"] > 1
    assert many.effect()["estimate"] != pytest.approx(
        _fit(sim, "2sls_interacted").effect()["estimate"], rel=1e-6
    )


def test_wald_ratio_identity_and_per_site_rows(sim):
    """One site: 2SLS = ITT slope / first-stage slope (indirect least squares) = its per_site row.

    The per-site SE is the delta method on the HC1 covariance of the two slopes, which is
    the 2SLS HC0 SE times sqrt(n_j / (n_j - 3)) (intercept, instrument, covariate).
    """
    per_site = _fit(sim, "per_site").sites.set_index("group")
    for label in (2, 7):
        one = sim[sim["site"] == label]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", iv.WeakInstrumentWarning)  # a small site
            tsls = iv.fit(one, "y", treatment="d", instrument="z", covariates=["x"]).effect()
        x = np.column_stack([np.ones(len(one)), one["z"], one["x"]])
        slopes = np.linalg.lstsq(x, one[["y", "d"]].to_numpy(float), rcond=None)[0][1]
        assert tsls["estimate"] == pytest.approx(slopes[0] / slopes[1], rel=1e-10)
        row = per_site.loc[label]
        assert row["estimate"] == pytest.approx(tsls["estimate"], rel=1e-10)
        assert (row["itt"], row["first_stage"]) == pytest.approx(tuple(slopes), rel=1e-10)
        n = len(one)
        assert row["n_obs"] == n
        assert row["std_error"] == pytest.approx(
            tsls["std_error"] * np.sqrt(n / (n - 3)), rel=1e-10
        )


def test_multisite_raw_rows_are_per_site_estimates(sim):
    per_site = _fit(sim, "per_site")
    multi = _fit(sim, "multisite_re")
    raw, sites = multi.sites, per_site.sites
    assert raw["group"].tolist() == sites["group"].tolist() == sorted(sim["site"].unique())
    np.testing.assert_allclose(raw["raw"], sites["estimate"], rtol=1e-12)
    np.testing.assert_allclose(raw["first_stage_f"], sites["first_stage_f"], rtol=1e-12)
    # the shrunken pairs give each site's LATE as their ratio
    np.testing.assert_allclose(raw["estimate"], raw["itt"] / raw["first_stage"], rtol=1e-12)
    # per_site's headline: the mean of the site LATEs, SE from independent sites
    head = per_site.effect()
    assert head["estimate"] == pytest.approx(sites["estimate"].mean(), rel=1e-12)
    assert head["std_error"] == pytest.approx(
        np.sqrt((sites["std_error"] ** 2).sum()) / len(sites), rel=1e-12
    )
    # multisite_re's headline: the ratio of the hyper-means
    table = multi.tidy().set_index("term")
    pooled = table[table["group"].isna()]
    assert pooled.loc["d", "estimate"] == pytest.approx(
        pooled.loc["ITT", "estimate"] / pooled.loc["first_stage", "estimate"], rel=1e-12
    )


@pytest.mark.parametrize("method", ["re", "re_mundlak"])
def test_ratio_rows_equal_mixed_fits(sim, method):
    engine = REML(allow_boundary=True)  # d has (almost) no site-level spread at z = 0
    res = _fit(sim, method, engine)
    frame = sim.assign(zbar=sim.groupby("site")["z"].transform("mean"))
    rhs = "z + x + zbar" if method == "re_mundlak" else "z + x"
    rows = res.tidy().set_index("term")
    for lhs, term in (("y", "ITT"), ("d", "first_stage")):
        fit = mixed.fit(f"{lhs} ~ {rhs} + (1 | site)", frame, allow_boundary=True)
        assert rows.loc[term, "estimate"] == pytest.approx(float(fit.beta["z"]), rel=1e-8)
    assert rows.loc["d", "estimate"] == pytest.approx(
        rows.loc["ITT", "estimate"] / rows.loc["first_stage", "estimate"], rel=1e-12
    )
    assert res.rows["df"].iloc[0] == sim["site"].nunique() - 1  # t on G - 1


def test_mundlak_with_equal_shares_is_the_plain_ratio():
    """Every site assigns half: the site mean of z is constant (collinear with the intercept).

    Regression test: this used to crash inside the mixed-model engine; the site mean is
    then not needed, and re_mundlak equals re.
    """
    data, _ = simulate_multisite_iv(n_sites=10, n_per_site=40, seed=2)
    assert data.groupby("site")["z"].mean().nunique() == 1
    engine = REML(allow_boundary=True)
    plain, mundlak = _fit(data, "re", engine).effect(), _fit(data, "re_mundlak", engine).effect()
    assert mundlak["estimate"] == pytest.approx(plain["estimate"], rel=1e-10)
    assert mundlak["std_error"] == pytest.approx(plain["std_error"], rel=1e-10)
    with pytest.raises(DataError, match="collinear"):
        _fit(data.assign(c=1.0), "re", engine, covariates=["x", "c"])


# --------------------------------------------------------------------------- recovery of truth


def _super_population_means(params: dict) -> tuple[float, float]:
    """E[gamma_j] and E[gamma_j beta_j] of the simulator's site draws (Gauss-Hermite)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    a = params["always_taker"]
    gamma = (1 - a) * special.expit(
        special.logit(params["compliance"] / (1 - a)) + params["compliance_sd"] * nodes
    )
    e_gamma = float(weights @ gamma)
    e_gamma_w = float(weights @ (gamma * nodes))
    rho = params["compliance_effect_corr"]
    return e_gamma, params["late"] * e_gamma + params["late_sd"] * rho * e_gamma_w


@pytest.fixture(scope="module")
def replications() -> pd.DataFrame:
    """Site-FE 2SLS and the bivariate random-effects model on 30 heterogeneous designs."""
    rows = []
    for seed in range(30):
        data, truth = simulate_multisite_iv(
            n_sites=20,
            n_per_site=100,
            size_cv=0.5,
            assign_share_sd=0.5,
            late_sd=0.3,
            compliance_effect_corr=0.5,
            seed=1000 + seed,
        )
        fe = _fit(data, "2sls").effect()
        multi = _fit(data, "multisite_re", REML(allow_boundary=True)).tidy().set_index("term")
        pooled = multi[multi["group"].isna()]
        rows.append(
            {
                "fe": fe["estimate"],
                "fe_low": fe["ci_low"],
                "fe_high": fe["ci_high"],
                "fe_truth": truth["fe_2sls_weight"],
                "itt": pooled.loc["ITT", "estimate"],
                "itt_se": pooled.loc["ITT", "std_error"],
                "first_stage": pooled.loc["first_stage", "estimate"],
                "first_stage_se": pooled.loc["first_stage", "std_error"],
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["params"] = truth["params"]
    return frame


def _bias_and_mcse(errors: pd.Series) -> tuple[float, float]:
    return float(errors.mean()), float(errors.std(ddof=1) / np.sqrt(len(errors)))


def test_site_fe_2sls_covers_its_estimand(replications):
    reps = replications
    covered = ((reps["fe_low"] <= reps["fe_truth"]) & (reps["fe_truth"] <= reps["fe_high"])).sum()
    # at a true 95% coverage, fewer covering intervals have probability below 0.001
    assert covered >= stats.binom.ppf(0.001, len(reps), 0.95)
    bias, mcse = _bias_and_mcse(reps["fe"] - reps["fe_truth"])
    assert abs(bias) < 3 * mcse


def test_multisite_re_recovers_the_mean_itt_and_first_stage(replications):
    reps = replications
    e_gamma, e_itt = _super_population_means(reps.attrs["params"])
    for column, target in (("itt", e_itt), ("first_stage", e_gamma)):
        bias, mcse = _bias_and_mcse(reps[column] - target)
        assert abs(bias) < 3 * mcse, column
        # its SE (from REML's A^-1, super-population) is the spread over replications
        covered = (np.abs(reps[column] - target) <= 1.96 * reps[f"{column}_se"]).sum()
        assert covered >= stats.binom.ppf(0.001, len(reps), 0.95), column


def test_re_biased_by_level_assignment_correlation_mundlak_not():
    """Site levels correlated with the share assigned bias the random-intercept ratio.

    Both biases are judged against their Monte Carlo SEs over 30 replications, and the
    comparison rests on the paired difference (same replications).
    """
    engine = REML(allow_boundary=True)
    errors = {"re": [], "re_mundlak": []}
    for seed in range(30):
        data, truth = simulate_multisite_iv(
            n_sites=40,
            n_per_site=20,
            level_sd=0.5,
            assign_share_sd=1.0,
            level_assign_corr=0.9,
            seed=2000 + seed,
        )
        for method in errors:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", iv.WeakInstrumentWarning)
                row = _fit(data, method, engine).effect()
            errors[method].append(row["estimate"] - truth["fe_2sls_weight"])
    re, mundlak = pd.Series(errors["re"]), pd.Series(errors["re_mundlak"])
    bias_re, mcse_re = _bias_and_mcse(re)
    bias_mundlak, mcse_mundlak = _bias_and_mcse(mundlak)
    assert bias_re > 3 * mcse_re
    assert abs(bias_mundlak) < 3 * mcse_mundlak
    gap, mcse_gap = _bias_and_mcse(re - mundlak)
    assert gap > 3 * mcse_gap


# --------------------------------------------------------------------------- bad input


def _constant_in_site(data: pd.DataFrame, label) -> pd.DataFrame:
    return data.assign(z=data["z"].where(data["site"] != label, 1))


@pytest.mark.parametrize(
    "change, kwargs, error, match",
    [
        (lambda d: d.assign(y=d["y"].where(d.index != 5)), {}, DataError, r"'y' \(1 missing\)"),
        (
            lambda d: d.assign(site=d["site"].astype(float).where(d.index != 3)),
            {},
            DataError,
            r"'site' \(1 missing\)",
        ),
        (lambda d: d.assign(z=d["z"].astype(str)), {}, DataTypeError, "'z'"),
        (lambda d: d, {"instrument": "d"}, ArgumentError, "two roles"),
        (lambda d: d, {"covariates": ["x", "z"]}, ArgumentError, "two roles"),
        (lambda d: d, {"covariates": ["site"]}, ArgumentError, "site column 'site'"),
        (lambda d: d, {"instrument": []}, ArgumentError, "instrument"),
        (lambda d: d.drop(columns="x"), {}, DataError, "'x'"),
        (lambda d: d, {"method": "gmm"}, ArgumentError, "method must be one of"),
        (lambda d: d, {"engine": REML()}, ArgumentError, "fitted by OLS"),
        (
            lambda d: d,
            {"method": "multisite_re", "engine": OLS()},
            ArgumentError,
            r"fitted by REML\(\.\.\.\) or Bayes",
        ),
        (lambda d: d, {"method": "re", "engine": OLS()}, ArgumentError, "fitted by REML"),
        (lambda d: d, {"engine": OLS(cov_type="HC3")}, ArgumentError, "cov_type must be"),
        (
            lambda d: d,
            {"site": None, "engine": OLS(cov_type="clustered")},
            ArgumentError,
            "clusters by site: pass `site`",
        ),
        (lambda d: d, {"site": None, "method": "2sls_interacted"}, ArgumentError, "need `site`"),
        (lambda d: d, {"site": None, "method": "per_site"}, ArgumentError, "need `site`"),
        (lambda d: d, {"site": None, "method": "re"}, ArgumentError, "need `site`"),
        (
            lambda d: _constant_in_site(d, 4),
            {},
            DataError,
            r"'z' within each 'site', but it is constant in 1 of them: \[4\]",
        ),
        (
            lambda d: _constant_in_site(d, 4),
            {"method": "multisite_re"},
            DataError,
            r"constant in 1 of them: \[4\]",
        ),
        (
            lambda d: d.assign(z2=d["x"] ** 2),
            {"instrument": ["z", "z2"], "method": "per_site"},
            ArgumentError,
            "take one instrument",
        ),
        (
            lambda d: d.assign(z2=d["x"] ** 2),
            {"instrument": ["z", "z2"], "method": "multisite_re"},
            ArgumentError,
            "take one instrument",
        ),
        (
            lambda d: d.assign(z2=d["x"] ** 2),
            {"instrument": ["z", "z2"], "method": "re"},
            ArgumentError,
            "one instrument",
        ),
        (
            lambda d: d[d["site"] <= 2],
            {"method": "multisite_re"},
            DataError,
            "3 or more sites",
        ),
    ],
)
def test_bad_input(sim, change, kwargs, error, match):
    kw = {**KW, "method": "2sls", "engine": None, **kwargs}
    with pytest.raises(error, match=match):
        iv.fit(change(sim), "y", **kw)


def test_constant_instrument_is_fine_without_site_effects(sim):
    data = _constant_in_site(sim, 4)
    assert np.isfinite(_fit(data, "2sls", site=None).effect()["estimate"])
    assert np.isfinite(_fit(data, "ols").effect()["estimate"])


def test_too_small_site_is_named(sim):
    tiny = pd.DataFrame({"site": 99, "z": [0, 1, 0, 1], "d": [0, 1, 0, 1], "x": 0.1, "y": 1.0})
    data = pd.concat([sim[tiny.columns], tiny], ignore_index=True)
    data.loc[data.index[-4:], "x"] = [0.1, -0.3, 0.2, 0.5]
    for method in ("per_site", "multisite_re"):
        with pytest.raises(DataError, match=r"the sites \[99\] have 4 or fewer rows"):
            _fit(data, method)


def test_weak_instrument_warns_with_its_f_and_notes_it():
    rng = np.random.default_rng(7)
    n = 400
    z = rng.integers(0, 2, n)
    u = rng.normal(size=n)
    d = 0.1 * z + u + rng.normal(size=n)
    data = pd.DataFrame({"y": d + u + rng.normal(size=n), "d": d, "z": z, "x": rng.normal(size=n)})
    with pytest.warns(iv.WeakInstrumentWarning, match=r"first-stage F = (\d+\.\d) < 10") as record:
        res = iv.fit(data, "y", treatment="d", instrument="z", covariates=["x"])
    f_stat = res.diagnostics["first_stage_f"]
    assert f_stat < iv.WEAK_F
    (message,) = [str(w.message) for w in record if w.category is iv.WeakInstrumentWarning]
    assert f"F = {f_stat:.1f}" in message
    assert res.notes == (message,)
    assert res.effect()["first_stage_f"] == pytest.approx(f_stat)
    # strong instruments: no warning, no note
    with warnings.catch_warnings():
        warnings.simplefilter("error", iv.WeakInstrumentWarning)
        strong = iv.fit(
            data.assign(d=data["d"] + 2 * data["z"]), "y", treatment="d", instrument="z"
        )
    assert strong.notes == ()


def test_weak_sites_are_noted():
    data, _ = simulate_multisite_iv(n_sites=8, n_per_site=30, compliance=0.15, seed=4)
    res = _fit(data, "per_site")
    weak = int((res.sites["first_stage_f"] < iv.WEAK_F).sum())
    assert weak > 0
    assert any(
        note.startswith(f"{weak} of 8 sites have a first-stage F below 10") for note in res.notes
    )


def test_singular_bivariate_fit_is_accepted_by_default_and_said():
    # No between-site spread of the first stage: the REML optimum of T is singular.
    data, _ = simulate_multisite_iv(
        n_sites=20, n_per_site=120, compliance_sd=0.0, late_sd=0.3, seed=9
    )
    with pytest.raises(ConvergenceError, match=r"allow_boundary=True"):
        _fit(data, "multisite_re", REML(allow_boundary=False))
    res = _fit(data, "multisite_re")
    assert res.native.boundary and any("singular" in note for note in res.notes)


@pytest.mark.parametrize("method", METHODS)
def test_input_dataframe_unchanged(sim, method):
    data = sim.assign(label=pd.Categorical(["a"] * len(sim)))
    before = data.copy(deep=True)
    engine = REML(allow_boundary=True) if method in ("re", "re_mundlak", "multisite_re") else None
    _fit(data, method, engine)
    pd.testing.assert_frame_equal(data, before)


# --------------------------------------------------------------------------- protocol


@pytest.fixture(scope="module")
def results(sim) -> dict[str, iv.IVResult]:
    boundary_ok = REML(allow_boundary=True)
    return {
        m: _fit(sim, m, boundary_ok if m in ("re", "re_mundlak", "multisite_re") else None)
        for m in METHODS
    }


@pytest.mark.parametrize("method", METHODS)
def test_result_protocol(results, sim, method):
    res = results[method]
    row = res.effect()
    assert row["term"] == "d" and res.headline == "d" and row["estimator"] == method
    wide, narrow = res.tidy(prob=0.95), res.tidy(prob=0.9)
    assert narrow["interval"].eq("90% CI").all() and wide["interval"].eq("95% CI").all()
    finite = np.isfinite(wide["std_error"]) & (wide["std_error"] > 0)
    assert finite.any()
    assert (narrow.loc[finite, "ci_low"] > wide.loc[finite, "ci_low"]).all()
    assert (narrow.loc[finite, "ci_high"] < wide.loc[finite, "ci_high"]).all()
    text = res.summary()
    assert text.splitlines()[0] == res.title and repr(res) == text
    assert "<table" in res._repr_html_()
    n_sites = sim["site"].nunique()
    if method in ("per_site", "multisite_re"):
        assert len(res.sites) == n_sites
        assert res.sites["group"].tolist() == sorted(sim["site"].unique())
        assert res.sites["n_obs"].sum() == len(sim)
        assert (res.sites["term"] == "d").all()
    else:
        assert res.sites.empty
    # the site rows stay out of the text summary
    assert len(text.splitlines()) < 12


# --------------------------------------------------------------------------- REML convergence rule


def test_bivariate_reml_convergence_is_the_projected_gradient_not_the_message():
    """L-BFGS-B's stopping message at a boundary optimum depends on the CPU's last bits.

    The verdict is the rule: a point is an optimum when its gradient, without the
    components pushing into an active bound, is below ``_PG_TOL`` of the criterion.
    """
    from scipy.optimize import OptimizeResult

    from mlmci.designs.iv import multisite

    bounds = [(0.0, None), (None, None), (0.0, None)]
    x = np.array([0.02, 0.66, 0.0])  # the last component at its bound
    size = 61.3
    tol = multisite._PG_TOL * size

    def result(jac):
        return OptimizeResult(x=x, fun=-size, jac=np.array(jac), success=False, message="ABNORMAL")

    assert multisite._stationary(result([0.5 * tol, -0.5 * tol, 5.0]), bounds)  # pushes into 0
    assert not multisite._stationary(result([0.5 * tol, -0.5 * tol, -5.0]), bounds)  # leaves 0
    assert not multisite._stationary(result([2.0 * tol, 0.0, 0.0]), bounds)
    # An interior component is never projected away.
    assert not multisite._stationary(result([0.0, 2.0 * tol, 0.0]), bounds)
