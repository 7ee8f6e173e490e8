"""The bivariate random-effects REML of mlmci.iv's ``multisite_re`` against R's metafor.

``mlmci.designs.iv.multisite.bivariate_reml(est, cov)`` fits
:math:`\\hat\\theta_j \\sim N(\\mu, T + S_j)` to the site ITT and first-stage estimates;
metafor fits the same model as ``rma.mv(yi, V, mods = ~ outcome - 1, random = ~ outcome |
site, struct = "UN", method = "REML")`` on the stacked estimates. The inputs
(``tests/reference/metafor_bivariate_input.csv``) are the per-site estimates of two
simulated designs, written by running this file (``python tests/test_reference_metafor.py``);
the R script ``tests/reference/metafor_bivariate.R`` wrote ``metafor_bivariate.csv`` from
them, and is rerun live when ``Rscript`` is present.

- ``interior``: T well inside the parameter space. The hyper-means, their covariance and T
  agree with metafor to the optimizers' precision (metafor's nlminb and bobyqa fits agree
  with each other to about 3e-8 relative in T; ours with them to about 5e-7).
- ``boundary``: no between-site spread of the first stage in the simulation; the optimum
  has the correlation at -1 (both fits: ours flags ``boundary``, metafor's rho is
  -1 + 2e-15). On a flat boundary the parameters are poorly determined, so only the REML
  criterion is compared: ours must be at least metafor's - 1e-6.

metafor's REML log-likelihood (``REMLf = TRUE``, its default) is
:math:`-\\tfrac12[(k-p)\\log 2\\pi - \\log|X'X| + \\sum_j \\log|V_j| + \\log|X'V^{-1}X|
+ r'V^{-1}r]` with :math:`k = 2J` stacked estimates, :math:`p = 2` and :math:`X'X = J I_2`;
``bivariate_reml``'s ``neg_reml`` drops the constants, so
:math:`\\ell = -\\text{neg\\_reml} - \\tfrac{k-p}{2}\\log 2\\pi + \\log J`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmci.designs.iv.multisite import BivariateFit, bivariate_reml

REF = Path(__file__).resolve().parent / "reference"
SCRIPT = REF / "metafor_bivariate.R"
INPUT = REF / "metafor_bivariate_input.csv"
STORED = REF / "metafor_bivariate.csv"

#: The simulated designs whose per-site estimates are the inputs (``simulate_multisite_iv``).
CASES = {
    "interior": dict(
        n_sites=25,
        n_per_site=150,
        size_cv=0.3,
        compliance_sd=0.6,
        late_sd=0.3,
        compliance_effect_corr=0.5,
        seed=4,
    ),
    "boundary": dict(n_sites=20, n_per_site=120, compliance_sd=0.0, late_sd=0.3, seed=9),
}
MU_RTOL = 1e-7
COV_RTOL = 5e-6  # mu's covariance and T (T relative to sqrt(T_aa T_bb))
LOGLIK_SLACK = 1e-6


def write_inputs(path: Path = INPUT) -> None:
    """Write the per-site estimates of :data:`CASES` (what ``multisite_re`` passes on)."""
    from mlmci.designs.iv.design import prepare
    from mlmci.designs.iv.multisite import site_effects
    from mlmci.simulate import simulate_multisite_iv

    frames = []
    for case, options in CASES.items():
        data, _ = simulate_multisite_iv(**options)
        design = prepare(data, "y", treatment="d", instrument="z", covariates=["x"], site="site")
        sites = site_effects(design)
        frames.append(
            pd.DataFrame(
                {
                    "case": case,
                    "site": design.sites.to_numpy(),
                    "itt": sites.est[:, 0],
                    "first_stage": sites.est[:, 1],
                    "var_itt": sites.cov[:, 0, 0],
                    "cov_itt_first_stage": sites.cov[:, 0, 1],
                    "var_first_stage": sites.cov[:, 1, 1],
                }
            )
        )
    pd.concat(frames).to_csv(path, index=False, float_format="%.17g")


def _inputs(case: str) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(INPUT)
    rows = frame[frame["case"] == case]
    est = rows[["itt", "first_stage"]].to_numpy(float)
    a, b, d = (
        rows[c].to_numpy(float) for c in ("var_itt", "cov_itt_first_stage", "var_first_stage")
    )
    cov = np.stack([np.stack([a, b], -1), np.stack([b, d], -1)], -2)
    return est, cov


def _metafor(reference: pd.DataFrame, case: str) -> dict:
    """metafor's best fit (highest log-likelihood of nlminb and bobyqa) of ``case``."""
    rows = reference[reference["case"] == case]
    fits = {
        fit: part.set_index("quantity")["value"].astype(float) for fit, part in rows.groupby("fit")
    }
    best = max(fits.values(), key=lambda values: values["loglik"])
    t11, t22, rho = best["tau2:itt"], best["tau2:first_stage"], best["rho"]
    t12 = rho * np.sqrt(t11 * t22)
    return {
        "mu": np.array([best["mu:itt"], best["mu:first_stage"]]),
        "mu_cov": np.array(
            [
                [best["vcov:itt:itt"], best["vcov:itt:first_stage"]],
                [best["vcov:itt:first_stage"], best["vcov:first_stage:first_stage"]],
            ]
        ),
        "tau": np.array([[t11, t12], [t12, t22]]),
        "loglik": best["loglik"],
        "k": int(best["k"]),
        "p": int(best["p"]),
    }


