r"""The Bayesian twin of the multilevel local-linear RD (``method="mlm"``, ``engine=Bayes()``).

The same model as the REML fit, inside the same bandwidth and with the same
triangular kernel weights :math:`w_i = 1 - |x_i - c|/h`:

.. math::

    y_i \sim N\!\left(\beta_0 + a_j + (\beta_1 + t_j) D_i + \beta_2 u_i + \beta_3 D_i u_i,\;
    \sigma^2 / w_i\right),\qquad (a_j, t_j)' \sim N(0, \Omega),

with :math:`u_i = (x_i - c)/h`. The kernel weights enter as lme4's prior weights
do in the REML twin, so the likelihood is a kernel-weighted working likelihood
(the posterior of a local fit, not of a model of all the data). The hyper-mean
jump :math:`\beta_1` is the headline; a site's jump is :math:`\beta_1 + t_j`.

Priors, on the scale of the outcome standardized inside the bandwidth and of
:math:`u`: normal(0, 1) on :math:`\beta`, half-normal(1) on the two SDs of
:math:`\Omega` and on :math:`\sigma`, LKJ(2) on the correlation (written as
:math:`(r + 1)/2 \sim \text{Beta}(2, 2)`).

The site effects are integrated out: given the hyper-parameters they are
normal, so the sampler sees only the eight hyper-parameters (the likelihood of
a site is a 2 x 2 determinant-lemma / Woodbury expression in its weighted
cross-products of :math:`(1, D, u, Du, y)`, O(sites) per gradient), and each
posterior draw's site effects are then drawn from their conditional normal
(composition sampling: exact draws of the joint posterior). With a dozen or so
elections per state inside the bandwidth, the SD of the site jumps is poorly
determined and reaches toward zero; sampled jointly with the site effects, in
either parametrization, that geometry slows the sampler (the non-centred form
missed the gate's R-hat on the Senate data with nutpie), integrated out it
does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlmci.engines import Bayes
from mlmci.results import Fit

__all__ = ["RDBayesResult", "build_model", "fit_bayes", "prior_draws"]

#: The posterior variables the convergence gate checks: those the results read.
GATED = ("beta", "jump_mean", "jump_sd", "intercept_sd", "corr_site", "sigma")
COEFS = ("intercept", "jump", "slope", "slope_change")


@dataclass(frozen=True)
class LocalData:
    """The observations inside the bandwidth, with their kernel weights and sites."""

    y: np.ndarray
    d: np.ndarray
    u: np.ndarray  # (x - cutoff) / h
    w: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    h: float

    @property
    def n_sites(self) -> int:
        return len(self.labels)

    @property
    def centre(self) -> float:
        """The mean of the outcome inside the bandwidth, where the priors are centred."""
        return float(np.mean(self.y))

    @property
    def scale(self) -> float:
        """The SD of the outcome inside the bandwidth, the unit of the priors."""
        sd = float(np.std(self.y))
        return sd if sd > 0 else 1.0

    def regressors(self) -> np.ndarray:
        """``(1, D, u, D u)``, one row per observation."""
        return np.column_stack([np.ones_like(self.u), self.d, self.u, self.d * self.u])


def local_data(y, x, codes, labels, *, cutoff: float, h: float) -> LocalData:
    """The rows with ``|x - cutoff| < h`` and their triangular kernel weights."""
    u = (x - cutoff) / h
    keep = np.abs(u) < 1
    return LocalData(
        y=y[keep],
        d=(u[keep] >= 0).astype(float),
        u=u[keep],
        w=1.0 - np.abs(u[keep]),
        codes=codes[keep],
        labels=np.asarray(labels),
        h=float(h),
    )


def _moments(local: LocalData) -> np.ndarray:
    """Per-site weighted cross-products of ``(1, D, u, Du, y)``, ``y`` standardized."""
    v = np.column_stack([local.regressors(), (local.y - local.centre) / local.scale])
    out = np.zeros((local.n_sites, 5, 5))
    np.add.at(out, local.codes, local.w[:, None, None] * np.einsum("ia,ib->iab", v, v))
    return out


def _omega(sd_site, corr):
    """The 2 x 2 covariance of (a_j, t_j) as its three distinct entries."""
    return sd_site[0] ** 2, corr * sd_site[0] * sd_site[1], sd_site[1] ** 2


def _site_posterior(xp, m, beta, sigma2, omega):
    """Per-site pieces of the model with the site effects integrated out.

    ``xp`` is numpy or pytensor.tensor, ``m`` the moments (J, 5, 5), ``omega`` the
    entries (o11, o12, o22). With A_j = Z'WZ and g_j = Z'W(y - X beta) (Z = (1, D)),
    B_j = sigma^2 I + Omega A_j; the site effects given everything else are
    N(B^-1 Omega g, sigma^2 B^-1 Omega). Returns (log det B, rWr, q = g'B^-1 Omega g,
    the conditional means (2 arrays) and covariances (3 arrays)).
    """
    o11, o12, o22 = omega
    a11, a12, a22 = m[:, 0, 0], m[:, 0, 1], m[:, 1, 1]
    # Elementwise products and sums, no dot products: BLAS calls on these tiny arrays
    # cost more to compile and to call than they compute (as in the IV twin).
    mb = (m[:, :4, :4] * beta).sum(axis=2)  # M_uu beta, (J, 4)
    g1, g2 = m[:, 0, 4] - mb[:, 0], m[:, 1, 4] - mb[:, 1]
    rwr = m[:, 4, 4] - 2 * (m[:, :4, 4] * beta).sum(axis=1) + (mb * beta).sum(axis=1)
    b11, b12 = sigma2 + o11 * a11 + o12 * a12, o11 * a12 + o12 * a22
    b21, b22 = o12 * a11 + o22 * a12, sigma2 + o12 * a12 + o22 * a22
    det_b = b11 * b22 - b12 * b21
    og1, og2 = o11 * g1 + o12 * g2, o12 * g1 + o22 * g2  # Omega g
    mean1, mean2 = (b22 * og1 - b12 * og2) / det_b, (b11 * og2 - b21 * og1) / det_b
    q = g1 * mean1 + g2 * mean2
    # sigma^2 B^-1 Omega, symmetric in exact arithmetic
    v11 = sigma2 * (b22 * o11 - b12 * o12) / det_b
    v12 = sigma2 * (b22 * o12 - b12 * o22) / det_b
    v22 = sigma2 * (b11 * o22 - b21 * o12) / det_b
    return xp.log(det_b), rwr, q, (mean1, mean2), (v11, v12, v22)


def build_model(local: LocalData):
    """The PyMC model (see the module docstring), site effects integrated out."""
    import pymc as pm
    import pytensor.tensor as pt

    m = pt.as_tensor_variable(_moments(local))
    n_obs = float(len(local.y))
    n_sites = float(local.n_sites)
    scale = local.scale
    with pm.Model(coords={"coef": list(COEFS)}) as model:
        beta = pm.Normal("beta", 0.0, 1.0, dims="coef")
        sd_site = pm.HalfNormal("sd_site", 1.0, shape=2)
        corr = pm.Deterministic("corr_site", 2 * pm.Beta("corr_site_01", 2.0, 2.0) - 1)
        sigma = pm.HalfNormal("sigma", 1.0)
        sigma2 = sigma**2
        logdet_b, rwr, q, _, _ = _site_posterior(pt, m, beta, sigma2, _omega(sd_site, corr))
        # y_j ~ N(X_j beta, sigma^2 W_j^-1 + Z_j Omega Z_j'), by the determinant lemma and
        # Woodbury on the 2 x 2 blocks (constants dropped).
        pm.Potential(
            "loglik",
            -0.5 * ((n_obs - 2 * n_sites) * pt.log(sigma2) + pt.sum(logdet_b))
            - 0.5 * pt.sum(rwr - q) / sigma2,
        )
        pm.Deterministic("jump_mean", beta[1] * scale)
        pm.Deterministic("jump_sd", sd_site[1] * scale)
        pm.Deterministic("intercept_sd", sd_site[0] * scale)
    return model


def _draw_site_effects(idata, local: LocalData, seed: int) -> None:
    """Add each draw's site intercepts and jumps (outcome scale) to the posterior.

    Given a posterior draw of the hyper-parameters, the site effects are normal
    (:func:`_site_posterior`); one draw from that normal per posterior draw is a
    draw from their joint posterior (composition sampling).
    """
    import xarray as xr

    post = idata.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    beta = post["beta"].to_numpy().reshape(-1, 4)
    sd = post["sd_site"].to_numpy().reshape(-1, 2)
    corr = post["corr_site"].to_numpy().ravel()
    sigma2 = post["sigma"].to_numpy().ravel() ** 2
    moments = _moments(local)
    pieces = [
        _site_posterior(np, moments, beta[k], sigma2[k], _omega(sd[k], corr[k]))[3:]
        for k in range(len(beta))
    ]
    (m1, m2), (v11, v12, v22) = (
        [np.array([p[i][c] for p in pieces]) for c in range(len(pieces[0][i]))] for i in (0, 1)
    )
    rng = np.random.default_rng(seed)
    e1, e2 = rng.standard_normal((2, *m1.shape))
    l11 = np.sqrt(np.clip(v11, 0, None))
    l21 = np.where(l11 > 0, v12 / np.where(l11 > 0, l11, 1), 0.0)
    l22 = np.sqrt(np.clip(v22 - l21**2, 0, None))
    a = m1 + l11 * e1
    t = m2 + l21 * e1 + l22 * e2
    scale = local.scale
    labels = local.labels.tolist()  # the data's own labels (tidy() shows them as text)
    dims = ("chain", "draw", "site")
    post["site_intercept"] = xr.DataArray(
        (a * scale).reshape(chains, draws, -1), dims=dims, coords={"site": labels}
    )
    post["site_jump"] = xr.DataArray(
        ((beta[:, 1][:, None] + t) * scale).reshape(chains, draws, -1),
        dims=dims,
        coords={"site": labels},
    )


def prior_draws(local: LocalData, *, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Prior draws of ``jump_mean`` and ``jump_sd`` on the outcome's scale.

    The prior check of what the SD of the site jumps may be before the data
    speak (the likelihood is a Potential, which prior sampling ignores).
    """
    from mlmci import bayes

    names = ["jump_mean", "jump_sd"]
    return bayes.prior_draws(build_model(local), names, draws=draws, seed=seed)


