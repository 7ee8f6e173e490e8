"""The weighting design's data: validated arrays, cluster codes, and the overlap checks.

``prepare`` turns a DataFrame and the column roles (outcome, a 0/1
treatment, covariates, cluster) into a :class:`WeightingData` of arrays and
refuses what no weighting estimator can use: missing values, a non-numeric
column, a treatment that is not 0/1 or has one arm only. ``no_overlap``
names the clusters whose units are all treated or all controls, which the
methods that compare units within a cluster cannot use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mlmci.errors import ArgumentError, DataError
from mlmci.transforms import group_means
from mlmci.validation import (
    as_list,
    require_columns,
    require_dataframe,
    require_no_missing,
    require_numeric,
)


@dataclass(frozen=True)
class WeightingData:
    """One clustered design as arrays: ``y``, ``d`` (n,), ``x`` (n, p), cluster codes."""

    y: np.ndarray
    d: np.ndarray
    x: np.ndarray
    codes: np.ndarray
    clusters: pd.Index
    rows: pd.Index
    positions: np.ndarray  # of the used rows in the input data
    n_input: int
    outcome: str
    treatment: str
    covariates: tuple[str, ...]
    cluster: str

    @property
    def n_clusters(self) -> int:
        return len(self.clusters)

    def cluster_means(self, values: np.ndarray | None = None) -> np.ndarray:
        """Each row's cluster mean of ``values`` (default: the covariates), over all its units."""
        values = self.x if values is None else values
        return group_means(self.codes, values, self.n_clusters)[self.codes]

    def subset(self, keep: np.ndarray) -> WeightingData:
        """The rows where ``keep`` is true, with the clusters left recoded 0..G'-1."""
        codes, uniques = pd.factorize(self.codes[keep], sort=True)
        return replace(
            self,
            y=self.y[keep],
            d=self.d[keep],
            x=self.x[keep],
            codes=codes.astype(np.int64),
            clusters=self.clusters[uniques],
            rows=self.rows[keep],
            positions=self.positions[keep],
        )


def prepare(
    data: pd.DataFrame,
    y: str,
    *,
    treatment: str,
    covariates: Sequence[str],
    cluster: str,
) -> WeightingData:
    """Validate the columns and return the design as arrays (``data`` is not modified)."""
    require_dataframe(data)
    covs = as_list(covariates, "covariates") if len(covariates) else []
    roles = [y, treatment, *covs]
    if len(set(roles)) != len(roles):
        raise ArgumentError(
            f"a column has two roles (outcome {y!r}, treatment {treatment!r}, covariates "
            f"{covs}): each column may appear once."
        )
    if cluster in roles:
        raise ArgumentError(f"the cluster column {cluster!r} cannot also be one of {roles}.")
    require_columns(data, [*roles, cluster])
    require_numeric(data, roles)
    require_no_missing(data, [*roles, cluster])
    d = data[treatment].to_numpy(dtype=float)
    if not np.isin(d, (0.0, 1.0)).all():
        raise DataError(f"the treatment {treatment!r} must be 0/1; it has other values.")
    if d.min() == d.max():
        raise DataError(
            f"every unit has {treatment!r} = {int(d[0])}: weighting compares treated units "
            "with controls and needs both."
        )
    codes, clusters = pd.factorize(data[cluster], sort=True)
    if len(clusters) < 2:
        raise DataError(
            f"{cluster!r} has a single cluster: the cluster-robust standard errors and the "
            "multilevel propensity models need at least two (and many more to be reliable)."
        )
    return WeightingData(
        y=data[y].to_numpy(dtype=float),
        d=d,
        x=data[covs].to_numpy(dtype=float).reshape(len(data), -1),
        codes=codes.astype(np.int64),
        clusters=pd.Index(clusters, name=cluster),
        rows=data.index,
        positions=np.arange(len(data)),
        n_input=len(data),
        outcome=y,
        treatment=treatment,
        covariates=tuple(covs),
        cluster=cluster,
    )


def no_overlap(design: WeightingData) -> np.ndarray:
    """Positions (cluster codes) of the clusters whose units are all treated or all controls."""
    sizes = np.bincount(design.codes, minlength=design.n_clusters)
    treated = np.bincount(design.codes, weights=design.d, minlength=design.n_clusters)
    return np.flatnonzero((treated == 0) | (treated == sizes))


def require_overlap(design: WeightingData, what: str) -> None:
    """Refuse clusters with one arm only, naming them (``what``: the method that needs both)."""
    flat = no_overlap(design)
    if flat.size:
        labels = design.clusters[flat[:10]].tolist()
        more = f" and {flat.size - 10} more" if flat.size > 10 else ""
        raise DataError(
            f"{what} compare(s) treated units with controls inside each {design.cluster!r}, but "
            f"{flat.size} of {design.n_clusters} clusters have one arm only: {labels}{more}. "
            "Their propensity is 0 or 1 (no overlap). Pass no_overlap='drop' to estimate the "
            "effect for the clusters with both arms (a different estimand), or choose a "
            "method that pools across clusters."
        )