def metafor_loglik(est: np.ndarray, cov: np.ndarray, tau: np.ndarray) -> float:
    """metafor's REML log-likelihood (REMLf = TRUE) at between-site covariance ``tau``.

    Written out independently of ``bivariate_reml``: profile out mu by GLS.
    """
    n_sites = len(est)
    v_inv = np.linalg.inv(cov + tau)
    a = v_inv.sum(axis=0)
    mu = np.linalg.solve(a, np.einsum("jab,jb->a", v_inv, est))
    resid = est - mu
    k, p = 2 * n_sites, 2
    return float(
        -0.5 * (k - p) * np.log(2 * np.pi)
        + 0.5 * np.linalg.slogdet(n_sites * np.eye(2))[1]
        - 0.5 * np.sum(np.linalg.slogdet(cov + tau)[1])
        - 0.5 * np.linalg.slogdet(a)[1]
        - 0.5 * np.einsum("ja,jab,jb->", resid, v_inv, resid)
    )


def _our_loglik(fit: BivariateFit, n_sites: int) -> float:
    """``neg_reml`` on metafor's scale (see the module docstring)."""
    k, p = 2 * n_sites, 2
    return -fit.neg_reml - 0.5 * (k - p) * np.log(2 * np.pi) + np.log(n_sites)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(STORED)


def _check_interior(reference: pd.DataFrame) -> None:
    est, cov = _inputs("interior")
    ref = _metafor(reference, "interior")
    fit = bivariate_reml(est, cov)
    assert fit.converged and not fit.boundary
    np.testing.assert_allclose(fit.mu, ref["mu"], rtol=MU_RTOL)
    np.testing.assert_allclose(fit.mu_cov, ref["mu_cov"], rtol=COV_RTOL)
    scale = np.sqrt(np.outer(np.diag(ref["tau"]), np.diag(ref["tau"])))
    np.testing.assert_allclose(fit.tau / scale, ref["tau"] / scale, rtol=0, atol=COV_RTOL)
    assert _our_loglik(fit, len(est)) >= ref["loglik"] - LOGLIK_SLACK
    assert _our_loglik(fit, len(est)) == pytest.approx(ref["loglik"], abs=1e-8)


def _check_boundary(reference: pd.DataFrame) -> None:
    est, cov = _inputs("boundary")
    ref = _metafor(reference, "boundary")
    fit = bivariate_reml(est, cov)
    assert fit.converged and fit.boundary
    assert _our_loglik(fit, len(est)) >= ref["loglik"] - LOGLIK_SLACK
    # both at a correlation of -1 (ours exactly: the Cholesky factor's l22 is 0)
    corr = fit.tau[0, 1] / np.sqrt(fit.tau[0, 0] * fit.tau[1, 1])
    assert corr == pytest.approx(-1, abs=1e-6)
    assert ref["tau"][0, 1] / np.sqrt(ref["tau"][0, 0] * ref["tau"][1, 1]) == pytest.approx(
        -1, abs=1e-6
    )


def test_interior_optimum_matches_metafor(reference):
    _check_interior(reference)


