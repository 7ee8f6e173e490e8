r"""Bayesian multi-site IV: treatment and outcome as one bivariate model (a small PyMC model).

bambi cannot fit two outcomes jointly, so ``method="multisite_re"`` with
``engine=Bayes(...)`` builds this model in PyMC (Statistical Rethinking §14.3,
with site-varying coefficients):

.. math::

    \begin{pmatrix} d_{ij} \\ y_{ij} \end{pmatrix} \sim N\!\left(
    \begin{pmatrix} a_j + \pi_j z_{ij} + x_{ij}'c_d \\
                    b_j + \beta_j d_{ij} + x_{ij}'c_y \end{pmatrix},
    \Sigma \right),\qquad
    (\pi_j, \beta_j)' \sim N(\mu, \Omega).

The site intercepts :math:`a_j, b_j` are free (site fixed effects, as in
site-FE 2SLS, so a share assigned that differs between sites and correlates
with their levels biases nothing); with flat priors they integrate out
exactly, leaving the bivariate normal likelihood of the within-site deviations
on :math:`n_j - 1` degrees of freedom per site. The first stage
:math:`\pi_j` and the effect :math:`\beta_j` vary between sites and are
partially pooled: :math:`\mu_\beta` is the mean site LATE over the population
of sites, :math:`\Omega` holds the spread of site LATEs and the
compliance–effect correlation. Priors, on the scale of the standardized outcome
and treatment: normal(0, 1) on means and slopes, half-normal(1) on SDs, LKJ(2)
on the correlations of :math:`\Omega` and :math:`\Sigma` (the error correlation
is the confounding of treatment and outcome that the instrument removes).

The likelihood is computed from per-site cross-products of the within-site
deviations of :math:`(d, y, z, x)` — the log-density summed over a site is a
quadratic form in them — so each gradient costs O(sites), not O(observations),
and the posterior is the same as with one term per observation. A linear
(Gaussian) first stage for a binary treatment is the linear probability model
of 2SLS: the slopes are right, the likelihood of ``d`` is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlmci.designs.iv.design import IVData, demean, group_sums
from mlmci.engines import Bayes
from mlmci.results import Fit

__all__ = ["IVBayesResult", "build_model", "fit_bayes", "prior_draws"]

#: The posterior variables the convergence gate checks: the parameters the chapter reads
#: (means, SDs, correlations, slopes), not the Cholesky factors they are computed from.
GATED = (
    "mu",
    "c_d",
    "c_y",
    "late_mean",
    "late_sd",
    "first_stage_mean",
    "first_stage_sd",
    "corr_first_stage_late",
    "corr_resid_dy",
    "sd_resid",
)


def _moments(design: IVData):
    """Per-site cross-products of the within-site deviations of standardized (d, y, z, x)."""
    n_sites, codes = design.n_sites, design.codes
    scale_y, scale_d = design.y.std(), design.d.std()
    x_sd = design.x.std(axis=0)
    w = np.column_stack(
        [
            design.d / scale_d,
            design.y / scale_y,
            design.z[:, 0],
            design.x / np.where(x_sd > 0, x_sd, 1.0),
        ]
    )
    w = demean(codes, w, n_sites)
    moments = group_sums(codes, np.einsum("ia,ib->iab", w, w), n_sites)
    sizes = np.bincount(codes, minlength=n_sites)
    return moments, sizes, scale_y, scale_d


def build_model(design: IVData):
    """The PyMC model (see the module docstring), with coordinates named by the sites."""
    import pymc as pm
    import pytensor.tensor as pt

    moments, sizes, scale_y, scale_d = _moments(design)
    n_sites, p = design.n_sites, design.x.shape[1]
    coords = {
        "site": [str(s) for s in design.sites],
        "coef": ["pi", "beta"],
        "covariate": list(design.covariates),
    }
    m = {
        (a, b): pt.as_tensor_variable(moments[:, i, k])
        for i, a in enumerate("dyz")
        for k, b in enumerate("dyz")
    }
    mx = {a: pt.as_tensor_variable(moments[:, i, 3:]) for i, a in enumerate("dyz")}  # (J, p)
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", 0.0, 1.0, dims="coef")
        sd_site = pm.HalfNormal("sd_site", 1.0, dims="coef")
        # LKJ(2) on a 2 x 2 correlation is (r + 1) / 2 ~ Beta(2, 2); written out, the graph
        # stays elementwise (fast to compile and to differentiate).
        corr_site = pm.Deterministic("corr_site", 2 * pm.Beta("corr_site_01", 2.0, 2.0) - 1)
        # First stages are well determined in every site (centred); a site's LATE is a
        # ratio and can be poorly determined where compliance is low, so beta_j is
        # non-centred given pi_j (the centred form failed the gate on STAR grade 3).
        pi = pm.Normal("pi", mu[0], sd_site[0], dims="site")
        beta_offset = pm.Normal("beta_offset", 0.0, 1.0, dims="site")
        beta = pm.Deterministic(
            "beta",
            mu[1]
            + corr_site * sd_site[1] / sd_site[0] * (pi - mu[0])
            + sd_site[1] * pt.sqrt(1 - corr_site**2) * beta_offset,
            dims="site",
        )
        c_d = pm.Normal("c_d", 0.0, 1.0, dims="covariate")
        c_y = pm.Normal("c_y", 0.0, 1.0, dims="covariate")
        sd_resid = pm.HalfNormal("sd_resid", 1.0, shape=2)
        corr_resid = pm.Deterministic("corr_resid", 2 * pm.Beta("corr_resid_01", 2.0, 2.0) - 1)
        # Residuals r_d = d - pi z - x'c_d and r_y = y - beta d - x'c_y; their sums of
        # squares and cross-products per site, written out in the moments.
        rdd = m["d", "d"] - 2 * pi * m["d", "z"] + pi**2 * m["z", "z"]
        ryy = m["y", "y"] - 2 * beta * m["d", "y"] + beta**2 * m["d", "d"]
        rdy = m["d", "y"] - beta * m["d", "d"] - pi * m["z", "y"] + pi * beta * m["d", "z"]
        if p:
            # Elementwise products and sums only: BLAS calls on these tiny arrays cost more
            # in thread wake-ups than they compute (a 440 s run against 10 s with nutpie).
            xd, xy, xz = mx["d"], mx["y"], mx["z"]
            rdd += -2 * pt.sum((xd - pi[:, None] * xz) * c_d, axis=1)
            ryy += -2 * pt.sum((xy - beta[:, None] * xd) * c_y, axis=1)
            rdy += -pt.sum((xy - beta[:, None] * xd) * c_d, axis=1) - pt.sum(
                (xd - pi[:, None] * xz) * c_y, axis=1
            )
            sxx = pt.as_tensor_variable(moments[:, 3:, 3:].sum(axis=0))  # shared coefficients
            shared_dd = pt.sum(sxx * c_d[:, None] * c_d[None, :])
            shared_yy = pt.sum(sxx * c_y[:, None] * c_y[None, :])
            shared_dy = pt.sum(sxx * c_d[:, None] * c_y[None, :])
        else:
            shared_dd = shared_yy = shared_dy = 0.0
        sdd, syy, sdy = rdd.sum() + shared_dd, ryy.sum() + shared_yy, rdy.sum() + shared_dy
        v11, v22 = sd_resid[0] ** 2, sd_resid[1] ** 2
        v12 = corr_resid * sd_resid[0] * sd_resid[1]
        det = v11 * v22 * (1 - corr_resid**2)
        quad = (v22 * sdd - 2 * v12 * sdy + v11 * syy) / det
        dof = float(sizes.sum() - n_sites)  # one intercept per site and equation integrated out
        pm.Potential("loglik", -0.5 * dof * pt.log(det) - 0.5 * quad - dof * np.log(2 * np.pi))
        to_late = scale_y / scale_d
        pm.Deterministic("late_mean", mu[1] * to_late)
        pm.Deterministic("late_sd", sd_site[1] * to_late)
        pm.Deterministic("first_stage_mean", mu[0] * scale_d)
        pm.Deterministic("first_stage_sd", sd_site[0] * scale_d)
        pm.Deterministic("corr_first_stage_late", corr_site)
        pm.Deterministic("corr_resid_dy", corr_resid)
        pm.Deterministic("site_late", beta * to_late, dims="site")
    return model


def prior_draws(design: IVData, *, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Draws from the model's prior of the quantities the chapter reads, on the data's scale.

    The columns are ``late_mean, late_sd, first_stage_mean, first_stage_sd,
    corr_first_stage_late``: the prior check of what the group SDs and the
    correlation may be before the data speak. (The likelihood is a Potential,
    which prior sampling ignores, as it should.)
    """
    from mlmci import bayes

    names = ["late_mean", "late_sd", "first_stage_mean", "first_stage_sd", "corr_first_stage_late"]
    return bayes.prior_draws(build_model(design), names, draws=draws, seed=seed)


