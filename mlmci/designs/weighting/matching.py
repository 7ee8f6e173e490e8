r"""Nearest-neighbour propensity-score matching with replacement, within clusters and across.

Every unit whose potential outcome in the other arm is needed (the treated for the
ATT, everyone for the ATE) is matched to its ``M`` nearest units of the other arm
on the logit of the fitted propensity, :math:`s_i = \log(e_i / (1 - e_i))`, with
replacement; ``within=True`` matches exactly on the cluster (only inside the unit's
own cluster, the matching counterpart of ``"ipw_within"``). Ties are averaged as
R's ``Matching::Match(ties=TRUE)`` does: every candidate at most the ``M``-th
smallest distance away (plus ``TIE_TOLERANCE``) is a match, each with weight
one over their number. Writing :math:`\mathcal J(i)` for unit ``i``'s matches and
:math:`w_{ij} = 1/|\mathcal J(i)|`,

- :math:`\hat\tau_i = (2W_i - 1)(Y_i - \sum_{j\in\mathcal J(i)} w_{ij}Y_j)`, the ATE
  :math:`\frac1N\sum_i\hat\tau_i` over all units and the ATT
  :math:`\frac1{N_1}\sum_{W_i=1}\hat\tau_i` (Abadie & Imbens 2006);
- :math:`K_i = \sum_{i'} w_{i'i}`, how often unit ``i`` is used as a match (the
  :math:`K_M(i)/M` of Abadie & Imbens without ties), so that the ATE is
  :math:`\frac1N\sum_i(2W_i-1)(1+K_i)Y_i` and the ATT
  :math:`\frac1{N_1}\sum_i(W_i-(1-W_i)K_i)Y_i`: the *implied weights* are
  :math:`1 + K_i` (ATE) and 1 for the treated, :math:`K_i` for the controls (ATT),
  up to a constant within each arm like the other estimators' weights.

There is **no bias correction** (Abadie & Imbens 2011): with one matching variable
the conditional bias vanishes faster than the standard error as the candidates
grow in number. Inside small clusters they do not: ``within=True`` with clusters of
20 units has few candidates per unit, and its matching discrepancies (hence its bias)
do not shrink as clusters are added (``tests/test_matching.py`` measures a bias of 4
standard errors with 300 clusters of 20 when matching on the true propensity, and none
with 60 clusters of 100).

Two standard errors:

- :func:`abadie_imbens_se`, the heteroskedasticity-consistent variance of Abadie &
  Imbens (2006) for independent units, as R's ``Match(..., Var.calc = J)``
  computes it. :math:`\hat\sigma^2_i` is the sample variance (denominator
  :math:`c-1`) of :math:`Y_i` and its ``J`` nearest units of its own arm (ties
  included, :math:`c` values in all) - Matching's convention, which for
  :math:`J = 1` is :math:`\frac J{J+1}(Y_i - \bar Y_{\text{nbrs}})^2` and for
  :math:`J > 1` is not. With :math:`KK_i = \sum_{i'} w_{i'i}^2`,
  :math:`\hat V_{ATE} = \frac1{N^2}\sum_i[(\hat\tau_i-\hat\tau)^2 +
  (K_i^2 + 2K_i - KK_i)\hat\sigma^2_i]` and
  :math:`\hat V_{ATT} = \frac1{N_1^2}[\sum_{W_i=1}(\hat\tau_i-\hat\tau)^2 +
  \sum_{W_i=0}(K_i^2 - KK_i)\hat\sigma^2_i]`. It treats the score as known.
- :func:`linearized_se`, the cluster-robust standard error ``weighting.fit``
  reports. It sums, within clusters, the terms of the linear representation of
  the matching estimator, :math:`\hat\tau - \tau \approx \frac1N\sum_i
  [\tau(s_i) - \tau + (2W_i-1)(1+K_i)\varepsilon_i]` (Abadie & Imbens 2006), in the
  feasible form whose weighted bootstrap Otsu & Rai (2017) propose:
  :math:`T_i = \hat\mu_1(s_i) - \hat\mu_0(s_i) + (2W_i-1)(1+K_i)(Y_i - \hat\mu_{W_i}(s_i))`
  (ATE) and :math:`T_i = W_i(Y_i - \hat\mu_0(s_i)) - (1-W_i)K_i(Y_i - \hat\mu_0(s_i))`
  (ATT), where :math:`\hat\mu_w` is a cubic polynomial in the score fitted in arm
  :math:`w` (a series estimate of :math:`E[Y\mid W=w, s]`, used only here).
  Without bias correction the mean of the :math:`T_i` differs from the estimate by
  the (small) bias-correction term, so the terms are centred at their own mean:
  :math:`\psi_i = T_i - \bar T` (ATE) or :math:`T_i - W_i\sum_k T_k/N_1` (ATT), and
  :math:`\hat V = \frac G{G-1}\frac1{N^2}\sum_g(\sum_{i\in g}\psi_i)^2` (:math:`N_1^2`
  for the ATT), the convention of the other weighting estimators. A unit's
  own noise enters through its own cluster's sum however many other clusters'
  units it was matched to, so it targets the variance of the estimator under
  sampling of clusters (errors correlated within clusters, effects varying
  between them). With every unit its own cluster it is the unclustered
  linearized variance, :math:`\frac N{N-1}\frac1{N^2}\sum_i\psi_i^2`, which is
  asymptotically - not numerically - the Abadie-Imbens variance. (Building
  :math:`T_i` from the matched outcomes instead of a smooth :math:`\hat\mu`
  would not do: a mean of ``M`` neighbours carries noise of the order of
  :math:`\sigma^2/M` that does not vanish, and the variance would be too large
  by about :math:`\frac1{N^2}\sum_i K_i\sigma^2_i/M`.) Within clusters the cluster sums of
  the residual part cancel any cluster-constant shift, so for ``within=True`` the
  variance is essentially that of the share-weighted mean of the cluster
  contrasts, as for ``"ipw_within"``.

Everything is vectorized: the donors are sorted once by (cluster, score), each
unit's ``M`` nearest are found with :func:`numpy.searchsorted` and a window of
``2M`` neighbours, the tied matches are a contiguous range of the sorted donors,
and the imputations and :math:`K_i` come from cumulative sums: at ``N = 10^4``
the estimate with its clustered SE takes about 5-8 ms (ATT) and 12-16 ms (ATE), the
Abadie-Imbens SE 15-25 ms.

Examples
--------
Three treated (scores 0, 1, 3) and three controls (0.2, 0.9, 2): for the ATT the
treated's matches are the controls at 0.2, 0.9 and 2, so each control is used once.

>>> import numpy as np
>>> s = np.array([0.0, 1.0, 3.0, 0.2, 0.9, 2.0])
>>> d = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
>>> y = np.array([5.0, 6.0, 9.0, 1.0, 2.0, 4.0])
>>> res = match_estimate(y, d, s, estimand="ATT")
>>> res.estimate, res.weights.tolist()
(4.333333333333333, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmci.designs.weighting.estimators import Estimate, clustered_se
from mlmci.errors import ArgumentError, DataError

__all__ = [
    "TIE_TOLERANCE",
    "Matches",
    "abadie_imbens_se",
    "linear_terms",
    "linearized_se",
    "match_estimate",
    "nearest",
]

#: Candidates whose distances differ by at most this (on the logit scale) are tied.
TIE_TOLERANCE = 1e-10
#: The degree of the polynomial in the score for the linear representation's mean functions.
SERIES_DEGREE = 3


@dataclass(frozen=True)
class Matches:
    """The matches of the ``queries`` among the ``donors`` (positions into the data).

    The matches of ``queries[k]`` are ``donors[order[lo[k]:hi[k]]]`` (``order`` sorts
    the donors by cluster and score), each with weight ``1 / count[k]``;
    ``imputed[k]`` is the weighted mean of their outcomes; ``used`` (one per donor,
    in the donors' order) is :math:`K` and ``used_sq`` :math:`KK`.
    """

    queries: np.ndarray
    donors: np.ndarray
    order: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    count: np.ndarray
    imputed: np.ndarray
    used: np.ndarray
    used_sq: np.ndarray

    def pairs(self) -> np.ndarray:
        """All (query, match) pairs as an array of shape (n_pairs, 2), positions into the data."""
        k = np.repeat(np.arange(len(self.queries)), self.hi - self.lo)
        start = np.repeat(
            self.lo - np.cumsum(np.r_[0, (self.hi - self.lo)[:-1]]), self.hi - self.lo
        )
        idx = start + np.arange(len(k))
        return np.column_stack([self.queries[k], self.donors[self.order[idx]]])


def _check_matches(matches: object) -> int:
    if isinstance(matches, bool) or not isinstance(matches, int | np.integer) or matches < 1:
        raise ArgumentError(f"matches must be an integer >= 1, got {matches!r}.")
    return int(matches)


def nearest(
    s: np.ndarray,
    y: np.ndarray,
    queries: np.ndarray,
    donors: np.ndarray,
    m: int,
    cells: np.ndarray | None = None,
    *,
    exclude_self: bool = False,
) -> Matches:
    """Match each of ``queries`` to its ``m`` nearest ``donors`` on ``s`` (ties averaged).

    ``cells`` (integer codes, one per unit) restricts the matches to the query's own
    cell; ``exclude_self`` (queries among the donors) leaves each query out of its own
    matches. Every query's cell must hold ``m`` donors (other than itself); the
    callers check that with messages that name the clusters.

    Examples
    --------
    >>> import numpy as np
    >>> s, y = np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 10.0, 20.0, 30.0])
    >>> res = nearest(s, y, queries=np.array([0]), donors=np.array([1, 2, 3]), m=2)
    >>> res.imputed.tolist(), res.used.tolist()
    ([15.0], [0.5, 0.5, 0.0])
    """
    cells = np.zeros(len(s), dtype=np.int64) if cells is None else cells
    vd, cd = s[donors], cells[donors]
    order = np.lexsort((vd, cd))
    v_sorted, c_sorted, y_sorted = vd[order], cd[order], y[donors][order]
    ranks_base = np.sort(vd)
    big = len(vd) + 1
    keys = c_sorted * big + np.searchsorted(ranks_base, v_sorted, "left")
    n_cells = int(cells.max()) + 1
    start = np.searchsorted(keys, np.arange(n_cells) * big, "left")
    end = np.searchsorted(keys, (np.arange(n_cells) + 1) * big, "left")

    q, qc = s[queries], cells[queries]
    qbase = qc * big
    pos = np.searchsorted(keys, qbase + np.searchsorted(ranks_base, q, "left"), "left")
    width = m + 1 if exclude_self else m
    idx = pos[:, None] + np.arange(-width, width)
    valid = (idx >= start[qc][:, None]) & (idx < end[qc][:, None])
    safe = np.clip(idx, 0, len(vd) - 1)
    dist = np.where(valid, np.abs(v_sorted[safe] - q[:, None]), np.inf)
    if exclude_self:
        self_pos = np.empty(len(donors), dtype=np.int64)
        self_pos[order] = np.arange(len(donors))
        where = np.empty(len(s), dtype=np.int64)
        where[donors] = np.arange(len(donors))
        mine = self_pos[where[queries]]
        dist = np.where(safe == mine[:, None], np.inf, dist)
    dm = np.partition(dist, m - 1, axis=1)[:, m - 1]
    if not np.isfinite(dm).all():  # pragma: no cover - the callers check the counts
        raise DataError(f"some units have fewer than {m} candidates to match in their cell.")
    lo = np.searchsorted(
        keys, qbase + np.searchsorted(ranks_base, q - dm - TIE_TOLERANCE, "left"), "left"
    )
    hi = np.searchsorted(
        keys, qbase + np.searchsorted(ranks_base, q + dm + TIE_TOLERANCE, "right"), "left"
    )
    count = (hi - lo).astype(float)
    cy = np.r_[0.0, np.cumsum(y_sorted)]
    total = cy[hi] - cy[lo]
    if exclude_self:
        count = count - 1
        total = total - y[queries]
    inv = 1 / count
    size = len(vd) + 1
    diff = np.bincount(lo, inv, size) - np.bincount(hi, inv, size)
    diff_sq = np.bincount(lo, inv**2, size) - np.bincount(hi, inv**2, size)
    used_sorted = np.cumsum(diff)[:-1]
    used_sq_sorted = np.cumsum(diff_sq)[:-1]
    if exclude_self:  # the query's own slot was counted in its range
        used_sorted[mine] -= inv
        used_sq_sorted[mine] -= inv**2
    used, used_sq = np.empty(len(vd)), np.empty(len(vd))
    used[order], used_sq[order] = used_sorted, used_sq_sorted
    return Matches(
        queries=queries,
        donors=donors,
        order=order,
        lo=lo,
        hi=hi,
        count=count,
        imputed=total / count,
        used=used,
        used_sq=used_sq,
    )


@dataclass(frozen=True)
class _Fit:
    tau_i: np.ndarray  # (2W-1)(Y - imputed) for the imputed units, 0 elsewhere
    imputed_rows: np.ndarray  # bool: which units were matched
    k: np.ndarray  # K_i per unit
    kk: np.ndarray  # KK_i per unit
    estimate: float
    matches: tuple[Matches, ...]


def _check(d: np.ndarray, estimand: str, m: int, cells: np.ndarray | None) -> None:
    if estimand not in ("ATE", "ATT"):
        raise ArgumentError(f"estimand must be 'ATE' or 'ATT', got {estimand!r}.")
    arms = ("controls",) if estimand == "ATT" else ("controls", "treated")
    if cells is None:
        for arm in arms:
            size = int((d == (arm == "treated")).sum())
            if size < m:
                raise DataError(
                    f"matches={m} needs at least {m} {arm} to match the "
                    f"{'treated' if arm == 'controls' else 'controls'} to; there are {size}. "
                    "Use fewer matches."
                )
        return
    n_cells = int(cells.max()) + 1
    n1 = np.bincount(cells, weights=d, minlength=n_cells)
    n0 = np.bincount(cells, weights=1 - d, minlength=n_cells)
    one_arm = np.flatnonzero((n1 == 0) | (n0 == 0))
    if one_arm.size:
        raise DataError(
            "matching within clusters needs both arms in every cluster; cluster codes "
            f"{one_arm[:10].tolist()} have one arm only (drop them first)."
        )
    small = n0 < m if estimand == "ATT" else np.minimum(n0, n1) < m
    if small.any():
        raise DataError(
            f"matches={m} within clusters needs at least {m} units of the arm being matched "
            f"to in every cluster; cluster codes {np.flatnonzero(small)[:10].tolist()} have "
            "fewer. Use fewer matches or match across clusters."
        )


def _fit(y, d, s, estimand, m, cells) -> _Fit:
    _check(d, estimand, m, cells)
    n = len(y)
    treated, controls = np.flatnonzero(d == 1), np.flatnonzero(d == 0)
    tau_i, k, kk = np.zeros(n), np.zeros(n), np.zeros(n)
    runs = (
        [(treated, controls)] if estimand == "ATT" else [(treated, controls), (controls, treated)]
    )
    found = []
    for queries, donors in runs:
        res = nearest(s, y, queries, donors, m, cells)
        sign = 1.0 if d[queries[0]] == 1 else -1.0
        tau_i[queries] = sign * (y[queries] - res.imputed)
        k[donors] += res.used
        kk[donors] += res.used_sq
        found.append(res)
    rows = d == 1 if estimand == "ATT" else np.ones(n, dtype=bool)
    return _Fit(tau_i, rows, k, kk, float(tau_i[rows].mean()), tuple(found))


def _implied_weights(d: np.ndarray, k: np.ndarray, estimand: str) -> np.ndarray:
    return np.where(d == 1, 1.0, k) if estimand == "ATT" else 1.0 + k


def _own_arm_variance(y, d, s, j, cells) -> np.ndarray:
    """Matching's conditional variances: the sample variance of Y_i and its J own-arm nbrs."""
    sig = np.empty(len(y))
    yc = y - y.mean()
    for arm in (0.0, 1.0):
        rows = np.flatnonzero(d == arm)
        if cells is None:
            available = np.full(rows.size, rows.size - 1)
        else:
            available = (np.bincount(cells[rows], minlength=int(cells.max()) + 1) - 1)[cells[rows]]
        if (available < 1).any():
            where = (
                ""
                if cells is None
                else f" in cluster codes {np.unique(cells[rows][available < 1])[:10].tolist()}"
            )
            raise DataError(
                f"the Abadie-Imbens variance needs two units of each arm{where} to estimate "
                "the conditional variances by matching within the arm."
            )
        # Matching caps J at the number of other units in the arm (cell)
        for jj in np.unique(np.minimum(available, j)):
            sub = rows[np.minimum(available, j) == jj]
            res = nearest(s, yc, sub, rows, int(jj), cells, exclude_self=True)
            c = res.count + 1  # the unit and its neighbours
            mean = (res.imputed * res.count + yc[sub]) / c
            squares = np.r_[0.0, np.cumsum((yc[rows] ** 2)[res.order])]
            second = (squares[res.hi] - squares[res.lo]) / c  # the range includes the unit
            sig[sub] = (second - mean**2) * c / (c - 1)
    return sig


