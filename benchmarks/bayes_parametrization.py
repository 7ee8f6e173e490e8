"""bambi's default (non-centred) parametrization against centred ones: min-ESS per second.

Run with ``make bench`` (not part of CI). One varying-intercept-and-slope Gaussian
model, ``y ~ x + (1 | g) + (0 + x | g)`` (independent intercept and slope), on
simulated data with known truth (intercepts N(0, 1), slopes N(0.5, 0.3^2),
residual SD 1, x ~ N(0, 1); the simulator of ``mixed_vs_lme4.py``), in two cases:
data-rich groups (200 x 40, the lme4 benchmark's data) and data-poor groups (200 x 4).
Three variants, all sampled with the book's settings (``mlmci.bayes.SETTINGS``:
chains, draws, tune, seed, backend):

1. bambi with its defaults (non-centred group effects), via ``mlmci.bayes.fit``;
2. bambi with ``noncentered=False``, same sampler;
3. a hand-written PyMC model with bambi's default priors for this model (read off
   the built bambi model, so they are the same data-dependent priors), but
   hierarchically centred: group intercepts N(mu_a, sigma_a) and slopes
   N(mu_b, sigma_b) around the population means, sampled with ``mlmci.bayes.sample``.

For each: sampling time (PyMC's own ``sampling_time``, tuning included, compilation
excluded) and the whole call's wall time (model build and compilation included);
the minimum bulk ESS over the population parameters and over the group-level
ones (the group coefficients and their deviations from the population means,
computed alike for every variant), both per second of sampling; max R-hat;
divergences; whether the book's gate (``check_convergence``, default thresholds,
on every variable the posterior holds) passes; and the posterior means of the
population parameters with their MCSEs, with a PASS/FAIL line per parameter for
variant 3 (and 2) agreeing with variant 1 within 3 combined MCSEs, so a fast
wrong answer cannot pass for a win.

By default every variant uses the book's settings unchanged (about 5 minutes on
a 2-core machine); ``--draws``/``--tune``/``--chains`` change them for ALL variants
alike and the output says so (the recorded run in README.md used the defaults).

    python benchmarks/bayes_parametrization.py [--draws N] [--tune N] [--chains N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from mixed_vs_lme4 import varying_slopes

FORMULA = "y ~ x + (1 | g) + (0 + x | g)"
TRUTH = {"mu_a": 0.0, "mu_b": 0.5, "sigma_a": 1.0, "sigma_b": 0.3, "sigma": 1.0}
POP = list(TRUTH)
# bambi's names of the population parameters.
BAMBI_NAMES = {
    "mu_a": "Intercept",
    "mu_b": "x",
    "sigma_a": "1|g_sigma",
    "sigma_b": "x|g_sigma",
    "sigma": "sigma",
}
CASES = [("data-rich groups (200 x 40)", 200, 40, 3), ("data-poor groups (200 x 4)", 200, 4, 6)]
VARIANTS = ["bambi default (non-centred)", "bambi noncentered=False", "PyMC hierarchically centred"]


def bambi_priors(data: pd.DataFrame) -> dict[str, float]:
    """bambi's default priors for FORMULA on ``data``, read off the built model."""
    import bambi as bmb

    model = bmb.Model(FORMULA, data)
    model.build()
    mu = model.components["mu"]
    icpt = mu.intercept_term.prior
    slope = mu.common_terms["x"].prior
    ga = mu.group_specific_terms["1|g"].prior
    gb = mu.group_specific_terms["x|g"].prior
    sig = model.components["sigma"].prior
    assert icpt.name == slope.name == ga.name == gb.name == "Normal", (icpt, slope, ga, gb)
    assert ga.args["sigma"].name == gb.args["sigma"].name == "HalfNormal"
    assert float(ga.args["mu"]) == float(gb.args["mu"]) == 0.0
    assert sig.name == "HalfStudentT", sig
    return {
        "icpt_mu": float(icpt.args["mu"]),
        "icpt_sigma": float(icpt.args["sigma"]),
        "slope_mu": float(slope.args["mu"]),
        "slope_sigma": float(slope.args["sigma"]),
        "sigma_a_scale": float(ga.args["sigma"].args["sigma"]),
        "sigma_b_scale": float(gb.args["sigma"].args["sigma"]),
        "sigma_nu": float(sig.args["nu"]),
        "sigma_scale": float(sig.args["sigma"]),
        "text": str(model),
    }


