"""One protocol test for every public estimator's result (mlmci.results.Fit).

Each result must give the tidy columns with float estimates, intervals at any
``prob``, a text ``summary()`` that is also its ``repr``, an HTML repr, the
library objects underneath (``native``), ``notes`` as text and ``diagnostics``,
and -- for a design with an estimand -- the headline row from ``effect()``.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

from mlmci import (
    bayes,
    datasets,
    did,
    effects,
    iv,
    meta,
    mixed,
    panel,
    pooling,
    rdd,
    runmode,
    weighting,
)
from mlmci.engines import REML, Bayes
from mlmci.results import TIDY_COLUMNS, Fit
from mlmci.simulate import (
    simulate_clustered_treatment,
    simulate_experiment,
    simulate_multisite_iv,
    simulate_panel,
    simulate_rdd,
    simulate_staggered,
)


def _bayes_fit() -> bayes.BayesFit:
    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={"x": rng.normal(1, 0.1, (4, 500)), "1|g": rng.normal(0, 1, (4, 500, 3))},
        coords={"g__factor_dim": ["a", "b", "c"]},
        dims={"1|g": ["g__factor_dim"]},
    )
    return bayes.BayesFit(
        model=object(),
        idata=idata,
        settings=bayes.SETTINGS,
        diagnostics=bayes.diagnose(idata),
        formula="y ~ x + (1 | g)",
    )


def _experiment(method: str):
    data, _ = simulate_experiment(n_groups=8, group_size=30, tau=0.4, seed=4)
    return effects.fit(data, "y", "treated", "group", method=method)


RESULTS = {
    "mixed": lambda: mixed.fit("reaction ~ days + (days | subject)", datasets.load("sleepstudy")),
    "meta": lambda: meta.fit([0.1, 0.5, 0.3, 0.9, -0.2], np.full(5, 0.04)),
    "effects no pooling": lambda: _experiment("no_pooling"),
    "effects complete pooling": lambda: _experiment("complete_pooling"),
    "effects partial pooling": lambda: _experiment("partial_pooling"),
    "bayes": _bayes_fit,
    "pooling": lambda: pooling.compare(datasets.load("radon"), "log_radon", "county"),
    "panel": lambda: _panel(),
    "did etwfe": lambda: _did("etwfe"),
    "did pooled cells": lambda: _did("pooled_cells"),
    "did re_cells": lambda: _did("re_cells", vcov="iid"),
    "did re_cells bayes (quick mode)": lambda: _did_bayes(),
    "rdd rdrobust": lambda: _rdd("rdrobust"),
    "rdd mlm": lambda: _rdd("mlm"),
    "rdd mlm bayes (quick mode)": lambda: _rdd_bayes(),
    "iv 2sls": lambda: _iv("2sls"),
    "iv re_mundlak": lambda: _iv("re_mundlak"),
    "iv per_site": lambda: _iv("per_site"),
    "iv multisite_re": lambda: _iv("multisite_re"),
    "weighting ipw": lambda: _weighting("pooled", "ipw"),
    "weighting ipw_within att": lambda: _weighting("fe", "ipw_within", estimand="ATT"),
    "weighting aipw": lambda: _weighting("mundlak", "aipw"),
}


def _weighting(propensity: str, estimator: str, **kw) -> weighting.WeightingResult:
    data, _ = simulate_clustered_treatment(n_clusters=30, cluster_size=20, seed=6)
    return weighting.fit(
        data,
        "y",
        treatment="d",
        covariates=["x1", "x2"],
        cluster="cluster",
        propensity=propensity,
        estimator=estimator,
        no_overlap="drop",
        **kw,
    )


def _iv(method: str) -> iv.IVResult:
    data, _ = simulate_multisite_iv(n_sites=10, n_per_site=60, assign_share_sd=0.5, seed=5)
    engine = REML(allow_boundary=True) if method in ("re_mundlak", "multisite_re") else None
    return iv.fit(
        data, "y", treatment="d", instrument="z", site="site", method=method, engine=engine
    )


def _did(method: str, **kw) -> did.DidResult:
    data, _ = simulate_staggered(n_units=60, n_periods=6, seed=3)
    return did.fit(data, "y", unit="unit", time="period", treatment="treated", method=method, **kw)


def _did_bayes() -> did.DidBayesResult:
    """The Bayesian twin with mocked draws (quick mode), as the chapter tests run it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runmode.QUICK_ENV, "1")
        mp.delenv(runmode.BOOK_ENV, raising=False)
        return _did("re_cells", vcov="iid", engine=Bayes())


def _rdd(method: str) -> rdd.RDResult:
    data, _ = simulate_rdd(n_sites=12, n_per_site=120, seed=1)
    site = None if method == "rdrobust" else "site"
    return rdd.fit(data, "y", running="x", site=site, method=method, bandwidth=1.0)


def _rdd_bayes():
    """The Bayesian twin of the multilevel RD with mocked draws (quick mode)."""
    data, _ = simulate_rdd(n_sites=12, n_per_site=120, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(runmode.QUICK_ENV, "1")
        mp.delenv(runmode.BOOK_ENV, raising=False)
        return rdd.fit(
            data, "y", running="x", site="site", method="mlm", bandwidth=1.0, engine=Bayes()
        )


def _panel() -> panel.PanelComparison:
    data, _ = simulate_panel(n_entities=40, n_periods=4, corr=0.5, seed=2)
    with pytest.warns(panel.IdentificationWarning):  # FE cannot identify z: a note
        return panel.compare(data, "y", "x", entity="unit", time="period", invariant="z")


@pytest.fixture(scope="module", params=list(RESULTS))
def result(request) -> Fit:
    return RESULTS[request.param]()


def test_tidy_columns_and_dtypes(result: Fit) -> None:
    table = result.tidy()
    core = [c for c in table.columns if c in (*TIDY_COLUMNS, "group")]
    expected = list(TIDY_COLUMNS)
    if "group" in table.columns:
        expected.insert(2, "group")
    assert core == expected and list(table.columns[: len(expected)]) == expected
    for column in ("estimate", "std_error", "ci_low", "ci_high"):
        assert table[column].dtype == float
    assert table["interval"].str.match(r"^\d+(\.\d+)?% ").all()


def test_intervals_at_any_prob(result: Fit) -> None:
    wide, narrow = result.tidy(prob=0.99), result.tidy(prob=0.5)
    assert wide["interval"].str.startswith("99%").all()
    assert narrow["interval"].str.startswith("50%").all()
    finite = np.isfinite(wide["ci_low"]) & np.isfinite(narrow["ci_low"])
    assert (wide.loc[finite, "ci_low"] <= narrow.loc[finite, "ci_low"] + 1e-12).all()
    with pytest.raises(ValueError):
        result.tidy(prob=1.5)


def test_text_and_html(result: Fit) -> None:
    text = result.summary()
    assert isinstance(text, str) and text.splitlines()[0].startswith(result.title)
    assert repr(result) == text
    assert "InferenceData" not in text  # never a dump of the posterior
    assert "<table" in result._repr_html_()


def test_native_notes_diagnostics(result: Fit) -> None:
    assert result.native is not None
    assert isinstance(result.notes, tuple)
    assert all(isinstance(note, str) for note in result.notes)
    _ = result.diagnostics


def test_headline_row(result: Fit) -> None:
    if result.headline is None:
        with pytest.raises(ValueError, match="headline"):
            result.effect()
        return
    row = result.effect()
    assert isinstance(row, pd.Series) and row["term"] == result.headline
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
