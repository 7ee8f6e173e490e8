"""Regression discontinuity with and without hierarchical terms (public API in :mod:`mlmci.rdd`)."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd

from mlmci import meta, mixed
from mlmci.designs.rdd import twin
from mlmci.designs.rdd.local import local_linear
from mlmci.designs.rdd.result import RDResult
from mlmci.designs.rdd.twin import RDBayesResult
from mlmci.engines import OLS, REML, Bayes, Engine, resolve
from mlmci.errors import ArgumentError, DataError
from mlmci.results import interval_label
from mlmci.validation import require_columns, require_dataframe, require_no_missing, require_numeric

__all__ = ["METHODS", "RDResult", "density_test", "fit", "local_linear"]

METHODS = ("rdrobust", "per_site", "eb", "mlm")
_VCE = ("nn", "hc0", "hc1", "hc2", "hc3")
_ALLOWED = {"rdrobust": (OLS,), "per_site": (OLS,), "eb": (OLS,), "mlm": (REML, Bayes)}
_DEFAULTS = {
    "rdrobust": OLS("nn"),
    "per_site": OLS("nn"),
    "eb": OLS("nn"),
    "mlm": REML(allow_boundary=True),
}
_MIN_DISTINCT = 3  # distinct running values per side inside the bandwidth (line + variance)


def fit(
    data: pd.DataFrame,
    y: str,
    *,
    running: str,
    cutoff: float = 0.0,
    site: str | None = None,
    method: str,
    bandwidth: float | None = None,
    engine: Engine | None = None,
    prob: float | None = None,
) -> RDResult | RDBayesResult:
    """Estimate a sharp RD jump at ``cutoff``, pooled or site by site.

    Parameters
    ----------
    data
        One row per unit. Not modified. No missing values in the used columns.
    y, running
        Outcome and running variable (numeric). Treatment is ``running >= cutoff``.
    cutoff
        The cutoff; must lie strictly inside the range of ``running``.
    site
        The site column (required by ``per_site``, ``eb`` and ``mlm``).
    method
        ``"rdrobust"``, ``"per_site"``, ``"eb"`` or ``"mlm"`` (module docstring).
    bandwidth
        The common bandwidth: ``h`` (then the bias-correction bandwidth ``b = h``, as
        rdrobust does) or a pair ``(h, b)``; default rdrobust's MSE-optimal
        bandwidths on the pooled data. ``mlm`` uses ``h`` only.
    engine
        ``OLS(cov_type=...)`` for the rdrobust-based methods, where ``cov_type`` is
        rdrobust's ``vce`` (``"nn"``, the default, or ``"hc0"``-``"hc3"``);
        ``REML(allow_boundary=...)`` for ``mlm`` (default ``True``: a zero variance of
        the site jumps is a legitimate answer), or ``Bayes(sampler=..., gate=...)``
        for its Bayesian twin (:mod:`mlmci.designs.rdd.twin`: the same model, kernel
        weights and bandwidth, sampled in PyMC through the convergence gate).
    prob
        Default interval probability of the result's tables (0.95 if not given);
        ``tidy(prob=...)`` gives any other.

    Returns
    -------
    RDResult or RDBayesResult
        :class:`~mlmci.designs.rdd.twin.RDBayesResult` for ``mlm`` with ``Bayes()``.

    Raises
    ------
    DataError
        A missing column or value, a cutoff outside the data, too few distinct
        running values on a side near the cutoff, a site with fewer than 3
        distinct running values on a side inside the bandwidth (named), fewer than
        3 sites for ``eb``.
    mlmci.errors.ArgumentError
        An unknown method, a senseless engine, an unknown ``vce``, a bandwidth that
        is not positive, a site method without ``site``.
    mlmci.errors.DataTypeError
        ``data`` is not a DataFrame or a column is not numeric.

    Examples
    --------
    >>> from mlmci import datasets, rdd
    >>> senate = datasets.load("senate").dropna(subset=["vote"])
    >>> res = rdd.fit(senate, "vote", running="margin", method="rdrobust")
    >>> row = res.effect()
    >>> round(float(row["estimate"]), 3), round(float(row["ci_low"]), 3)
    (7.414, 4.094)
    """
    data = require_dataframe(data)
    eng = resolve(method, engine, allowed=_ALLOWED, defaults=_DEFAULTS)
    if method != "rdrobust" and site is None:
        raise ArgumentError(f"method {method!r} needs site=: the column naming each unit's site.")
    cols = [y, running] + ([site] if site is not None else [])
    require_columns(data, cols)
    require_no_missing(data, cols)
    require_numeric(data, [y, running])
    if isinstance(eng, OLS) and eng.cov_type not in _VCE:
        raise ArgumentError(
            f"OLS(cov_type=...) is rdrobust's vce here: one of {_VCE}, got {eng.cov_type!r}."
        )
    if prob is not None:
        interval_label(prob, "CI")
    yv = data[y].to_numpy(float)
    xv = data[running].to_numpy(float)
    if not np.isfinite(cutoff) or not (xv.min() < cutoff < xv.max()):
        raise DataError(
            f"cutoff {cutoff!r} lies outside the range of {running!r} "
            f"[{xv.min():.4g}, {xv.max():.4g}]: both sides need observations."
        )
    h_given, b_given = _bandwidths(bandwidth)
    _check_sides(xv, cutoff, np.inf if h_given is None else h_given, running)
    vce = eng.cov_type if isinstance(eng, OLS) else "nn"
    printed: list[str] = []
    if method == "mlm" and h_given is not None:
        pooled, h, b = None, h_given, b_given  # no rdrobust fit needed
    else:
        pooled = _rdrobust(yv, xv, cutoff=cutoff, h=h_given, b=b_given, vce=vce, printed=printed)
        h = float(pooled.bws.iloc[0, 0])
        b = float(pooled.bws.iloc[1, 0])
    _check_sides(xv, cutoff, h, running)
    notes = tuple(f"rdrobust: {line}" for line in dict.fromkeys(printed))
    common = dict(native=pooled, h=h, b=b, prob=prob, diagnostics={"h": h, "b": b, "vce": vce})
    if method == "rdrobust":
        row = _rdrobust_row(pooled, "jump", None, h, b)
        return RDResult(
            "rdrobust",
            _frame([row]),
            notes=notes,
            title=(
                f"Sharp RD, local linear (rdrobust, {vce}), h = {h:.4g}: "
                f"{y} at {running} = {cutoff:g}"
            ),
            **common,
        )

    labels, codes = np.unique(data[site].to_numpy(), return_inverse=True)
    if len(labels) < 2:
        raise DataError(f"site {site!r} has a single level; use method='rdrobust'.")
    _check_sites(xv, codes, labels, cutoff, h, site)
    if method == "mlm" and isinstance(eng, Bayes):
        local = twin.local_data(yv, xv, codes, labels, cutoff=cutoff, h=h)
        return twin.fit_bayes(local, eng, notes)
    if method == "mlm":
        return _mlm(
            yv,
            xv,
            codes,
            labels,
            cutoff=cutoff,
            h=h,
            b=b,
            pooled=pooled,
            allow_boundary=eng.allow_boundary,
            notes=notes,
            prob=prob,
        )
    site_rows = []
    for j, label in enumerate(labels):
        idx = codes == j
        res = _rdrobust(yv[idx], xv[idx], cutoff=cutoff, h=h, b=b, vce=vce, printed=printed)
        site_rows.append(_rdrobust_row(res, "jump", label, h, b))
    sites = pd.DataFrame(site_rows)
    notes = tuple(f"rdrobust: {line}" for line in dict.fromkeys(printed))
    if method == "per_site":
        k = len(sites)
        w = sites["n_left"] + sites["n_right"]
        heads = []
        for term, wt in [("jump", np.full(k, 1.0 / k)), ("jump (N-weighted)", w / w.sum())]:
            wt = np.asarray(wt, float)
            heads.append(
                {
                    "term": term,
                    "group": None,
                    "estimate": float(wt @ sites["estimate"]),
                    "std_error": float(np.sqrt(wt**2 @ sites["std_error"] ** 2)),
                    "rb_center": float(wt @ sites["rb_center"]),
                    "rb_se": float(np.sqrt(wt**2 @ sites["rb_se"] ** 2)),
                    "h": h,
                    "b": b,
                    "n_left": int(sites["n_left"].sum()),
                    "n_right": int(sites["n_right"].sum()),
                }
            )
        return RDResult(
            "per_site",
            _frame(heads + site_rows),
            notes=notes,
            title=f"Sharp RD per site at a common h = {h:.4g} "
            f"({len(labels)} sites); jump = unweighted site average",
            **common,
        )
    # eb
    if len(labels) < 3:
        raise DataError(f"method 'eb' needs at least three sites; {site!r} has {len(labels)}.")
    mres = meta.fit(
        sites["estimate"].to_numpy(), sites["std_error"].to_numpy() ** 2, labels=list(labels)
    )
    mt = mres.tidy(0.95)
    mean_row = mt[mt["group"].isna()].iloc[0]
    site_t = mt[mt["group"].notna()].reset_index(drop=True)
    rows = [
        {
            "term": "jump",
            "group": None,
            "estimate": mean_row["estimate"],
            "std_error": mean_row["std_error"],
            "rb_center": np.nan,
            "rb_se": np.nan,
            "kind": "CI",
            "h": h,
            "b": b,
            "n_left": int(sites["n_left"].sum()),
            "n_right": int(sites["n_right"].sum()),
        }
    ]
    for j, r in site_t.iterrows():
        rows.append(
            {
                "term": "jump",
                "group": labels[j],
                "estimate": r["estimate"],
                "std_error": r["std_error"],
                "rb_center": np.nan,
                "rb_se": np.nan,
                "kind": "CI (EB)",
                "h": h,
                "b": b,
                "n_left": sites["n_left"].iloc[j],
                "n_right": sites["n_right"].iloc[j],
                "raw": r["raw"],
                "raw_std_error": r["raw_std_error"],
                "shrinkage": r["shrinkage"],
            }
        )
    common["native"] = {"rdrobust": pooled, "meta": mres}
    common["diagnostics"] = {**common["diagnostics"], "tau": mres.tau, **mres.diagnostics}
    return RDResult(
        "eb",
        _frame(rows),
        notes=notes + mres.notes,
        extra={"tau": mres.tau},
        title=f"Sharp RD, empirical Bayes over {len(labels)} site jumps at h = "
        f"{h:.4g} (REML meta-analysis); jump = hyper-mean",
        **common,
    )


def density_test(data: pd.DataFrame, running: str, *, cutoff: float = 0.0) -> pd.Series:
    """Test for a jump in the density of ``running`` at ``cutoff`` (rddensity; manipulation).

    Returns a Series: ``statistic`` and ``p_value`` (rddensity's jackknife test of
    equal densities on the two sides), ``density_left``, ``density_right``,
    ``h_left``, ``h_right`` (its bandwidths) and ``n_left``, ``n_right``
    (observations inside them). A small p-value means units may have sorted
    around the cutoff; a large one does not prove they did not.

    Examples
    --------
    >>> from mlmci import datasets, rdd
    >>> senate = datasets.load("senate").dropna(subset=["vote"])
    >>> round(float(rdd.density_test(senate, "margin")["p_value"]), 2)
    0.45
    """
    from rddensity import rddensity

    data = require_dataframe(data)
    require_columns(data, [running])
    require_no_missing(data, [running])
    require_numeric(data, [running])
    x = data[running].to_numpy(float)
    if not (x.min() < cutoff < x.max()):
        raise DataError(f"cutoff {cutoff!r} lies outside the range of {running!r}.")
    _check_sides(x, cutoff, np.inf, running)
    # rddensity prints its warnings (e.g. on mass points) to stdout: keep them off the page.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rddensity(X=x, c=cutoff)
    return pd.Series(
        {
            "statistic": float(res.test["t_jk"]),
            "p_value": float(res.test["p_jk"]),
            "density_left": float(res.hat["left"]),
            "density_right": float(res.hat["right"]),
            "h_left": float(res.h["left"]),
            "h_right": float(res.h["right"]),
            "n_left": int(res.n["eff_left"]),
            "n_right": int(res.n["eff_right"]),
        }
    )


def _bandwidths(bandwidth) -> tuple[float | None, float | None]:
    """``(h, b)`` from ``None``, one number (``b = h``) or a pair."""
    if bandwidth is None:
        return None, None
    pair = tuple(bandwidth) if isinstance(bandwidth, tuple | list) else (bandwidth, bandwidth)
    try:
        h, b = (float(v) for v in pair)
    except (TypeError, ValueError):
        h = b = float("nan")
    if len(pair) != 2 or not (np.isfinite(h) and np.isfinite(b) and h > 0 and b > 0):
        raise ArgumentError(
            f"bandwidth must be a positive number h or a pair (h, b), got {bandwidth!r}."
        )
    return h, b


def _frame(rows: list[dict]) -> pd.DataFrame:
    # Keep site labels as given (a None headline would turn integer labels into floats).
    frame = pd.DataFrame(rows)
    frame["group"] = pd.Series([r["group"] for r in rows], dtype=object)
    return frame


def _rdrobust(y, x, *, cutoff, h, vce, printed, b=None):
    from rdrobust import rdrobust

    out = io.StringIO()
    # rdrobust prints ("Mass points detected in the running variable.", "Not enough
    # observations to perform bandwidth calculations...") and warns on vce switches:
    # keep both off the reader's page and report the printed lines as notes.
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = rdrobust(y, x, c=cutoff, h=h, b=b, vce=vce)
        except Exception as exc:  # rdrobust fails obscurely on degenerate input
            raise DataError(f"rdrobust failed ({type(exc).__name__}: {exc}).") from exc
    printed.extend(line.strip() for line in out.getvalue().splitlines() if line.strip())
    return res


def _rdrobust_row(res, term, group, h, b) -> dict:
    return {
        "term": term,
        "group": group,
        "estimate": float(res.coef.iloc[0, 0]),
        "std_error": float(res.se.iloc[0, 0]),
        "rb_center": float(res.coef.iloc[2, 0]),
        "rb_se": float(res.se.iloc[2, 0]),
        "h": h,
        "b": b,
        "n_left": int(res.N_h[0]),
        "n_right": int(res.N_h[1]),
    }


def _check_sides(x, cutoff, h, running):
    near = np.abs(x - cutoff) <= h
    for side, mask in (("below", x < cutoff), ("at or above", x >= cutoff)):
        distinct = np.unique(x[near & mask]).size
        if distinct < _MIN_DISTINCT:
            raise DataError(
                f"{running!r} has {distinct} distinct value(s) {side} the cutoff {cutoff:g}"
                + ("" if np.isinf(h) else f" within the bandwidth {h:.4g}")
                + f": a local-linear fit needs at least {_MIN_DISTINCT} on each side."
            )


def _check_sites(x, codes, labels, cutoff, h, site):
    near = np.abs(x - cutoff) <= h
    # Distinct (site, side, value) triples inside the bandwidth, counted per site and side.
    side = (x >= cutoff).astype(int)
    triples = np.unique(np.column_stack([codes[near], side[near], x[near]]), axis=0)
    counts = np.zeros((len(labels), 2), int)
    np.add.at(counts, (triples[:, 0].astype(int), triples[:, 1].astype(int)), 1)
    bad = [
        f"{labels[j]} ({counts[j, 0]} below, {counts[j, 1]} above)"
        for j in np.flatnonzero(counts.min(axis=1) < _MIN_DISTINCT)
    ]
    if bad:
        shown = ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise DataError(
            f"{len(bad)} site(s) of {site!r} have fewer than {_MIN_DISTINCT} distinct running "
            f"values on a side of the cutoff within the common bandwidth {h:.4g}: {shown}. "
            "Merge or drop them, or widen the bandwidth."
        )


def _mlm(y, x, codes, labels, *, cutoff, h, b, pooled, allow_boundary, notes, prob) -> RDResult:
    u = x - cutoff
    keep = np.abs(u) < h
    frame = pd.DataFrame(
        {
            "y": y[keep],
            "d": (u[keep] >= 0).astype(float),
            "x": u[keep],
            "g": codes[keep],
            "w": 1.0 - np.abs(u[keep]) / h,
        }
    )
    res = mixed.fit(
        "y ~ d + x + d:x + (1 + d | g)", frame, weights="w", allow_boundary=allow_boundary
    )
    beta = res.beta
    k = len(labels)
    order = list(range(k))
    blups = res.ranef().reindex(order)["d"].to_numpy()
    cond_var = res.ranef_variance().reindex(order)["d"].to_numpy()
    xd, zd, position = res.design()
    group_of = res.ranef().index.to_numpy()[position].astype(int)
    sw = np.sqrt(frame["w"].to_numpy())
    # Prior weights: the model for sqrt(w) * (y, X, Z) has homoskedastic noise, so
    # Henderson's pieces are those of the unweighted model on the scaled rows.
    xs, zs = xd.to_numpy() * sw[:, None], zd.to_numpy() * sw[:, None]
    cov_re = res.cov_re().loc[["Intercept", "d"], ["Intercept", "d"]].to_numpy()
    sigma2 = res.sigma**2
    p = xs.shape[1]
    xtx, ztz, ztx = np.zeros((k, p, p)), np.zeros((k, 2, 2)), np.zeros((k, 2, p))
    np.add.at(xtx, group_of, np.einsum("ni,nj->nij", xs, xs))
    np.add.at(ztz, group_of, np.einsum("ni,nj->nij", zs, zs))
    np.add.at(ztx, group_of, np.einsum("ni,nj->nij", zs, xs))
    # V_j^{-1} = (I - Z (s2 I + G Z'Z)^{-1} G Z') / s2: q x q solves only, valid for singular G.
    inner = np.linalg.solve(sigma2 * np.eye(2) + cov_re @ ztz, np.broadcast_to(cov_re, ztz.shape))
    zt_vinv_x = (ztx - ztz @ inner @ ztx) / sigma2
    info = ((xtx - np.transpose(ztx, (0, 2, 1)) @ inner @ ztx) / sigma2).sum(axis=0)
    gains = cov_re @ zt_vinv_x  # K_j = G Z_j' V_j^{-1} X_j
    gls_cov = np.linalg.inv(info)
    e = np.zeros(p)
    e[list(beta.index).index("d")] = 1.0
    dvec = e - gains[:, 1, :]  # the jump's row: fixed d minus its BLUP's dependence on beta
    pev = np.einsum("ji,ik,jk->j", dvec, gls_cov, dvec) + cond_var
    head_se = float(np.sqrt(res.vcov.loc["d", "d"]))
    d = frame["d"].to_numpy()
    n_l = np.bincount(frame["g"].to_numpy()[d == 0], minlength=k)
    n_r = np.bincount(frame["g"].to_numpy()[d == 1], minlength=k)
    rows = pd.DataFrame(
        {
            "term": "jump",
            "group": pd.Series([None, *labels], dtype=object),
            "estimate": np.append(float(beta["d"]), float(beta["d"]) + blups),
            "std_error": np.append(head_se, np.sqrt(np.clip(pev, 0.0, None))),
            "rb_center": np.nan,
            "rb_se": np.nan,
            "kind": ["CI"] + ["CI (approx.)"] * k,
            "h": h,
            "b": b,
            "n_left": np.append(n_l.sum(), n_l),
            "n_right": np.append(n_r.sum(), n_r),
        }
    )
    tau = float(np.sqrt(cov_re[1, 1]))
    return RDResult(
        "mlm",
        rows,
        native={"rdrobust": pooled, "mixed": res},
        notes=notes + res.notes,
        h=h,
        b=b,
        prob=prob,
        diagnostics={"h": h, "b": b, "tau": tau, "boundary": res.boundary, **res.diagnostics},
        extra={"tau": tau},
        title=f"Sharp RD, multilevel local linear (REML, triangular kernel weights, h = {h:.4g}): "
        "y ~ D + x + D:x + (1 + D | site); jump = hyper-mean",
    )
