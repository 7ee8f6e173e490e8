"""Tests of mlmci.bayes: sampler settings, the convergence gate, summaries and fit.

Sampling is mocked (``bambi.Model.fit`` returns a synthetic InferenceData) except
for one tiny real fit marked ``slow``.
"""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlmci import bayes
from mlmci.bayes import GateThresholds, SamplerSettings, check_convergence, summarize
from mlmci.errors import ArgumentError, ConvergenceError, DataError, DataTypeError
from mlmci.results import TIDY_COLUMNS

CHAINS, DRAWS = 4, 1000
GROUPS = ["a", "b", "c"]


def _idata(posterior: dict, *, divergences: int | None = 0, dims=None, coords=None):
    sample_stats = None
    if divergences is not None:
        diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
        diverging.flat[np.linspace(0, diverging.size - 1, divergences).astype(int)] = True
        sample_stats = {"diverging": diverging}
    return az.from_dict(
        posterior=posterior, sample_stats=sample_stats, dims=dims or {}, coords=coords or {}
    )


def well_mixed(seed: int = 0, *, divergences: int | None = 0) -> az.InferenceData:
    """Independent draws: every chain samples the same distribution."""
    rng = np.random.default_rng(seed)
    return _idata(
        {
            "mu": rng.normal(1.0, 0.5, size=(CHAINS, DRAWS)),
            "b": rng.normal([-1.0, 0.0, 2.0], 1.0, size=(CHAINS, DRAWS, 3)),
        },
        divergences=divergences,
        dims={"b": ["g"]},
        coords={"g": GROUPS},
    )


def stuck(seed: int = 0) -> az.InferenceData:
    """``mu`` has chains centred at 0, 1, 2, 3; ``b`` is well mixed."""
    rng = np.random.default_rng(seed)
    return _idata(
        {
            "mu": rng.normal(size=(CHAINS, DRAWS)) + np.arange(CHAINS)[:, None],
            "b": rng.normal(size=(CHAINS, DRAWS, 3)),
        },
        dims={"b": ["g"]},
        coords={"g": GROUPS},
    )


def ar1(rng: np.random.Generator, phi: float, size: tuple[int, int]) -> np.ndarray:
    """Stationary AR(1) chains: right distribution, few effective draws."""
    out = np.empty(size)
    out[:, 0] = rng.normal(size=size[0]) / np.sqrt(1 - phi**2)
    noise = rng.normal(size=size)
    for t in range(1, size[1]):
        out[:, t] = phi * out[:, t - 1] + noise[:, t]
    return out


# --- SamplerSettings -------------------------------------------------------------------


def test_book_wide_defaults_are_four_seeded_chains():
    s = SamplerSettings()
    assert s.chains == 4
    assert isinstance(s.seed, int)
    assert s.backend == "pymc"
    assert 0 < s.target_accept < 1
    assert 1 <= s.cores <= 4
    assert bayes.SETTINGS == s


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"backend": "stan"}, "backend"),
        ({"chains": 0}, "chains"),
        ({"draws": 0}, "draws"),
        ({"cores": 0}, "cores"),
        ({"tune": -1}, "tune"),
        ({"target_accept": 1.0}, "target_accept"),
        ({"target_accept": 0.0}, "target_accept"),
        ({"target_accept": 1.5}, "target_accept"),
    ],
)
def test_settings_reject_bad_values(changes, named):
    with pytest.raises(ValueError, match=named):
        SamplerSettings(**changes)


def test_settings_accept_nutpie_and_zero_tuning():
    assert SamplerSettings(backend="nutpie", tune=0).backend == "nutpie"


def test_replace_returns_a_changed_copy_and_validates():
    quick = bayes.SETTINGS.replace(draws=200, tune=100)
    assert (quick.draws, quick.tune) == (200, 100)
    assert (bayes.SETTINGS.draws, bayes.SETTINGS.tune) == (1000, 1000)
    assert quick.chains == bayes.SETTINGS.chains and quick.seed == bayes.SETTINGS.seed
    with pytest.raises(ValueError, match="chains"):
        bayes.SETTINGS.replace(chains=0)
    with pytest.raises(TypeError):
        bayes.SETTINGS.replace(samples=10)


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        bayes.SETTINGS.chains = 2


@pytest.mark.parametrize(
    ("env", "expected"),
    [("0", False), ("false", False), (" Off ", False), ("no", False), ("1", True), ("yes", True)],
)
def test_show_progress_reads_the_environment(monkeypatch, env, expected):
    monkeypatch.setenv(bayes.PROGRESS_ENV, env)
    assert SamplerSettings().show_progress is expected


def test_show_progress_defaults_on_and_explicit_setting_wins(monkeypatch):
    monkeypatch.delenv(bayes.PROGRESS_ENV, raising=False)
    assert SamplerSettings().show_progress is True
    monkeypatch.setenv(bayes.PROGRESS_ENV, "0")
    assert SamplerSettings(progressbar=True).show_progress is True
    monkeypatch.setenv(bayes.PROGRESS_ENV, "1")
    assert SamplerSettings(progressbar=False).show_progress is False