@dataclass(repr=False)
class IVBayesResult(Fit):
    """The Bayesian multi-site IV posterior, on mlmci's result protocol.

    ``tidy(prob)`` (posterior means, SDs, HDIs) has the rows ``term`` = the
    treatment (the mean site LATE, the headline), ``"sd(LATE)"``,
    ``"first_stage"``, ``"sd(first_stage)"``, ``"corr(first_stage,LATE)"``,
    ``"corr(errors)"`` (the confounding the instrument removes) and one row per
    site (``group``) with its LATE.
    """

    treatment: str
    idata: object
    diagnostics: pd.DataFrame
    gated: bool
    settings: object
    model: object
    notes: tuple[str, ...] = ()
    bayesian: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def headline(self) -> str:  # type: ignore[override]
        return self.treatment

    @property
    def title(self) -> str:  # type: ignore[override]
        s = self.settings
        return (
            f"IV: Bayesian bivariate multi-site model (PyMC, {s.backend}, {s.chains} x "
            f"{s.draws} draws)"
        )

    @property
    def native(self) -> dict:  # type: ignore[override]
        return {"model": self.model, "idata": self.idata}

    def _tidy(self, prob: float) -> pd.DataFrame:
        from mlmci.bayes import _refuse_ungated_in_book, summarize

        _refuse_ungated_in_book(self.gated)
        names = {
            "late_mean": self.treatment,
            "late_sd": "sd(LATE)",
            "first_stage_mean": "first_stage",
            "first_stage_sd": "sd(first_stage)",
            "corr_first_stage_late": "corr(first_stage,LATE)",
            "corr_resid_dy": "corr(errors)",
            "site_late": self.treatment,
        }
        table = summarize(self.idata, prob=prob, var_names=list(names), estimator="bayes")
        table["term"] = table["term"].map(names)
        return table

    def _summary_table(self) -> pd.DataFrame:
        table = self.tidy()
        return table[table["group"].isna()].drop(columns=["group"])


def fit_bayes(design: IVData, engine: Bayes) -> IVBayesResult:
    """Sample the bivariate model through :func:`mlmci.bayes.sample` (book settings, gate)."""
    from mlmci import bayes
    from mlmci.designs.iv.multisite import site_effects

    site_effects(design)  # the same refusals as the REML twin: one instrument, sites large enough
    model = build_model(design)
    idata, diagnostics, gated, settings = bayes.sample(
        model, sampler=engine.sampler, gate=engine.gate, var_names=list(GATED)
    )
    notes = () if gated else ("ungated: quick mode or gate=False; never for the book.",)
    return IVBayesResult(
        treatment=design.treatment,
        idata=idata,
        diagnostics=diagnostics,
        gated=gated,
        settings=settings,
        model=model,
        notes=notes,
    )
