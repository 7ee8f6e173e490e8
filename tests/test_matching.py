"""Tests of propensity-score matching: ``mlmci.designs.weighting.matching``, ``estimator="match"``.

The estimate and its implied weights are checked by hand on six units and against a
brute-force loop (every distance computed) on data with many ties, within cells and across;
the Abadie-Imbens standard error against R's ``Matching::Match`` (stored in
``tests/reference/matching_r.csv``, rerun live when R and Matching are installed) and the
same brute force; the cluster-robust SE from the linear representation against the
Abadie-Imbens SE with singleton clusters, and against a cluster-level shock.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from mlmci import weighting
from mlmci.designs.weighting import estimators
from mlmci.designs.weighting import matching as mt
from mlmci.errors import ArgumentError, DataError
from mlmci.simulate import simulate_clustered_treatment

REFERENCE = Path(__file__).parent / "reference"
KW = dict(treatment="d", covariates=["x1", "x2"], cluster="cluster")


# --------------------------------------------------------------------------- brute force


def brute_force(y, d, s, estimand, m, cells=None):
    """Every distance computed: per-unit effects, K and KK (ties within 1e-10 averaged)."""
    n = len(y)
    cells = np.zeros(n, dtype=int) if cells is None else cells
    tau, k, kk = np.zeros(n), np.zeros(n), np.zeros(n)
    queries = np.flatnonzero(d == 1) if estimand == "ATT" else np.arange(n)
    for i in queries:
        pool = np.flatnonzero((d != d[i]) & (cells == cells[i]))
        dist = np.abs(s[pool] - s[i])
        chosen = pool[dist <= np.sort(dist)[m - 1] + mt.TIE_TOLERANCE]
        tau[i] = (2 * d[i] - 1) * (y[i] - y[chosen].mean())
        k[chosen] += 1 / chosen.size
        kk[chosen] += 1 / chosen.size**2
    return tau, k, kk, tau[queries].mean()


def brute_force_ai(y, d, s, estimand, m, cells=None):
    """Abadie-Imbens with Matching's conditional variances, by loops."""
    n = len(y)
    cells = np.zeros(n, dtype=int) if cells is None else cells
    tau, k, kk, est = brute_force(y, d, s, estimand, m, cells)
    sig = np.zeros(n)
    for i in range(n):
        pool = np.flatnonzero((d == d[i]) & (cells == cells[i]) & (np.arange(n) != i))
        dist = np.abs(s[pool] - s[i])
        j = min(m, pool.size)
        chosen = pool[dist <= np.sort(dist)[j - 1] + mt.TIE_TOLERANCE]
        sig[i] = np.var(np.r_[y[i], y[chosen]], ddof=1)
    if estimand == "ATE":
        return np.sqrt(np.sum((tau - est) ** 2) + np.sum(sig * (k**2 + 2 * k - kk))) / n
    t, c = d == 1, d == 0
    return np.sqrt(np.sum((tau[t] - est) ** 2) + np.sum(sig[c] * (k[c] ** 2 - kk[c]))) / t.sum()