@dataclass(repr=False)
class RDBayesResult(Fit):
    """The Bayesian multilevel local-linear RD posterior, on mlmci's result protocol.

    ``tidy(prob)`` (posterior means, SDs, HDIs) has the headline row ``"jump"``
    (the hyper-mean jump), ``"sd(jump)"`` (the SD of the site jumps) and one
    ``"jump"`` row per site (``group``). ``local`` holds the observations inside
    the bandwidth, for posterior predictive checks.
    """

    idata: object
    diagnostics: pd.DataFrame
    gated: bool
    settings: object
    model: object
    local: LocalData
    notes: tuple[str, ...] = ()
    bayesian: bool = True
    headline: str | None = "jump"
    extra: dict = field(default_factory=dict)

    @property
    def h(self) -> float:
        """The bandwidth."""
        return self.local.h

    @property
    def title(self) -> str:  # type: ignore[override]
        s = self.settings
        return (
            f"Sharp RD, Bayesian multilevel local linear (PyMC, {s.backend}, {s.chains} x "
            f"{s.draws} draws, triangular kernel weights, h = {self.h:.4g}): "
            "y ~ D + x + D:x + (1 + D | site); jump = hyper-mean"
        )

    @property
    def native(self) -> dict:  # type: ignore[override]
        return {"model": self.model, "idata": self.idata}

    def _tidy(self, prob: float) -> pd.DataFrame:
        from mlmci.bayes import _refuse_ungated_in_book, summarize

        _refuse_ungated_in_book(self.gated)
        names = {"jump_mean": "jump", "jump_sd": "sd(jump)", "site_jump": "jump"}
        table = summarize(self.idata, prob=prob, var_names=list(names), estimator="mlm")
        table["term"] = table["term"].map(names)
        return table

    def sites(self, prob: float = 0.94) -> pd.DataFrame:
        """The per-site rows of ``tidy()``."""
        table = self.tidy(prob)
        return table[table["group"].notna()].reset_index(drop=True)

    def _summary_table(self) -> pd.DataFrame:
        table = self.tidy()
        return table[table["group"].isna()].drop(columns=["group"])

    def replicate_site_jumps(self, *, draws: int = 200, seed: int = 0) -> np.ndarray:
        """Site jumps re-estimated on outcomes replicated from the posterior: (draws, sites).

        For each of ``draws`` posterior draws, new outcomes are drawn from the
        model at the observed running values and weights, and each site's jump is
        re-estimated by its own kernel-weighted local-linear fit — the statistic
        of a posterior predictive check (compare its spread with that of the
        observed per-site jumps, :func:`site_jumps`).
        """
        post = self.idata.posterior
        loc = self.local
        beta = post["beta"].to_numpy().reshape(-1, 4)
        # the posterior draws of the site effects, standardized
        a = post["site_intercept"].to_numpy().reshape(beta.shape[0], -1) / loc.scale
        t = post["site_jump"].to_numpy().reshape(beta.shape[0], -1) / loc.scale - beta[:, 1:2]
        sigma = post["sigma"].to_numpy().ravel()
        rng = np.random.default_rng(seed)
        pick = rng.choice(beta.shape[0], size=min(draws, beta.shape[0]), replace=False)
        x = loc.regressors()
        out = np.empty((len(pick), loc.n_sites))
        for k, s in enumerate(pick):
            mean = x @ beta[s] + a[s, loc.codes] + t[s, loc.codes] * loc.d
            y_rep = mean + sigma[s] / np.sqrt(loc.w) * rng.standard_normal(len(mean))
            out[k] = site_jumps(loc, y_rep * loc.scale)
        return out


