"""Monte Carlo studies: run an estimator over replications, score it against the truth.

A study is a function ``one_replication(rng, **cell) -> DataFrame`` that
simulates one data set with known truth, fits the estimators and returns a
tidy table (:mod:`mlmci.results`) with an extra ``truth`` column. :func:`run`
calls it over a grid of cells and replications, with independent,
reproducible random streams (the same numbers whatever ``n_jobs`` is), and
:func:`score` turns the stacked tables into bias, RMSE, coverage and sign errors
with their Monte Carlo standard errors, clustered by replication (Morris, White &
Crowther 2019, Table 6); :func:`compare` gives the paired difference of two
estimators with its MCSE and the verdict word the prose may use.

A Monte Carlo may fit an estimator through a closed-form fast path (numpy, e.g.
:mod:`mlmci.fastpath`) when a test shows it equal to mlmci's own estimator to
1e-10 on random data.

Examples
--------
>>> import numpy as np, pandas as pd
>>> def one(rng, n):
...     x = rng.normal(1.0, 1.0, size=n)
...     se = x.std(ddof=1) / np.sqrt(n)
...     return pd.DataFrame({"estimator": ["mean"], "term": ["mu"], "estimate": [x.mean()],
...                          "std_error": [se], "ci_low": [x.mean() - 1.96 * se],
...                          "ci_high": [x.mean() + 1.96 * se], "interval": ["95% CI"],
...                          "truth": [1.0]})
>>> draws = run(one, [{"n": 50}], reps=200, seed=1)
>>> table = score(draws, by=["n"])
>>> bool(abs(table.loc[0, "coverage"] - 0.95) < 4 * table.loc[0, "coverage_mcse"])
True
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlmci import runmode
from mlmci.errors import ArgumentError, DataError
from mlmci.validation import as_list, require_columns, require_dataframe, require_no_missing

__all__ = ["COMPARABLE", "compare", "run", "score", "sentence", "with_mcse"]

Replication = Callable[..., pd.DataFrame]


def _one(job: tuple[Replication, dict[str, Any], int, np.random.SeedSequence]) -> pd.DataFrame:
    func, cell, rep, seq = job
    table = func(np.random.default_rng(seq), **cell)
    return _label(table, cell, rep)


def _one_single_threaded(job) -> pd.DataFrame:
    # Each worker process owns one core: a multithreaded BLAS in every worker
    # oversubscribes the machine and made mixed-model fits about 3x slower.
    with threadpool_limits(limits=1):
        return _one(job)


def _label(table: pd.DataFrame, cell: dict[str, Any], rep: int) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise DataError(
            f"the replication function returned {type(table).__name__}; it must return a "
            "tidy DataFrame with a `truth` column."
        )
    table = table.copy()
    for key, value in cell.items():
        table[key] = value
    table["rep"] = rep
    return table


def run(
    one_replication: Replication,
    grid: Sequence[Mapping[str, Any]],
    *,
    reps: int,
    seed: int,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Run ``one_replication`` ``reps`` times in every cell of ``grid``.

    Parameters
    ----------
    one_replication
        ``f(rng, **cell) -> DataFrame``: simulate with the numpy Generator
        ``rng``, fit, and return a tidy table with a ``truth`` column.
    grid
        The cells: one dict of keyword arguments per cell, e.g.
        ``[{"corr": 0.0}, {"corr": 0.5}]``. Each key becomes a column.
    reps
        Replications per cell (capped at :data:`mlmci.runmode.QUICK_REPS` in the
        chapter tests' quick mode, ``MLMCI_QUICK=1``).
    seed
        Seed of the whole study. Replication ``r`` of cell ``c`` always gets
        the same stream, so results do not depend on ``n_jobs``.
    n_jobs
        Worker processes (``-1``: one per core), each limited to one BLAS
        thread; quick mode runs in this process. The function must be
        importable or defined at the top level of a notebook to be sent to
        the workers (Linux forks, so notebook functions work there).

    Returns
    -------
    pandas.DataFrame
        The replications' tables stacked, with the cell's keys and ``rep`` added.

    Examples
    --------
    >>> import pandas as pd
    >>> def one(rng, n):
    ...     return pd.DataFrame({"draw": [rng.normal()], "truth": [0.0]})
    >>> run(one, [{"n": 1}, {"n": 2}], reps=3, seed=0)[["n", "rep"]].values.tolist()
    [[1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2]]
    """
    if reps < 1:
        raise ArgumentError(f"reps must be at least 1, got {reps!r}.")
    if not grid:
        raise ArgumentError("grid is empty: give at least one cell, e.g. [{}].")
    if runmode.quick():
        reps = min(reps, runmode.QUICK_REPS)
    cells = [dict(cell) for cell in grid]
    streams = np.random.SeedSequence(seed).spawn(len(cells))
    jobs = [
        (one_replication, cell, rep, seq)
        for cell, stream in zip(cells, streams, strict=True)
        for rep, seq in enumerate(stream.spawn(reps))
    ]
    workers = (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
    if runmode.quick():
        # A few replications: starting worker processes costs more than it saves, and the
        # chapter tests already run side by side (pytest-xdist).
        workers = 1
    if workers <= 1:
        tables = [_one(job) for job in jobs]
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, len(jobs) // (4 * workers))
            tables = list(pool.map(_one_single_threaded, jobs, chunksize=chunk))
    return pd.concat(tables, ignore_index=True)


_METRICS = ("error", "squared", "covered", "wrong", "width")


def _contributions(draws: pd.DataFrame, truth: str) -> pd.DataFrame:
    """Per-row pieces of every metric, NaN where a row has no interval or no sign to get."""
    est = draws["estimate"].to_numpy(float)
    true = draws[truth].to_numpy(float)
    low, high = draws["ci_low"].to_numpy(float), draws["ci_high"].to_numpy(float)
    has_interval = np.isfinite(low) & np.isfinite(high)
    nonzero = true != 0
    return pd.DataFrame(
        {
            "one": 1.0,
            "error": est - true,
            "squared": (est - true) ** 2,
            "covered": np.where(has_interval, (low <= true) & (true <= high), np.nan),
            "interval": has_interval.astype(float),
            "wrong": np.where(nonzero, np.sign(est) != np.sign(true), np.nan),
            "nonzero": nonzero.astype(float),
            "width": np.where(has_interval, high - low, np.nan),
        },
        index=draws.index,
    )


def _ratio(num: pd.Series, den: pd.Series) -> tuple[float, float, np.ndarray]:
    """A ratio of per-replication sums, its replication-clustered MCSE and influence values.

    ``m = sum_r a_r / sum_r b_r``; with the replications independent, the ratio
    estimator's MCSE is ``sqrt(sum_r (a_r - m b_r)^2 / (R (R - 1))) / mean(b)``. With
    one row per replication it is the usual ``sd / sqrt(R)``.
    """
    total = float(den.sum())
    r = len(num)
    if total == 0:
        return float("nan"), float("nan"), np.full(r, np.nan)
    m = float(num.sum()) / total
    influence = (num.to_numpy(float) - m * den.to_numpy(float)) / (total / r)
    mcse = float(np.sqrt((influence**2).sum() / (r * (r - 1)))) if r > 1 else float("nan")
    return m, mcse, influence


def _sums(cell: pd.DataFrame, cluster: str) -> pd.DataFrame:
    parts = cell[["one", "error", "squared", "interval", "nonzero", "width"]].copy()
    parts["covered"] = cell["covered"].fillna(0.0)
    parts["wrong"] = cell["wrong"].fillna(0.0)
    parts["width"] = cell["width"].fillna(0.0)
    parts[cluster] = cell[cluster].to_numpy()
    return parts.groupby(cluster, sort=True).sum()


def score(
    draws: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    truth: str = "truth",
    cluster: str = "rep",
) -> pd.DataFrame:
    """Bias, RMSE, coverage and sign errors per estimator and term, with replication MCSEs.

    Every metric pools the rows of all replications (several rows per replication
    when one fit gives several estimates: one per group, one per held-out unit):
    bias is the mean error, RMSE the root of the mean squared error, coverage the
    share of intervals containing the truth, ``sign_error`` the share of rows with
    a non-zero truth whose estimate has the wrong sign (an estimate of exactly 0
    counts as wrong; rows whose truth is 0 are left out). Rows of one replication
    share a fit and are not independent; the replications are. Each metric is a
    ratio of per-replication sums, and its Monte Carlo SE is the ratio estimator's
    with the replications as independent clusters (a ratio estimator's linearization); with one
    row per replication this is the usual ``sd / sqrt(R)``. The RMSE's MCSE is the
    MSE's divided by ``2 RMSE`` (delta method).

    Rows marked failed (a ``failed`` column equal to 1: the fit raised, its
    estimate is missing) are left out of the metrics; ``fail_rate`` is the share of
    replications with a failed row, and a ``boundary`` column (1 for a boundary fit)
    gives ``boundary_rate`` the same way.

    Parameters
    ----------
    draws
        Stacked tidy tables with a ``truth`` column and a replication column, e.g.
        from :func:`run`.
    by
        Cell columns to score separately (e.g. ``["corr"]``).
    truth
        The column holding the true value.
    cluster
        The replication column (``"rep"`` from :func:`run`).

    Returns
    -------
    pandas.DataFrame
        One row per ``by`` cell, estimator and term with ``n_reps``, ``n`` (rows
        scored), ``mean_estimate``, ``bias``, ``rmse``, ``coverage``, ``sign_error``
        (each with ``..._mcse``), ``mean_width``, ``emp_se`` (SD of the estimates),
        ``mean_std_error``, and ``fail_rate`` / ``boundary_rate`` when those
        columns are there.

    Examples
    --------
    >>> import pandas as pd
    >>> draws = pd.DataFrame({"estimator": "ols", "term": "b", "estimate": [0.9, 1.1],
    ...                       "std_error": 0.1, "ci_low": [0.7, 1.05], "ci_high": [1.1, 1.3],
    ...                       "truth": 1.0, "rep": [0, 1]})
    >>> score(draws).loc[0, ["bias", "rmse", "coverage"]].astype(float).round(6).tolist()
    [0.0, 0.1, 0.5]
    """
    require_dataframe(draws, name="draws")
    keys = [*as_list(by, "by"), "estimator", "term"]
    require_columns(draws, [*keys, "estimate", "ci_low", "ci_high", truth, cluster])
    failed = (
        draws["failed"].fillna(0).astype(bool).to_numpy()
        if "failed" in draws
        else np.zeros(len(draws), bool)
    )
    ok = draws[~failed]
    require_no_missing(ok, ["estimate", truth, cluster])
    parts = _contributions(ok, truth)
    for key in [*keys, cluster]:
        parts[key] = ok[key].to_numpy()
    rows = []
    for key, cell in parts.groupby(keys, sort=False, observed=True, dropna=False):
        sums = _sums(cell, cluster)
        bias, bias_mcse, _ = _ratio(sums["error"], sums["one"])
        mse, mse_mcse, _ = _ratio(sums["squared"], sums["one"])
        coverage, coverage_mcse, _ = _ratio(sums["covered"], sums["interval"])
        sign_error, sign_mcse, _ = _ratio(sums["wrong"], sums["nonzero"])
        rmse = float(np.sqrt(mse))
        est = ok.loc[cell.index, "estimate"]
        row = {
            **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
            "n_reps": len(sums),
            "n": len(cell),
            "mean_estimate": float(est.mean()),
            "bias": bias,
            "bias_mcse": bias_mcse,
            "rmse": rmse,
            "rmse_mcse": mse_mcse / (2 * rmse) if rmse > 0 else float("nan"),
            "coverage": coverage,
            "coverage_mcse": coverage_mcse,
            "sign_error": sign_error,
            "sign_error_mcse": sign_mcse,
            "mean_width": float(cell["width"].mean()),
            "emp_se": float(est.std(ddof=1)) if len(est) > 1 else float("nan"),
            "mean_std_error": float(ok.loc[cell.index, "std_error"].mean())
            if "std_error" in ok
            else float("nan"),
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    for flag, name in (("failed", "fail_rate"), ("boundary", "boundary_rate")):
        if flag in draws:
            # A share of replications (a fit that failed once counts once, whatever its rows).
            per_rep = (
                draws.assign(_flag=draws[flag].fillna(0).astype(float))
                .groupby([*keys, cluster], sort=False, observed=True, dropna=False)["_flag"]
                .max()
            )
            rate = per_rep.groupby(level=list(range(len(keys))), sort=False).mean()
            table[name] = rate.reindex(pd.MultiIndex.from_frame(table[keys])).to_numpy()
    return table


#: Metrics :func:`compare` can compare, and whether lower is better.
COMPARABLE = {"rmse": True, "mse": True, "abs_bias": True, "sign_error": True, "coverage": None}


def compare(
    draws: pd.DataFrame,
    first: str,
    second: str,
    *,
    metric: str = "rmse",
    by: Sequence[str] = (),
    truth: str = "truth",
    cluster: str = "rep",
) -> pd.DataFrame:
    """Paired comparison of two estimators over the same replications, with its MCSE.

    The difference ``metric(first) - metric(second)`` is computed on the
    replications where both estimators succeeded (rows marked ``failed`` are
    dropped, and so is the whole replication for both), and its Monte Carlo SE
    from the paired per-replication influence values, so the common noise of the
    shared data cancels. The verdict follows DESIGN.md's Monte Carlo standards: a
    difference beyond twice its MCSE is ``"better"`` or ``"worse"`` for ``first``
    (lower is better for ``rmse``, ``mse``, ``abs_bias`` and ``sign_error``;
    ``coverage`` is ``"higher"`` or ``"lower"``), otherwise ``"indistinguishable"``.

    Returns
    -------
    pandas.DataFrame
        One row per ``by`` cell and term: ``first``, ``second``, ``metric``, the
        two metrics, ``difference``, ``mcse``, ``n_reps`` and ``verdict``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(size=200)
    >>> draws = pd.concat([pd.DataFrame({"estimator": name, "term": "b", "rep": range(200),
    ...     "estimate": noise * sd, "ci_low": -1.0, "ci_high": 1.0, "truth": 0.0})
    ...     for name, sd in [("a", 0.5), ("b", 1.0)]])
    >>> compare(draws, "a", "b")["verdict"].item()
    'better'
    """
    if metric not in COMPARABLE:
        raise DataError(f"metric must be one of {tuple(COMPARABLE)}, got {metric!r}.")
    require_dataframe(draws, name="draws")
    keys = [*as_list(by, "by"), "term"]
    require_columns(draws, [*keys, "estimator", "estimate", truth, cluster])
    missing = [e for e in (first, second) if e not in set(draws["estimator"])]
    if missing:
        raise DataError(
            f"no rows for estimator(s) {missing}; the draws have {sorted(set(draws['estimator']))}."
        )
    pair = draws[draws["estimator"].isin([first, second])]
    if "failed" in pair:
        bad = pair.loc[pair["failed"].fillna(0).astype(bool), [*keys, cluster]].drop_duplicates()
        if len(bad):
            marker = pair[[*keys, cluster]].merge(bad.assign(_bad=1), how="left")["_bad"]
            pair = pair[marker.isna().to_numpy()]
    require_no_missing(pair, ["estimate", truth])
    parts = _contributions(pair, truth)
    for key in [*keys, "estimator", cluster]:
        parts[key] = pair[key].to_numpy()
    rows = []
    for key, cell in parts.groupby(keys, sort=False, observed=True, dropna=False):
        values, influences = {}, {}
        for name in (first, second):
            sums = _sums(cell[cell["estimator"] == name], cluster)
            values[name], influences[name] = _metric(sums, metric)
        common = influences[first].index.intersection(influences[second].index)
        d = (influences[first].reindex(common) - influences[second].reindex(common)).to_numpy()
        r = len(common)
        mcse = float(np.sqrt((d**2).sum() / (r * (r - 1)))) if r > 1 else float("nan")
        diff = values[first] - values[second]
        rows.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                "first": first,
                "second": second,
                "metric": metric,
                f"{metric}_first": values[first],
                f"{metric}_second": values[second],
                "difference": diff,
                "mcse": mcse,
                "n_reps": r,
                "verdict": _verdict(diff, mcse, lower_is_better=COMPARABLE[metric]),
            }
        )
    return pd.DataFrame(rows)


