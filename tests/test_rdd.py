"""mlmci.rdd: rdrobust wrapper, per-site, empirical Bayes and multilevel RD estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rdrobust import rdrobust

from mlmci import datasets, mixed, rdd
from mlmci.engines import OLS, REML, Bayes
from mlmci.errors import ArgumentError, DataError, DataTypeError
from mlmci.simulate import simulate_rdd


@pytest.fixture(scope="module")
def senate() -> pd.DataFrame:
    return datasets.load("senate").dropna(subset=["vote"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def sim() -> tuple[pd.DataFrame, dict]:
    return simulate_rdd(n_sites=12, n_per_site=150, jump_sd=0.8, size_cv=0.4, seed=11)


def test_senate_published_example(senate):
    # rdrobust's documented example: 7.414 (SE 1.459), robust 95% CI [4.094, 10.919].
    row = rdd.fit(senate, "vote", running="margin", method="rdrobust").effect()
    assert row["term"] == "jump" and row["interval"] == "95% CI (robust bias-corrected)"
    assert round(row["estimate"], 3) == 7.414
    assert round(row["std_error"], 3) == 1.459
    assert (round(row["ci_low"], 3), round(row["ci_high"], 3)) == (4.094, 10.919)
    assert row["conv_ci_low"] == pytest.approx(7.414131 - 1.959964 * 1.458716, abs=1e-4)
    assert (row["n_left"], row["n_right"]) == (360, 323)
    assert row["h"] == pytest.approx(17.754, abs=1e-3)


def test_senate_rows_and_prob(senate):
    res = rdd.fit(senate, "vote", running="margin", method="rdrobust", prob=0.9)
    assert res.tidy()["interval"].item() == "90% CI (robust bias-corrected)"
    wide, narrow = res.tidy(0.99).iloc[0], res.tidy(0.5).iloc[0]
    assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]
    assert "jump" in res.summary() and "<table" in res._repr_html_()


@pytest.mark.parametrize("vce", ["hc0", "hc1", "hc2", "hc3"])
def test_local_linear_equals_rdrobust_conventional(senate, vce):
    y, x = senate["vote"].to_numpy(), senate["margin"].to_numpy()
    h = rdd.fit(senate, "vote", running="margin", method="rdrobust").h
    ref = rdrobust(y, x, h=h, vce=vce)
    fast = rdd.local_linear(y, x, h=h, vce=vce)
    assert fast["estimate"][0] == pytest.approx(float(ref.coef.iloc[0, 0]), abs=1e-10)
    assert fast["std_error"][0] == pytest.approx(float(ref.se.iloc[0, 0]), abs=1e-10)
    assert (fast["n_left"][0], fast["n_right"][0]) == tuple(int(n) for n in ref.N_h)
    # The estimate does not depend on the variance estimator: also rdrobust's default (nn).
    default = rdrobust(y, x, h=h)
    assert fast["estimate"][0] == pytest.approx(float(default.coef.iloc[0, 0]), abs=1e-10)


def test_local_linear_fast_path_equals_per_site(sim):
    data, _ = sim
    res = rdd.fit(
        data, "y", running="x", site="site", method="per_site", bandwidth=0.5, engine=OLS("hc1")
    )
    sites = res.sites()
    fast = rdd.local_linear(data["y"], data["x"], data["site"], h=0.5)
    np.testing.assert_allclose(fast["estimate"], sites["estimate"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast["std_error"], sites["std_error"], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(fast["n_left"], sites["n_left"])
    head = res.effect()
    assert head["estimate"] == pytest.approx(fast["estimate"].mean(), abs=1e-12)
    assert head["std_error"] == pytest.approx(
        np.sqrt((fast["std_error"] ** 2).sum()) / len(sites), abs=1e-12
    )


def test_local_linear_exact_line_and_small_sides():
    x = np.linspace(-1, 1, 401)
    y = 3 + 2 * x + 1.5 * (x >= 0) - 0.5 * x * (x >= 0)
    out = rdd.local_linear(y, x, h=0.3)
    assert out["estimate"][0] == pytest.approx(1.5, abs=1e-10)
    assert out["std_error"][0] == pytest.approx(0.0, abs=1e-8)
    few = rdd.local_linear(
        np.array([0.0, 1, 2, 3, 4]), np.array([-0.2, -0.1, 0.1, 0.2, 0.3]), h=1.0
    )
    assert np.isnan(few["estimate"][0])
    with pytest.raises(ArgumentError, match="hc3"):
        rdd.local_linear(y, x, h=0.3, vce="nn")


def test_per_site_rows(sim):
    data, _ = sim
    res = rdd.fit(data, "y", running="x", site="site", method="per_site")
    table = res.tidy()
    assert set(table["term"]) == {"jump", "jump (N-weighted)"}
    sites = res.sites()
    assert sites["group"].tolist() == list(range(12))
    assert (sites["interval"] == "95% CI (robust bias-corrected)").all()
    assert (sites["h"] == res.h).all() and (sites["b"] == res.b).all()  # one common bandwidth
    pooled = rdd.fit(data, "y", running="x", method="rdrobust")
    assert res.h == pooled.h and res.b == pooled.b
    pair = rdd.fit(
        data, "y", running="x", site="site", method="per_site", bandwidth=(pooled.h, pooled.b)
    )
    pd.testing.assert_frame_equal(pair.tidy(), res.tidy())
    weighted = table[table["term"] == "jump (N-weighted)"].iloc[0]
    n = sites["n_left"] + sites["n_right"]
    assert weighted["estimate"] == pytest.approx((n * sites["estimate"]).sum() / n.sum())


def test_eb_lies_between_per_site_and_hyper_mean(sim):
    data, _ = sim
    per = rdd.fit(data, "y", running="x", site="site", method="per_site", bandwidth=0.5)
    eb = rdd.fit(data, "y", running="x", site="site", method="eb", bandwidth=0.5)
    mean = eb.effect()["estimate"]
    sites = eb.sites()
    np.testing.assert_allclose(sites["raw"], per.sites()["estimate"], atol=1e-12)
    lo = np.minimum(sites["raw"], mean) - 1e-12
    hi = np.maximum(sites["raw"], mean) + 1e-12
    assert ((sites["estimate"] >= lo) & (sites["estimate"] <= hi)).all()
    assert ((sites["shrinkage"] > 0) & (sites["shrinkage"] < 1)).all()
    # Partial pooling lies strictly inside: every site moved toward the mean.
    assert ((sites["estimate"] - mean).abs() < (sites["raw"] - mean).abs()).all()
    assert (sites["interval"] == "95% CI (EB)").all()
    assert eb.effect()["interval"] == "95% CI"
    assert eb.extra["tau"] > 0


def test_mlm_matches_mixed_and_henderson(sim):
    data, _ = sim
    h = 0.6
    res = rdd.fit(data, "y", running="x", site="site", method="mlm", bandwidth=h)
    inside = data[data["x"].abs() < h]
    frame = pd.DataFrame(
        {
            "y": inside["y"],
            "d": (inside["x"] >= 0).astype(float),
            "x": inside["x"],
            "g": inside["site"],
            "w": 1 - inside["x"].abs() / h,
        }
    )
    ref = mixed.fit("y ~ d + x + d:x + (1 + d | g)", frame, weights="w", allow_boundary=True)
    assert not ref.boundary
    assert res.effect()["estimate"] == pytest.approx(ref.beta["d"], abs=1e-10)
    coef = ref.group_coefficients()
    sites = res.sites()
    np.testing.assert_allclose(sites["estimate"], coef["d"].reindex(range(12)), atol=1e-10)
    # Henderson's mixed-model equations, built densely: PEV of beta_d + b_dj.
    x = np.column_stack([np.ones(len(frame)), frame["d"], frame["x"], frame["d"] * frame["x"]])
    g = frame["g"].to_numpy()
    z = np.zeros((len(frame), 24))
    z[np.arange(len(frame)), 2 * g] = 1.0
    z[np.arange(len(frame)), 2 * g + 1] = frame["d"]
    rinv = np.diag(frame["w"].to_numpy()) / ref.sigma**2
    ginv = np.kron(np.eye(12), np.linalg.inv(ref.cov_re().to_numpy()))
    c = np.linalg.inv(
        np.block([[x.T @ rinv @ x, x.T @ rinv @ z], [z.T @ rinv @ x, z.T @ rinv @ z + ginv]])
    )
    for j in range(12):
        k = np.zeros(4 + 24)
        k[1], k[4 + 2 * j + 1] = 1.0, 1.0
        assert sites["std_error"].iloc[j] == pytest.approx(np.sqrt(k @ c @ k), rel=1e-6)
    assert res.effect()["std_error"] == pytest.approx(np.sqrt(c[1, 1]), rel=1e-6)
    assert (sites["interval"] == "95% CI (approx.)").all()


def test_simulated_truth_recovered():
    data, truth = simulate_rdd(n_sites=6, n_per_site=4000, jump_sd=1.0, seed=5)
    res = rdd.fit(
        data, "y", running="x", site="site", method="per_site", bandwidth=0.5, engine=OLS("hc1")
    )
    sites = res.sites().set_index("group")
    z = (sites["estimate"] - truth["jumps"]) / sites["std_error"]
    assert (z.abs() < 4).all()


def test_input_unchanged_and_labels_kept(sim):
    data, _ = sim
    labelled = data.assign(site=data["site"].map(lambda s: f"s{s:02d}"))
    before = labelled.copy()
    res = rdd.fit(labelled, "y", running="x", site="site", method="eb", bandwidth=0.5)
    pd.testing.assert_frame_equal(labelled, before)
    assert res.sites()["group"].tolist() == [f"s{s:02d}" for s in range(12)]


def test_refusals(sim):
    data, _ = sim
    with pytest.raises(DataError, match="outside the range"):
        rdd.fit(data, "y", running="x", cutoff=2.0, method="rdrobust")
    with pytest.raises(ArgumentError, match="needs site="):
        rdd.fit(data, "y", running="x", method="eb")
    one_sided = data[~((data["site"] == 3) & (data["x"] >= 0))]
    with pytest.raises(DataError, match=r"3 \(\d+ below, 0 above\)"):
        rdd.fit(one_sided, "y", running="x", site="site", method="per_site", bandwidth=0.5)
    coarse = data.assign(x=np.round(data["x"], 0))  # running values -1, 0, 1 only
    with pytest.raises(DataError, match="distinct value"):
        rdd.fit(coarse, "y", running="x", method="rdrobust")
    with pytest.raises(DataError, match="missing"):
        rdd.fit(
            data.assign(y=data["y"].where(data.index != 5)), "y", running="x", method="rdrobust"
        )
    with pytest.raises(DataTypeError):
        rdd.fit(data.assign(y="a"), "y", running="x", method="rdrobust")
    with pytest.raises(DataTypeError):
        rdd.fit(data.to_numpy(), "y", running="x", method="rdrobust")
    with pytest.raises(ArgumentError, match="method must be one of"):
        rdd.fit(data, "y", running="x", method="polynomial")
    with pytest.raises(ArgumentError, match="REML"):
        rdd.fit(data, "y", running="x", site="site", method="mlm", engine=OLS())
    with pytest.raises(ArgumentError, match="OLS"):
        rdd.fit(data, "y", running="x", method="rdrobust", engine=Bayes())
    with pytest.raises(ArgumentError, match="vce"):
        rdd.fit(data, "y", running="x", method="rdrobust", engine=OLS("HC7"))
    for bad in (-1.0, (0.5, 0.0), (0.5,), "wide"):
        with pytest.raises(ArgumentError, match="bandwidth"):
            rdd.fit(data, "y", running="x", method="rdrobust", bandwidth=bad)
    two = data[data["site"] < 2]
    with pytest.raises(DataError, match="three sites"):
        rdd.fit(two, "y", running="x", site="site", method="eb", bandwidth=0.5)
    with pytest.raises(DataError, match="single level"):
        rdd.fit(data[data["site"] == 0], "y", running="x", site="site", method="per_site")
    with pytest.raises(ValueError):
        rdd.fit(data, "y", running="x", method="rdrobust", prob=1.5)
    assert isinstance(REML(), REML)


def test_datasets_cards():
    senate = datasets.load("senate")
    assert senate.shape == datasets.describe("senate").shape == (1390, 17)
    assert int(senate["vote"].notna().sum()) == 1297
    assert senate["state"].nunique() == 50
    lmb = datasets.load("close_elections_lmb")
    assert lmb.shape == (13588, 9)
    assert lmb["year"].nunique() == 18


def test_density_test(senate):
    out = rdd.density_test(senate, "margin")
    assert out["p_value"] == pytest.approx(0.44726, abs=1e-4)
    assert (out["n_left"], out["n_right"]) == (375, 376)
    with pytest.raises(DataError, match="outside"):
        rdd.density_test(senate, "margin", cutoff=500.0)


def test_n_weighted_equals_rdmulti_weighted():
    # rdmulti's rdmc: the "weighted" estimate over cutoffs weights each cutoff's rdrobust
    # estimate by its observations inside the bandwidth. Shifting each site's running
    # variable to its own cutoff turns the sites into rdmc's cutoffs.
    import contextlib
    import io
    import warnings

    from rdmulti import rdmc

    data, _ = simulate_rdd(n_sites=5, n_per_site=200, jump_sd=0.8, seed=11)
    res = rdd.fit(data, "y", running="x", site="site", method="per_site", bandwidth=(0.5, 0.7))
    table = res.tidy()
    ours = table[table["term"] == "jump (N-weighted)"].iloc[0]
    shifted = data["x"] + 10 * data["site"]
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = rdmc(
            data["y"].to_numpy(),
            shifted.to_numpy(),
            10.0 * data["site"].to_numpy(),
            hmat=np.full(5, 0.5),
            bmat=np.full(5, 0.7),
        )

    def weighted(value):
        frame = value[0] if isinstance(value, tuple) else value
        return float(np.asarray(frame["weighted"]).ravel()[0])

    assert ours["estimate"] == pytest.approx(weighted(ref.Coefs), abs=1e-10)
    assert ours["robust_std_error"] == pytest.approx(np.sqrt(weighted(ref.V)), abs=1e-10)
    center = (ours["ci_low"] + ours["ci_high"]) / 2
    assert center == pytest.approx(weighted(ref.B), abs=1e-10)