def grid_data(seed, n=80, n_cells=4):
    """Scores on a grid of step 1/4 (many exact ties), every cell with 4+ units of each arm."""
    rng = np.random.default_rng(seed)
    cells = np.repeat(np.arange(n_cells), n // n_cells)
    d = np.tile(np.r_[np.ones(4), np.zeros(4), (rng.random(n // n_cells - 8) < 0.5)], n_cells)
    s = np.round(rng.normal(size=n) * 4) / 4
    y = s + d + rng.normal(size=n)
    return y, d.astype(float), s, cells


# --------------------------------------------------------------------------- by hand

# Treated at scores 0, 0.1, 3 (y 5, 6, 9); controls at 0.2, 2, 4 (y 1, 4, 7).
HAND = dict(
    y=np.array([5.0, 6.0, 9.0, 1.0, 4.0, 7.0]),
    d=np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
    s=np.array([0.0, 0.1, 3.0, 0.2, 2.0, 4.0]),
)


def test_att_by_hand_with_a_tie():
    """M = 1: 0 and 0.1 both match 0.2 (y 1); 3 is as far from 2 as from 4: (4 + 7) / 2.

    Effects 4, 5 and 3.5: ATT 12.5 / 3. The control at 0.2 is used twice, those at 2 and
    4 half a time each: implied weights 1, 1, 1 | 2, 0.5, 0.5 (the controls' sum N_1 = 3).
    """
    res = mt.match_estimate(**HAND, estimand="ATT")
    assert res.estimate == pytest.approx(12.5 / 3, abs=1e-14)
    np.testing.assert_allclose(res.weights, [1, 1, 1, 2, 0.5, 0.5], atol=1e-14)
    # the weighted difference in means with the implied weights is the estimate
    y, d, w = HAND["y"], HAND["d"], res.weights
    diff = (w * d) @ y / (w * d).sum() - (w * (1 - d)) @ y / (w * (1 - d)).sum()
    assert diff == pytest.approx(res.estimate, abs=1e-14)


def test_ate_and_two_matches_by_hand():
    """ATE, M = 1: the controls 0.2, 2, 4 are matched to the treated 0.1, 3, 3: effects
    6 - 1, 9 - 4, 9 - 7 = 5, 5, 2, with the treated's 4, 5, 3.5: ATE 24.5 / 6. Weights
    1 + K: treated 1, 2, 3 (0.1 used once, 3 twice), controls 3, 1.5, 1.5.
    ATT, M = 2: 0 -> (0.2, 2), 0.1 -> (0.2, 2), 3 -> (2, 4): effects 2.5, 3.5, 3.5."""
    ate = mt.match_estimate(**HAND, estimand="ATE")
    assert ate.estimate == pytest.approx(24.5 / 6, abs=1e-14)
    np.testing.assert_allclose(ate.weights, [1, 2, 3, 3, 1.5, 1.5], atol=1e-14)
    att2 = mt.match_estimate(**HAND, estimand="ATT", matches=2)
    assert att2.estimate == pytest.approx(9.5 / 3, abs=1e-14)
    np.testing.assert_allclose(att2.weights, [1, 1, 1, 1, 1.5, 0.5], atol=1e-14)


def test_estimate_dispatches_on_the_logit_of_the_propensity():
    e = expit(HAND["s"])
    kw = dict(y=HAND["y"], d=HAND["d"], e=e, codes=np.arange(6), n_groups=6)
    for estimand in ("ATT", "ATE"):
        got = estimators.estimate("match", estimand, **kw)
        want = mt.match_estimate(HAND["y"], HAND["d"], np.log(e / (1 - e)), estimand=estimand)
        assert got.estimate == pytest.approx(want.estimate, abs=1e-13)
        np.testing.assert_allclose(got.weights, want.weights, atol=1e-13)


# --------------------------------------------------------------------------- against brute force


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("estimand", ["ATT", "ATE"])
@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("within", [False, True])
def test_equals_brute_force_with_ties(seed, estimand, m, within):
    y, d, s, cells = grid_data(seed)
    use = cells if within else None
    _, k, _, est = brute_force(y, d, s, estimand, m, use)
    res = mt.match_estimate(y, d, s, estimand=estimand, matches=m, codes=cells, within=within)
    assert res.estimate == pytest.approx(est, abs=1e-12)
    want = np.where(d == 1, 1.0, k) if estimand == "ATT" else 1 + k
    np.testing.assert_allclose(res.weights, want, atol=1e-12)
    ai = mt.abadie_imbens_se(y, d, s, estimand=estimand, matches=m, cells=use)
    assert ai == pytest.approx(brute_force_ai(y, d, s, estimand, m, use), rel=1e-10)


def test_ties_are_averaged():
    """One treated at 0 (y 10), three controls at -1, 1, 1 (y 0, 3, 6), all at distance 1:
    with M = 1 all three are matches, each with weight 1/3: 10 - (0 + 3 + 6) / 3 = 7."""
    y = np.array([10.0, 0.0, 3.0, 6.0])
    d = np.array([1.0, 0.0, 0.0, 0.0])
    s = np.array([0.0, -1.0, 1.0, 1.0])
    res = mt.match_estimate(y, d, s, estimand="ATT")
    assert res.estimate == pytest.approx(7.0, abs=1e-14)
    np.testing.assert_allclose(res.weights, [1, 1 / 3, 1 / 3, 1 / 3], atol=1e-14)


def test_match_within_never_crosses_clusters():
    """The nearest controls of cluster 0's treated sit in cluster 1: within, they are not used."""
    y, d, s, cells = grid_data(3)
    s = s + 0.01 * cells  # break the ties across clusters on purpose
    fit = mt._fit(y, d, s, "ATE", 2, cells)
    for res in fit.matches:
        pairs = res.pairs()
        assert (cells[pairs[:, 0]] == cells[pairs[:, 1]]).all()
        assert (d[pairs[:, 0]] != d[pairs[:, 1]]).all()
    # ATT weights: in every cluster the controls' weights sum to its treated count
    att = mt.match_estimate(y, d, s, estimand="ATT", codes=cells, within=True)
    per = np.bincount(cells, weights=att.weights * (1 - d))
    np.testing.assert_allclose(per, np.bincount(cells, weights=d), atol=1e-12)
    across = mt._fit(y, d, s, "ATE", 2, None).matches[0].pairs()
    assert (cells[across[:, 0]] != cells[across[:, 1]]).any()


# --------------------------------------------------------------------------- R's Matching

R_RUNS = ("continuous", "grid")  # exact ties only (see matching_reference.R)


def _ours(data: pd.DataFrame, r: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, row in r[r["run"].isin(R_RUNS)].iterrows():
        df = data[data["dataset"] == row["dataset"]]
        y, d, s = (df[c].to_numpy(float) for c in ("y", "d", "s"))
        kw = dict(estimand=row["estimand"], matches=int(row["M"]))
        rows.append(
            {
                "est": mt.match_estimate(y, d, s, **kw).estimate,
                "se": mt.abadie_imbens_se(y, d, s, **kw),
            }
        )
    return pd.DataFrame(rows)


def test_matches_stored_r_matching():
    data = pd.read_csv(REFERENCE / "matching_data.csv")
    r = pd.read_csv(REFERENCE / "matching_r.csv")
    ours = _ours(data, r)
    ref = r[r["run"].isin(R_RUNS)].reset_index(drop=True)
    assert len(ref) == 8
    np.testing.assert_allclose(ours["est"], ref["est"], rtol=1e-8, atol=0)
    np.testing.assert_allclose(ours["se"], ref["se"], rtol=1e-8, atol=0)
    # Weight = 1 rescales X by its SD: with one covariate the matches do not change
    x10 = r[r["run"] == "continuous_x10"].reset_index(drop=True)
    cont = r[r["run"] == "continuous"].reset_index(drop=True)
    np.testing.assert_allclose(x10[["est", "se"]], cont[["est", "se"]], rtol=1e-12)


def _r_has_matching() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(
        ["Rscript", "-e", "library(Matching)"], capture_output=True, text=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _r_has_matching(), reason="needs Rscript with the Matching package")
def test_live_r_matching_reproduces_the_stored_file(tmp_path):
    subprocess.run(
        ["Rscript", str(REFERENCE / "matching_reference.R"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    live = pd.read_csv(tmp_path / "matching_r.csv")
    stored = pd.read_csv(REFERENCE / "matching_r.csv")
    np.testing.assert_allclose(live[["est", "se"]], stored[["est", "se"]], rtol=1e-8)
    ours = _ours(pd.read_csv(REFERENCE / "matching_data.csv"), live)
    ref = live[live["run"].isin(R_RUNS)].reset_index(drop=True)
    np.testing.assert_allclose(ours[["est", "se"]], ref[["est", "se"]], rtol=1e-8)


# --------------------------------------------------------------------------- the linearized SE


def _smooth_sample(n, seed, clusters=None, shock=0.0):
    """A smooth design in the score; ``shock`` scales a cluster-level treatment effect."""
    rng = np.random.default_rng(seed)
    codes = np.arange(n) if clusters is None else rng.integers(0, clusters, n)
    u = rng.normal(size=int(codes.max()) + 1)[codes]
    v = rng.normal(size=int(codes.max()) + 1)[codes]
    s = 0.8 * rng.normal(size=n) + 0.5 * u * (clusters is not None)
    d = (rng.random(n) < expit(s)).astype(float)
    y = s + 0.3 * s**2 + d * (1 + 0.5 * s) + (0.5 + 0.3 * np.abs(s)) * rng.normal(size=n)
    return y + shock * d * v, d, s, codes


@pytest.mark.parametrize("estimand", ["ATT", "ATE"])
@pytest.mark.parametrize("m", [1, 2])
def test_singleton_clusters_agree_with_abadie_imbens(estimand, m):
    """Both estimate the same asymptotic variance, but not with the same numbers: on one
    sample of n = 5000 their ratio scatters with an SD of 3-6% and heavy tails (measured over
    300 samples of this design: mean ratio 0.991-0.996, largest deviation 14-27%, both means
    within 5% of the Monte Carlo SD of the estimate), because both lean on the few units
    used as matches many times. So the test averages the ratio over 16 samples (SD of the
    mean at most 0.016) and asks for 5% (3 SDs): a term that is wrong by a constant factor,
    or a sum over the wrong units, fails it."""
    ratios = []
    for seed in range(16):
        y, d, s, _ = _smooth_sample(5000, seed=seed)
        lin = mt.linearized_se(y, d, s, estimand=estimand, matches=m)
        ratios.append(lin / mt.abadie_imbens_se(y, d, s, estimand=estimand, matches=m))
    assert abs(np.mean(ratios) - 1) < 0.05
    # with every unit its own cluster the cluster-robust SE is the unclustered one exactly
    codes = np.arange(len(y))
    res = mt.match_estimate(y, d, s, estimand=estimand, matches=m, codes=codes)
    assert res.std_error == pytest.approx(lin, rel=1e-12)


def test_linear_terms_sum_within_clusters():
    """The clustered variance is G/(G-1)/N^2 times the sum of squared cluster sums of the terms."""
    y, d, s, codes = _smooth_sample(600, seed=3, clusters=40)
    fit = mt._fit(y, d, s, "ATE", 1, None)
    psi = mt.linear_terms(y, d, s, fit.k, "ATE")
    assert abs(psi.sum()) < 1e-9
    sums = np.bincount(codes, weights=psi, minlength=40)
    by_hand = np.sqrt(40 / 39 * np.sum(sums**2)) / len(y)
    got = mt.match_estimate(y, d, s, estimand="ATE", codes=codes, n_groups=40).std_error
    assert got == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("estimand", ["ATT", "ATE"])
def test_a_cluster_shock_raises_the_clustered_se(estimand):
    """A treatment effect that varies between clusters (sd 2, against a unit-level noise
    sd of about 0.7) makes the estimate noisy at the cluster level: the clustered SE must far
    exceed the unclustered one, which cannot see it (measured on three seeds: by a factor of
    3.2-4.4); without the shock the two are close (measured: ratio 1.0-1.4 with 80
    clusters). (A cluster-constant shift of y in both arms would not do: the treated's and
    the controls' terms of a cluster carry it with opposite signs and it partly cancels.)"""
    y, d, s, codes = _smooth_sample(4000, seed=5, clusters=80, shock=2.0)
    clustered = mt.match_estimate(y, d, s, estimand=estimand, codes=codes).std_error
    assert clustered > 2 * mt.linearized_se(y, d, s, estimand=estimand)
    y, d, s, codes = _smooth_sample(4000, seed=5, clusters=80)
    clustered = mt.match_estimate(y, d, s, estimand=estimand, codes=codes).std_error
    assert clustered < 1.6 * mt.linearized_se(y, d, s, estimand=estimand)


@pytest.mark.parametrize(
    ("estimator", "n_clusters", "size"), [("match", 300, 20), ("match_within", 60, 100)]
)
def test_matching_on_the_true_propensity_recovers_the_truth(estimator, n_clusters, size):
    """Matching on the true propensity (which includes the unobserved cluster confounder)
    is consistent for the sample ATT and ATE: within 4 clustered SEs (a 1-in-15000 miss if
    the SE is right), while the raw difference in means is far off. Within clusters only
    with large clusters: without bias correction, matching inside clusters of 20 has so
    few candidates that its matching discrepancies do not shrink as clusters are added
    (measured on this design with 300 clusters of 20: bias 0.22 (ATT) and 0.28 (ATE), 4
    SEs; with 60 clusters of 100: 0.06 and 0.05, under one SE)."""
    data, truth = simulate_clustered_treatment(n_clusters=n_clusters, cluster_size=size, seed=11)
    share = data.groupby("cluster")["d"].transform("mean").to_numpy()
    keep = (share > 0) & (share < 1)  # match_within needs both arms in every cluster
    codes = pd.factorize(data["cluster"][keep])[0]
    kw = dict(
        y=data["y"].to_numpy(float)[keep],
        d=data["d"].to_numpy(float)[keep],
        e=truth["propensity"][keep],
        codes=codes,
        n_groups=int(codes.max()) + 1,
    )
    tau = truth["tau"][keep]
    targets = {"ATE": tau.mean(), "ATT": tau[kw["d"] == 1].mean()}
    for estimand in ("ATT", "ATE"):
        res = estimators.estimate(estimator, estimand, **kw)
        assert abs(res.estimate - targets[estimand]) < 4 * res.std_error, estimand
    y, d = kw["y"], kw["d"]
    naive = y[d == 1].mean() - y[d == 0].mean()
    res = estimators.estimate(estimator, "ATT", **kw)
    assert abs(naive - targets["ATT"]) > 4 * res.std_error


# --------------------------------------------------------------------------- refusals


def test_refusals():
    y, d, s = HAND["y"], HAND["d"], HAND["s"]
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ArgumentError, match="matches must be an integer"):
            mt.match_estimate(y, d, s, matches=bad)
    with pytest.raises(DataError, match=r"matches=4 needs at least 4 controls.*there are 3"):
        mt.match_estimate(y, d, s, estimand="ATT", matches=4)
    d2 = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # two treated: the ATE needs 3 of each
    with pytest.raises(DataError, match="at least 3 treated"):
        mt.match_estimate(y, d2, s, estimand="ATE", matches=3)
    codes = np.array([0, 0, 1, 1, 1, 1])  # cluster 0 treated only
    with pytest.raises(DataError, match=r"cluster codes \[0\] have one arm only"):
        mt.match_estimate(y, d, s, codes=codes, within=True)
    with pytest.raises(ArgumentError, match="estimand"):
        mt.match_estimate(y, d, s, estimand="ATC")
    e = expit(s)
    kw = dict(y=y, d=d, e=e, codes=np.arange(6), n_groups=6)
    with pytest.raises(ArgumentError, match="matches is for the matching estimators"):
        estimators.estimate("ipw", "ATE", matches=2, **kw)


# --------------------------------------------------------------------------- weighting.fit


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    data, _ = simulate_clustered_treatment(n_clusters=40, cluster_size=25, seed=4)
    data = data.assign(cluster="school_" + data["cluster"].astype(str))
    data.index = data.index + 1000
    return data


@pytest.mark.parametrize("estimator", ["match", "match_within"])
@pytest.mark.parametrize("estimand", ["ATT", "ATE"])
def test_fit_end_to_end(sim, estimator, estimand):
    m = 2 if estimator == "match" else 1  # some clusters have a single control
    before = sim.copy()
    res = weighting.fit(
        sim,
        "y",
        **KW,
        propensity="pooled",
        estimator=estimator,
        estimand=estimand,
        no_overlap="drop",
        matches=m,
    )
    pd.testing.assert_frame_equal(sim, before)
    row = res.effect()
    assert row["term"] == estimand
    tidy = res.tidy()
    assert tidy["term"].tolist() == [estimand]
    assert {"estimate", "std_error", "ci_low", "ci_high", "ess_treated"} <= set(tidy.columns)
    assert row["estimator"] == f"{estimator}:pooled" and f"{m} per unit" in res.title
    # the weights are the implied weights of the matching estimate on the used rows
    design = res.design
    e = res.propensity.to_numpy()
    want = mt.match_estimate(
        design.y,
        design.d,
        np.log(e / (1 - e)),
        estimand=estimand,
        matches=m,
        codes=design.codes,
        n_groups=design.n_clusters,
        within=estimator == "match_within",
    )
    assert res.estimate == pytest.approx(want.estimate, abs=1e-12)
    assert res.std_error == pytest.approx(want.std_error, rel=1e-12)
    np.testing.assert_allclose(res.weights.to_numpy(), want.weights, atol=1e-12)
    assert res.weights.index.equals(design.rows)
    assert res.balance()["component"].unique().tolist() == ["overall", "within", "between"]


def test_fit_refusals(sim):
    with pytest.raises(ArgumentError, match="`matches` is the number of matches"):
        weighting.fit(sim, "y", **KW, propensity="pooled", estimator="ipw", matches=2)
    with pytest.raises(ArgumentError, match="matches must be an integer"):
        weighting.fit(sim, "y", **KW, propensity="pooled", estimator="match", matches=0)
    one_arm = sim.copy()
    one_arm.loc[one_arm["cluster"] == "school_3", "d"] = 1
    with pytest.raises(DataError, match="school_3"):
        weighting.fit(one_arm, "y", **KW, propensity="pooled", estimator="match_within")
    with pytest.raises(DataError, match=r"matches=30 within clusters.*'cluster'"):
        weighting.fit(
            sim,
            "y",
            **KW,
            propensity="pooled",
            estimator="match_within",
            no_overlap="drop",
            matches=30,
        )
