"""Tests of the Bayesian multi-site IV model (mlmci.designs.iv.twin).

- quick mode (``MLMCI_QUICK=1``, mocked draws): ``iv.fit(..., method="multisite_re",
  engine=Bayes(...))`` returns an ungated :class:`IVBayesResult` with the rows its
  docstring promises, which the book build (``MLMCI_BOOK=1``) refuses to show;
- the sufficient-statistics likelihood (the model's Potential ``"loglik"``) equals the
  bivariate normal log-likelihood of the within-site deviations computed directly from
  the data, three ways, with and without covariates;
- one real (nutpie) fit, marked ``slow``, recovers the mean site LATE and passes the gate.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from mlmci import bayes, iv, runmode
from mlmci.designs.iv.design import IVData, demean, prepare
from mlmci.designs.iv.twin import GATED, IVBayesResult, build_model
from mlmci.engines import Bayes
from mlmci.errors import ConvergenceError
from mlmci.simulate import simulate_multisite_iv

TERMS = ["sd(LATE)", "first_stage", "sd(first_stage)", "corr(first_stage,LATE)", "corr(errors)"]


def _design_frame(n_sites=6, n_per_site=30, *, seed=1, size_cv=0.4) -> pd.DataFrame:
    data, _ = simulate_multisite_iv(
        n_sites=n_sites, n_per_site=n_per_site, size_cv=size_cv, late_sd=0.3, seed=seed
    )
    rng = np.random.default_rng(seed + 1)
    # a second covariate on another scale, with a site-level part (tests the scaling and the
    # cross-products of two covariates)
    data["w"] = 3.0 * rng.normal(size=len(data)) + rng.normal(size=n_sites)[data["site"] - 1] + 1
    return data


def _fit_bayes(data, covariates=("x",), **engine):
    return iv.fit(
        data,
        "y",
        treatment="d",
        instrument="z",
        covariates=list(covariates),
        site="site",
        method="multisite_re",
        engine=Bayes(**engine),
    )


# --------------------------------------------------------------------------- quick mode


@pytest.fixture(scope="module")
def quick_fit():
    data = _design_frame()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runmode.QUICK_ENV, "1")
        mp.delenv(runmode.BOOK_ENV, raising=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = _fit_bayes(data, sampler={"chains": 2, "backend": "nutpie", "draws": 1000})
        table = res.tidy()
    return data, res, table, caught


def test_quick_mode_returns_an_ungated_result(quick_fit):
    _, res, _, caught = quick_fit
    assert isinstance(res, IVBayesResult)
    # nothing a chapter in quick mode would write to stderr (its test fails on that; a
    # library's deprecation warnings are hidden outside __main__)
    shown = [w for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert [str(w.message) for w in shown] == []
    assert res.gated is False
    assert any("ungated" in note for note in res.notes)
    # mocked: the draws are capped, the backend is PyMC's (nothing compiled for nutpie)
    assert res.settings.draws == bayes.QUICK_DRAWS and res.settings.backend == "pymc"
    posterior = res.idata.posterior
    assert (posterior.sizes["chain"], posterior.sizes["draw"]) == (2, bayes.QUICK_DRAWS)
    assert set(GATED) <= set(posterior.data_vars)
    # diagnostics were computed (not gated) for the gated variables only
    assert {name.split("[")[0] for name in res.diagnostics.index} == set(GATED)
    assert res.native == {"model": res.model, "idata": res.idata}


def test_quick_fit_has_the_documented_rows(quick_fit):
    data, res, table, _ = quick_fit
    pooled = table[table["group"].isna()]
    assert pooled["term"].tolist() == ["d", *TERMS]
    sites = table[table["group"].notna()]
    assert (sites["term"] == "d").all()
    labels = sorted(data["site"].unique())
    assert len(sites) == len(labels)
    assert [str(g) for g in sites["group"]] == [str(s) for s in labels]
    assert table["interval"].eq("94% HDI").all()  # a posterior: the HDI default
    assert (table["ci_low"] <= table["estimate"]).all()
    assert (table["estimate"] <= table["ci_high"]).all()
    # the rows are the posterior's variables on the data's scale
    posterior = res.idata.posterior
    head = pooled.set_index("term")
    for term, name in (
        ("d", "late_mean"),
        ("sd(LATE)", "late_sd"),
        ("first_stage", "first_stage_mean"),
    ):
        assert head.loc[term, "estimate"] == pytest.approx(float(posterior[name].mean()), rel=1e-12)
    np.testing.assert_allclose(
        sites["estimate"], posterior["site_late"].mean(("chain", "draw")).to_numpy(), rtol=1e-12
    )
    scale = data["y"].std(ddof=0) / data["d"].std(ddof=0)
    np.testing.assert_allclose(
        posterior["late_mean"], posterior["mu"].sel(coef="beta") * scale, rtol=1e-12
    )


def test_quick_fit_effect_and_summary(quick_fit):
    _, res, table, _ = quick_fit
    row = res.effect()
    assert row["term"] == "d" and pd.isna(row["group"])
    assert row["estimate"] == table.loc[0, "estimate"]
    narrow = res.effect(prob=0.5)
    assert narrow["interval"] == "50% HDI"
    assert row["ci_low"] <= narrow["ci_low"] <= narrow["ci_high"] <= row["ci_high"]
    text = res.summary()
    assert text.splitlines()[0] == res.title and "ungated" in text
    assert len(text.splitlines()) < 12  # no site rows in the summary
    assert "<table" in res._repr_html_()


def test_the_book_refuses_an_ungated_iv_posterior(quick_fit, monkeypatch):
    data, res, _, _ = quick_fit
    monkeypatch.setenv(runmode.BOOK_ENV, "1")
    with pytest.raises(ConvergenceError, match="never shows an ungated"):
        res.tidy()
    with pytest.raises(ConvergenceError, match="never shows an ungated"):
        res.effect()
    # and quick mode in the book build refuses in bayes.sample, before any draw
    monkeypatch.setenv(runmode.QUICK_ENV, "1")
    with pytest.raises(ConvergenceError, match="never shows an ungated"):
        _fit_bayes(data)


def test_quick_mode_without_covariates(monkeypatch):
    data = _design_frame(n_sites=4, n_per_site=20, seed=5, size_cv=0.0)
    monkeypatch.setenv(runmode.QUICK_ENV, "1")
    monkeypatch.delenv(runmode.BOOK_ENV, raising=False)
    res = _fit_bayes(data, covariates=(), sampler={"chains": 1})
    assert not res.gated
    assert res.idata.posterior["c_d"].sizes["covariate"] == 0
    assert len(res.tidy()) == 6 + 4


# --------------------------------------------------------------------------- the likelihood


def _scaled(design: IVData) -> list[np.ndarray]:
    """(d, y, z, x) on the model's scales: d and y over their SDs, x over its SDs."""
    sd_x = design.x.std(axis=0)
    return [
        design.d / design.d.std(),
        design.y / design.y.std(),
        design.z[:, 0],
        design.x / np.where(sd_x > 0, sd_x, 1.0),
    ]


