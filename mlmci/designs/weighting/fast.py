r"""Propensity and outcome models with clustered data, in numpy, for Monte Carlo loops.

A Monte Carlo study of propensity-score weighting with clustered data fits
thousands of propensity models and arm-wise outcome models; a mixedlm GLMM
takes about 0.15 s. The functions here take arrays (``x`` an ``n x k`` design
*without* intercept, ``d`` the 0/1 treatment, ``codes`` integer cluster codes
``0..G-1``), add the intercept themselves, and return what the library
engines return, to the tolerances ``tests/test_weighting_fast.py`` checks on
random balanced and unbalanced designs:

- ``logit_pooled``: the fitted propensities of a pooled logit — equal to
  statsmodels' ``GLM(d, [1, x], Binomial())`` to 1e-8 (Newton's method to a
  step below 1e-10).
- ``logit_fe``: a logit with one intercept per cluster and common slopes
  (cluster fixed effects) — equal to statsmodels' GLM Binomial on the cluster
  dummies to 1e-7. Newton's method eliminates the diagonal block of the
  cluster intercepts by a Schur complement, so a step costs
  :math:`O(nk^2 + Gk^2)`, not :math:`O((G + k)^3)`.
- ``logit_random_intercept``: a random-intercept logit by Laplace maximum
  likelihood — the model of ``mlmci.mixed.fit("d ~ x1 + ... + (1 | g)", data,
  family="binomial")`` (lme4's ``glmer`` with ``nAGQ = 1``). Its Laplace
  deviance is mixedlm's at the same parameters (to ~1e-14 relative) and its
  optimum is at least as good as mixedlm's. The estimates agree with mixedlm's
  to mixedlm's own stopping tolerance (tested: beta and sigma within 1e-4
  relative, the fitted propensities within 1e-5; measured on 36 random designs:
  5e-6, 4e-6 and 3e-7), and with lme4's ``glmer`` run with a tight inner
  tolerance (``tolPwrss = 1e-12``) to 2e-7 (lme4's default ``tolPwrss = 1e-7`` is
  what moves lme4's estimates by ~3e-4). About 15-25 times faster than
  ``mlmci.mixed.fit`` at ``n = 2000``, ``G = 100`` (~10 ms against ~150-250 ms).
- ``outcome_by_arm``: predictions ``mu0``, ``mu1`` for every unit from
  outcome models fitted separately in the controls and in the treated: OLS
  (``"pooled"``), OLS with cluster intercepts (``"fe"``) — equal to
  statsmodels' OLS to 1e-8 — and a random-intercept linear model by REML
  (``"re"``, ``"mundlak"``), whose REML criterion is profiled to one variance
  ratio and optimized by a root finder on its exact derivative — equal to
  ``mlmci.mixed.fit`` (fixed effects plus ``ranef()``) to 1e-5 (measured 1e-7),
  with a criterion no worse than mixedlm's.

Inputs are checked (shapes, missing values, a 0/1 treatment, the cluster
codes); a rank-deficient design or a cluster without the information its
parameter needs raises :class:`~mlmci.errors.DataError` naming it. The BLAS runs
on one thread inside every function (:mod:`mlmci.threads`): the matrices are
``k``-wide, and scipy's L-BFGS-B was 20 times slower with a multi-threaded
OpenBLAS on a busy machine.

Examples
--------
>>> import numpy as np
>>> from scipy.special import expit
>>> rng = np.random.default_rng(0)
>>> codes = np.repeat(np.arange(30), 20)
>>> x = rng.normal(size=(600, 2))
>>> d = (rng.random(600) < expit(0.5 * x[:, 0] + rng.normal(size=30)[codes])).astype(float)
>>> fit = logit_random_intercept(x, d, codes, 30)
>>> sorted(fit)
['beta', 'boundary', 'converged', 'deviance', 'modes', 'p', 'sigma']
>>> fit["beta"].shape, fit["modes"].shape, bool(fit["converged"])
((3,), (30,), True)
>>> y = x[:, 0] + d + rng.normal(size=30)[codes] + rng.normal(size=600)
>>> mu0, mu1 = outcome_by_arm(x, y, d, codes, 30, structure="re")
>>> mu0.shape, mu1.shape
((600,), (600,))
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import optimize, sparse, special

from mlmci.errors import ArgumentError, ConvergenceError, DataError
from mlmci.identification import dependent_columns
from mlmci.threads import one_blas_thread
from mlmci.transforms import group_means, group_sums

__all__ = [
    "OUTCOME_STRUCTURES",
    "logit_fe",
    "logit_pooled",
    "logit_random_intercept",
    "outcome_by_arm",
]

#: The outcome-model structures of :func:`outcome_by_arm`.
OUTCOME_STRUCTURES = ("pooled", "fe", "re", "mundlak")
Structure = Literal["pooled", "fe", "re", "mundlak"]

# Newton's methods stop when no coefficient moves by more than this; the
# convergence is quadratic, so the coefficients are then exact to ~1e-15.
_STEP_TOL = 1e-10
_MAX_NEWTON = 100
# The random-intercept logit has converged when the projected gradient of its
# deviance per unit is below this (standardized covariates; the parameters are then
# within ~1e-6 of the optimum).
_GRAD_TOL = 1e-7
# lme4's isSingular tolerance (mlmci.mixed.SINGULAR_TOL), without importing mixedlm.
_SINGULAR_TOL = 1e-4


# --------------------------------------------------------------------------- checks


def _as_x(x: Any, n: int | None = None) -> np.ndarray:
    """``x`` as a finite float (n, k) array; a 1-D array is one covariate."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"x must be an n x k array (k covariates, no intercept); got {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"x has {arr.shape[0]} rows but d has {n}: they must have one row a unit.")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise DataError(
            f"x holds {bad.size} row(s) with missing or infinite values (first rows {bad[:5]}); "
            "drop or impute them first."
        )
    return arr