# --- check_convergence -----------------------------------------------------------------


def test_well_mixed_posterior_passes_with_a_row_per_scalar_parameter():
    idata = well_mixed()
    diag = check_convergence(idata)
    assert diag.columns.tolist() == ["r_hat", "ess_bulk", "ess_tail"]
    assert diag.index.tolist() == ["mu", "b[a]", "b[b]", "b[c]"]
    assert (diag["r_hat"] <= 1.01).all()
    assert (diag[["ess_bulk", "ess_tail"]] >= 400).all().all()
    # the same numbers as arviz computes directly
    np.testing.assert_allclose(diag.loc["mu", "r_hat"], float(az.rhat(idata)["mu"]))
    np.testing.assert_allclose(
        diag.loc["b[b]", "ess_bulk"], float(az.ess(idata)["b"].sel(g="b")), rtol=1e-9
    )


def test_passes_without_sample_stats():
    assert len(check_convergence(well_mixed(divergences=None))) == 4


def test_offset_chains_fail_naming_the_parameter_and_its_rhat():
    idata = stuck()
    with pytest.raises(ConvergenceError) as info:
        check_convergence(idata)
    err = info.value
    rhat = float(az.rhat(idata)["mu"])
    assert rhat > 1.01
    message = str(err)
    assert f"mu: R-hat {rhat:.3f}" in message
    assert "1 parameter(s) failed" in message
    assert "b[" not in message
    assert err.diagnostics.index.tolist() == ["mu"]
    np.testing.assert_allclose(err.diagnostics.loc["mu", "r_hat"], rhat)
    assert isinstance(err, RuntimeError)


def test_one_failing_element_of_a_vector_parameter_is_singled_out():
    rng = np.random.default_rng(3)
    b = rng.normal(size=(CHAINS, DRAWS, 3))
    b[:, :, 1] += np.arange(CHAINS)[:, None]
    idata = _idata({"b": b}, dims={"b": ["g"]}, coords={"g": GROUPS})
    with pytest.raises(ConvergenceError) as info:
        check_convergence(idata)
    assert info.value.diagnostics.index.tolist() == ["b[b]"]
    assert "b[b]: R-hat" in str(info.value)


def test_low_ess_fails_naming_the_parameter_and_its_ess():
    rng = np.random.default_rng(5)
    idata = _idata({"mu": rng.normal(size=(CHAINS, DRAWS)), "rho": ar1(rng, 0.97, (CHAINS, DRAWS))})
    ess_bulk = float(az.ess(idata, method="bulk")["rho"])
    assert ess_bulk < 400
    # a lenient R-hat bound isolates the ESS criterion
    with pytest.raises(ConvergenceError) as info:
        check_convergence(idata, rhat_max=1.5)
    err = info.value
    assert err.diagnostics.index.tolist() == ["rho"]
    assert f"bulk ESS {ess_bulk:.0f}" in str(err)
    assert "ESS ≥ 400" in str(err)


def test_bulk_ess_alone_can_fail():
    rng = np.random.default_rng(5)
    idata = _idata({"rho": ar1(rng, 0.97, (CHAINS, DRAWS))})
    bulk = float(az.ess(idata, method="bulk")["rho"])
    tail = float(az.ess(idata, method="tail")["rho"])
    assert bulk < tail
    with pytest.raises(ConvergenceError) as info:
        check_convergence(idata, rhat_max=1.5, ess_min=(bulk + tail) / 2)
    assert info.value.diagnostics.index.tolist() == ["rho"]


def test_tail_ess_alone_can_fail():
    # chains with different spreads: the centre mixes, the tails do not
    rng = np.random.default_rng(5)
    spread = np.array([0.6, 0.8, 1.2, 1.6])[:, None]
    idata = _idata({"s": rng.normal(size=(CHAINS, DRAWS)) * spread})
    assert float(az.ess(idata, method="bulk")["s"]) >= 400
    tail = float(az.ess(idata, method="tail")["s"])
    assert tail < 400
    with pytest.raises(ConvergenceError) as info:
        check_convergence(idata, rhat_max=1.5)
    assert f"tail ESS {tail:.0f}" in str(info.value)


def test_divergences_fail_and_the_message_counts_them():
    idata = well_mixed(divergences=3)
    assert int(idata.sample_stats["diverging"].sum()) == 3
    with pytest.raises(ConvergenceError) as info:
        check_convergence(idata)
    assert "divergent transitions: 3." in str(info.value)
    assert "0 parameter(s) failed" in str(info.value)
    assert info.value.diagnostics.empty
    assert len(check_convergence(idata, max_divergences=3)) == 4
    with pytest.raises(ConvergenceError):
        check_convergence(idata, max_divergences=2)


def test_custom_thresholds_tighten_and_relax_the_gate():
    with pytest.raises(ConvergenceError) as info:
        check_convergence(well_mixed(), ess_min=1e6)
    assert len(info.value.diagnostics) == 4
    assert "ESS ≥ 1e+06" in str(info.value)
    with pytest.raises(ConvergenceError, match=r"R-hat ≤ 0.5"):
        check_convergence(well_mixed(), rhat_max=0.5)
    relaxed = check_convergence(stuck(), rhat_max=100.0, ess_min=1.0)
    assert relaxed.loc["mu", "r_hat"] > 1.01


