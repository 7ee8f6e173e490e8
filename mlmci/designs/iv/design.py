"""The IV design's data: validated arrays, site codes, and the checks every method shares.

:func:`prepare` turns a DataFrame and the column roles (outcome, treatment,
instruments, covariates, site) into an :class:`IVData` of float arrays, and
refuses what no IV method can use: missing values, a non-numeric column, a
treatment that is also an instrument, and a site in which an instrument does
not vary (named, for the methods that use within-site variation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmci.errors import ArgumentError, DataError
from mlmci.transforms import group_means, group_sums
from mlmci.validation import (
    as_list,
    require_columns,
    require_dataframe,
    require_no_missing,
    require_numeric,
)


@dataclass(frozen=True)
class IVData:
    """One IV design as arrays: ``y`` and ``d`` (n,), ``z`` (n, m), ``x`` (n, p), site codes."""

    y: np.ndarray
    d: np.ndarray
    z: np.ndarray
    x: np.ndarray
    codes: np.ndarray | None
    sites: pd.Index | None
    outcome: str
    treatment: str
    instruments: tuple[str, ...]
    covariates: tuple[str, ...]
    site: str | None

    @property
    def n_sites(self) -> int:
        return 0 if self.sites is None else len(self.sites)


def prepare(
    data: pd.DataFrame,
    y: str,
    *,
    treatment: str,
    instrument: str | Sequence[str],
    covariates: Sequence[str] = (),
    site: str | None = None,
) -> IVData:
    """Validate the columns and return the design as float arrays (``data`` is not modified)."""
    require_dataframe(data)
    instruments = as_list(instrument, "instrument")
    covs = as_list(covariates, "covariates") if covariates else []
    if not instruments:
        raise ArgumentError("`instrument` is empty: name at least one instrument column.")
    roles = [y, treatment, *instruments, *covs]
    if len(set(roles)) != len(roles):
        raise ArgumentError(
            f"a column has two roles (outcome {y!r}, treatment {treatment!r}, instruments "
            f"{instruments}, covariates {covs}): each column may appear once."
        )
    if site is not None and site in roles:
        raise ArgumentError(f"the site column {site!r} cannot also be {roles}.")
    require_columns(data, roles + ([site] if site is not None else []))
    require_numeric(data, roles)
    require_no_missing(data, roles + ([site] if site is not None else []))
    codes = sites = None
    if site is not None:
        codes_, sites = pd.factorize(data[site], sort=True)
        codes = codes_.astype(np.int64)
    return IVData(
        y=data[y].to_numpy(dtype=float),
        d=data[treatment].to_numpy(dtype=float),
        z=data[instruments].to_numpy(dtype=float).reshape(len(data), -1),
        x=data[covs].to_numpy(dtype=float).reshape(len(data), -1),
        codes=codes,
        sites=None if sites is None else pd.Index(sites, name=site),
        outcome=y,
        treatment=treatment,
        instruments=tuple(instruments),
        covariates=tuple(covs),
        site=site,
    )


def demean(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """``values`` minus their group means (the within transform; absorbs site intercepts)."""
    return values - group_means(codes, values, n_groups)[codes]


def require_within_variation(design: IVData, what: str) -> None:
    """Refuse sites in which an instrument is constant, naming them (``what``: the method)."""
    if design.codes is None:
        return
    n = design.n_sites
    for k, name in enumerate(design.instruments):
        col = design.z[:, k]
        mean = group_means(design.codes, col, n)
        spread = group_sums(design.codes, (col - mean[design.codes]) ** 2, n)
        flat = np.flatnonzero(spread <= 1e-12 * max(1.0, float(np.max(np.abs(col))) ** 2))
        if flat.size:
            labels = design.sites[flat[:10]].tolist()  # Python scalars, not numpy reprs
            more = f" and {flat.size - 10} more" if flat.size > 10 else ""
            raise DataError(
                f"{what} uses the variation of the instrument {name!r} within each "
                f"{design.site!r}, but it is constant in {flat.size} of them: "
                f"{labels}{more}. Drop these sites (they carry no information on the "
                "effect within a site) or use a method without site effects."
            )