#: The model's variables the likelihood is a function of, however they are parametrized.
LIKELIHOOD_VARS = ("loglik", "pi", "beta", "c_d", "c_y", "sd_resid", "corr_resid")


def _constrained(point: dict):
    """pi, beta, c_d, c_y and the 2 x 2 residual covariance (``point``: the model's values)."""
    sd, corr = point["sd_resid"], float(point["corr_resid"])
    cov = np.array([[sd[0] ** 2, corr * sd[0] * sd[1]], [corr * sd[0] * sd[1], sd[1] ** 2]])
    return point["pi"], point["beta"], point["c_d"], point["c_y"], cov


def _residuals(design: IVData, point: dict, *, within: bool) -> np.ndarray:
    """(n, 2): r_d = d - pi_j z - x'c_d, r_y = y - beta_j d - x'c_y (without intercepts).

    ``within``: of the within-site deviations of the data, else of the data as they are.
    """
    d, y, z, x = _scaled(design)
    if within:
        d, y, z, x = (demean(design.codes, a, design.n_sites) for a in (d, y, z, x))
    pi, beta, c_d, c_y, _ = _constrained(point)
    codes = design.codes
    return np.column_stack([d - pi[codes] * z - x @ c_d, y - beta[codes] * d - x @ c_y])


def direct_loglik(design: IVData, point: dict) -> float:
    """Bivariate normal log-likelihood of the within-site residuals on sum(n_j - 1) d.o.f."""
    resid = _residuals(design, point, within=True)
    cov = _constrained(point)[4]
    dof = len(resid) - design.n_sites
    quad = np.einsum("ia,ab,ib->", resid, np.linalg.inv(cov), resid)
    return float(-dof * np.log(2 * np.pi) - 0.5 * dof * np.log(np.linalg.det(cov)) - 0.5 * quad)