def _metric(sums: pd.DataFrame, metric: str) -> tuple[float, pd.Series]:
    """The metric and its per-replication influence values (for paired MCSEs)."""
    if metric in ("rmse", "mse"):
        mse, _, infl = _ratio(sums["squared"], sums["one"])
        if metric == "rmse":
            rmse = float(np.sqrt(mse))
            return rmse, pd.Series(infl / (2 * rmse), index=sums.index)
        return mse, pd.Series(infl, index=sums.index)
    if metric == "abs_bias":
        bias, _, infl = _ratio(sums["error"], sums["one"])
        return abs(bias), pd.Series(np.sign(bias) * infl, index=sums.index)
    num, den = {"coverage": ("covered", "interval"), "sign_error": ("wrong", "nonzero")}[metric]
    value, _, infl = _ratio(sums[num], sums[den])
    return value, pd.Series(infl, index=sums.index)


def _verdict(diff: float, mcse: float, *, lower_is_better: bool | None) -> str:
    if not (np.isfinite(diff) and np.isfinite(mcse)) or abs(diff) <= 2 * mcse:
        return "indistinguishable"
    if lower_is_better is None:
        return "higher" if diff > 0 else "lower"
    return "better" if (diff < 0) == lower_is_better else "worse"


#: How :func:`sentence` names each metric.
_NOUNS = {
    "rmse": "RMSE",
    "mse": "MSE",
    "abs_bias": "absolute bias",
    "coverage": "coverage",
    "sign_error": "sign-error rate",
}


