"""Tests of did.fit's engines and the Bayesian twin of ``method="re_cells"``.

- engine resolution: every method's default engine, the explicit equivalents,
  and the refusals (an engine that cannot fit the method, ``OLS(cov_type=...)``
  where ``vcov`` decides, ``re_cells`` without ``vcov="iid"``, a boundary fit
  under ``REML(allow_boundary=False)``);
- the Bayesian twin in quick mode (``MLMCI_QUICK=1``: mocked draws): its shape,
  the headline row, the ATT's draws equal to the design-weighted sum of the cell
  draws rebuilt from bambi's posterior (to 1e-12), the predictive replicates,
  and the book's refusal of an ungated posterior;
- one small real fit (``slow``) whose posterior means of the ATT and of the SD
  of the cell effects are near the REML twin's on a panel with many units.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlmci import bayes, datasets, did, runmode
from mlmci.designs.did.bayes_twin import DidBayesResult
from mlmci.engines import OLS, REML, Bayes
from mlmci.errors import ArgumentError, ConvergenceError, DataError, MlmciError
from mlmci.simulate import simulate_staggered

KW = dict(unit="unit", time="period", treatment="treated")


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    data, _ = simulate_staggered(
        n_units=40, n_periods=6, cohort_sizes={3: 6, 4: 8, 5: 10}, cell_sd=0.3, seed=11
    )
    return data


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    "method, expected",
    [
        ("twfe", OLS()),
        ("etwfe", OLS()),
        ("callaway_santanna", OLS()),
        ("re", REML()),
        ("re_cohort", REML()),
        ("pooled_cells", REML(allow_boundary=True)),
        ("re_cells", REML(allow_boundary=True)),
    ],
)
def test_default_engine_per_method(panel, method, expected):
    vcov = "iid" if method == "re_cells" else "cluster"
    res = did.fit(panel, "y", **KW, method=method, vcov=vcov)
    assert res.engine == expected
    # passing the default explicitly changes nothing
    again = did.fit(panel, "y", **KW, method=method, vcov=vcov, engine=expected)
    assert again.effect()["estimate"] == pytest.approx(res.effect()["estimate"], abs=1e-12)
    assert again.effect()["std_error"] == pytest.approx(res.effect()["std_error"], abs=1e-12)


def test_every_method_has_engines():
    assert set(did.ENGINES) == set(did.METHODS)
    assert [m for m, kinds in did.ENGINES.items() if Bayes in kinds] == ["re_cells"]


@pytest.mark.parametrize("method", [m for m in did.METHODS if m != "re_cells"])
def test_bayes_is_refused_where_there_is_no_bayesian_version(panel, method):
    with pytest.raises(ArgumentError, match=rf"method '{method}' is fitted by .*not by Bayes"):
        did.fit(panel, "y", **KW, method=method, engine=Bayes())


@pytest.mark.parametrize(
    "method, engine, match",
    [
        ("etwfe", REML(), "is fitted by OLS"),
        ("re", OLS(), "is fitted by REML"),
        ("re_cells", OLS(), r"is fitted by REML\(...\) or Bayes\(...\)"),
        ("etwfe", OLS(cov_type="cluster"), "sets the covariance with vcov="),
        ("twfe", OLS(cov_type="HC1"), "pass engine=OLS"),
    ],
)
def test_senseless_pairs_are_refused(panel, method, engine, match):
    with pytest.raises(ArgumentError, match=match) as info:
        did.fit(panel, "y", **KW, method=method, engine=engine)
    assert isinstance(info.value, MlmciError)


@pytest.mark.parametrize("engine", [None, REML(), Bayes()])
def test_re_cells_refuses_vcov_other_than_iid(panel, engine):
    """Refused before anything is fitted (a Bayes engine would otherwise sample first)."""
    with pytest.raises(DataError, match="model-based") as info:
        did.fit(panel, "y", **KW, method="re_cells", engine=engine)
    assert isinstance(info.value, MlmciError)


def test_unknown_method_is_still_a_data_error(panel):
    with pytest.raises(DataError, match="method must be one of"):
        did.fit(panel, "y", **KW, method="bayes", engine=Bayes())


def test_boundary_fits_need_allow_boundary():
    castle = datasets.load("castle")
    kw = dict(unit="sid", time="year", treatment="post")
    # the REML twin on castle: the SD of the cell effects is zero (tests/test_did.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ConvergenceError):
            did.fit(castle, "l_homicide", **kw, method="re_cells", vcov="iid", engine=REML())


def test_pooled_cells_boundary_under_reml_without_allow_boundary():
    # homogeneous effects and cell estimates well within their noise: tau at zero
    data, _ = simulate_staggered(n_units=30, n_periods=5, cohort_sizes={3: 8, 4: 8}, seed=4)
    res = did.fit(data, "y", **KW, method="pooled_cells")
    assert res.native["meta"].tau2 == 0.0  # the default accepts it, and says so
    assert any("zero" in note for note in res.notes)
    with pytest.raises(ConvergenceError, match="allow_boundary=True"):
        did.fit(data, "y", **KW, method="pooled_cells", engine=REML(allow_boundary=False))


# --------------------------------------------------------------------------- quick mode


@pytest.fixture(scope="module")
def quick(panel):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runmode.QUICK_ENV, "1")
        mp.delenv(runmode.BOOK_ENV, raising=False)
        before = panel.copy(deep=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = did.fit(
                panel,
                "y",
                **KW,
                method="re_cells",
                vcov="iid",
                engine=Bayes(sampler={"backend": "nutpie", "chains": 2}),
            )
        pd.testing.assert_frame_equal(panel, before)
    return res, caught


def test_quick_bayes_twin_shape_and_headline(quick):
    res, caught = quick
    assert isinstance(res, DidBayesResult) and res.method == "re_cells"
    assert res.engine == Bayes(sampler={"backend": "nutpie", "chains": 2})
    shown = [w for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert [str(w.message) for w in shown] == []
    assert res.gated is False and res.settings.backend == "pymc"  # mocked: PyMC's sampler
    n_draws = 2 * bayes.QUICK_DRAWS
    n_cells = len(res.cells)
    assert res.cell_draws.shape == (n_draws, n_cells)
    assert res.att_draws.shape == res.hyper_draws.shape == (n_draws,)
    assert res.sd_cell_draws.shape == res.sd_unit_draws.shape == (n_draws,)
    table = res.tidy()
    assert table["interval"].eq("94% HDI").all()
    assert table["term"].tolist() == [
        "ATT",
        "hyper-mean",
        "sd(cell effects)",
        "sd(unit intercepts)",
        *["ATT(g,t)"] * n_cells,
    ]
    cells = table[table["term"] == "ATT(g,t)"]
    assert cells[["cohort", "period", "event_time"]].notna().all().all()
    np.testing.assert_array_equal(cells["event_time"], cells["period"] - cells["cohort"])
    head = res.effect()
    assert head["term"] == "ATT"
    assert head["estimate"] == pytest.approx(float(res.att_draws.mean()), rel=1e-12)
    assert head["std_error"] == pytest.approx(float(res.att_draws.std(ddof=1)), rel=1e-12)
    assert head["ci_low"] <= head["estimate"] <= head["ci_high"]
    assert any("model-based" in n and "independent errors" in n for n in res.notes)
    assert any("quick mode" in n for n in res.notes)
    assert res.summary().startswith("DiD: varying cell effects (Bayesian")
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(res.diagnostics.columns)
    assert res.divergences == 0 and res.seconds > 0


def test_att_draws_are_the_weighted_sum_of_the_cell_draws(quick):
    """The ATT's posterior is rebuilt from the cells (not the hyper-mean), draw by draw."""
    res, _ = quick
    post = res.idata.posterior
    dim = next(d for d in post["did_d|did_cell"].dims if d not in ("chain", "draw"))
    labels = [
        f"{int(c)}/{int(p)}" for c, p in zip(res.cells["cohort"], res.cells["period"], strict=True)
    ]
    u = post["did_d|did_cell"].sel({dim: labels}).transpose("chain", "draw", dim).to_numpy()
    delta = post["did_d"].to_numpy()
    cells = (delta[..., None] + u).reshape(-1, len(labels))
    np.testing.assert_allclose(res.cell_draws, cells, rtol=0, atol=1e-12)
    w = res.cells["weight"].to_numpy()
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(res.att_draws, cells @ w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.hyper_draws, delta.ravel(), rtol=0, atol=1e-12)
    # ... and it is not the hyper-mean
    assert np.abs(res.att_draws - res.hyper_draws).max() > 1e-6
    # aggregate() with the design's weights is the headline; the cells' table the draws'
    again = res.aggregate(w)
    assert again["estimate"] == pytest.approx(res.effect()["estimate"], abs=1e-12)
    np.testing.assert_allclose(res.cells["estimate"], cells.mean(axis=0), atol=1e-12)
    assert again["std_error"] == pytest.approx(float(np.sqrt(w @ res.cell_cov @ w)), rel=1e-9)


