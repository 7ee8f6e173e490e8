"""Tests of mlmci.did: cohorts and refusals, identities, fast path, published numbers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmci import datasets, did, meta
from mlmci.designs.did.fast import fast_estimates
from mlmci.errors import DataError, DataTypeError
from mlmci.fastpath import reml_random_intercept
from mlmci.simulate import simulate_staggered

KW = dict(unit="unit", time="period", treatment="treated")


def random_panel(seed: int, n_units: int = 24, n_periods: int = 6, never: bool = True):
    """A balanced panel with random staggered adoption and a unit-level confounder."""
    rng = np.random.default_rng(seed)
    starts = rng.choice(np.arange(2, n_periods + 1), size=n_units)
    if never:
        starts = np.where(rng.random(n_units) < 0.35, np.inf, starts).astype(float)
    else:
        starts = starts.astype(float)
        starts[starts == starts.max()] = starts.max() - 1 if starts.max() > 2 else 2
    periods = np.arange(1, n_periods + 1)
    alpha = rng.normal(size=n_units) + 0.5 * np.isfinite(starts)
    d = (periods[None, :] >= starts[:, None]).astype(int)
    y = (
        alpha[:, None]
        + 0.2 * periods
        + d * (1 + 0.3 * rng.normal(size=(n_units, 1)))
        + rng.normal(size=(n_units, n_periods))
    )
    return pd.DataFrame(
        {
            "unit": np.repeat(np.arange(n_units), n_periods),
            "period": np.tile(periods, n_units),
            "treated": d.ravel(),
            "y": y.ravel(),
            "x": rng.normal(size=n_units * n_periods),
        }
    )


# --------------------------------------------------------------------------- cohorts


def test_cohorts_derive_first_treated_period():
    data, truth = simulate_staggered(n_units=20, n_periods=6, seed=1)
    g = did.cohorts(data, **KW)
    assert g.name == "cohort" and len(g) == 20
    sizes = g[np.isfinite(g)].value_counts().sort_index()
    assert sizes.to_dict() == truth["cells"].groupby("cohort")["n_obs"].first().to_dict()
    assert (~np.isfinite(g)).sum() == 20 - sizes.sum()


def test_cohorts_refuse_switching_off_naming_units():
    data = random_panel(0)
    early = data[(data.treated == 1) & (data.period == 5)]["unit"].iloc[0]
    row = data.index[(data.unit == early) & (data.period == 6)][0]
    data.loc[row, "treated"] = 0
    unit = data.loc[row, "unit"]
    with pytest.raises(DataError, match=rf"switches off .* unit\(s\) {unit}\b"):
        did.cohorts(data, **KW)
    with pytest.raises(DataError, match="switches off"):
        did.fit(data, "y", **KW)


def test_cohorts_refuse_unit_treated_in_first_period():
    data = random_panel(1)
    data.loc[data.unit == 3, "treated"] = 1
    with pytest.raises(DataError, match=r"unit\(s\) 3 are treated in their first"):
        did.cohorts(data, **KW)


def test_refuse_cohort_without_untreated_comparison():
    data, _ = simulate_staggered(n_units=12, n_periods=5, cohort_sizes={3: 6, 4: 6}, seed=2)
    with pytest.raises(DataError, match=r"cohort\(s\) 3, 4 have no untreated .* period\(s\) 4, 5"):
        did.fit(data, "y", **KW)
    # dropping the periods in which everybody is treated makes it estimable
    res = did.fit(data[data.period < 4], "y", **KW)
    assert np.isfinite(res.effect()["estimate"])


def test_never_treated_required_for_callaway_santanna():
    data, _ = simulate_staggered(n_units=12, n_periods=5, cohort_sizes={3: 6, 4: 6}, seed=2)
    with pytest.raises(DataError, match="no unit is never treated"):
        did.fit(data, "y", **KW, method="callaway_santanna")


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda d: d.assign(treated=d.treated * 2), DataError, "must be 0/1"),
        (lambda d: pd.concat([d, d.iloc[:1]]), DataError, "more than one row"),
        (lambda d: d.assign(y=d.y.where(d.index != 5)), DataError, "missing values in 'y'"),
        (lambda d: d.drop(columns="y"), DataError, r"\['y'\] not found"),
        (lambda d: d.assign(treated=0), DataError, "no unit is ever treated"),
        (lambda d: d.assign(period=d.period.astype(str)), DataTypeError, "period"),
    ],
)
def test_bad_input(change, error, match):
    with pytest.raises(error, match=match):
        did.fit(change(random_panel(3)), "y", **KW)


def test_bad_method_and_vcov():
    data = random_panel(4)
    with pytest.raises(DataError, match="method must be one of"):
        did.fit(data, "y", **KW, method="lmer")
    with pytest.raises(DataError, match="vcov must be"):
        did.fit(data, "y", **KW, vcov="hc3")
    with pytest.raises(DataTypeError):
        did.fit(data.to_numpy(), "y", **KW)


@pytest.mark.parametrize("method", did.METHODS)
def test_every_method_leaves_input_unchanged_and_follows_protocol(method):
    data = random_panel(5, n_units=30)
    before = data.copy(deep=True)
    vcov = "iid" if method == "re_cells" else "cluster"
    res = did.fit(data, "y", **KW, method=method, vcov=vcov)
    pd.testing.assert_frame_equal(data, before)
    row = res.effect()
    assert row["term"] == "ATT" and row["ci_low"] < row["estimate"] < row["ci_high"]
    table = res.tidy(prob=0.9)
    assert list(table.columns[:7]) == [
        "estimator",
        "term",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "interval",
    ]
    assert {"cohort", "period", "event_time", "weight"} <= set(table.columns)
    assert table["interval"].str.startswith("90%").all()
    assert res.summary().startswith("DiD:") and "<table" in res._repr_html_()
    if len(res.cells):
        post = res.cells[res.cells.weight > 0]
        assert post["weight"].sum() == pytest.approx(1.0)
        again = res.aggregate(res.cells["weight"].to_numpy())
        assert again["estimate"] == pytest.approx(row["estimate"], abs=1e-12)
        assert again["std_error"] == pytest.approx(row["std_error"], abs=1e-12)


# ----------------------------------------------------------------- identities


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n_units=st.integers(8, 30), n_periods=st.integers(3, 7))
def test_two_way_mundlak_equals_twfe_on_balanced_panels(seed, n_units, n_periods):
    data = random_panel(seed, n_units, n_periods)
    if data.treated.sum() == 0 or data.groupby("period").treated.sum().eq(n_units).any():
        return
    twfe = did.fit(data, "y", **KW, method="twfe").effect()["estimate"]
    mundlak = did.fit(data, "y", **KW, method="mundlak", covariates=["x"])
    twfe_x = did.fit(data, "y", **KW, method="twfe", covariates=["x"]).effect()["estimate"]
    assert mundlak.effect()["estimate"] == pytest.approx(twfe_x, abs=1e-10)
    assert did.fit(data, "y", **KW, method="mundlak").effect()["estimate"] == pytest.approx(
        twfe, abs=1e-10
    )
    # ... and so does random-effects GLS with the means, whatever the GLS weight.
    d = data["treated"].to_numpy(float)
    du = data.groupby("unit")["treated"].transform("mean").to_numpy()
    dt = data.groupby("period")["treated"].transform("mean").to_numpy()
    x = np.column_stack([np.ones(len(d)), d, du, dt])
    yv = data["y"].to_numpy()
    for w in (0.05, 0.4, 1.0):
        xm = x.reshape(n_units, n_periods, -1).mean(1).repeat(n_periods, 0)
        ym = yv.reshape(n_units, n_periods).mean(1).repeat(n_periods)
        lam = 1 - np.sqrt(w)
        beta = np.linalg.lstsq(x - lam * xm, yv - lam * ym, rcond=None)[0]
        assert beta[1] == pytest.approx(twfe, abs=1e-10)


def test_two_way_mundlak_differs_from_twfe_on_unbalanced_panel():
    data = random_panel(11, 30, 6)
    data = data.drop(index=data.sample(frac=0.15, random_state=1).index)
    data = data[~data.unit.isin(data.groupby("unit").treated.first()[lambda s: s == 1].index)]
    twfe = did.fit(data, "y", **KW, method="twfe").effect()["estimate"]
    res = did.fit(data, "y", **KW, method="mundlak")
    assert abs(res.effect()["estimate"] - twfe) > 1e-4
    assert any("unbalanced" in n for n in res.notes)


def test_random_effects_with_cohort_dummies_reproduce_etwfe():
    data, _ = simulate_staggered(n_units=40, n_periods=6, rho=0.8, dynamic=0.4, seed=7)
    etwfe = did.fit(data, "y", **KW, method="etwfe")
    rec = did.fit(data, "y", **KW, method="re_cohort")
    re = did.fit(data, "y", **KW, method="re")
    np.testing.assert_allclose(rec.cells["estimate"], etwfe.cells["estimate"], atol=1e-8)
    # without the cohort terms the random intercept uses between-unit comparisons
    assert np.abs(re.cells["estimate"] - etwfe.cells["estimate"]).max() > 0.05


def test_etwfe_equals_did2s_imputation():
    import pyfixest as pf

    data, _ = simulate_staggered(n_units=30, n_periods=7, dynamic=0.3, seed=8)
    res = did.fit(data, "y", **KW, method="etwfe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = pf.did2s(
            data,
            yname="y",
            first_stage="~ 0 | unit + period",
            second_stage="~ treated",
            treatment="treated",
            cluster="unit",
        )
    # did2s absorbs the effects by alternating projections at pyfixest's default tolerance
    # (1e-8) and has no option to tighten it: equal to that precision ...
    assert res.effect()["estimate"] == pytest.approx(float(two.coef()["treated"]), abs=1e-5)
    # ... and to 1e-10 to the imputation estimator computed exactly (Borusyak et al. 2024).
    units = pd.get_dummies(data["unit"], dtype=float).to_numpy()
    periods = pd.get_dummies(data["period"], dtype=float).to_numpy()[:, 1:]
    x = np.column_stack([units, periods])
    untreated = data["treated"].to_numpy() == 0
    coef = np.linalg.lstsq(x[untreated], data["y"].to_numpy()[untreated], rcond=None)[0]
    gap = (data["y"].to_numpy() - x @ coef)[~untreated]
    assert res.effect()["estimate"] == pytest.approx(float(gap.mean()), abs=1e-10)
    cells = data.loc[~untreated].assign(gap=gap).groupby(["period"]).size()
    assert len(cells) > 0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_callaway_santanna_equals_two_by_two_means(seed):
    data = random_panel(seed, 20, 5)
    res = did.fit(data, "y", **KW, method="callaway_santanna")
    g = did.cohorts(data, **KW)
    wide = data.pivot(index="unit", columns="period", values="y")
    never = wide.loc[~np.isfinite(g.reindex(wide.index))]
    for cell in res.cells.itertuples():
        group = wide.loc[g.reindex(wide.index) == cell.cohort]
        base = cell.cohort - 1
        want = (group[cell.period] - group[base]).mean() - (never[cell.period] - never[base]).mean()
        assert cell.estimate == pytest.approx(want, abs=1e-10)
    post = res.cells[res.cells.event_time >= 0]
    assert res.effect()["estimate"] == pytest.approx(
        float((post.estimate * post.n_obs).sum() / post.n_obs.sum()), abs=1e-12
    )


def test_pooled_cells_rebuild_att_with_design_weights():
    data, _ = simulate_staggered(n_units=60, n_periods=8, cell_sd=0.3, size_slope=0.5, seed=9)
    base = did.fit(data, "y", **KW, method="etwfe")
    res = did.fit(data, "y", **KW, method="pooled_cells")
    pooled = meta.fit(base.cells["estimate"].to_numpy(), base.cell_cov)
    agg = pooled.aggregate(base.cells["weight"].to_numpy())
    row = res.effect()
    assert row["estimate"] == pytest.approx(agg["estimate"], abs=1e-12)
    assert row["std_error"] == pytest.approx(agg["std_error"], abs=1e-12)
    hyper = res.tidy().set_index("term").loc["hyper-mean"]
    assert hyper["estimate"] == pytest.approx(float(pooled.beta[0]), abs=1e-12)
    np.testing.assert_allclose(res.cells["raw"], base.cells["estimate"])


def test_pooled_cells_refuse_singular_cell_covariance_on_castle():
    castle = datasets.load("castle")
    with pytest.raises(DataError, match=r"singular .* \(2006 \(1 unit\)"):
        did.fit(
            castle, "l_homicide", unit="sid", time="year", treatment="post", method="pooled_cells"
        )


# ----------------------------------------------------------------- fast path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_equals_library_path(seed):
    data, _ = simulate_staggered(
        n_units=30, n_periods=6, rho=0.5, dynamic=0.3, cell_sd=0.2, ar=0.5, seed=seed
    )
    specs = [
        (m, v)
        for m in ("twfe", "etwfe", "re", "re_cohort", "pooled_cells", "callaway_santanna")
        for v in ("cluster", "iid")
    ]
    fast = did.fast_table(data, "y", **KW, methods=specs, prob=0.9)
    for method, vcov in specs:
        lib = did.fit(data, "y", **KW, method=method, vcov=vcov).tidy(prob=0.9)
        got = fast[(fast.estimator == method) & (fast.vcov == vcov)].drop(columns="vcov")
        # REML (re, and the SEs of re_cohort) and the meta-analysis under pooled_cells are
        # found by optimizers: equal to their tolerance; everything else is closed form.
        tol = {"re": 1e-6, "re_cohort": 1e-6, "pooled_cells": 1e-7}.get(method, 1e-10)
        cols = ["estimate", "std_error", "ci_low", "ci_high"]
        np.testing.assert_allclose(got[cols].to_numpy(), lib[cols].to_numpy(), atol=tol, rtol=0)
        if method == "re_cohort":  # the cells do not depend on the variance components
            np.testing.assert_allclose(got["estimate"], lib["estimate"], atol=1e-10, rtol=0)
    arrays = fast_estimates(
        data["y"].to_numpy().reshape(30, 6),
        did.cohorts(data, **KW).to_numpy(),
        np.arange(1, 7.0),
        specs,
        prob=0.9,
    )
    cols = ["estimate", "std_error", "ci_low", "ci_high"]
    pooled = (arrays["estimator"] == "pooled_cells").to_numpy()
    np.testing.assert_allclose(
        arrays.loc[~pooled, cols].to_numpy(), fast.loc[~pooled, cols].to_numpy(), atol=1e-12
    )
    # the arrays path pools with eb_pool, meta.fit's REML in closed form: equal to the
    # optimizers' tolerance
    np.testing.assert_allclose(
        arrays.loc[pooled, cols].to_numpy(), fast.loc[pooled, cols].to_numpy(), atol=1e-7
    )


@pytest.mark.parametrize("seed", range(6))
def test_eb_pool_equals_meta_fit(seed):
    from mlmci.designs.did.fast import eb_pool

    rng = np.random.default_rng(seed)
    k = 8
    a = rng.normal(size=(k, 3 * k))
    cov = a @ a.T / (3 * k) * 0.05
    est = rng.normal(0.5, 0.2 + 0.3 * (seed % 2), size=k)
    shrunken, pred, tau2, mean, mean_var = eb_pool(est, cov)
    ref = meta.fit(est, cov)
    assert np.sqrt(tau2) == pytest.approx(ref.tau, abs=1e-6)
    np.testing.assert_allclose(shrunken, ref.shrunken, atol=1e-7)
    np.testing.assert_allclose(pred, ref.prediction_cov, atol=1e-7)
    assert mean == pytest.approx(float(ref.beta[0]), abs=1e-7)
    assert mean_var == pytest.approx(float(ref.beta_cov[0, 0]), abs=1e-8)


def test_fast_reml_reaches_mixedlm_optimum():
    from mlmci import mixed

    data, _ = simulate_staggered(n_units=30, n_periods=6, rho=0.7, seed=4)
    frame = data.assign(**{f"t{t}": (data.period == t).astype(float) for t in range(2, 7)})
    formula = "y ~ treated + " + " + ".join(f"t{t}" for t in range(2, 7)) + " + (1 | unit)"
    lib = mixed.fit(formula, frame)
    x = np.column_stack(
        [np.ones(len(frame)), frame[["treated"] + [f"t{t}" for t in range(2, 7)]].to_numpy()]
    )
    beta, sigma2, _tau2, m_inv, boundary, _ = reml_random_intercept(x, frame["y"].to_numpy(), 30, 6)
    assert not boundary
    np.testing.assert_allclose(beta, lib.beta.to_numpy(), atol=1e-6)
    assert np.sqrt(sigma2) == pytest.approx(lib.sigma, rel=1e-6)
    np.testing.assert_allclose(sigma2 * m_inv, lib.vcov.to_numpy(), rtol=1e-5, atol=1e-12)
    # given mixedlm's variance components, the GLS estimate is the same to 1e-10
    vc = lib.variance_components
    tau_lib = float(vc.loc[vc.group == "unit", "estimate"].iloc[0])
    w = lib.sigma**2 / (lib.sigma**2 + 6 * tau_lib**2)
    lam = 1 - np.sqrt(w)
    xm = x.reshape(30, 6, -1).mean(1).repeat(6, 0)
    yv = frame["y"].to_numpy()
    ym = yv.reshape(30, 6).mean(1).repeat(6)
    gls = np.linalg.lstsq(x - lam * xm, yv - lam * ym, rcond=None)[0]
    np.testing.assert_allclose(gls, lib.beta.to_numpy(), atol=1e-8)


def test_fast_path_refuses_unbalanced():
    data = random_panel(6).iloc[1:]
    with pytest.raises(DataError, match="balanced"):
        did.fast_table(data, "y", **KW)


# ----------------------------------------------------------------- published numbers


def test_kielmc_example_13_3():
    kiel = datasets.load("kielmc")
    row = did.two_by_two(kiel, "rprice", group="nearinc", post="y81").effect()
    assert round(row["estimate"], 1) == -11863.9
    assert round(row["std_error"], 1) == 7456.6


def test_injury_example_13_4_kentucky():
    inj = datasets.load("injury")
    row = did.two_by_two(inj[inj.ky == 1], "ldurat", group="highearn", post="afchnge").effect()
    assert round(row["estimate"], 4) == 0.1906
    assert round(row["std_error"], 4) == 0.0685


def test_jtrain_example_14_1():
    jt = datasets.load("jtrain")
    jt = jt[jt.groupby("fcode")["lscrap"].transform(lambda s: s.notna().all())]
    with pytest.raises(DataError, match="switches off"):
        did.fit(jt, "lscrap", unit="fcode", time="year", treatment="grant")
    jt = jt.assign(granted=jt.groupby("fcode")["grant"].cummax())
    res = did.fit(
        jt,
        "lscrap",
        unit="fcode",
        time="year",
        treatment="granted",
        method="twfe_event",
        vcov="iid",
    )
    cells = res.tidy().set_index("event_time")
    assert res.cells["n_obs"].sum() == 19 + 19 + 10 or len(jt) == 162
    assert round(cells.loc[0.0, "estimate"], 4) == -0.2523  # grant
    assert round(cells.loc[1.0, "estimate"], 4) == -0.4216  # grant_1
    assert round(cells.loc[0.0, "std_error"], 3) == 0.151
    assert round(cells.loc[1.0, "std_error"], 3) == 0.210


def test_castle_etwfe_equals_did2s_and_callaway_santanna():
    import pyfixest as pf

    castle = datasets.load("castle")
    kw = dict(unit="sid", time="year", treatment="post")
    etwfe = did.fit(castle, "l_homicide", **kw, method="etwfe").effect()["estimate"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = pf.did2s(
            castle,
            yname="l_homicide",
            first_stage="~ 0 | sid + year",
            second_stage="~ post",
            treatment="post",
            cluster="sid",
        )
    assert etwfe == pytest.approx(float(two.coef()["post"]), abs=1e-7)  # did2s's tolerance
    assert round(etwfe, 4) == 0.0669
    # exact imputation on castle, to 1e-10
    untreated = castle["post"].to_numpy() == 0
    x = np.column_stack(
        [
            pd.get_dummies(castle["sid"], dtype=float).to_numpy(),
            pd.get_dummies(castle["year"], dtype=float).to_numpy()[:, 1:],
        ]
    )
    coef = np.linalg.lstsq(x[untreated], castle["l_homicide"].to_numpy()[untreated], rcond=None)[0]
    gap = (castle["l_homicide"].to_numpy() - x @ coef)[~untreated]
    assert etwfe == pytest.approx(float(gap.mean()), abs=1e-10)
    cs = did.fit(castle, "l_homicide", **kw, method="callaway_santanna").effect()["estimate"]
    assert round(cs, 4) == 0.0194


def test_varying_cell_effects_twin():
    data, _ = simulate_staggered(
        n_units=50,
        n_periods=8,
        cohort_sizes={3: 4, 5: 8, 7: 16},
        dynamic=0.25,
        cell_sd=0.3,
        seed=2026,
    )
    with pytest.raises(DataError, match="model-based"):
        did.fit(data, "y", **KW, method="re_cells")
    res = did.fit(data, "y", **KW, method="re_cells", vcov="iid")
    # Henderson's equations with mixedlm's variance components give mixedlm's GLS estimates
    assert res.diagnostics["gls_gap"] < 1e-8
    assert res.diagnostics["tau_cell"] > 0
    hyper = res.tidy().set_index("term").loc["hyper-mean", "estimate"]
    # the cells are shrunk toward the hyper-mean: less spread than extended TWFE's
    etwfe = did.fit(data, "y", **KW, method="etwfe")
    assert res.cells["estimate"].std() < etwfe.cells["estimate"].std()
    assert abs(res.cells["estimate"] - hyper).max() < abs(etwfe.cells["estimate"] - hyper).max()


def test_fully_pooled_cells_equal_twfe_on_castle():
    castle = datasets.load("castle")
    kw = dict(unit="sid", time="year", treatment="post")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = did.fit(castle, "l_homicide", **kw, method="re_cells", vcov="iid")
    assert res.diagnostics["tau_cell"] == 0
    assert any("one treated observation" in n for n in res.notes)
    # one common effect, cohort dummies and period effects on a balanced panel: TWFE
    twfe = did.fit(castle, "l_homicide", **kw, method="twfe").effect()["estimate"]
    assert res.effect()["estimate"] == pytest.approx(twfe, abs=1e-8)


def test_re_cluster_cov_reduces_to_ols_sandwich_without_unit_variance():
    from mlmci.sandwich import random_intercept_cov as re_cluster_cov

    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(15), rng.integers(2, 6, size=15))
    x = np.column_stack([np.ones(codes.size), rng.normal(size=codes.size)])
    resid = rng.normal(size=codes.size)
    got = re_cluster_cov(x, resid, codes, sigma2=1.3, tau2=0.0)
    bread = np.linalg.inv(x.T @ x)
    scores = np.zeros((15, 2))
    np.add.at(scores, codes, x * resid[:, None])
    want = bread @ scores.T @ scores @ bread * 15 / 14
    np.testing.assert_allclose(got, want, atol=1e-14)
    # with a unit variance the GLS sandwich differs (it down-weights the unit means)
    assert not np.allclose(re_cluster_cov(x, resid, codes, 1.3, 0.8), want)


# --------------------------------------------------------------------------- csdid reference


def _csdid_comparison() -> tuple[pd.DataFrame, object]:
    from reference.csdid_staggered import DESIGN

    data, _ = simulate_staggered(**DESIGN)
    res = did.fit(data, "y", **KW, method="callaway_santanna")
    cells = res.tidy()
    cells = cells[cells["term"] == "ATT(g,t)"][["cohort", "period", "estimate", "std_error"]]
    return cells, res


def test_callaway_santanna_cells_equal_csdid():
    """Every ATT(g, t), pre-periods included, equals csdid's (stored run, universal base).

    The SEs differ by one factor for every cell: ours are pyfixest's CRV1 with its
    small-sample adjustment (G/(G-1) (N-1)/(N-K), the unit effects nested in the
    clusters not counted), csdid's the analytic influence-function SE without one.
    """
    stored = pd.read_csv(Path(__file__).resolve().parent / "reference" / "csdid_staggered.csv")
    cells, res = _csdid_comparison()
    both = cells.merge(stored, on=["cohort", "period"], how="outer", indicator=True)
    assert (both["_merge"] == "both").all(), both[both["_merge"] != "both"]
    np.testing.assert_allclose(both["estimate"], both["att"], rtol=0, atol=1e-10)
    factor = float(np.asarray(res.native._ssc).ravel()[0])
    np.testing.assert_allclose((both["std_error"] / both["se"]) ** 2, factor, rtol=1e-8)


def test_csdid_reference_reproduces_live():
    pytest.importorskip("csdid")
    from reference.csdid_staggered import csdid_cells

    stored = pd.read_csv(Path(__file__).resolve().parent / "reference" / "csdid_staggered.csv")
    live = csdid_cells()
    np.testing.assert_allclose(live[["att", "se"]], stored[["att", "se"]], rtol=1e-10)