def abadie_imbens_se(
    y: np.ndarray,
    d: np.ndarray,
    s: np.ndarray,
    *,
    estimand: str = "ATE",
    matches: int = 1,
    var_matches: int | None = None,
    cells: np.ndarray | None = None,
) -> float:
    """The Abadie-Imbens (2006) standard error of the matching estimator (independent units).

    ``var_matches`` is ``J``, the own-arm neighbours for the conditional variances
    (default ``matches``, R's ``Var.calc = M``); ``cells`` matches within cells. See
    the module docstring for the formula; equal to R's ``Matching::Match(Y, Tr, X = s,
    M = matches, ties = TRUE, Var.calc = J, BiasAdjust = FALSE)`` (tested to 1e-8; it
    agrees to about 1e-14). Match's default tolerances (``distance.tolerance = 1e-5``,
    ``tolerance = sqrt(eps)``) act on squared standardized distances and so treat
    near-ties as ties; the equality is with them at 0, or on data whose distinct
    distances differ by more (``tests/reference/README.md``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=200); d = (rng.random(200) < 0.5).astype(float)
    >>> y = s + d + rng.normal(size=200)
    >>> round(abadie_imbens_se(y, d, s, estimand="ATT"), 3)
    0.203
    """
    m = _check_matches(matches)
    j = m if var_matches is None else _check_matches(var_matches)
    y, d, s = (np.asarray(a, dtype=float) for a in (y, d, s))
    fit = _fit(y, d, s, estimand, m, cells)
    sig = _own_arm_variance(y, d, s, j, cells)
    dev = fit.tau_i - fit.estimate
    if estimand == "ATE":
        var = np.sum(dev**2) + np.sum(sig * (fit.k**2 + 2 * fit.k - fit.kk))
        return float(np.sqrt(var) / len(y))
    c = d == 0
    var = np.sum(dev[d == 1] ** 2) + np.sum(sig[c] * (fit.k[c] ** 2 - fit.kk[c]))
    return float(np.sqrt(var) / d.sum())


