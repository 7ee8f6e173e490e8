r"""Multi-site IV from site-by-site intention-to-treat and first-stage effects.

In each site :math:`j` the outcome and the treatment are regressed on the
instrument (and the covariates), giving the site's intention-to-treat effect
:math:`\widehat{ITT}_j` and first stage :math:`\widehat{FS}_j` with their joint
heteroskedasticity-robust (HC1) sampling covariance :math:`S_j` (the two
regressions share their regressors, so the covariance of the two slopes is a
sandwich in the paired residuals). The site's Wald ratio
:math:`\widehat{ITT}_j / \widehat{FS}_j` estimates its complier effect (LATE).

The **bivariate random-effects model** (Raudenbush, Reardon & Nomi 2012) treats
the pairs as

.. math::

    \begin{pmatrix}\widehat{ITT}_j\\ \widehat{FS}_j\end{pmatrix}
    \sim N\!\left(\mu,\; T + S_j\right),

with :math:`T` the between-site covariance of the true effects, estimated by
REML (:func:`bivariate_reml`). Empirical Bayes shrinks the *pair*
:math:`(ITT_j, FS_j)` and each site's LATE is the ratio of its shrunken
components — shrinkage belongs on the ITT and first stage, not on the ratio,
whose sampling distribution is far from normal when the first stage is weak
(de Chaisemartin & Deeb 2024). The ratio of the hyper-means
:math:`\mu_{ITT}/\mu_{FS}` estimates :math:`E[\gamma_j\beta_j]/E[\gamma_j]`:
the complier-weighted mean of site LATEs over the population of sites, which
equals the mean site LATE only when compliance and effects are uncorrelated
across sites (Reardon, Unlu, Zhu & Bloom 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from mlmci.designs.iv.design import IVData, group_sums
from mlmci.errors import ArgumentError, DataError


@dataclass(frozen=True)
class SiteEffects:
    """Per-site ITT and first stage: ``est`` (J, 2), their covariances ``cov`` (J, 2, 2)."""

    est: np.ndarray
    cov: np.ndarray
    n_obs: np.ndarray
    first_stage_f: np.ndarray


def site_effects(design: IVData) -> SiteEffects:
    """Regress outcome and treatment on the instrument within each site (HC1 covariance)."""
    if design.codes is None:
        raise ArgumentError("the multi-site methods need `site`.")
    if design.z.shape[1] != 1:
        raise ArgumentError(
            f"the multi-site methods take one instrument, got {list(design.instruments)}: "
            "use method='2sls_interacted' or 'liml_interacted' for several."
        )
    codes, n_sites = design.codes, design.n_sites
    reg = np.column_stack([np.ones(len(codes)), design.z, design.x])
    lhs = np.column_stack([design.y, design.d])
    k = reg.shape[1]
    sizes = np.bincount(codes, minlength=n_sites)
    small = np.flatnonzero(sizes <= k + 1)
    if small.size:
        raise DataError(
            f"the sites {design.sites[small[:10]].tolist()} have {k + 1} or fewer rows: too "
            f"few for a regression on the instrument and {k - 2} covariate(s) within the site. "
            "Drop or merge them."
        )
    # All sites' regressions at once, from per-site cross-products (one batched solve).
    xtx = group_sums(codes, reg[:, :, None] * reg[:, None, :], n_sites)
    xty = group_sums(codes, reg[:, :, None] * lhs[:, None, :], n_sites)
    xtx_inv = np.linalg.pinv(xtx)
    coef = xtx_inv @ xty  # (J, k, 2)
    resid = lhs - np.einsum("ik,ikm->im", reg, coef[codes])
    # HC1 sandwich of the instrument's slope in both regressions: h_i = x_i'(X'X)^-1 e_2.
    h = np.einsum("ik,ik->i", reg, xtx_inv[codes, :, 1])
    scores = h[:, None] * resid
    cov = group_sums(codes, scores[:, :, None] * scores[:, None, :], n_sites)
    cov *= (sizes / (sizes - k))[:, None, None]
    est = coef[:, 1, :]
    d_spread = group_sums(
        codes, (design.d - (group_sums(codes, design.d, n_sites) / sizes)[codes]) ** 2, n_sites
    )
    flat = np.flatnonzero(d_spread <= 1e-12)
    if flat.size:
        raise DataError(
            f"the treatment {design.treatment!r} is constant within the sites "
            f"{design.sites[flat[:10]].tolist()}: their first stage is zero with no sampling "
            "error and their LATE is not defined. Drop them (say how many) before a "
            "site-by-site method."
        )
    var_fs = cov[:, 1, 1]
    # A site where every unit complies has a first stage of 1 known exactly (F infinite).
    with np.errstate(divide="ignore"):
        f_stat = np.where(var_fs > 0, est[:, 1] ** 2 / np.where(var_fs > 0, var_fs, 1.0), np.inf)
    return SiteEffects(est=est, cov=cov, n_obs=sizes, first_stage_f=f_stat)


def ratio_with_se(num: float, den: float, cov: np.ndarray) -> tuple[float, float]:
    """``num / den`` and its delta-method standard error from the 2 x 2 covariance."""
    r = num / den
    grad = np.array([1.0 / den, -r / den])
    return r, float(np.sqrt(max(grad @ cov @ grad, 0.0)))


# With the analytic gradient, L-BFGS-B can afford to stop only where the criterion no
# longer moves at double precision (its defaults stop up to ~3e-7 short of the optimum
# near a boundary, where the criterion is flat).
_LBFGSB = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000}


#: A point counts as an optimum when its projected gradient is below this fraction of the
#: criterion's size (a unit-free REML criterion of order n_sites).
_PG_TOL = 1e-6


def _stationary(res: optimize.OptimizeResult, bounds: list[tuple[float | None, None]]) -> bool:
    """Whether L-BFGS-B stopped at a point whose projected gradient vanishes.

    At an optimum on the boundary of ``T`` L-BFGS-B often ends in an "ABNORMAL" line
    search with nothing left to gain; whether it says so or "CONVERGENCE" depends on
    the last bits of the arithmetic (seen: the same data converged on one CPU and was
    "ABNORMAL" on another, projected gradient 3e-7). The verdict is the rule itself:
    the gradient, with the components that push into an active bound removed.
    """
    grad = np.array(res.jac, dtype=float)
    lower = np.array([-np.inf if lo is None else lo for lo, _ in bounds])
    grad[(res.x <= lower) & (grad > 0)] = 0.0
    return bool(np.max(np.abs(grad)) <= _PG_TOL * max(1.0, abs(float(res.fun))))


def _inv2(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and determinants of a stack of 2 x 2 matrices (J, 2, 2)."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    inv = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / det[:, None, None]
    return inv, det


def _chol_to_t(p: np.ndarray, scale: np.ndarray) -> np.ndarray:
    l11, l21, l22 = p
    chol = np.array([[l11, 0.0], [l21, l22]]) * scale[:, None]
    return chol @ chol.T


@dataclass(frozen=True)
class BivariateFit:
    """REML fit of the bivariate random-effects model and its empirical-Bayes site effects."""

    mu: np.ndarray
    mu_cov: np.ndarray
    tau: np.ndarray
    shrunk: np.ndarray
    pev: np.ndarray
    boundary: bool
    converged: bool
    neg_reml: float


def bivariate_reml(est: np.ndarray, cov: np.ndarray) -> BivariateFit:
    """REML for :math:`\\hat\\theta_j \\sim N(\\mu, T + S_j)` with known :math:`S_j` (2 x 2).

    ``T`` is parametrized by its Cholesky factor with non-negative diagonal, so a
    singular ``T`` (no spread in one component, or perfect correlation) is
    reachable; ``boundary`` says whether the optimum has a diagonal factor below
    1e-4 of the scale of the estimates (lme4's rule for a singular fit).
    """
    n_sites = len(est)
    if n_sites < 3:
        raise DataError(
            f"a random-effects model of site effects needs 3 or more sites, got {n_sites}."
        )
    # Work on the scale of the spread of the estimates, so the tolerances are unit-free.
    scale = np.sqrt(np.maximum(np.var(est, axis=0), np.mean(cov[:, [0, 1], [0, 1]], axis=0)))
    scale = np.where(scale > 0, scale, 1.0)

    def parts(p):
        t = _chol_to_t(p, scale)
        v_inv, det = _inv2(cov + t)
        a = v_inv.sum(axis=0)
        a_inv = np.linalg.inv(a)
        mu = a_inv @ np.einsum("jab,jb->a", v_inv, est)
        resid = est - mu
        quad = np.einsum("ja,jab,jb->", resid, v_inv, resid)
        value = 0.5 * (np.sum(np.log(det)) + np.log(np.linalg.det(a)) + quad)
        return value, t, v_inv, a_inv, mu

    s11, s12, s22 = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    e1, e2 = est[:, 0], est[:, 1]

    def objective(p):
        # parts() written out elementwise on the 2 x 2 blocks, with its analytic gradient:
        # the optimizer calls this dozens of times per fit inside Monte Carlo loops, where
        # einsum / batched inverses cost 5x more on 2 x 2s and finite differences 4x more.
        l11, l21, l22 = p[0] * scale[0], p[1] * scale[1], p[2] * scale[1]
        v11, v12, v22 = s11 + l11 * l11, s12 + l11 * l21, s22 + l21 * l21 + l22 * l22
        det = v11 * v22 - v12 * v12
        if np.any(det <= 0):
            return 1e300, np.zeros(3)
        w11, w12, w22 = v22 / det, -v12 / det, v11 / det
        a11, a12, a22 = w11.sum(), w12.sum(), w22.sum()
        b1, b2 = (w11 * e1 + w12 * e2).sum(), (w12 * e1 + w22 * e2).sum()
        det_a = a11 * a22 - a12 * a12
        m1, m2 = (a22 * b1 - a12 * b2) / det_a, (a11 * b2 - a12 * b1) / det_a
        r1, r2 = e1 - m1, e2 - m2
        quad = (w11 * r1 * r1 + 2 * w12 * r1 * r2 + w22 * r2 * r2).sum()
        value = 0.5 * (np.log(det).sum() + np.log(det_a) + quad)
        if not np.isfinite(value):
            return 1e300, np.zeros(3)
        # d value / dT = G = (sum_j W_j - W_j A^-1 W_j - u_j u_j') / 2 with u_j = W_j r_j
        # (mu is profiled out, so its own derivative drops), and T = L L' gives
        # d value / dL = 2 G L.
        c11, c12, c22 = a22 / det_a, -a12 / det_a, a11 / det_a  # A^-1
        q11, q12 = w11 * c11 + w12 * c12, w11 * c12 + w12 * c22  # W_j A^-1
        q21, q22 = w12 * c11 + w22 * c12, w12 * c12 + w22 * c22
        u1, u2 = w11 * r1 + w12 * r2, w12 * r1 + w22 * r2
        g11 = 0.5 * (w11 - q11 * w11 - q12 * w12 - u1 * u1).sum()
        g12 = 0.5 * (w12 - q11 * w12 - q12 * w22 - u1 * u2).sum()
        g22 = 0.5 * (w22 - q21 * w12 - q22 * w22 - u2 * u2).sum()
        grad = 2 * np.array(
            [
                (g11 * l11 + g12 * l21) * scale[0],
                (g12 * l11 + g22 * l21) * scale[1],
                g22 * l22 * scale[1],
            ]
        )
        return value, grad

    # Start from the moment estimate T0 = cov(est) - mean(S), projected onto the PSD cone.
    t0 = np.cov(est.T) - cov.mean(axis=0)
    w, v = np.linalg.eigh(t0)
    t0 = (v * np.maximum(w, 1e-4 * np.min(scale**2))) @ v.T
    l0 = np.linalg.cholesky(t0 / np.outer(scale, scale))
    starts = [np.array([l0[0, 0], l0[1, 0], l0[1, 1]]), np.array([0.5, 0.0, 0.5])]
    bounds = [(0.0, None), (None, None), (0.0, None)]
    best = optimize.minimize(
        objective, starts[0], jac=True, method="L-BFGS-B", bounds=bounds, options=_LBFGSB
    )
    # A second start only where the first may have stopped short: at the boundary of T
    # (where the criterion is flat in some directions) or without convergence.
    if not best.success or min(best.x[0], best.x[2]) < 1e-4:
        res = optimize.minimize(
            objective, starts[1], jac=True, method="L-BFGS-B", bounds=bounds, options=_LBFGSB
        )
        # Two starts that agree to rounding confirm each other: at a boundary optimum one
        # often ends in L-BFGS-B's "abnormal" line search, having nothing left to gain at
        # double precision.
        agree = abs(res.fun - best.fun) <= 1e-10 * max(1.0, abs(best.fun))
        confirmed = agree and (best.success or res.success)
        if res.fun < best.fun:
            best = res
        best.success = best.success or confirmed or _stationary(best, bounds)
    value, t, v_inv, a_inv, mu = parts(best.x)
    # Empirical Bayes: shrunken pairs and their prediction-error covariance, which adds
    # the uncertainty of the hyper-mean: PEV_j = S_j V_j^-1 T + S_j V_j^-1 A^-1 V_j^-1 S_j.
    gain = np.einsum("ab,jbc->jac", t, v_inv)
    shrunk = mu + np.einsum("jab,jb->ja", gain, est - mu)
    sv = np.einsum("jab,jbc->jac", cov, v_inv)
    pev = np.einsum("jab,bc->jac", sv, t) + np.einsum("jab,bc,jdc->jad", sv, a_inv, sv)
    pev = (pev + np.swapaxes(pev, 1, 2)) / 2
    return BivariateFit(
        mu=mu,
        mu_cov=(a_inv + a_inv.T) / 2,
        tau=t,
        shrunk=shrunk,
        pev=pev,
        boundary=bool(min(best.x[0], best.x[2]) < 1e-4),
        converged=bool(best.success),
        neg_reml=float(value),
    )