def sentence(row: Mapping[str, Any], first: str, second: str) -> str:
    """A sentence fragment on one :func:`compare` row that claims only what its MCSE supports.

    ``first`` and ``second`` are the names the prose gives the two estimators.
    Within twice the paired MCSE the two are "within Monte Carlo error of each
    other"; beyond it, the difference is stated with its size in MCSEs.

    Examples
    --------
    >>> sentence({"metric": "rmse", "difference": -0.12, "mcse": 0.01, "verdict": "better"},
    ...          "FE", "pooled")
    'the RMSE of FE is lower than that of pooled by 0.120 (12 paired MCSEs)'
    >>> sentence({"metric": "coverage", "difference": 0.004, "mcse": 0.01,
    ...           "verdict": "indistinguishable"}, "FE", "pooled")[:52]
    'FE and pooled are within Monte Carlo error of each o'
    """
    noun = _NOUNS[row["metric"]]
    diff, mcse = float(row["difference"]), float(row["mcse"])
    if row["verdict"] == "indistinguishable":
        return (
            f"{first} and {second} are within Monte Carlo error of each other "
            f"({noun} difference {diff:+.3f}, paired MCSE {mcse:.3f})"
        )
    word = "lower" if diff < 0 else "higher"
    return (
        f"the {noun} of {first} is {word} than that of {second} by {abs(diff):.3f} "
        f"({abs(diff) / mcse:.0f} paired MCSEs)"
    )


def with_mcse(scores: pd.DataFrame, metric: str, digits: int = 3) -> pd.Series:
    """A :func:`score` column as text with its MCSE in parentheses, e.g. ``"0.012 (0.004)"``.

    Examples
    --------
    >>> with_mcse(pd.DataFrame({"bias": [0.0123], "bias_mcse": [0.0041]}), "bias").item()
    '0.012 (0.004)'
    """
    require_columns(scores, [metric, f"{metric}_mcse"])
    return scores[metric].map(f"{{:.{digits}f}}".format) + scores[f"{metric}_mcse"].map(
        f" ({{:.{digits}f}})".format
    )
