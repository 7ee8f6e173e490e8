"""The identification check every design shares: which columns of a design are redundant.

An estimator can identify the coefficient of a column only if that column is not a
linear combination of the others. :func:`dependent_columns` decides this the way a
reader reads a design, from left to right: a column is *dependent* when the columns
kept before it reproduce it (up to rounding), and then it is dropped, so the first
mention of a collinear set wins. The panel estimators and their Monte Carlo fast
path, the group-effects OLS, the meta-analysis design, the IV random-effects ratio,
the weighting design's propensity and outcome models and their fast path all call
it, with the one tolerance :data:`RANK_TOL`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from mlmci.errors import DataError

__all__ = ["RANK_TOL", "dependent_columns"]

#: A column is linearly dependent on the columns before it when the part of it they
#: cannot explain (its least-squares residual on them) is at most this fraction of
#: its length. Exact collinearity leaves rounding residuals of about ``1e-16`` to
#: ``1e-13`` of the length (machine epsilon times a modest growth with the number of
#: rows and the conditioning of the design), while real variation, even a weak one
#: (a covariate that varies within only a few of many groups), leaves orders of
#: magnitude more. ``1e-9`` sits in between with a margin of about a thousand on each
#: side; a design that passes has a condition number below about ``1e9``, so a
#: least-squares fit on it keeps about seven significant digits.
RANK_TOL = 1e-9


def dependent_columns(
    x: np.ndarray,
    names: Sequence[Hashable] | None = None,
    *,
    scale: Sequence[float] | np.ndarray | None = None,
) -> list:
    """The columns of ``x`` that are linearly dependent on the columns before them.

    The check is greedy, in column order (Gram-Schmidt with a second
    orthogonalization pass): column ``j`` is dependent when the norm of its
    residual on the *independent* columns before it is at most
    ``RANK_TOL * scale[j]``; otherwise it joins them. A zero column is always
    dependent, and so is every column once ``x`` has as many independent columns as
    rows. A dependent column never enters the basis, so it cannot make a later
    column look redundant. The verdict is unchanged by rescaling a column, since the
    residual is measured relative to the column's own length.

    Parameters
    ----------
    x
        The design, one row per observation and one column per regressor (finite).
    names
        The column names to report, one per column; by default the column
        positions ``0, 1, ...``.
    scale
        The length each column's residual is measured against, one per column; by
        default the column's own norm. Pass the norm of the column *before* a
        transformation such as group demeaning: a covariate constant within groups
        leaves rounding noise of about ``1e-16`` of its raw length after demeaning,
        which is 100% of its own (tiny) length but no variation at all.

    Returns
    -------
    list
        The names (or positions) of the dependent columns, in column order; empty
        when the design has full column rank.

    Raises
    ------
    DataError
        ``x`` is not a 2-D array of finite numbers, or ``names`` or ``scale`` does
        not have one entry per column (a ``scale`` must be finite and non-negative).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0, 2.0, 1.0], [1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 2.0, 5.0]])
    >>> dependent_columns(x, ["const", "t", "two", "1+2t"])
    ['two', '1+2t']
    >>> dependent_columns(x[:, :2])
    []
    """
    x = np.asarray(x)
    real = np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)
    if x.ndim != 2 or not real or np.iscomplexobj(x):
        raise DataError(f"the design must be a 2-D array of real numbers, got shape {x.shape}.")
    x = x.astype(float, copy=False)
    n_rows, n_cols = x.shape
    if not np.all(np.isfinite(x)):
        raise DataError("the design has missing or infinite values; drop or fill them first.")
    labels = list(range(n_cols)) if names is None else list(names)
    if len(labels) != n_cols:
        raise DataError(f"{len(labels)} names for a design with {n_cols} columns.")
    if scale is None:
        lengths = np.linalg.norm(x, axis=0)
    else:
        lengths = np.asarray(scale, dtype=float).reshape(-1)
        if lengths.shape != (n_cols,) or not np.all(np.isfinite(lengths)) or np.any(lengths < 0):
            raise DataError(
                f"scale must hold one finite, non-negative length per column ({n_cols})."
            )
    basis = np.empty((n_rows, min(n_rows, n_cols)))
    rank = 0
    dependent = []
    for j in range(n_cols):
        if rank == n_rows:  # the kept columns span every direction there is
            dependent.append(labels[j])
            continue
        resid = x[:, j]
        if rank:
            kept = basis[:, :rank]
            for _ in range(2):  # a second pass restores orthogonality lost to rounding
                resid = resid - kept @ (kept.T @ resid)
        norm = float(np.linalg.norm(resid))
        if norm == 0.0 or norm <= RANK_TOL * lengths[j]:
            dependent.append(labels[j])
            continue
        basis[:, rank] = resid / norm
        rank += 1
    return dependent