def test_var_names_restricts_the_check():
    idata = stuck()
    diag = check_convergence(idata, var_names=["b"])
    assert diag.index.tolist() == ["b[a]", "b[b]", "b[c]"]
    with pytest.raises(ConvergenceError):
        check_convergence(idata, var_names=["mu"])


def test_unknown_var_name_raises_data_error_naming_it():
    with pytest.raises(DataError, match="'sigma'"):
        check_convergence(well_mixed(), var_names=["mu", "sigma"])


def test_idata_without_posterior_raises_data_error():
    no_posterior = az.from_dict(sample_stats={"diverging": np.zeros((2, 10), dtype=bool)})
    with pytest.raises(DataError, match="posterior"):
        check_convergence(no_posterior)
    with pytest.raises(DataError, match="posterior"):
        summarize(az.InferenceData())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_diagnostics_fail_the_gate():
    constant = _idata({"c": np.ones((CHAINS, DRAWS))})
    with pytest.raises(ConvergenceError) as info:
        check_convergence(constant)
    assert info.value.diagnostics.index.tolist() == ["c"]


def test_long_failure_lists_are_truncated():
    rng = np.random.default_rng(8)
    bad = rng.normal(size=(CHAINS, DRAWS, 30)) + np.arange(CHAINS)[:, None, None]
    with pytest.raises(ConvergenceError) as info:
        check_convergence(_idata({"v": bad}))
    assert len(info.value.diagnostics) == 30
    listed = [line for line in str(info.value).splitlines() if line.startswith("  v[")]
    assert len(listed) == 25
    assert "... and 5 more" in str(info.value)


# --- summarize -------------------------------------------------------------------------


def test_summary_has_tidy_columns_with_group():
    out = summarize(well_mixed())
    assert out.columns.tolist() == [*TIDY_COLUMNS[:2], "group", *TIDY_COLUMNS[2:]]
    assert (out["estimator"] == "bayes").all()
    assert (summarize(well_mixed(), estimator="bambi")["estimator"] == "bambi").all()


@pytest.mark.parametrize(("prob", "label"), [(0.94, "94% HDI"), (0.9, "90% HDI"), (0.5, "50% HDI")])
def test_interval_label_follows_prob(prob, label):
    assert (summarize(well_mixed(), prob=prob)["interval"] == label).all()


def test_bad_prob_raises():
    with pytest.raises(ValueError, match="prob"):
        summarize(well_mixed(), prob=94)


def test_estimate_is_posterior_mean_and_std_error_posterior_sd():
    idata = well_mixed(seed=11)
    row = summarize(idata).set_index("term").loc["mu"]
    draws = idata.posterior["mu"].to_numpy().ravel()
    assert row["estimate"] == pytest.approx(draws.mean(), rel=1e-12)
    assert row["std_error"] == pytest.approx(draws.std(ddof=1), rel=1e-12)
    assert pd.isna(row["group"])
    assert isinstance(row["estimate"], float)


def test_hdi_brackets_the_mean_holds_prob_mass_and_narrows_with_prob():
    idata = well_mixed(seed=12)
    draws = idata.posterior["mu"].to_numpy().ravel()
    widths = {}
    for prob in (0.94, 0.8, 0.5):
        row = summarize(idata, prob=prob, var_names=["mu"]).iloc[0]
        assert row["ci_low"] < row["estimate"] < row["ci_high"]
        inside = np.mean((draws >= row["ci_low"]) & (draws <= row["ci_high"]))
        assert inside == pytest.approx(prob, abs=0.005)
        widths[prob] = row["ci_high"] - row["ci_low"]
    assert widths[0.5] < widths[0.8] < widths[0.94]


