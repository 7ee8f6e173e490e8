"""Tests of the Bayesian multilevel local-linear RD (mlmci.designs.rdd.twin).

- the integrated likelihood (the model's Potential ``"loglik"``) equals the
  multivariate normal log-density of each site's outcomes with the site effects
  integrated out, computed densely from the data (up to one constant);
- the conditional posterior of the site effects equals the dense normal-normal update;
- each site's own jump (``site_jumps``) is rdrobust's conventional jump at the same
  bandwidth (triangular kernel), as ``rdd.fit(method="per_site")`` reports it;
- quick mode (mocked draws) returns an ungated result with the documented rows;
- one real fit (nutpie, marked ``slow``) passes the gate and agrees with REML.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

from mlmci import rdd, runmode
from mlmci.designs.rdd import twin
from mlmci.engines import Bayes
from mlmci.errors import ArgumentError
from mlmci.simulate import simulate_rdd

H = 0.5


@pytest.fixture(scope="module")
def sim() -> tuple[pd.DataFrame, dict]:
    return simulate_rdd(n_sites=15, n_per_site=120, jump_sd=0.4, size_cv=0.4, seed=3)


@pytest.fixture(scope="module")
def local(sim) -> twin.LocalData:
    data, _ = sim
    labels, codes = np.unique(data["site"].to_numpy(), return_inverse=True)
    return twin.local_data(
        data["y"].to_numpy(float), data["x"].to_numpy(float), codes, labels, cutoff=0.0, h=H
    )


def _point(rng) -> dict:
    return {
        "beta": rng.normal(0, 0.5, 4),
        "sd": rng.uniform(0.05, 1.0, 2),
        "corr": rng.uniform(-0.9, 0.9),
        "sigma": rng.uniform(0.3, 1.5),
    }


def _omega(p) -> np.ndarray:
    s0, s1 = p["sd"]
    return np.array([[s0**2, p["corr"] * s0 * s1], [p["corr"] * s0 * s1, s1**2]])


def dense_loglik(local: twin.LocalData, p: dict) -> float:
    """Sum over sites of log N(y_j; X_j beta, sigma^2 W_j^-1 + Z_j Omega Z_j'), densely."""
    y = (local.y - local.centre) / local.scale
    x = local.regressors()
    total = 0.0
    for j in range(local.n_sites):
        rows = local.codes == j
        xj, zj = x[rows], x[rows][:, :2]
        cov = p["sigma"] ** 2 * np.diag(1 / local.w[rows]) + zj @ _omega(p) @ zj.T
        r = y[rows] - xj @ p["beta"]
        sign, logdet = np.linalg.slogdet(cov)
        assert sign > 0
        total += -0.5 * (logdet + r @ np.linalg.solve(cov, r) + rows.sum() * np.log(2 * np.pi))
    return total


def _potential(local: twin.LocalData, p: dict) -> float:
    """The Potential at ``p``: it is written in the random variables, so evaluate it at
    a point of the free variables' value space (PyMC's transformed one)."""
    model = twin.build_model(local)
    (loglik,) = model.replace_rvs_by_values([model["loglik"]])
    logp = model.compile_fn(
        loglik, inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE"
    )
    values = {
        "beta": p["beta"],
        "sd_site_log__": np.log(p["sd"]),
        "corr_site_01_logodds__": np.log((1 + p["corr"]) / (1 - p["corr"])),
        "sigma_log__": np.log(p["sigma"]),
    }
    assert set(values) == set(model.initial_point())
    return float(logp(values))


def test_potential_is_the_integrated_likelihood(local):
    """Up to a constant (2 pi terms and the kernel weights' log-determinant), the
    Potential is the marginal likelihood: the difference is the same at every point."""
    rng = np.random.default_rng(5)
    gaps = []
    for _ in range(4):
        p = _point(rng)
        gaps.append(dense_loglik(local, p) - _potential(local, p))
    constant = -0.5 * len(local.y) * np.log(2 * np.pi) + 0.5 * np.log(local.w).sum()
    np.testing.assert_allclose(gaps, constant, rtol=0, atol=1e-7)


def test_conditional_posterior_of_the_site_effects(local):
    rng = np.random.default_rng(8)
    p = _point(rng)
    m = twin._moments(local)
    sigma2 = p["sigma"] ** 2
    omega = _omega(p)
    _, _, _, means, covs = twin._site_posterior(
        np, m, p["beta"], sigma2, (omega[0, 0], omega[0, 1], omega[1, 1])
    )
    y = (local.y - local.centre) / local.scale
    x = local.regressors()
    for j in range(local.n_sites):
        rows = local.codes == j
        zw = x[rows][:, :2].T * local.w[rows]
        prec = np.linalg.inv(omega) + zw @ x[rows][:, :2] / sigma2
        cov = np.linalg.inv(prec)
        mean = cov @ zw @ (y[rows] - x[rows] @ p["beta"]) / sigma2
        np.testing.assert_allclose([means[0][j], means[1][j]], mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            [covs[0][j], covs[1][j], covs[2][j]], [cov[0, 0], cov[0, 1], cov[1, 1]], rtol=1e-9
        )


def test_site_jumps_are_rdrobusts_conventional_jumps(sim, local):
    data, _ = sim
    per_site = rdd.fit(data, "y", running="x", site="site", method="per_site", bandwidth=H)
    np.testing.assert_allclose(
        twin.site_jumps(local), per_site.sites()["estimate"].to_numpy(), rtol=1e-8, atol=1e-10
    )


def test_bayes_only_for_mlm(sim):
    data, _ = sim
    with pytest.raises(ArgumentError, match="OLS"):
        rdd.fit(data, "y", running="x", site="site", method="eb", engine=Bayes())


# --------------------------------------------------------------------------- quick mode


@pytest.fixture(scope="module")
def quick_fit(sim):
    data, _ = sim
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runmode.QUICK_ENV, "1")
        mp.delenv(runmode.BOOK_ENV, raising=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = rdd.fit(
                data, "y", running="x", site="site", method="mlm", bandwidth=H, engine=Bayes()
            )
        table = res.tidy()
    return data, res, table


def test_quick_fit_rows_and_notes(quick_fit):
    data, res, table = quick_fit
    assert not res.gated
    assert any("ungated" in n for n in res.notes)
    assert any("prior weights" in n for n in res.notes)
    pooled = table[table["group"].isna()]
    assert list(pooled["term"]) == ["jump", "sd(jump)"]
    sites = res.sites()
    assert len(sites) == data["site"].nunique() and (sites["term"] == "jump").all()
    assert res.effect()["term"] == "jump"
    assert "HDI" in table["interval"].iloc[0]
    assert "Bayesian multilevel local linear" in res.summary()


def test_site_draws_are_the_hyper_mean_plus_site_effects(quick_fit):
    _, res, _ = quick_fit
    post = res.idata.posterior
    assert post["site_jump"].shape[:2] == post["jump_mean"].shape
    # with the site effects drawn given each draw's hyper-parameters, the site jumps
    # scatter around that draw's hyper-mean with that draw's SD (on average over draws)
    dev = (post["site_jump"] - post["jump_mean"]).to_numpy()
    assert np.isfinite(dev).all()


# --------------------------------------------------------------------------- one real fit


@pytest.fixture(scope="module")
def real_fit(sim):
    data, truth = sim
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(runmode.QUICK_ENV, raising=False)
        mp.delenv(runmode.BOOK_ENV, raising=False)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = rdd.fit(
                data,
                "y",
                running="x",
                site="site",
                method="mlm",
                bandwidth=H,
                engine=Bayes(sampler={"backend": "nutpie", "progressbar": False}),
            )
        seconds = time.perf_counter() - start
    reml = rdd.fit(data, "y", running="x", site="site", method="mlm", bandwidth=H)
    return truth, res, reml, seconds


@pytest.mark.slow
def test_real_fit_passes_the_gate_and_agrees_with_reml(real_fit):
    truth, res, reml, seconds = real_fit
    print(f"nutpie, book settings, 15 sites: {seconds:.1f} s")
    assert res.gated
    assert (res.diagnostics["r_hat"] <= 1.01).all()
    head, reml_head = res.effect(), reml.effect()
    # the hyper-mean: vague priors, the same likelihood, so REML's estimate lies well
    # inside the posterior (within one posterior SD) and the truth inside the HDI
    assert abs(head["estimate"] - reml_head["estimate"]) < head["std_error"]
    assert head["ci_low"] < truth["mean_jump"] < head["ci_high"]
    sites = res.sites().set_index("group")["estimate"]
    reml_sites = reml.sites().set_index("group")["estimate"]
    reml_sites.index = reml_sites.index.astype(str)  # Bayesian summaries label groups as text
    assert np.corrcoef(sites, reml_sites.loc[sites.index])[0, 1] > 0.9
    # posterior predictive replications of the raw site jumps are finite, one per site
    rep = res.replicate_site_jumps(draws=20, seed=1)
    assert rep.shape == (20, len(sites)) and np.isfinite(rep).all()