def test_boundary_reml_criterion_at_least_metafors(reference):
    _check_boundary(reference)


@pytest.mark.parametrize("case", list(CASES))
def test_reml_criterion_is_metafors_loglik(reference, case):
    """The constants are right: metafor's log-likelihood, recomputed at its own estimates,
    and ``neg_reml`` at ours, both on metafor's scale."""
    est, cov = _inputs(case)
    ref = _metafor(reference, case)
    assert (ref["k"], ref["p"]) == (2 * len(est), 2)
    assert metafor_loglik(est, cov, ref["tau"]) == pytest.approx(ref["loglik"], abs=1e-8)
    fit = bivariate_reml(est, cov)
    assert metafor_loglik(est, cov, fit.tau) == pytest.approx(_our_loglik(fit, len(est)), abs=1e-10)


def test_stored_inputs_are_the_designs_site_effects(tmp_path):
    """The inputs are what ``write_inputs`` produces today (else: rerun it and the R script)."""
    fresh = tmp_path / "input.csv"
    write_inputs(fresh)
    live, stored = pd.read_csv(fresh), pd.read_csv(INPUT)
    assert live[["case", "site"]].equals(stored[["case", "site"]])
    numbers = [c for c in stored.columns if c not in ("case", "site")]
    np.testing.assert_allclose(live[numbers], stored[numbers], rtol=1e-12)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed")
def test_r_script_reproduces_stored_outputs(tmp_path) -> None:
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": os.environ["PATH"]}
    subprocess.run(
        ["Rscript", str(SCRIPT), str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    live, stored = pd.read_csv(tmp_path / STORED.name), pd.read_csv(STORED)
    assert live[["case", "fit", "quantity"]].equals(stored[["case", "fit", "quantity"]])
    # What an optimum determines reproduces tightly on any CPU: the REML criterion, and
    # the parameters nlminb reaches along its gradient path. bobyqa is derivative-free:
    # where the criterion is flat to rounding, its last iterate moves with the CPU's
    # floating point (seen: 8e-7 relative in T on one machine, with the log-likelihood
    # equal to 1e-13), so its parameters are held to the precision of the comparison
    # with ours (COV_RTOL), not to 1e-8.
    derivative_free = (live["fit"] == "bobyqa") & ~live["quantity"].isin(["loglik", "k", "p"])
    for rows, rtol in ((~derivative_free, 1e-8), (derivative_free, COV_RTOL)):
        np.testing.assert_allclose(
            live.loc[rows, "value"].to_numpy(float),
            stored.loc[rows, "value"].to_numpy(float),
            rtol=rtol,
        )
    _check_interior(live)
    _check_boundary(live)


if __name__ == "__main__":
    write_inputs()
    print(f"wrote {INPUT}; now run: Rscript {SCRIPT.relative_to(Path.cwd())}")


@pytest.mark.parametrize("seed", range(12))
def test_no_better_point_near_the_optimum(seed):
    """The optimizer (L-BFGS-B on the analytic gradient) stops at a local optimum of the
    independently written criterion: Nelder-Mead, which uses no gradient, started from
    our T, finds nothing better by more than 1e-8 (interior and boundary optima alike)."""
    from scipy import optimize

    from mlmci.designs.iv import prepare
    from mlmci.designs.iv.multisite import site_effects
    from mlmci.simulate import simulate_multisite_iv

    data, _ = simulate_multisite_iv(
        n_sites=12 + 3 * seed,
        n_per_site=40,
        compliance_sd=(0.0, 0.6)[seed % 2],
        late_sd=(0.3, 0.0, 0.2)[seed % 3],
        seed=seed,
    )
    sites = site_effects(prepare(data, "y", treatment="d", instrument="z", site="site"))
    fit = bivariate_reml(sites.est, sites.cov)

    def negloglik(p):
        chol = np.array([[p[0], 0.0], [p[1], p[2]]])
        return -metafor_loglik(sites.est, sites.cov, chol @ chol.T)

    chol = np.linalg.cholesky(fit.tau + 1e-12 * np.eye(2))
    start = np.array([chol[0, 0], chol[1, 0], chol[1, 1]])
    polished = optimize.minimize(
        negloglik, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}
    )
    assert negloglik(start) <= polished.fun + 1e-8