def centred_model(data: pd.DataFrame, p: dict[str, float]):
    """The hierarchically centred model with bambi's default priors.

    bambi centres the common predictors, so its Intercept prior is on the intercept
    at mean(x), ``mu_a + mean(x) * mu_b``; ``mu_a_at_xbar`` carries that prior here
    and ``mu_a`` is derived from it, which makes the joint prior of
    (mu_a, mu_b, sigma_a, sigma_b, sigma) exactly bambi's.
    """
    import pymc as pm

    codes, levels = pd.factorize(data["g"], sort=True)
    x = data["x"].to_numpy(float)
    xbar = float(x.mean())
    with pm.Model(coords={"g": levels}) as model:
        mu_a_c = pm.Normal("mu_a_at_xbar", p["icpt_mu"], p["icpt_sigma"])
        mu_b = pm.Normal("mu_b", p["slope_mu"], p["slope_sigma"])
        mu_a = pm.Deterministic("mu_a", mu_a_c - xbar * mu_b)
        sigma_a = pm.HalfNormal("sigma_a", p["sigma_a_scale"])
        sigma_b = pm.HalfNormal("sigma_b", p["sigma_b_scale"])
        sigma = pm.HalfStudentT("sigma", nu=p["sigma_nu"], sigma=p["sigma_scale"])
        a = pm.Normal("a", mu_a, sigma_a, dims="g")
        b = pm.Normal("b", mu_b, sigma_b, dims="g")
        pm.Normal("y", a[codes] + b[codes] * x, sigma, observed=data["y"].to_numpy(float))
    return model


def common_quantities(idata, variant: int):
    """Population parameters and group-level quantities under shared names, for every variant.

    Group level: the group coefficients a_g, b_g and their deviations from the
    population means (bambi's ``1|g``, ``x|g``).
    """
    import xarray as xr

    post = idata.posterior
    if variant < 2:
        pop = {k: post[v] for k, v in BAMBI_NAMES.items()}
        dev_a, dev_b = (
            post[n].rename({next(d for d in post[n].dims if d not in ("chain", "draw")): "g"})
            for n in ("1|g", "x|g")
        )
        coef_a, coef_b = pop["mu_a"] + dev_a, pop["mu_b"] + dev_b
    else:
        pop = {k: post[k] for k in POP}
        coef_a, coef_b = post["a"], post["b"]
        dev_a, dev_b = coef_a - pop["mu_a"], coef_b - pop["mu_b"]
    group = {"coef_a": coef_a, "coef_b": coef_b, "dev_a": dev_a, "dev_b": dev_b}
    group = {k: v.drop_vars("g", errors="ignore") for k, v in group.items()}
    return xr.Dataset(pop), xr.Dataset(group)


def measure(idata, variant: int, wall: float) -> tuple[dict, pd.DataFrame]:
    import arviz as az

    from mlmci import bayes
    from mlmci.errors import ConvergenceError

    pop, group = common_quantities(idata, variant)
    ess_pop = az.ess(pop, method="bulk")
    ess_grp = az.ess(group, method="bulk")
    min_pop = min(float(ess_pop[k]) for k in POP)
    min_grp = min(float(ess_grp[k].min()) for k in group.data_vars)
    mcse = az.mcse(pop, method="mean")
    seconds = float(idata.posterior.attrs.get("sampling_time", np.nan))
    diag = bayes.diagnose(idata)
    try:
        bayes.check_convergence(idata)
        gate, failing = "pass", 0
    except ConvergenceError as err:
        gate, failing = "FAIL", len(err.diagnostics)
    stats = idata.sample_stats
    row = {
        "sampling (s)": seconds,
        "wall incl. build (s)": wall,
        "min ESS pop": min_pop,
        "min ESS group": min_grp,
        "min ESS all": min(min_pop, min_grp),
        "min ESS/s pop": min_pop / seconds,
        "min ESS/s all": min(min_pop, min_grp) / seconds,
        "max R-hat": float(diag["r_hat"].max()),
        "divergences": int(np.asarray(stats["diverging"]).sum()),
        "mean leapfrog steps": float(np.asarray(stats["n_steps"]).mean()),
        "gate": gate if gate == "pass" else f"FAIL ({failing} params)",
        "min ESS pop param": min(POP, key=lambda k: float(ess_pop[k])),
    }
    est = pd.DataFrame(
        {
            "mean": [float(pop[k].mean()) for k in POP],
            "mcse": [float(mcse[k]) for k in POP],
            "truth": [TRUTH[k] for k in POP],
        },
        index=POP,
    )
    return row, est