def helmert_loglik(design: IVData, point: dict) -> float:
    """The same through an orthonormal contrast per site: n_j - 1 iid N(0, Sigma) pairs.

    Rotating a site's n_j residual pairs (of the data as they are, intercepts included)
    by an orthonormal matrix whose first row is 1/sqrt(n_j) puts the site mean, and with it
    the site intercepts, in the first pair, and leaves n_j - 1 independent N(0, Sigma)
    pairs; their density (scipy's) is the within-site likelihood.
    """
    cov = _constrained(point)[4]
    dist = stats.multivariate_normal(np.zeros(2), cov)
    resid = _residuals(design, point, within=False)
    total = 0.0
    for j in range(design.n_sites):
        rows = resid[design.codes == j]
        n_j = len(rows)
        rotation = np.linalg.qr(np.column_stack([np.ones(n_j), np.eye(n_j)[:, 1:]]))[0].T
        total += float(dist.logpdf((rotation @ rows)[1:]).sum())
    return total


def integrated_loglik(design: IVData, point: dict) -> float:
    """Flat priors on the site intercepts (a_j, b_j), integrated out numerically, per site.

    The residuals of the data minus (a_j, b_j) are iid N(0, Sigma) within a site;
    integrating (a_j, b_j) over the plane leaves the within-site likelihood times 1 / n_j
    (the Gaussian integral's constant). Returns the sum over sites of the logs of the
    integrals (each integrand scaled by its peak, so nothing underflows).
    """
    cov = _constrained(point)[4]
    dist = stats.multivariate_normal(np.zeros(2), cov)
    prec = np.linalg.inv(cov)
    resid = _residuals(design, point, within=False)
    total = 0.0
    for j in range(design.n_sites):
        rows = resid[design.codes == j]
        center = rows.mean(axis=0)
        peak = float(dist.logpdf(rows - center).sum())
        half = 12 * np.sqrt(np.diag(cov) / len(rows))

        def integrand(alpha, rows=rows, center=center):
            """prod_i N(r_i - alpha) / prod_i N(r_i - center) at the (m, 2) points alpha."""
            at = rows[None, :, :] - alpha[:, None, :]
            ref = rows - center
            quad = np.einsum("mia,ab,mib->m", at, prec, at) - np.einsum(
                "ia,ab,ib->", ref, prec, ref
            )
            return np.exp(-0.5 * quad)

        area = integrate.cubature(
            integrand, center - half, center + half, rtol=1e-12, atol=0
        ).estimate
        total += peak + np.log(area)
    return total


def _random_points(model, evaluate, rng: np.random.Generator, n: int) -> list[dict]:
    """Random points of the model's free variables, as the values of LIKELIHOOD_VARS there."""
    start = model.initial_point()
    points = []
    for _ in range(n):
        values = {k: np.asarray(v + rng.normal(0, 0.6, np.shape(v))) for k, v in start.items()}
        values["pi"] = rng.normal(0.4, 0.3, np.shape(start["pi"]))
        points.append(dict(zip(LIKELIHOOD_VARS, evaluate(values), strict=True)))
    return points