def _as_vector(v: Any, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(v, dtype=float)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array, one value a unit; got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{name} has {arr.shape[0]} values but there are {n} units.")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise DataError(
            f"{name} holds {bad.size} missing or infinite value(s) (first at {bad[:5]}); "
            "drop or impute them first."
        )
    return arr


def _as_treatment(d: Any) -> np.ndarray:
    arr = _as_vector(d, "d")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise DataError("d must be a 0/1 treatment indicator; it holds other values.")
    return arr


def _as_codes(codes: Any, n_groups: Any, n: int) -> tuple[np.ndarray, int]:
    if isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 1:
        raise ArgumentError(f"n_groups must be a positive integer, got {n_groups!r}.")
    arr = np.asarray(codes)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"codes must be a 1-D array of {n} cluster codes; got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DataError("codes must be integer cluster codes 0..n_groups-1; got non-integers.")
    elif arr.dtype.kind not in "iub":
        raise DataError(f"codes must be integer cluster codes, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if n and (arr.min() < 0 or arr.max() >= n_groups):
        raise DataError(
            f"codes must lie in 0..{n_groups - 1} (n_groups={n_groups}); they range over "
            f"{arr.min()}..{arr.max()}."
        )
    return arr, int(n_groups)


def _named(clusters: np.ndarray) -> str:
    shown = ", ".join(str(int(c)) for c in clusters[:10])
    return f"[{shown}{', ...' if clusters.size > 10 else ''}] ({clusters.size} in all)"


def _check_rank(design: np.ndarray, what: str, raw: np.ndarray | None = None) -> None:
    """Refuse a rank-deficient ``design``; ``raw`` is the design before demeaning, if any."""
    if design.shape[1] == 0:
        return
    if design.shape[0] < design.shape[1]:
        raise DataError(
            f"the {what} has {design.shape[1]} columns but only {design.shape[0]} rows."
        )
    # The identification check of mlmci's own estimators (greedy, mlmci.identification).
    # A demeaned column is judged against its raw length: a covariate constant within
    # clusters leaves only rounding noise, which is all of its own (tiny) length.
    scale = None if raw is None else np.linalg.norm(raw, axis=0)
    if dependent_columns(design, scale=scale):
        constant = "constant within clusters" if raw is not None else "constant"
        raise DataError(
            f"the {what} is rank deficient (a covariate is {constant}, or collinear with "
            "the others); drop the redundant column(s)."
        )


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[1, (x - m) / s]`` with the column means ``m`` and SDs ``s`` (constant columns: s=1).

    The Newton and quasi-Newton searches below are run on this design, which
    is far better conditioned than ``[1, x]`` when a covariate has a large mean
    or scale (the coefficients are transformed back by :func:`_unstandardize`).
    """
    m = x.mean(axis=0)
    s = x.std(axis=0)
    s = np.where(s > 0, s, 1.0)
    return np.column_stack([np.ones(x.shape[0]), (x - m) / s]), m, s


def _unstandardize(beta: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    slopes = beta[1:] / s
    return np.r_[beta[0] - slopes @ m, slopes]


def _cluster_means(x: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Each unit's cluster mean of the columns of ``x`` (over every unit of the cluster)."""
    return group_means(codes, x, n_groups)[codes]


def _bernoulli_deviance(eta: np.ndarray, d: np.ndarray) -> float:
    # -2 log-likelihood; logaddexp(0, eta) = log(1 + e^eta) without overflow.
    return -2.0 * float(d @ eta - np.logaddexp(0.0, eta).sum())


# --------------------------------------------------------------------------- pooled logit


def _pooled_newton(
    design: np.ndarray, d: np.ndarray, beta: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logit MLE by Newton's method with step halving: ``(beta, eta)``."""
    if beta is None:
        # The intercept-only MLE: the first step is then already well scaled.
        share = float(d.mean())
        beta = np.zeros(design.shape[1])
        beta[0] = np.log(share / (1.0 - share))
    eta = design @ beta
    dev = _bernoulli_deviance(eta, d)
    for _ in range(_MAX_NEWTON):
        p = special.expit(eta)
        w = p * (1.0 - p)
        hess = (design * w[:, None]).T @ design
        try:
            step = np.linalg.solve(hess, design.T @ (d - p))
        except np.linalg.LinAlgError:
            # The design has full rank (checked): the weights p(1 - p) have underflowed.
            raise _separated("the weights p(1 - p) vanished") from None
        # Newton is not monotone from a poor start: halve until the deviance falls.
        for _ in range(40):
            new_eta = design @ (beta + step)
            new_dev = _bernoulli_deviance(new_eta, d)
            if new_dev <= dev + 1e-12 * (1.0 + abs(dev)):
                break
            step = step / 2.0
        beta, eta, dev = beta + step, new_eta, new_dev
        if np.max(np.abs(step)) < _STEP_TOL:
            return beta, eta
    raise _separated(f"in {_MAX_NEWTON} Newton steps")


def _separated(where: str) -> ConvergenceError:
    return ConvergenceError(
        f"the logit did not converge ({where}): the treatment is (quasi-)completely "
        "separated by the covariates, so the maximum-likelihood propensities are 0 or 1."
    )


@one_blas_thread
def logit_pooled(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Fitted propensities of a pooled logit of ``d`` on ``1, x``.

    Parameters
    ----------
    x : (n, k) array
        Covariates without the intercept (``k`` may be 0; a 1-D array is one
        covariate).
    d : (n,) array
        The 0/1 treatment.

    Returns
    -------
    numpy.ndarray
        ``expit([1, x] @ beta_hat)``, the maximum-likelihood fit (Newton's
        method to a step below 1e-10, equal to statsmodels' GLM Binomial to
        1e-8).

    Raises
    ------
    DataError
        Wrong shapes, missing values, a non-binary or constant ``d``, or a
        rank-deficient design.
    ConvergenceError
        The covariates separate the treatment (no finite MLE).

    Examples
    --------
    >>> import numpy as np
    >>> logit_pooled(np.zeros((4, 0)), np.array([0.0, 1.0, 1.0, 1.0]))
    array([0.75, 0.75, 0.75, 0.75])
    """
    d = _as_treatment(d)
    x = _as_x(x, d.shape[0])
    _require_both_arms(d)
    design, _, _ = _standardize(x)
    _check_rank(design, "propensity design [1, x]")
    _, eta = _pooled_newton(design, d)
    return special.expit(eta)


def _require_both_arms(d: np.ndarray) -> None:
    if d.size == 0 or d.min() == d.max():
        raise DataError(
            "d must hold both treated (1) and control (0) units: a constant treatment has no "
            "finite logit."
        )


# --------------------------------------------------------------------------- fixed-effects logit


@one_blas_thread
def logit_fe(x: np.ndarray, d: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    r"""Fitted propensities of a logit with cluster fixed effects (common slopes).

    The model is :math:`\operatorname{logit} P(d_i = 1) = \alpha_{g(i)} + x_i'\gamma`:
    one intercept per cluster, as statsmodels' GLM Binomial on the cluster
    dummies (without a separate intercept).

    Newton's method with the block structure of the Hessian: with
    :math:`w = p(1-p)`, the block of the cluster intercepts is the diagonal
    :math:`W_j = \sum_{i \in j} w_i`, and the cross block has rows
    :math:`C_j = \sum_{i \in j} w_i x_i`. Eliminating the intercepts leaves the
    :math:`k \times k` Schur complement
    :math:`S = X'WX - \sum_j C_j C_j' / W_j`, so that
    :math:`\Delta\gamma = S^{-1}(g_\gamma - \sum_j C_j g_j / W_j)` and
    :math:`\Delta\alpha_j = (g_j - C_j'\Delta\gamma) / W_j` (``g`` the score). A
    step costs :math:`O(nk^2 + Gk^2)` instead of a :math:`(G+k)^3` solve.

    Parameters
    ----------
    x : (n, k) array
        Covariates without the intercept (``k`` may be 0).
    d : (n,) array
        The 0/1 treatment.
    codes : (n,) int array
        Cluster codes ``0..n_groups-1``.
    n_groups : int
        The number of clusters ``G``.

    Returns
    -------
    numpy.ndarray
        The fitted propensities (equal to statsmodels' to 1e-7).

    Raises
    ------
    DataError
        A cluster with no unit, or whose treatment is all 0 or all 1 (its
        intercept has no finite MLE: drop such clusters first; the message names
        them); a covariate that does not vary within clusters; wrong shapes or
        missing values.
    ConvergenceError
        The covariates separate the treatment within clusters.

    Examples
    --------
    >>> import numpy as np
    >>> d = np.array([0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    >>> logit_fe(np.zeros((6, 0)), d, np.array([0, 0, 1, 1, 2, 2]), 3)
    Traceback (most recent call last):
    ...
    mlmci.errors.DataError: cluster(s) [1, 2] (2 in all) have a treatment that is all 0 or all 1...
    """
    d = _as_treatment(d)
    x = _as_x(x, d.shape[0])
    codes, n_groups = _as_codes(codes, n_groups, d.shape[0])
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise DataError(
            f"cluster(s) {_named(empty)} have no unit: a cluster fixed effect needs data. "
            "Renumber the clusters that occur to 0..G-1."
        )
    treated = np.bincount(codes, weights=d, minlength=n_groups)
    constant = np.flatnonzero((treated == 0) | (treated == counts))
    if constant.size:
        raise DataError(
            f"cluster(s) {_named(constant)} have a treatment that is all 0 or all 1: their "
            "fixed effect has no finite MLE (propensity 0 or 1). Drop those clusters first."
        )
    k = x.shape[1]
    share = treated / counts
    alpha = np.log(share / (1.0 - share))
    if k == 0:
        # Only the intercepts: the MLE is each cluster's treated share.
        return share[codes]
    # The within-cluster design must have full rank (else gamma is not identified).
    _check_rank(x - _cluster_means(x, codes, n_groups), "within-cluster covariate design", x)
    gamma = np.zeros(k)
    eta = alpha[codes]
    dev = _bernoulli_deviance(eta, d)
    for _ in range(_MAX_NEWTON):
        p = special.expit(eta)
        w = p * (1.0 - p)
        resid = d - p
        g_alpha = np.bincount(codes, weights=resid, minlength=n_groups)
        g_gamma = x.T @ resid
        w_sum = np.bincount(codes, weights=w, minlength=n_groups)
        cross = group_sums(codes, x * w[:, None], n_groups)  # C_j, (G, k)
        scaled = cross / w_sum[:, None]
        schur = (x * w[:, None]).T @ x - cross.T @ scaled
        try:
            d_gamma = np.linalg.solve(schur, g_gamma - scaled.T @ g_alpha)
        except np.linalg.LinAlgError:
            # The within-cluster design has full rank (checked): the weights vanished.
            raise _separated("the weights p(1 - p) vanished") from None
        d_alpha = g_alpha / w_sum - scaled @ d_gamma
        for _ in range(40):
            new_eta = eta + d_alpha[codes] + x @ d_gamma
            new_dev = _bernoulli_deviance(new_eta, d)
            if new_dev <= dev + 1e-12 * (1.0 + abs(dev)):
                break
            d_alpha, d_gamma = d_alpha / 2.0, d_gamma / 2.0
        eta, dev = new_eta, new_dev
        alpha, gamma = alpha + d_alpha, gamma + d_gamma
        if max(np.max(np.abs(d_alpha)), np.max(np.abs(d_gamma))) < _STEP_TOL:
            return special.expit(eta)
    raise _separated(f"the fixed-effects logit, in {_MAX_NEWTON} Newton steps")


# --------------------------------------------------------------------------- random-intercept logit


class _Laplace:
    r"""The Laplace deviance of a random-intercept logit and its gradient.

    lme4's parameterization: spherical random effects :math:`u_j` with
    :math:`b_j = \sigma u_j`, and :math:`\eta_i = x_i'\beta + \sigma u_{g(i)}`.
    Given :math:`(\beta, \sigma)`, the conditional modes maximize
    :math:`\ell_j(u_j) - u_j^2/2` cluster by cluster (a concave 1-D problem,
    solved for all clusters at once by Newton's method). The deviance is
    lme4's (and mixedlm's) Laplace approximation

    .. math::

        D(\beta, \sigma) = -2\sum_i \ell_i(\hat\eta_i) + \sum_j \hat u_j^2
                           + \sum_j \log(1 + \sigma^2 W_j),
        \qquad W_j = \sum_{i \in j} p_i(1 - p_i),

    which is :math:`-2\sum_j [\ell_j(\hat b_j) - \hat b_j^2/(2\sigma^2) - \log\sigma
    - \tfrac12\log(W_j + 1/\sigma^2)]` in the modes :math:`\hat b_j` on the logit
    scale, the usual form of the Laplace approximation (its :math:`2\pi` factors
    cancel). It is smooth in :math:`v = \sigma^2` (every term depends on
    :math:`\sigma^2`) and finite at :math:`v = 0`, where it is the pooled logit's
    deviance; the optimizer's parameters are :math:`(\beta, v)`.

    The gradient is exact: the envelope theorem for the penalized part, and the
    implicit derivatives of the modes
    (:math:`\partial u_j/\partial\beta = -\sigma C_j / A_j`,
    :math:`\partial u_j/\partial\sigma = (r_j - \sigma u_j W_j)/A_j`, with
    :math:`A_j = 1 + \sigma^2 W_j`, :math:`r_j = \sum_{i\in j}(d_i - p_i)`,
    :math:`C_j = \sum_{i \in j} w_i x_i`) for the log-determinant.
    """

    def __init__(self, design: np.ndarray, d: np.ndarray, codes: np.ndarray, n_groups: int):
        self.design, self.d, self.codes, self.n_groups = design, d, codes, n_groups
        self.u = np.zeros(n_groups)  # warm start of the modes, carried between evaluations
        self.converged = True
        # The cluster-sum operator as a sparse (G, n) matrix: one product sums the 2k + 3
        # columns the gradient needs, four times faster than a bincount per column.
        n = codes.shape[0]
        self.summer = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_groups, n))

    def _sums(self, v: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes, weights=v, minlength=self.n_groups)

    def modes(self, eta0: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes ``u`` (spherical) given the fixed part ``eta0``; and ``p``."""
        codes, d = self.codes, self.d
        u = self.u.copy()
        p = special.expit(eta0 + sigma * u[codes])
        # The mode solves g(u) = sigma r(u) - u = 0, g decreasing (g' = -A <= -1).
        score = sigma * self._sums(d - p) - u
        for _ in range(_MAX_NEWTON):
            step = score / (1.0 + sigma**2 * self._sums(p * (1.0 - p)))
            if np.max(np.abs(step)) < _STEP_TOL:
                self.u = u
                return u, p
            # Damped Newton on |g|: along the Newton direction |g| falls at first, so
            # halving (cluster by cluster) until it does guards against overshooting
            # in the flat tails of the logistic; in practice the full step is taken.
            for _ in range(40):
                new_u = u + step
                new_p = special.expit(eta0 + sigma * new_u[codes])
                new_score = sigma * self._sums(d - new_p) - new_u
                worse = np.abs(new_score) > np.abs(score) * (1.0 + 1e-12) + 1e-14
                if not worse.any():
                    break
                step = np.where(worse, step / 2.0, step)
            u, p, score = new_u, new_p, new_score
        self.converged = False
        self.u = u
        return u, p

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """The deviance and its gradient in ``(beta, v)``, ``v = sigma^2``."""
        design, d, codes = self.design, self.d, self.codes
        beta, v = params[:-1], max(float(params[-1]), 0.0)
        sigma = np.sqrt(v)
        eta0 = design @ beta
        u, p = self.modes(eta0, sigma)
        eta = eta0 + sigma * u[codes]
        w = p * (1.0 - p)
        dw = w * (1.0 - 2.0 * p)  # dw / deta
        k = design.shape[1]
        sums = self.summer @ np.column_stack([d - p, design * w[:, None], design * dw[:, None]])
        r = sums[:, 0]
        cross = sums[:, 1 : 1 + k]  # C_j = sum_i w_i x_i
        dcross = sums[:, 1 + k :]  # sum_i dw_i x_i
        # The design's first column is the intercept: its sums are W_j and sum_i dw_i.
        w_sum, dw_sum = cross[:, 0], dcross[:, 0]
        a = 1.0 + v * w_sum
        dev = _bernoulli_deviance(eta, d) + float(u @ u) + float(np.log(a).sum())
        du_dbeta = -sigma * cross / a[:, None]
        # d/dbeta of sum_j log A_j, through p_i(beta), eta_i = x_i'beta + sigma u_j(beta).
        dlogdet = (v / a)[:, None] * (dcross + sigma * dw_sum[:, None] * du_dbeta)
        grad_beta = -2.0 * (design.T @ (d - p)) + dlogdet.sum(axis=0)
        if sigma > 0.0:
            du_dsigma = (r - sigma * u * w_sum) / a
            dlogdet_sigma = (2.0 * sigma * w_sum + v * dw_sum * (u + sigma * du_dsigma)) / a
            grad_sigma = -2.0 * float(u @ r) + float(dlogdet_sigma.sum())
            grad_v = grad_sigma / (2.0 * sigma)
        else:
            # The limit at sigma = 0: D = D_pooled - v sum_j (r_j^2 - W_j) + O(v^2).
            grad_v = float((w_sum - r**2).sum())
        return dev, np.r_[grad_beta, grad_v]


@one_blas_thread
def logit_random_intercept(
    x: np.ndarray,
    d: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    mundlak: bool = False,
) -> dict[str, Any]:
    r"""A random-intercept logit by Laplace maximum likelihood (lme4's ``glmer``, ``nAGQ = 1``).

    The model :math:`\operatorname{logit} P(d_i = 1) = x_i'\beta + b_{g(i)}`,
    :math:`b_j \sim N(0, \sigma^2)`: the model of
    ``mlmci.mixed.fit("d ~ x1 + ... + (1 | g)", data, family="binomial")``.

    For given :math:`(\beta, \sigma)` each cluster's conditional mode is found
    by a vectorized Newton iteration over clusters; the Laplace deviance (see
    ``_Laplace``, equal to mixedlm's at the same parameters) is minimized over
    :math:`(\beta, \sigma^2)` by L-BFGS-B with its exact gradient, started at the
    pooled logit and :math:`\sigma = 1` (lme4's start), on standardized
    covariates.

    The search is over :math:`(\beta, v)` with :math:`v = \sigma^2 \ge 0`. The
    boundary rule: the deviance is smooth in :math:`v` down to :math:`v = 0`, where
    the modes are 0 and it is the pooled logit's deviance, with slope
    :math:`\partial D/\partial v = \sum_j (W_j - r_j^2)` (:math:`r_j` the cluster
    sums of the pooled logit's residuals :math:`d_i - p_i`). So the bound is
    active exactly when the squared cluster sums of the residuals do not exceed
    their binomial variance, and L-BFGS-B stops there with ``sigma = 0``; the fit
    returned is then the pooled logit itself (as it is if the search ends
    anywhere worse than the pooled logit). ``boundary`` is lme4's ``isSingular``
    verdict, :math:`\sigma < 10^{-4}`, under which mixedlm reports a singular
    fit. Neither :math:`\log\sigma` nor :math:`\sigma` would do: on the log scale
    the boundary is at :math:`-\infty` with the deviance flat towards it (a bounded
    search stops at an arbitrary small :math:`\sigma`), and in :math:`\sigma` the
    deviance is even, so :math:`\sigma = 0` is always a stationary point, where a
    projected step that overshoots to the bound stops the search even when an
    interior optimum is better (seen on random designs).

    Parameters
    ----------
    x : (n, k) array
        Covariates without the intercept (``k`` may be 0).
    d : (n,) array
        The 0/1 treatment.
    codes : (n,) int array
        Cluster codes ``0..n_groups-1`` (a code without units gets a mode of 0).
    n_groups : int
        The number of clusters ``G``.
    mundlak : bool
        Append the cluster means of the columns of ``x`` as covariates (the
        Mundlak device) before fitting.

    Returns
    -------
    dict
        ``"p"``: the fitted propensities :math:`\operatorname{expit}(x_i'\hat\beta +
        \hat b_{g(i)})`, conditional on the modes, as mixedlm's ``fitted()``;
        ``"beta"``: intercept, the slopes of ``x``, then (``mundlak``) the slopes
        of the cluster means, in that order (mixedlm's ``fixef()`` for
        ``d ~ x1 + ... + x1_mean + ...``); ``"sigma"``: the random-intercept SD;
        ``"modes"``: the conditional modes :math:`\hat b_j` (mixedlm's
        ``ranef()``), shape ``(G,)``; ``"converged"``: the modes converged at the
        optimum and L-BFGS-B stopped on its tolerances or with a projected
        gradient of the deviance below 1e-7 per unit; ``"boundary"``: ``sigma <
        1e-4``; ``"deviance"``: the Laplace deviance, :math:`-2` mixedlm's
        ``logLik``.

    Raises
    ------
    DataError
        Fewer than two clusters with units, wrong shapes, missing values, a
        non-binary or constant ``d``, or a rank-deficient design (with
        ``mundlak``: a covariate constant within clusters).
    ConvergenceError
        The pooled logit that starts the search does not converge (separation).
    """
    d = _as_treatment(d)
    x = _as_x(x, d.shape[0])
    codes, n_groups = _as_codes(codes, n_groups, d.shape[0])
    _require_both_arms(d)
    present = int(np.count_nonzero(np.bincount(codes, minlength=n_groups)))
    if present < 2:
        raise DataError(
            f"the data have {present} cluster(s) with units: a random intercept needs at "
            "least two (and a variance estimate many more)."
        )
    if mundlak and x.shape[1]:
        x = np.column_stack([x, _cluster_means(x, codes, n_groups)])
    design, m, s = _standardize(x)
    _check_rank(design, "propensity design" + (" with the cluster means" if mundlak else ""))
    beta0, eta_pooled = _pooled_newton(design, d)
    dev_pooled = _bernoulli_deviance(eta_pooled, d)

    laplace = _Laplace(design, d, codes, n_groups)
    n = d.shape[0]

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        # Scaled by 1/n so that L-BFGS-B's tolerances mean the same for any n.
        dev, grad = laplace(params)
        return dev / n, grad / n

    bounds = [(None, None)] * design.shape[1] + [(0.0, None)]
    found = optimize.minimize(
        objective,
        np.r_[beta0, _start_variance(eta_pooled, d, codes, n_groups)],
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000, "maxcor": 20},
    )
    beta_std, sigma = found.x[:-1], float(np.sqrt(found.x[-1]))
    laplace.converged = True  # the verdict of the final mode solve, not of trial points
    dev, grad = laplace(found.x)  # leaves the modes at the optimum in laplace.u
    grad = grad / n
    if found.x[-1] <= 0.0 and grad[-1] > 0.0:
        grad[-1] = 0.0  # the projected gradient: the bound v >= 0 is active
    # L-BFGS-B stops on a relative reduction of the deviance below ftol or a projected
    # gradient below gtol. Its line search also gives up ("ABNORMAL") once the
    # decreases it needs fall below the rounding of the deviance, with a gradient of
    # ~1e-9 per unit, which is an optimum too: hence the gradient check.
    converged = (
        (bool(found.success) or float(np.max(np.abs(grad))) < _GRAD_TOL)
        and laplace.converged
        and bool(np.isfinite(dev))
    )
    if sigma == 0.0 or dev > dev_pooled:
        # The boundary: the pooled logit, exactly.
        beta_std, sigma, dev, converged = beta0, 0.0, dev_pooled, True
        u = np.zeros(n_groups)
        eta = eta_pooled
    else:
        u = laplace.u
        eta = design @ beta_std + sigma * u[codes]
    return {
        "p": special.expit(eta),
        "beta": _unstandardize(beta_std, m, s),
        "sigma": sigma,
        "modes": sigma * u,
        "converged": converged,
        "boundary": sigma < _SINGULAR_TOL,
        "deviance": float(dev),
    }


def _start_variance(eta: np.ndarray, d: np.ndarray, codes: np.ndarray, n_groups: int) -> float:
    """A start for sigma^2: the moment estimate from the pooled logit's cluster residuals.

    The squared cluster sums of the residuals exceed their binomial variance by about
    sigma^2 W_j^2 (the slope of the deviance at sigma^2 = 0), so their excess over
    sum_j W_j^2 starts the search near the optimum: about a fifth fewer evaluations than
    lme4's start sigma = 1, at the same optimum.
    """
    p = special.expit(eta)
    r = np.bincount(codes, weights=d - p, minlength=n_groups)
    w = np.bincount(codes, weights=p * (1 - p), minlength=n_groups)
    return max(0.01, float((r**2 - w).sum() / (w**2).sum()))


# --------------------------------------------------------------------------- outcome models


def _ols_predict(design_arm, y_arm, design_all):
    coef = np.linalg.lstsq(design_arm, y_arm, rcond=None)[0]
    return design_all @ coef


def _fe_predict(x_arm, y_arm, codes_arm, x_all, codes_all, n_groups, arm):
    counts = np.bincount(codes_arm, minlength=n_groups).astype(float)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise DataError(
            f"cluster(s) {_named(missing)} have no {arm} unit: a cluster fixed effect in the "
            f"{arm} outcome model needs one. Drop those clusters, or use structure='re'."
        )
    # Within transform (Frisch-Waugh-Lovell): the slopes from the demeaned data,
    # then each cluster's intercept from its means.
    x_means = group_sums(codes_arm, x_arm, n_groups) / counts[:, None]
    y_means = np.bincount(codes_arm, weights=y_arm, minlength=n_groups) / counts
    x_within = x_arm - x_means[codes_arm]
    if x_arm.shape[1]:
        _check_rank(x_within, f"within-cluster design of the {arm}", x_arm)
        if x_arm.shape[0] - n_groups - x_arm.shape[1] < 0:
            raise DataError(f"too few {arm} units for the cluster intercepts and the slopes.")
        slopes = np.linalg.lstsq(x_within, y_arm - y_means[codes_arm], rcond=None)[0]
    else:
        slopes = np.zeros(0)
    intercepts = y_means - x_means @ slopes
    return intercepts[codes_all] + x_all @ slopes


def _reml_random_intercept(
    design: np.ndarray, y: np.ndarray, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    r"""REML of ``y = X beta + u_j + e``, unbalanced clusters: ``(beta, blups, tau2, sigma2)``.

    With :math:`\lambda = \tau^2/\sigma^2` and :math:`c_j = \lambda/(1 + \lambda n_j)`,
    :math:`V_j^{-1} \propto I - c_j 11'`, so every GLS quantity is the OLS one
    minus a sum over clusters of the cluster sums: :math:`M = X'X - \sum_j c_j
    s_j s_j'` with :math:`s_j = \sum_{i\in j} x_i`, and likewise for ``X'y`` and
    ``y'y``: an evaluation costs :math:`O(Gp^2)`. The profiled -2 REML
    log-likelihood (up to a constant) is

    .. math::

        f(\lambda) = (n - p)\log \mathrm{RSS}(\lambda) + \sum_j \log(1 + \lambda n_j)
                     + \log|M|,

    with the exact derivative (:math:`c_j' = (1 + \lambda n_j)^{-2}`, :math:`e_j` the
    cluster sums of the GLS residuals)

    .. math::

        f'(\lambda) = -(n - p)\frac{\sum_j c_j' e_j^2}{\mathrm{RSS}}
                      + \sum_j \frac{n_j}{1 + \lambda n_j} - \sum_j c_j' s_j' M^{-1} s_j.

    The search runs over the intra-class correlation :math:`\rho = \lambda/(1+\lambda)
    \in [0, 1)`: a grid first (one batched evaluation, guarding against a second
    local optimum), then the root of :math:`f'` between the best grid point's
    neighbours by Brent's root finder, which locates the optimum to ~1e-13 in
    about ten evaluations (a minimizer stops at ~1e-8, where the flat
    criterion stops changing). :math:`\rho = 0` (a singular fit, BLUPs 0) wins
    when its criterion is no worse. The BLUP of a cluster is
    :math:`c_j \sum_{i \in j} (y_i - x_i'\beta)`, 0 for a cluster without units.
    """
    n, p = design.shape
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    sx = group_sums(codes, design, n_groups)
    sy = np.bincount(codes, weights=y, minlength=n_groups)
    xtx, xty, yty = design.T @ design, design.T @ y, float(y @ y)
    ols_rss = yty - float(xty @ np.linalg.solve(xtx, xty))
    if ols_rss <= 1e-12 * max(float(((y - y.mean()) ** 2).sum()), 1e-300):
        # RSS(lambda) >= RSS(0) / (1 + lambda max n_j) > 0 otherwise, so the log is safe.
        raise DataError(
            "the outcome is an exact linear function of the covariates in an arm: there is no "
            "residual variance for a random-intercept model."
        )

    def on_grid(rho: np.ndarray) -> np.ndarray:
        """The criterion at each of the ICCs ``rho`` (K,), batched."""
        lam = rho / (1.0 - rho)
        c = lam[:, None] / (1.0 + lam[:, None] * counts)  # (K, G)
        mats = xtx - np.matmul(sx.T, c[:, :, None] * sx)
        rhs = xty - (c * sy) @ sx
        sign, logdet = np.linalg.slogdet(mats)
        beta = np.linalg.solve(mats, rhs[..., None])[..., 0]
        rss = yty - c @ sy**2 - np.einsum("ki,ki->k", rhs, beta)
        with np.errstate(invalid="ignore", divide="ignore"):
            crit = (n - p) * np.log(rss) + np.log1p(lam[:, None] * counts).sum(axis=1) + logdet
        # At an ICC within ~1e-9 of 1 the GLS cross-product can lose its rank in
        # floating point: such a point is never the optimum.
        return np.where((sign > 0) & (rss > 0), crit, np.inf)

    def at(rho: float, *, criterion: bool = True) -> tuple[float, float, np.ndarray, float]:
        """Criterion (if asked), its derivative in lambda, beta and the RSS at one ICC."""
        lam = rho / (1.0 - rho)
        c = lam / (1.0 + lam * counts)
        dc = 1.0 / (1.0 + lam * counts) ** 2
        mat = xtx - sx.T @ (c[:, None] * sx)
        # One solve for beta and M^-1 s_j (the leverages s_j' M^-1 s_j of the derivative).
        solved = np.linalg.solve(mat, np.column_stack([xty - sx.T @ (c * sy), sx.T]))
        beta = solved[:, 0]
        resid_sums = sy - sx @ beta  # e_j
        rss = float(yty - 2.0 * xty @ beta + beta @ xtx @ beta - c @ resid_sums**2)
        if rss <= 0:
            return np.inf, np.nan, beta, rss
        slope = (
            -(n - p) * float(dc @ resid_sums**2) / rss
            + float((counts / (1.0 + lam * counts)).sum())
            - float(dc @ np.einsum("gi,ig->g", sx, solved[:, 1:]))
        )
        crit = np.nan
        if criterion:
            sign, logdet = np.linalg.slogdet(mat)
            crit = (n - p) * np.log(rss) + float(np.log1p(lam * counts).sum()) + logdet
            crit = crit if sign > 0 else np.inf
        return crit, slope, beta, rss

    grid = np.r_[np.linspace(0.0, 0.99, 34)[1:] ** 2, 0.995, 0.999]  # denser near 0
    best = int(np.argmin(on_grid(grid)))
    lo = grid[best - 1] if best > 0 else 0.0
    hi = grid[best + 1] if best + 1 < grid.size else 1.0 - 1e-9
    slope_lo, slope_hi = at(lo, criterion=False)[1], at(hi, criterion=False)[1]
    if slope_lo < 0.0 < slope_hi:
        rho = optimize.brentq(lambda r: at(r, criterion=False)[1], lo, hi, xtol=1e-14, rtol=1e-13)
    elif lo == 0.0 and slope_lo >= 0.0:
        rho = 0.0  # the criterion rises from the boundary
    else:  # not bracketed (rounding in the flat tail): minimize the criterion instead
        rho = optimize.minimize_scalar(
            lambda r: at(r)[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}
        ).x
    rho = float(rho)
    # The boundary (a singular fit) when it is no worse.
    if at(0.0)[0] <= at(rho)[0]:
        rho = 0.0
    _, _, beta, rss = at(rho, criterion=False)
    lam = rho / (1.0 - rho)
    sigma2 = rss / (n - p)  # the REML residual variance, profiled out
    return beta, lam / (1.0 + lam * counts) * (sy - sx @ beta), sigma2 * lam, sigma2


@one_blas_thread
def outcome_by_arm(
    x: np.ndarray,
    y: np.ndarray,
    d: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    structure: Structure,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Predicted outcomes under control and treatment for every unit, from arm-wise fits.

    An outcome model is fitted in the controls (``d == 0``) and, separately, in
    the treated (``d == 1``); each predicts every unit (the AIPW estimator's
    :math:`\hat\mu_0, \hat\mu_1`).

    Parameters
    ----------
    x : (n, k) array
        Covariates without the intercept (``k`` may be 0).
    y : (n,) array
        The outcome.
    d : (n,) array
        The 0/1 treatment.
    codes : (n,) int array
        Cluster codes ``0..n_groups-1``.
    n_groups : int
        The number of clusters ``G``.
    structure : {"pooled", "fe", "re", "mundlak"}
        ``"pooled"``: OLS of ``y`` on ``1, x`` (statsmodels' OLS to 1e-8).
        ``"fe"``: OLS with one intercept per cluster and common slopes (OLS on
        the cluster dummies to 1e-8); every cluster needs a unit in each arm.
        ``"re"``: a random-intercept linear model by REML (unbalanced clusters);
        the prediction is :math:`\hat\beta_0 + x_i'\hat\beta + \hat u_{g(i)}`, the
        cluster's BLUP in that arm, 0 for a cluster without units in the arm
        (``mlmci.mixed.fit("y ~ x1 + ... + (1 | g)", arm)`` with ``ranef()``,
        to 1e-5). ``"mundlak"``: as ``"re"``, with the cluster means of ``x``
        over all the units of the cluster (both arms) appended as covariates.

    Returns
    -------
    (mu0, mu1) : tuple of numpy.ndarray
        The control-arm and treated-arm predictions, each of shape ``(n,)``.

    Raises
    ------
    ArgumentError
        An unknown ``structure``.
    DataError
        Wrong shapes, missing values, a non-binary ``d``, an arm without units,
        with too few units for its parameters, with a rank-deficient design
        (``"mundlak"``: also a covariate constant within clusters, which is its
        own cluster mean), or (``"re"``, ``"mundlak"``) fewer than two clusters;
        with ``"fe"``, a cluster without a unit in an arm (the message names them).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [2.0], [0.0], [1.0], [2.0]])
    >>> y = np.array([1.0, 2.0, 3.0, 5.0, 7.0, 9.0])
    >>> d = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    >>> mu0, mu1 = outcome_by_arm(x, y, d, np.zeros(6, dtype=int), 1, structure="pooled")
    >>> mu0.round(6).tolist(), mu1.round(6).tolist()
    ([1.0, 2.0, 3.0, 1.0, 2.0, 3.0], [5.0, 7.0, 9.0, 5.0, 7.0, 9.0])
    """
    if structure not in OUTCOME_STRUCTURES:
        raise ArgumentError(
            f"structure must be one of {list(OUTCOME_STRUCTURES)}, got {structure!r}."
        )
    d = _as_treatment(d)
    n = d.shape[0]
    y = _as_vector(y, "y", n)
    x = _as_x(x, n)
    codes, n_groups = _as_codes(codes, n_groups, n)
    if structure == "mundlak" and x.shape[1]:
        x = np.column_stack([x, _cluster_means(x, codes, n_groups)])
    design = np.column_stack([np.ones(n), x])
    out = []
    for value, arm in ((0.0, "control"), (1.0, "treated")):
        rows = d == value
        m = int(rows.sum())
        if m == 0:
            raise DataError(f"there is no {arm} unit: its outcome model cannot be fitted.")
        if structure == "fe":
            out.append(_fe_predict(x[rows], y[rows], codes[rows], x, codes, n_groups, arm))
            continue
        design_arm = design[rows]
        if m <= design.shape[1]:
            raise DataError(
                f"the {arm} arm has {m} units for {design.shape[1]} coefficients: too few."
            )
        means = ", cluster means of x" if structure == "mundlak" else ""
        _check_rank(design_arm, f"{arm} outcome design [1, x{means}]")
        if structure == "pooled":
            out.append(_ols_predict(design_arm, y[rows], design))
            continue
        codes_arm = codes[rows]
        present = int(np.count_nonzero(np.bincount(codes_arm, minlength=n_groups)))
        if present < 2:
            raise DataError(
                f"the {arm} units lie in {present} cluster: a random intercept needs at least two."
            )
        beta, blups, _, _ = _reml_random_intercept(design_arm, y[rows], codes_arm, n_groups)
        out.append(design @ beta + blups[codes])
    return out[0], out[1]