def test_one_row_per_group_with_the_coordinate_label():
    idata = well_mixed(seed=13)
    out = summarize(idata, var_names=["b"])
    assert out["term"].tolist() == ["b"] * 3
    assert out["group"].tolist() == GROUPS
    b = idata.posterior["b"].to_numpy().reshape(-1, 3)
    np.testing.assert_allclose(out["estimate"], b.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(out["std_error"], b.std(axis=0, ddof=1), rtol=1e-12)
    assert (out["ci_low"] < out["estimate"]).all() and (out["estimate"] < out["ci_high"]).all()
    # group means -1, 0, 2 were simulated: the rows are not mixed up
    assert out["estimate"].tolist() == sorted(out["estimate"])


def test_two_extra_dims_label_both_coordinates():
    rng = np.random.default_rng(14)
    values = rng.normal(size=(CHAINS, DRAWS, 2, 3)) + np.array([0.0, 10.0])[:, None]
    idata = _idata({"w": values}, dims={"w": ["s", "g"]}, coords={"s": ["lo", "hi"], "g": GROUPS})
    out = summarize(idata)
    assert out["group"].tolist() == [f"{s}, {g}" for s in ("lo", "hi") for g in GROUPS]
    hi = out[out["group"].str.startswith("hi")]
    assert (hi["estimate"] > 5).all()


def test_summary_var_names_selects_and_orders_terms():
    out = summarize(well_mixed(), var_names=["b", "mu"])
    assert out["term"].tolist() == ["b", "b", "b", "mu"]


# --- fit: bad input --------------------------------------------------------------------


@pytest.fixture
def data() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    g = np.repeat(np.arange(6), 10)
    df = pd.DataFrame(
        {
            "g": [f"school{i}" for i in g],
            "x": rng.normal(size=g.size),
            "note": ["ok"] * g.size,
        }
    )
    df["y"] = 1.0 + 2.0 * df["x"] + rng.normal(0, 0.5, 6)[g] + rng.normal(size=g.size)
    return df


@pytest.fixture
def fake_sampler(monkeypatch):
    """Replace bambi's sampling with a function that records its call and returns ``idata``."""
    import bambi as bmb

    monkeypatch.delenv(bayes.QUICK_ENV, raising=False)
    record = SimpleNamespace(calls=[], idata=well_mixed(), error=None)

    def fake_fit(self, **kwargs):
        record.calls.append(
            {"kwargs": kwargs, "model": self, "pymc_level": logging.getLogger("pymc").level}
        )
        if record.error is not None:
            raise record.error
        return record.idata

    monkeypatch.setattr(bmb.Model, "fit", fake_fit)
    return record


def test_fit_rejects_non_dataframes(fake_sampler, data):
    with pytest.raises(DataTypeError, match="DataFrame"):
        bayes.fit("y ~ x", data.to_dict("list"))
    assert not fake_sampler.calls


def test_fit_names_a_missing_column(fake_sampler, data):
    with pytest.raises(DataError, match="'z'"):
        bayes.fit("y ~ x + z + (1|g)", data)
    with pytest.raises(DataError, match="'cluster'"):
        bayes.fit("y ~ x + (1|cluster)", data)
    assert not fake_sampler.calls


@pytest.mark.parametrize("col", ["x", "g", "y"])
def test_fit_names_a_column_with_missing_values(fake_sampler, data, col):
    data.loc[3, col] = np.nan
    with pytest.raises(DataError, match=rf"'{col}' \(1 missing\)"):
        bayes.fit("y ~ x + (1|g)", data)
    assert not fake_sampler.calls


def test_fit_ignores_missing_values_in_unused_columns(fake_sampler, data):
    data.loc[3, "note"] = None
    res = bayes.fit("y ~ x + (1|g)", data)
    assert len(fake_sampler.calls) == 1
    assert res.idata is fake_sampler.idata


@pytest.mark.parametrize("formula", ["y ~ x +", "y ~ (x", "y ~~ x"])
def test_fit_rejects_a_formula_that_does_not_parse(fake_sampler, data, formula):
    with pytest.raises(DataError, match="does not parse"):
        bayes.fit(formula, data)
    assert not fake_sampler.calls


def test_fit_rejects_unknown_sampler_settings(fake_sampler, data):
    with pytest.raises(ValueError, match="'samples'"):
        bayes.fit("y ~ x", data, sampler={"samples": 500})
    assert not fake_sampler.calls


@pytest.mark.parametrize("sampler", [500, "quick", [("draws", 500)]])
def test_fit_rejects_a_sampler_of_the_wrong_type(fake_sampler, data, sampler):
    with pytest.raises(TypeError, match="SamplerSettings"):
        bayes.fit("y ~ x", data, sampler=sampler)
    assert not fake_sampler.calls


def test_fit_wraps_bambi_model_errors(fake_sampler, data):
    with pytest.raises(DataError, match="could not build"):
        bayes.fit("y ~ x", data, family="no-such-family")
    assert not fake_sampler.calls


# --- fit: mocked sampling --------------------------------------------------------------


def test_fit_passes_the_book_wide_settings_by_default(fake_sampler, data):
    res = bayes.fit("y ~ x + (1|g)", data)
    kwargs = fake_sampler.calls[0]["kwargs"]
    s = bayes.SETTINGS
    assert kwargs["chains"] == s.chains == 4
    assert kwargs["draws"] == s.draws
    assert kwargs["tune"] == s.tune
    assert kwargs["random_seed"] == s.seed
    assert kwargs["target_accept"] == s.target_accept
    assert kwargs["inference_method"] == s.backend
    assert kwargs["cores"] == min(s.cores, s.chains)
    assert res.settings == s


def test_fit_passes_custom_settings(fake_sampler, data):
    settings = SamplerSettings(
        chains=3,
        draws=123,
        tune=45,
        seed=7,
        backend="nutpie",
        target_accept=0.95,
        cores=2,
        progressbar=False,
    )
    res = bayes.fit("y ~ x", data, sampler=settings)
    kwargs = fake_sampler.calls[0]["kwargs"]
    expected_keys = [
        "chains",
        "draws",
        "tune",
        "random_seed",
        "inference_method",
        "target_accept",
        "cores",
        "progressbar",
    ]
    assert {k: kwargs[k] for k in expected_keys} == {
        "chains": 3,
        "draws": 123,
        "tune": 45,
        "random_seed": 7,
        "inference_method": "nutpie",
        "target_accept": 0.95,
        "cores": 2,
        "progressbar": False,
    }
    assert res.settings is settings


def test_fit_applies_dict_overrides_on_top_of_the_book_settings(fake_sampler, data):
    res = bayes.fit("y ~ x", data, sampler={"draws": 250, "chains": 1, "progressbar": True})
    kwargs = fake_sampler.calls[0]["kwargs"]
    assert (kwargs["draws"], kwargs["chains"], kwargs["cores"]) == (250, 1, 1)
    assert kwargs["tune"] == bayes.SETTINGS.tune
    assert kwargs["random_seed"] == bayes.SETTINGS.seed
    assert kwargs["progressbar"] is True
    assert res.settings == bayes.SETTINGS.replace(draws=250, chains=1, progressbar=True)


def test_fit_returns_model_idata_and_diagnostics(fake_sampler, data):
    import bambi as bmb

    res = bayes.fit("y ~ x + (1|g)", data, noncentered=False)
    assert isinstance(res, bayes.BayesFit)
    assert isinstance(res.model, bmb.Model)
    assert res.model is fake_sampler.calls[0]["model"]
    assert res.model.noncentered is False
    assert res.idata is fake_sampler.idata
    assert res.diagnostics.index.tolist() == ["mu", "b[a]", "b[b]", "b[c]"]
    assert_frame_equal(res.tidy(prob=0.9), summarize(fake_sampler.idata, prob=0.9))
    assert_frame_equal(res.tidy(), summarize(fake_sampler.idata, prob=0.94))
    assert res.gated and res.notes == ()
    assert res.native == {"model": res.model, "idata": res.idata}
    text = res.summary()
    assert text.startswith("Bayesian model (bambi") and "b[a]" not in text
    assert "<table" in res._repr_html_()


def test_fit_applies_the_gate_by_default(fake_sampler, data):
    fake_sampler.idata = stuck()
    with pytest.raises(ConvergenceError, match="mu: R-hat") as info:
        bayes.fit("y ~ x", data)
    assert info.value.diagnostics.index.tolist() == ["mu"]


def test_fit_gate_catches_divergences(fake_sampler, data):
    fake_sampler.idata = well_mixed(divergences=2)
    with pytest.raises(ConvergenceError, match="divergent transitions: 2"):
        bayes.fit("y ~ x", data)


def test_fit_without_gate_returns_a_failing_posterior(fake_sampler, data):
    fake_sampler.idata = stuck()
    res = bayes.fit("y ~ x", data, gate=False)
    assert res.idata is fake_sampler.idata
    assert res.diagnostics.loc["mu", "r_hat"] > 1.01
    assert len(res.diagnostics) == 4


def test_fit_uses_given_gate_thresholds(fake_sampler, data):
    fake_sampler.idata = stuck()
    res = bayes.fit("y ~ x", data, gate=GateThresholds(rhat_max=100.0, ess_min=1.0))
    assert res.diagnostics.loc["mu", "r_hat"] > 1.01
    fake_sampler.idata = well_mixed(divergences=1)
    bayes.fit("y ~ x", data, gate=GateThresholds(max_divergences=1))
    fake_sampler.idata = well_mixed()
    with pytest.raises(ConvergenceError, match="ESS ≥ 1e\\+06"):
        bayes.fit("y ~ x", data, gate=GateThresholds(ess_min=1e6))


def test_fit_leaves_the_callers_frame_unchanged(fake_sampler, data):
    data.loc[3, "note"] = None
    before = data.copy()
    bayes.fit("y ~ x + (1|g)", data)
    assert_frame_equal(data, before)
    assert fake_sampler.calls[0]["model"].data is not data


def test_quick_mode_caps_draws_and_skips_the_gate(monkeypatch, fake_sampler, data):
    monkeypatch.setenv(bayes.QUICK_ENV, "1")
    fake_sampler.idata = stuck()
    res = bayes.fit("y ~ x", data, sampler={"draws": 5000, "tune": 20})
    kwargs = fake_sampler.calls[0]["kwargs"]
    assert kwargs["draws"] == bayes.QUICK_DRAWS < 5000
    assert kwargs["tune"] == 20
    assert kwargs["chains"] == bayes.SETTINGS.chains
    assert res.settings.draws == bayes.QUICK_DRAWS
    assert res.diagnostics.loc["mu", "r_hat"] > 1.01
    assert not res.gated and "quick mode" in res.notes[0] and "quick mode" in res.summary()


def test_the_book_refuses_an_ungated_posterior(monkeypatch, fake_sampler, data):
    monkeypatch.setenv(bayes.runmode.BOOK_ENV, "1")
    with pytest.raises(ConvergenceError, match="never shows an ungated"):
        bayes.fit("y ~ x", data, gate=False)
    monkeypatch.setenv(bayes.QUICK_ENV, "1")
    with pytest.raises(ConvergenceError, match="never shows an ungated"):
        bayes.fit("y ~ x", data)
    monkeypatch.delenv(bayes.QUICK_ENV)
    res = bayes.fit("y ~ x", data)  # gated: fine
    assert res.gated


def test_quick_mode_mocks_pymc_sampling(monkeypatch, data):
    # No fake here: bambi builds the PyMC model, and pymc.testing's mock draws from the prior.
    import pymc as pm

    monkeypatch.setenv(bayes.QUICK_ENV, "1")
    original = pm.sample
    res = bayes.fit("y ~ x", data, sampler={"chains": 2, "backend": "nutpie"})
    assert pm.sample is original
    assert res.settings.backend == "pymc" and res.settings.draws == bayes.QUICK_DRAWS
    assert res.idata.posterior.sizes["chain"] == 2
    assert res.idata.posterior.sizes["draw"] == bayes.QUICK_DRAWS
    assert not res.gated


@pytest.mark.parametrize("value", ["0", "", "yes"])
def test_quick_mode_only_for_exactly_1(monkeypatch, fake_sampler, data, value):
    monkeypatch.setenv(bayes.QUICK_ENV, value)
    fake_sampler.idata = stuck()
    with pytest.raises(ConvergenceError):
        bayes.fit("y ~ x", data)
    assert fake_sampler.calls[0]["kwargs"]["draws"] == bayes.SETTINGS.draws


@pytest.fixture
def pymc_logger():
    logger = logging.getLogger("pymc")
    original = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(original)


def test_quiet_mode_raises_the_pymc_log_level_while_sampling(
    monkeypatch, fake_sampler, data, pymc_logger
):
    monkeypatch.setenv(bayes.PROGRESS_ENV, "0")
    bayes.fit("y ~ x", data)
    call = fake_sampler.calls[0]
    assert call["kwargs"]["progressbar"] is False
    assert call["pymc_level"] == logging.ERROR
    assert pymc_logger.level == logging.INFO


def test_quiet_mode_restores_the_log_level_when_sampling_fails(
    monkeypatch, fake_sampler, data, pymc_logger
):
    monkeypatch.setenv(bayes.PROGRESS_ENV, "0")
    fake_sampler.error = RuntimeError("sampler crashed")
    with pytest.raises(RuntimeError, match="sampler crashed"):
        bayes.fit("y ~ x", data)
    assert fake_sampler.calls[0]["pymc_level"] == logging.ERROR
    assert pymc_logger.level == logging.INFO


def test_progress_mode_leaves_logging_alone(monkeypatch, fake_sampler, data, pymc_logger):
    monkeypatch.setenv(bayes.PROGRESS_ENV, "1")
    bayes.fit("y ~ x", data)
    call = fake_sampler.calls[0]
    assert call["kwargs"]["progressbar"] is True
    assert call["pymc_level"] == logging.INFO


# --- one real, tiny fit ----------------------------------------------------------------

TRUE_SLOPE = 1.5
N_GROUPS = 8


@pytest.fixture(scope="session")
def real_fit():
    rng = np.random.default_rng(2026)
    g = np.repeat(np.arange(N_GROUPS), 20)
    df = pd.DataFrame({"g": [f"s{i}" for i in g], "x": rng.normal(size=g.size)})
    effects = rng.normal(0, 0.7, N_GROUPS)
    df["y"] = 0.5 + TRUE_SLOPE * df["x"] + effects[g] + rng.normal(size=g.size)
    before = df.copy()
    # one core: on a 2-core machine, spawning chain processes costs more than it saves
    sampler = {"chains": 2, "draws": 300, "tune": 300, "cores": 1, "progressbar": False}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(bayes.QUICK_ENV, raising=False)
        res = bayes.fit(
            "y ~ x + (1|g)", df, sampler=sampler, gate=GateThresholds(rhat_max=1.05, ess_min=50)
        )
    return SimpleNamespace(res=res, df=df, before=before, effects=effects)


@pytest.mark.slow
def test_real_fit_recovers_the_slope(real_fit):
    table = real_fit.res.tidy(prob=0.94)
    slope = table.set_index("term").loc["x"]
    assert slope["ci_low"] < TRUE_SLOPE < slope["ci_high"]
    assert slope["interval"] == "94% HDI"
    posterior = real_fit.res.idata.posterior
    assert (posterior.sizes["chain"], posterior.sizes["draw"]) == (2, 300)


@pytest.mark.slow
def test_real_fit_summarizes_group_effects(real_fit):
    table = real_fit.res.tidy()
    groups = table[table["term"] == "1|g"]
    assert groups["group"].tolist() == [f"s{i}" for i in range(N_GROUPS)]
    # 20 observations per group pin each simulated group effect down well
    corr = np.corrcoef(groups["estimate"], real_fit.effects)[0, 1]
    assert corr > 0.8
    assert set(real_fit.res.diagnostics.index) >= {"x", "Intercept", "1|g_sigma"}


@pytest.mark.slow
def test_real_fit_leaves_the_data_unchanged(real_fit):
    assert_frame_equal(real_fit.df, real_fit.before)


# --- sample: a PyMC model bambi cannot express -------------------------------------------


def _tiny_pymc_model(*, groups: bool = True):
    """mu ~ N(0, 10), y_i ~ N(mu, 1) (100 draws), and (``groups``) b_g ~ N(0, 1) unrelated."""
    import pymc as pm

    y = np.random.default_rng(3).normal(3.0, 1.0, 100)
    with pm.Model(coords={"g": GROUPS}) as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        if groups:
            pm.Normal("b", 0.0, 1.0, dims="g")
        pm.Normal("y", mu, 1.0, observed=y)
    return model, y


@pytest.fixture
def fake_pymc_sample(monkeypatch):
    """Replace ``pymc.sample`` by a function that records its call and returns ``idata``."""
    import pymc as pm

    monkeypatch.delenv(bayes.QUICK_ENV, raising=False)
    monkeypatch.delenv(bayes.runmode.BOOK_ENV, raising=False)
    record = SimpleNamespace(calls=[], idata=well_mixed())

    def fake_sample(**kwargs):
        record.calls.append(
            {
                "kwargs": kwargs,
                "model": pm.modelcontext(None),
                "level": logging.getLogger("pymc").level,
            }
        )
        return record.idata

    monkeypatch.setattr(pm, "sample", fake_sample)
    return record


def test_sample_passes_the_settings_and_returns_the_four_tuple(fake_pymc_sample):
    model, _ = _tiny_pymc_model()
    settings = SamplerSettings(
        chains=3, draws=123, tune=45, seed=7, backend="nutpie", target_accept=0.95, cores=2
    )
    out = bayes.sample(model, sampler=settings)
    assert isinstance(out, tuple) and len(out) == 4
    idata, diagnostics, gated, used = out
    assert idata is fake_pymc_sample.idata and gated is True and used is settings
    assert diagnostics.index.tolist() == ["mu", "b[a]", "b[b]", "b[c]"]
    (call,) = fake_pymc_sample.calls
    assert call["model"] is model  # sampled inside the model's context
    assert {k: call["kwargs"][k] for k in ("draws", "tune", "chains", "cores")} == {
        "draws": 123,
        "tune": 45,
        "chains": 3,
        "cores": 2,
    }
    assert call["kwargs"]["random_seed"] == 7 and call["kwargs"]["target_accept"] == 0.95
    assert call["kwargs"]["nuts_sampler"] == "nutpie"
    assert call["kwargs"]["compute_convergence_checks"] is False


def test_sample_defaults_to_the_book_settings_and_takes_dict_overrides(fake_pymc_sample):
    model, _ = _tiny_pymc_model()
    *_, used = bayes.sample(model)
    assert used == bayes.SETTINGS
    *_, used = bayes.sample(model, sampler={"draws": 250, "chains": 1})
    assert used == bayes.SETTINGS.replace(draws=250, chains=1)
    kwargs = fake_pymc_sample.calls[-1]["kwargs"]
    assert (kwargs["draws"], kwargs["chains"], kwargs["cores"]) == (250, 1, 1)
    with pytest.raises(ValueError, match="'samples'"):
        bayes.sample(model, sampler={"samples": 10})
    assert len(fake_pymc_sample.calls) == 2


def test_sample_applies_the_gate(fake_pymc_sample):
    model, _ = _tiny_pymc_model()
    fake_pymc_sample.idata = stuck()
    with pytest.raises(ConvergenceError, match="mu: R-hat") as info:
        bayes.sample(model)
    assert info.value.diagnostics.index.tolist() == ["mu"]
    fake_pymc_sample.idata = well_mixed(divergences=3)
    with pytest.raises(ConvergenceError, match="divergent transitions: 3"):
        bayes.sample(model)
    # custom thresholds
    _, _, gated, _ = bayes.sample(model, gate=GateThresholds(max_divergences=3))
    assert gated


def test_sample_var_names_restricts_the_gate(fake_pymc_sample):
    model, _ = _tiny_pymc_model()
    fake_pymc_sample.idata = stuck()  # mu fails, b is well mixed
    _, diagnostics, gated, _ = bayes.sample(model, var_names=["b"])
    assert gated and diagnostics.index.tolist() == ["b[a]", "b[b]", "b[c]"]
    with pytest.raises(ConvergenceError, match="mu: R-hat"):
        bayes.sample(model, var_names=["mu", "b"])
    with pytest.raises(DataError, match="'nope'"):
        bayes.sample(model, var_names=["nope"])


def test_sample_without_gate_returns_a_failing_posterior(fake_pymc_sample):
    model, _ = _tiny_pymc_model()
    fake_pymc_sample.idata = stuck()
    idata, diagnostics, gated, _ = bayes.sample(model, gate=False)
    assert gated is False and idata is fake_pymc_sample.idata
    assert diagnostics.loc["mu", "r_hat"] > 1.01
    # var_names restricts the diagnostics of an ungated posterior too
    _, diagnostics, _, _ = bayes.sample(model, gate=False, var_names=["mu"])
    assert diagnostics.index.tolist() == ["mu"]


def test_sample_in_the_book_refuses_to_skip_the_gate(monkeypatch, fake_pymc_sample):
    model, _ = _tiny_pymc_model()
    monkeypatch.setenv(bayes.runmode.BOOK_ENV, "1")
    with pytest.raises(ConvergenceError, match="never shows an ungated"):
        bayes.sample(model, gate=False)
    monkeypatch.setenv(bayes.QUICK_ENV, "1")
    with pytest.raises(ConvergenceError, match="never shows an ungated"):
        bayes.sample(model)
    assert not fake_pymc_sample.calls  # refused before sampling
    monkeypatch.delenv(bayes.QUICK_ENV)
    _, _, gated, _ = bayes.sample(model)  # gated: fine in the book
    assert gated and len(fake_pymc_sample.calls) == 1


def test_sample_quiets_the_pymc_logs_unless_progress_is_on(
    monkeypatch, fake_pymc_sample, pymc_logger
):
    model, _ = _tiny_pymc_model()
    bayes.sample(model, sampler={"progressbar": False})
    bayes.sample(model, sampler={"progressbar": True})
    quiet, loud = fake_pymc_sample.calls
    assert quiet["level"] == logging.ERROR and quiet["kwargs"]["progressbar"] is False
    assert loud["level"] == logging.INFO and loud["kwargs"]["progressbar"] is True
    assert pymc_logger.level == logging.INFO


def test_sample_quick_mode_mocks_with_prior_draws(monkeypatch):
    import pymc as pm

    model, _ = _tiny_pymc_model()
    monkeypatch.setenv(bayes.QUICK_ENV, "1")
    monkeypatch.delenv(bayes.runmode.BOOK_ENV, raising=False)
    original = pm.sample
    sampler = {"chains": 2, "draws": 5000, "tune": 50, "backend": "nutpie"}
    idata, diagnostics, gated, used = bayes.sample(model, sampler=sampler)
    assert pm.sample is original
    assert gated is False
    assert (used.draws, used.tune, used.chains) == (bayes.QUICK_DRAWS, 50, 2)
    assert used.backend == "pymc"  # PyMC's mock sampled it, whatever was asked
    assert (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]) == (2, bayes.QUICK_DRAWS)
    # prior draws, not a posterior: mu keeps its prior spread (sd 10), not the data's 0.1
    assert float(idata.posterior["mu"].std()) > 3
    assert set(diagnostics.index) == {"mu", "b[a]", "b[b]", "b[c]"}
    _, diagnostics, _, _ = bayes.sample(model, var_names=["mu"])
    assert diagnostics.index.tolist() == ["mu"]