@pytest.fixture(scope="module", params=[(), ("x",), ("x", "w")], ids=["none", "x", "x+w"])
def likelihood_case(request):
    data = _design_frame(n_sites=5, n_per_site=24, seed=3)
    design = prepare(
        data, "y", treatment="d", instrument="z", covariates=list(request.param), site="site"
    )
    model = build_model(design)
    assert [p.name for p in model.potentials] == ["loglik"]
    # The Potential and the variables it depends on are written in the random variables;
    # evaluate them at points of the free variables' value space (PyMC's transformed one).
    outputs = model.replace_rvs_by_values([model[name] for name in LIKELIHOOD_VARS])
    evaluate = model.compile_fn(
        outputs,
        inputs=model.value_vars,
        on_unused_input="ignore",
        point_fn=True,
        mode="FAST_COMPILE",
    )
    return design, model, evaluate


def test_potential_is_the_within_site_bivariate_normal_loglik(likelihood_case):
    design, model, evaluate = likelihood_case
    for point in _random_points(model, evaluate, np.random.default_rng(7), 5):
        want = direct_loglik(design, point)
        assert float(point["loglik"]) == pytest.approx(want, rel=0, abs=1e-8)
        assert helmert_loglik(design, point) == pytest.approx(want, rel=0, abs=1e-8)


def test_potential_is_the_likelihood_with_site_intercepts_integrated_out(likelihood_case):
    design, model, evaluate = likelihood_case
    (point,) = _random_points(model, evaluate, np.random.default_rng(11), 1)
    sizes = np.bincount(design.codes)
    # the Potential drops the constant -sum(log n_j) of the Gaussian integrals
    assert integrated_loglik(design, point) + np.log(sizes).sum() == pytest.approx(
        float(point["loglik"]), rel=0, abs=1e-8
    )


# --------------------------------------------------------------------------- one real fit


@pytest.fixture(scope="module")
def real_fit():
    data, truth = simulate_multisite_iv(n_sites=40, n_per_site=150, seed=11)
    sampler = {"backend": "nutpie", "draws": 500, "tune": 500, "progressbar": False}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(runmode.QUICK_ENV, raising=False)
        mp.delenv(runmode.BOOK_ENV, raising=False)
        start = time.perf_counter()
        res = _fit_bayes(data, sampler=sampler)
        seconds = time.perf_counter() - start
    return data, truth, res, seconds


@pytest.mark.slow
def test_real_fit_recovers_the_mean_late_and_passes_the_gate(real_fit):
    _, truth, res, seconds = real_fit
    print(f"nutpie, 4 x 500 draws, 40 sites x 150: {seconds:.1f} s")
    assert res.gated and res.notes == ()
    assert res.settings.backend == "nutpie"
    assert (res.diagnostics["r_hat"] <= 1.01).all()
    assert (res.diagnostics[["ess_bulk", "ess_tail"]] >= 400).all(axis=None)
    table = res.tidy()
    head = res.effect()
    for target in (truth["hyper_mean"], truth["mean_late"]):
        assert abs(head["estimate"] - target) < 3 * head["std_error"]
    assert head["ci_low"] < truth["mean_late"] < head["ci_high"]
    pooled = table[table["group"].isna()].set_index("term")
    # the spread of site LATEs (0.25 in the simulation) is found, not shrunk to zero
    sd_late = pooled.loc["sd(LATE)"]
    assert abs(sd_late["estimate"] - truth["late_sd"]) < 3 * sd_late["std_error"]
    # selection makes the treatment endogenous: the errors correlate positively
    assert pooled.loc["corr(errors)", "ci_low"] > 0
    sites = table[table["group"].notna()]
    assert len(sites) == 40
    assert np.corrcoef(sites["estimate"], truth["site_late"])[0, 1] > 0.5