def site_jumps(local: LocalData, y: np.ndarray | None = None) -> np.ndarray:
    """Each site's own kernel-weighted local-linear jump (``y``: default the observed)."""
    y = local.y if y is None else y
    x = local.regressors()
    xtx = np.zeros((local.n_sites, 4, 4))
    xty = np.zeros((local.n_sites, 4))
    np.add.at(xtx, local.codes, local.w[:, None, None] * np.einsum("ia,ib->iab", x, x))
    np.add.at(xty, local.codes, (local.w * y)[:, None] * x)
    return np.linalg.solve(xtx, xty[:, :, None])[:, 1, 0]


def fit_bayes(local: LocalData, engine: Bayes, notes: tuple[str, ...]) -> RDBayesResult:
    """Sample the model through :func:`mlmci.bayes.sample` (book settings, gate)."""
    from mlmci import bayes

    model = build_model(local)
    idata, diagnostics, gated, settings = bayes.sample(
        model, sampler=engine.sampler, gate=engine.gate, var_names=list(GATED)
    )
    notes = (
        *notes,
        "kernel weights enter as prior weights (a weighted working likelihood), as in the "
        "REML fit; intervals are highest-density intervals of that posterior.",
    )
    if not gated:
        notes += ("ungated: quick mode or gate=False; never for the book.",)
    _draw_site_effects(idata, local, seed=settings.seed)
    post = idata.posterior
    return RDBayesResult(
        idata=idata,
        diagnostics=diagnostics,
        gated=gated,
        settings=settings,
        model=model,
        local=local,
        notes=notes,
        extra={"tau": float(post["jump_sd"].mean())},
    )
