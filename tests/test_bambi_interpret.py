"""What ``bambi.interpret.comparisons`` computes for a logistic GLMM's group CATEs.

Checks the claim in book/heterogeneous_effects.md ("Binary outcomes") against bambi
0.17.2. Sampling is mocked: ``pymc.sample`` is replaced by ``pymc.testing.mock_sample``,
which returns prior draws as the "posterior", so the test needs no MCMC. The identities
checked hold draw by draw, whatever the draws are.

Findings pinned here:

* ``conditional=None, average_by="group"`` predicts every observed row with treated = 0
  and 1, and averages the unit-level risk differences over each group's rows (and the
  draws): the marginal group CATE.
* ``conditional="group"`` predicts one row per group with the other covariates at typical
  values (numeric ones at their overall mean): the CATE of a unit with average x, which
  differs from the marginal one when x matters.
* With ``average_by`` the interval columns are the group means of the unit-level interval
  bounds, not an interval of the group average.
* The default contrast of a numeric 0/1 ``treated`` is (mean - 0.5, mean + 0.5) cast to its
  dtype: with an int column that is not exactly half treated, (0, 0). Hence the explicit
  ``contrast={"treated": [0, 1]}``.
"""

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

bmb = pytest.importorskip("bambi")
pm = pytest.importorskip("pymc")
from pymc.testing import mock_sample  # noqa: E402

# bambi 0.17.2 calls pandas' deprecated is_categorical_dtype (upstream, harmless here).
pytestmark = pytest.mark.filterwarnings("ignore:is_categorical_dtype is deprecated")

J, N = 8, 30
PROB = 0.9
LOWER, UPPER = "lower_5.0%", "upper_95.0%"
FORMULA = "y ~ treated + x + (1 + treated | group)"


def simulate(seed=1):
    """8 groups x 30 units, half treated in each; x's mean differs by group."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), N)
    df = pd.DataFrame(
        {
            "group": np.array([f"g{j}" for j in range(J)])[g],
            "treated": np.tile(np.r_[np.ones(N // 2), np.zeros(N - N // 2)], J).astype(int),
            "x": rng.normal(g - J / 2, 1.0),
        }
    )
    eta = -0.3 + 0.8 * df["treated"] + 0.6 * df["x"]
    df["y"] = (rng.random(J * N) < expit(eta)).astype(int)
    return df


def mock_fit(df, draws=100, chains=2):
    """Build the GLMM and 'fit' it with pm.sample replaced by mock_sample (prior draws)."""
    # An informative prior on x's slope so that x clearly matters in the draws.
    model = bmb.Model(
        FORMULA, df, family="bernoulli", priors={"x": bmb.Prior("Normal", mu=1.0, sigma=0.2)}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pm, "sample", mock_sample)
        idata = model.fit(draws=draws, chains=chains, random_seed=3)
    return model, idata


@pytest.fixture(scope="module")
def fitted():
    df = simulate()
    model, idata = mock_fit(df)
    return df, model, idata


def draws_of(idata, name, codes=None):
    values = idata.posterior[name].values  # (chain, draw[, group])
    return values if codes is None else values[..., codes]


def risk_difference(idata, x, codes):
    """expit(eta | treated=1) - expit(eta | treated=0), per draw, for units (x, group codes)."""
    base = (
        draws_of(idata, "Intercept")[..., None]
        + draws_of(idata, "x")[..., None] * x
        + draws_of(idata, "1|group", codes)
    )
    shift = draws_of(idata, "treated")[..., None] + draws_of(idata, "treated|group", codes)
    return expit(base + shift) - expit(base)


def group_codes(df, idata):
    levels = idata.posterior["group__factor_dim"].values
    return levels, pd.Categorical(df["group"], categories=levels).codes


def by_hand_marginal(df, idata):
    """Per-draw group averages of the unit-level risk differences: (chain, draw, group)."""
    levels, codes = group_codes(df, idata)
    unit = risk_difference(idata, df["x"].to_numpy(), codes)
    return levels, np.stack([unit[..., codes == k].mean(-1) for k in range(len(levels))], -1)


def comparisons(model, idata, **kwargs):
    return bmb.interpret.comparisons(
        model, idata, contrast={"treated": [0, 1]}, prob=PROB, **kwargs
    )


def test_average_by_group_is_the_marginal_group_cate(fitted):
    df, model, idata = fitted
    levels, per_draw = by_hand_marginal(df, idata)
    out = comparisons(model, idata, conditional=None, average_by="group")
    assert list(out.columns) == [
        "term",
        "estimate_type",
        "value",
        "group",
        "estimate",
        LOWER,
        UPPER,
    ]
    assert list(out["group"]) == list(levels)
    assert set(out["value"]) == {(0, 1)}
    np.testing.assert_allclose(out["estimate"], per_draw.mean((0, 1)), rtol=0, atol=1e-8)


def test_conditional_group_fixes_x_at_its_mean(fitted):
    df, model, idata = fitted
    levels, _ = group_codes(df, idata)
    out = comparisons(model, idata, conditional="group")
    assert list(out["group"]) == list(levels)
    np.testing.assert_allclose(out["x"], df["x"].mean())
    at_mean_x = risk_difference(idata, df["x"].mean(), np.arange(len(levels))).mean((0, 1))
    np.testing.assert_allclose(out["estimate"], at_mean_x, rtol=0, atol=1e-8)
    # ...which is not the marginal group CATE when x matters.
    _, per_draw = by_hand_marginal(df, idata)
    assert np.abs(out["estimate"].to_numpy() - per_draw.mean((0, 1))).max() > 0.05


def test_average_by_intervals_are_averaged_unit_bounds(fitted):
    df, model, idata = fitted
    units = comparisons(model, idata, conditional=None)
    assert len(units) == len(df)
    avg = comparisons(model, idata, conditional=None, average_by="group")
    expected = units.groupby("group")[[LOWER, UPPER]].mean()
    np.testing.assert_allclose(avg[[LOWER, UPPER]], expected.loc[avg["group"]], atol=1e-12)
    # Not the HDI of the per-draw group average.
    _, per_draw = by_hand_marginal(df, idata)
    hdi = az.hdi(per_draw, hdi_prob=PROB)
    assert np.abs(avg[[LOWER, UPPER]].to_numpy() - hdi).max() > 0.01


def test_default_contrast_of_an_unbalanced_int_treatment_is_empty():
    df = simulate()
    df.loc[df.index[:20], "treated"] = 0  # mean 0.4375: default values (-0.06, 0.94) -> (0, 0)
    model, idata = mock_fit(df, draws=20, chains=1)
    default = bmb.interpret.comparisons(
        model, idata, contrast="treated", conditional=None, average_by="group", prob=PROB
    )
    assert set(default["value"]) == {(0, 0)}
    np.testing.assert_array_equal(default["estimate"], 0.0)
    explicit = comparisons(model, idata, conditional=None, average_by="group")
    assert set(explicit["value"]) == {(0, 1)}
    assert np.abs(explicit["estimate"]).max() > 0
