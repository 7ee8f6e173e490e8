"""Covariate balance before and after weighting, overall, within and between clusters.

For a covariate :math:`x` the standardized difference is the (weighted) mean among
the treated minus that among the controls, over the unweighted pooled SD
:math:`\\sqrt{(s_1^2 + s_0^2)/2}` of :math:`x` (Austin 2009; the same denominator
before and after weighting, so the two are comparable). Writing
:math:`x = (x - \\bar x_j) + \\bar x_j` with :math:`\\bar x_j` the cluster mean
splits the difference exactly into a *within* part (are treated and controls
alike inside their clusters?) and a *between* part (do treated units sit in
clusters with other covariate means?), both on the same scale, so
``overall = within + between``. A cluster-level confounder shows up only in the
between part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlmci.designs.weighting.design import WeightingData

__all__ = ["COMPONENTS", "SMD_THRESHOLD", "balance_table"]

#: The parts of a standardized difference, in the order of the table.
COMPONENTS = ("overall", "within", "between")
#: The usual rule of thumb for adequate balance (|standardized difference| < 0.1).
SMD_THRESHOLD = 0.1


def _difference(x: np.ndarray, d: np.ndarray, w: np.ndarray) -> np.ndarray:
    w1, w0 = w * d, w * (1 - d)
    return (w1 @ x) / w1.sum() - (w0 @ x) / w0.sum()


def balance_table(
    design: WeightingData, weights: np.ndarray, extra: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Standardized differences of the covariates (and ``extra`` columns) before and after."""
    names = list(design.covariates)
    x = design.x
    if extra:
        names += list(extra)
        x = np.column_stack([x, *[np.asarray(v, dtype=float) for v in extra.values()]])
    d = design.d
    sd = np.sqrt((x[d == 1].var(axis=0, ddof=1) + x[d == 0].var(axis=0, ddof=1)) / 2)
    sd = np.where(sd > 0, sd, np.nan)  # a constant covariate has no standardized difference
    means = design.cluster_means(x)
    parts = {"overall": x, "within": x - means, "between": means}
    ones = np.ones_like(d)
    rows = []
    for component in COMPONENTS:
        before = _difference(parts[component], d, ones) / sd
        after = _difference(parts[component], d, weights) / sd
        rows += [
            {"covariate": name, "component": component, "unweighted": b, "weighted": a}
            for name, b, a in zip(names, before, after, strict=True)
        ]
    return pd.DataFrame(rows)