def _series(s: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A cubic polynomial in the standardized score fitted on ``rows``, predicted everywhere."""
    sd = s[rows].std()
    z = (s - s[rows].mean()) / (sd if sd > 0 else 1.0)
    degree = min(SERIES_DEGREE, int(rows.sum()) - 1)
    basis = np.vander(z, degree + 1, increasing=True)
    beta = np.linalg.lstsq(basis[rows], y[rows], rcond=None)[0]
    return basis @ beta


def linear_terms(y, d, s, k, estimand) -> np.ndarray:
    """The linear representation's centred terms :math:`\\psi_i` (module docstring)."""
    mu0 = _series(s, y, d == 0)
    if estimand == "ATT":
        t = np.where(d == 1, y - mu0, -k * (y - mu0))
        return t - d * t.sum() / d.sum()
    mu1 = _series(s, y, d == 1)
    t = mu1 - mu0 + (2 * d - 1) * (1 + k) * (y - np.where(d == 1, mu1, mu0))
    return t - t.mean()


def linearized_se(
    y: np.ndarray,
    d: np.ndarray,
    s: np.ndarray,
    *,
    codes: np.ndarray | None = None,
    n_groups: int | None = None,
    estimand: str = "ATE",
    matches: int = 1,
    within: bool = False,
) -> float:
    """The cluster-robust SE from the matching estimator's linear representation.

    ``codes`` (0..G-1) are the clusters the terms are summed in (default: every
    unit its own cluster); ``within`` matches inside them. See the module
    docstring for the terms and what the variance targets.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=2000); d = (rng.random(2000) < 0.5).astype(float)
    >>> y = s + d + rng.normal(size=2000)
    >>> a = linearized_se(y, d, s, estimand="ATT"); b = abadie_imbens_se(y, d, s, estimand="ATT")
    >>> bool(abs(a / b - 1) < 0.1)
    True
    """
    m = _check_matches(matches)
    y, d, s = (np.asarray(a, dtype=float) for a in (y, d, s))
    if codes is None:
        codes, n_groups = np.arange(len(y)), len(y)
    n_groups = int(codes.max()) + 1 if n_groups is None else n_groups
    fit = _fit(y, d, s, estimand, m, codes if within else None)
    return clustered_se(
        _influence(linear_terms(y, d, s, fit.k, estimand), d, estimand), codes, n_groups
    )


def _influence(psi, d, estimand) -> np.ndarray:
    """The linear terms scaled to the estimate: the ATE's are over N, the ATT's over N_1."""
    return psi / (d.sum() if estimand == "ATT" else len(psi))


def match_estimate(
    y: np.ndarray,
    d: np.ndarray,
    s: np.ndarray,
    *,
    estimand: str = "ATE",
    matches: int = 1,
    codes: np.ndarray | None = None,
    n_groups: int | None = None,
    within: bool = False,
) -> Estimate:
    """The matching estimate on the score ``s``, its cluster-robust SE and implied weights.

    ``codes`` are the clusters (default: every unit its own); ``within=True``
    matches only inside them. The SE is :func:`linearized_se`'s; ``weights`` are the
    implied weights (module docstring). No bias correction.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([0.0, 1.0, 0.1, 0.8, 5.0, 5.2, 4.0])
    >>> d = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    >>> y = np.array([3.0, 4.0, 1.0, 2.0, 9.0, 6.0, 5.0])
    >>> codes = np.array([0, 0, 0, 0, 1, 1, 1])
    >>> res = match_estimate(y, d, s, estimand="ATT", codes=codes, within=True)
    >>> res.estimate, res.weights.tolist()
    (2.3333333333333335, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    """
    m = _check_matches(matches)
    y, d, s = (np.asarray(a, dtype=float) for a in (y, d, s))
    if codes is None:
        codes = np.arange(len(y))
    n_groups = int(codes.max()) + 1 if n_groups is None else n_groups
    fit = _fit(y, d, s, estimand, m, codes if within else None)
    influence = _influence(linear_terms(y, d, s, fit.k, estimand), d, estimand)
    se = clustered_se(influence, codes, n_groups)
    return Estimate(fit.estimate, se, _implied_weights(d, fit.k, estimand), influence)