def run_case(n_groups: int, size: int, seed: int, settings) -> tuple[list, list]:
    from mlmci import bayes

    data = varying_slopes(n_groups, size, seed)
    data["g"] = data["g"].astype(str).str.zfill(3)  # a factor for bambi, same order for PyMC
    priors = bambi_priors(data)
    print(priors["text"], file=sys.stderr)
    rows, ests = [], []
    for variant, label in enumerate(VARIANTS):
        print(f"  sampling: {label} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        if variant < 2:
            options = {} if variant == 0 else {"noncentered": False}
            res = bayes.fit(FORMULA, data, sampler=settings, gate=False, **options)
            idata = res.idata
        else:
            model = centred_model(data, priors)
            idata, _, _, _ = bayes.sample(model, sampler=settings, gate=False)
        wall = time.perf_counter() - start
        row, est = measure(idata, variant, wall)
        print(
            f"    {row['sampling (s)']:.1f} s sampling, min ESS pop {row['min ESS pop']:.0f}, "
            f"group {row['min ESS group']:.0f}, gate {row['gate']}",
            file=sys.stderr,
            flush=True,
        )
        rows.append({"variant": label, **row})
        ests.append(est)
    return rows, ests


def agreement(ests: list[pd.DataFrame], other: int) -> list[str]:
    base, alt = ests[0], ests[other]
    lines = []
    for k in POP:
        diff = alt.loc[k, "mean"] - base.loc[k, "mean"]
        tol = 3 * float(np.hypot(alt.loc[k, "mcse"], base.loc[k, "mcse"]))
        verdict = "PASS" if abs(diff) <= tol else "FAIL"
        lines.append(
            f"    {verdict}  {k:8s} ({other + 1}) - (1) = {diff:+.5f}, 3 combined MCSE = {tol:.5f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=None, help="draws per chain, for ALL variants")
    parser.add_argument("--tune", type=int, default=None, help="tuning steps, for ALL variants")
    parser.add_argument("--chains", type=int, default=None, help="chains, for ALL variants")
    args = parser.parse_args()

    from mlmci import bayes, runmode

    if runmode.quick() or runmode.book():
        print("unset MLMCI_QUICK and MLMCI_BOOK: mocked draws time nothing", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore", FutureWarning)
    changes = {
        k: v for k, v in vars(args).items() if v is not None and v != getattr(bayes.SETTINGS, k)
    }
    settings = bayes.SETTINGS.replace(progressbar=False, **changes)
    import bambi
    import pymc

    print(
        f"bambi {bambi.__version__}, PyMC {pymc.__version__}; backend {settings.backend}, "
        f"{settings.chains} chains x {settings.draws} draws (+{settings.tune} tune) on "
        f"{settings.cores} cores, seed {settings.seed}, target_accept {settings.target_accept}"
    )
    if changes:
        print(f"NOT the book's settings: changed {changes} for all variants alike")
    print(f"model: {FORMULA}; truth {TRUTH}")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}")
    print("sampling (s): PyMC's sampling_time (tuning + draws, compilation excluded);")
    print("min ESS: bulk; pop = mu_a, mu_b, sigma_a, sigma_b, sigma; group = group")
    print("coefficients and their deviations; gate = check_convergence on every variable.")
    for name, n_groups, size, seed in CASES:
        rows, ests = run_case(n_groups, size, seed, settings)
        table = pd.DataFrame(rows).set_index("variant")
        base = table.iloc[0]
        table["ratio ESS/s all vs (1)"] = table["min ESS/s all"] / base["min ESS/s all"]
        table["ratio ESS/s pop vs (1)"] = table["min ESS/s pop"] / base["min ESS/s pop"]
        print(f"\n=== {name} ===")
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(table.T.to_string(float_format=lambda v: f"{v:.4g}"))
            means = pd.concat({f"({i + 1}) {VARIANTS[i]}": e for i, e in enumerate(ests)}, axis=1)
            print("\nposterior means and MCSEs of the population parameters:")
            print(means.to_string(float_format=lambda v: f"{v:.4f}"))
        print("agreement with (1) within 3 combined MCSEs:")
        for other in (2, 1):
            print("\n".join(agreement(ests, other)))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