@pytest.mark.slow
def test_sample_real_tiny_model_passes_the_gate(monkeypatch):
    monkeypatch.delenv(bayes.QUICK_ENV, raising=False)
    model, y = _tiny_pymc_model(groups=False)
    # one core: on a 2-core machine, spawning chain processes costs more than it saves.
    # 2000 draws a chain, so that the gate's verdict has margin: at 500 the R-hat of this
    # well-mixed model reached 1.007 on one CPU (the chains follow the CPU's rounding),
    # within the spread of R-hat at that length of the gate's 1.01.
    sampler = {"chains": 4, "draws": 2000, "tune": 500, "cores": 1, "progressbar": False}
    idata, diagnostics, gated, used = bayes.sample(model, sampler=sampler)
    assert gated and used == bayes.SETTINGS.replace(**sampler)
    assert (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]) == (4, 2000)
    assert diagnostics.index.tolist() == ["mu"]
    assert (diagnostics["r_hat"] <= 1.01).all()
    assert (diagnostics[["ess_bulk", "ess_tail"]] >= 400).all(axis=None)
    # the conjugate posterior: precision n + 1/100, mean sum(y) / (n + 1/100)
    precision = len(y) + 0.01
    post = idata.posterior["mu"]
    mcse = 1 / np.sqrt(precision * float(diagnostics.loc["mu", "ess_bulk"]))
    assert abs(float(post.mean()) - y.sum() / precision) < 4 * mcse
    assert float(post.std()) == pytest.approx(1 / np.sqrt(precision), rel=0.1)


def test_prior_draws_are_the_models_prior_and_unknown_names_are_refused():
    import pymc as pm

    with pm.Model() as model:
        mu = pm.Normal("mu", 3.0, 0.5)
        pm.Potential("loglik", -((mu - 100.0) ** 2))  # ignored by prior sampling
    table = bayes.prior_draws(model, ["mu"], draws=4000, seed=2)
    assert list(table.columns) == ["mu"] and len(table) == 4000
    assert table["mu"].mean() == pytest.approx(3.0, abs=4 * 0.5 / np.sqrt(4000))
    assert table["mu"].std() == pytest.approx(0.5, rel=0.05)
    with pytest.raises(ArgumentError, match="no variable"):
        bayes.prior_draws(model, ["sigma"])
