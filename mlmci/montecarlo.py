"""Monte Carlo studies: run an estimator over replications, score it against the truth.

A study is a function ``one_replication(rng, **cell) -> DataFrame`` that
simulates one data set with known truth, fits the estimators and returns a
tidy table (:mod:`mlmci.results`) with an extra ``truth`` column. :func:`run`
calls it over a grid of cells and replications, with independent,
reproducible random streams (the same numbers whatever ``n_jobs`` is), and
:func:`score` turns the stacked tables into bias, RMSE and coverage with their
Monte Carlo standard errors (Morris, White & Crowther 2019, Table 6).

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
from mlmci.errors import DataError
from mlmci.validation import require_columns, require_dataframe, require_no_missing

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
        thread. The function must be
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
        raise ValueError(f"reps must be at least 1, got {reps!r}.")
    if not grid:
        raise ValueError("grid is empty: give at least one cell, e.g. [{}].")
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
    if workers <= 1:
        tables = [_one(job) for job in jobs]
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, len(jobs) // (4 * workers))
            tables = list(pool.map(_one_single_threaded, jobs, chunksize=chunk))
    return pd.concat(tables, ignore_index=True)


def score(
    draws: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    truth: str = "truth",
) -> pd.DataFrame:
    """Bias, RMSE and interval coverage per estimator and term, with Monte Carlo SEs.

    Parameters
    ----------
    draws
        Stacked tidy tables with a ``truth`` column, e.g. from :func:`run`.
    by
        Cell columns to score separately (e.g. ``["corr"]``).
    truth
        The column holding the true value.

    Returns
    -------
    pandas.DataFrame
        One row per ``by`` cell, estimator and term with ``n_reps``,
        ``mean_estimate``, ``bias``, ``bias_mcse``, ``rmse``, ``rmse_mcse``,
        ``coverage``, ``coverage_mcse`` and ``mean_std_error`` (to compare with
        the empirical SD of the estimates, ``emp_se``).
        ``bias_mcse = sd / √n``; ``coverage_mcse = √(p(1-p)/n)``;
        ``rmse_mcse`` by the delta method from the MC SE of the MSE.

    Examples
    --------
    >>> import pandas as pd
    >>> draws = pd.DataFrame({"estimator": "ols", "term": "b", "estimate": [0.9, 1.1],
    ...                       "std_error": 0.1, "ci_low": [0.7, 1.05], "ci_high": [1.1, 1.3],
    ...                       "truth": 1.0})
    >>> score(draws).loc[0, ["bias", "rmse", "coverage"]].astype(float).round(6).tolist()
    [0.0, 0.1, 0.5]
    """
    require_dataframe(draws, name="draws")
    keys = [*by, "estimator", "term"]
    require_columns(draws, [*keys, "estimate", "ci_low", "ci_high", "std_error", truth])
    require_no_missing(draws, ["estimate", truth])
    rows = []
    for key, g in draws.groupby(keys, sort=False, observed=True):
        n = len(g)
        error = g["estimate"].to_numpy(float) - g[truth].to_numpy(float)
        sq = error**2
        mse = float(sq.mean())
        rmse = float(np.sqrt(mse))
        mse_mcse = float(np.sqrt(((sq - mse) ** 2).sum() / (n * (n - 1)))) if n > 1 else np.nan
        covered = (g["ci_low"] <= g[truth]) & (g[truth] <= g["ci_high"])
        p = float(covered.mean())
        sd = float(np.std(g["estimate"], ddof=1)) if n > 1 else np.nan
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "n_reps": n,
                "mean_estimate": float(g["estimate"].mean()),
                "bias": float(error.mean()),
                "bias_mcse": sd / np.sqrt(n),
                "rmse": rmse,
                "rmse_mcse": mse_mcse / (2 * rmse) if rmse > 0 else np.nan,
                "coverage": p,
                "coverage_mcse": float(np.sqrt(p * (1 - p) / n)),
                "emp_se": sd,
                "mean_std_error": float(g["std_error"].mean()),
            }
        )
    return pd.DataFrame(rows)