def test_quick_event_study_and_replicates(quick, panel):
    res, _ = quick
    events = res.event_study(prob=0.9)
    assert events["term"].eq("ATT(e)").all() and events["interval"].eq("90% HDI").all()
    assert events["event_time"].tolist() == sorted(res.cells["event_time"].unique())
    n_units, n_periods = panel["unit"].nunique(), panel["period"].nunique()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runmode.QUICK_ENV, "1")
        for kind in ("posterior", "prior"):
            rep = res.replicates(kind, draws=10, seed=1)
            assert rep.shape[1:] == (n_units, n_periods) and 8 <= rep.shape[0] <= 10
            assert np.isfinite(rep).all()
    with pytest.raises(DataError, match="kind"):
        res.replicates("both")


def test_the_book_refuses_the_ungated_bayes_twin(quick, monkeypatch):
    res, _ = quick
    monkeypatch.setenv(runmode.BOOK_ENV, "1")
    with pytest.raises(ConvergenceError, match="ungated"):
        res.tidy()


# --------------------------------------------------------------------------- a real fit


@pytest.mark.slow
def test_bayes_twin_is_close_to_the_reml_twin_with_many_units():
    """With 20-24 units per cohort the cells' data dominate bambi's default priors.

    The posterior mean of the ATT then lies within a third of a posterior SD of the
    REML twin's ATT (both are the same weighted sum of the cells, one given the REML
    variance components, one averaged over them; measured: 0.01 SD), and the posterior
    SD is the REML SE to 25% (measured: 4%). The SD of the cell effects rests on 12
    cells only, so its posterior is wide and right-skewed (the posterior mean sits above
    the REML mode): within one posterior SD (measured: 0.3 SD). Two chains of 300 draws
    (the gate is skipped: it asks for 400 effective draws) keep the test short; the
    Monte Carlo error of a posterior mean, SD / sqrt(ESS), is then under a tenth of an
    SD, small against these tolerances.
    """
    data, _ = simulate_staggered(
        n_units=120, n_periods=7, cohort_sizes={3: 20, 4: 20, 5: 24}, cell_sd=0.4, seed=5
    )
    reml = did.fit(data, "y", **KW, method="re_cells", vcov="iid")
    sampler = {"draws": 300, "tune": 300, "chains": 2, "cores": 1, "backend": "nutpie"}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(runmode.QUICK_ENV, raising=False)
        mp.delenv(runmode.BOOK_ENV, raising=False)
        res = did.fit(
            data,
            "y",
            **KW,
            method="re_cells",
            vcov="iid",
            engine=Bayes(sampler=sampler, gate=False),
        )
    assert len(res.cells) == 12 and not res.gated
    head = res.effect()
    assert abs(head["estimate"] - reml.effect()["estimate"]) < head["std_error"] / 3
    assert head["std_error"] == pytest.approx(reml.effect()["std_error"], rel=0.25)
    sd = res.tidy().set_index("term").loc["sd(cell effects)"]
    assert abs(sd["estimate"] - reml.diagnostics["tau_cell"]) < sd["std_error"]
    gap = np.abs(res.cells["estimate"] - reml.cells["estimate"]).to_numpy()
    assert (gap < res.cells["std_error"].to_numpy() / 3).all()
    assert res.diagnostics["r_hat"].max() < 1.1  # short chains: a sanity check, not the gate


def test_a_fit_leaves_the_root_logger_alone(panel):
    """pyfixest's first feols configures the root logger (INFO to stderr); did.fit undoes it,
    or every later INFO message (arviz, PyTensor) would reach a chapter's stderr."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    did.fit(panel, "y", **KW, method="etwfe")
    assert root.level == level and root.handlers == handlers
