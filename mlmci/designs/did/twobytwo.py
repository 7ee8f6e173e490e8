"""The canonical 2 x 2 difference-in-differences on repeated cross-sections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlmci.designs.did import engine
from mlmci.designs.did.result import DidResult
from mlmci.errors import DataError
from mlmci.validation import require_columns, require_dataframe, require_no_missing

__all__ = ["two_by_two"]


def two_by_two(
    data: pd.DataFrame,
    y: str,
    *,
    group: str,
    post: str,
    covariates: Sequence[str] = (),
    vcov: str = "iid",
) -> DidResult:
    """The canonical 2 x 2 DiD on repeated cross-sections: OLS of y on group, post, group x post.

    The ATT is the interaction coefficient. ``vcov`` is ``"iid"`` (classical,
    as textbooks print it) or ``"hc1"`` (heteroskedasticity-robust).

    Examples
    --------
    >>> from mlmci import datasets, did
    >>> kiel = datasets.load("kielmc")
    >>> res = did.two_by_two(kiel, "rprice", group="nearinc", post="y81")
    >>> round(float(res.effect()["estimate"]), 1)
    -11863.9
    """
    data = require_dataframe(data)
    covariates = list(covariates)
    cols = [y, group, post, *covariates]
    require_columns(data, cols)
    require_no_missing(data, cols)
    for col in (group, post):
        bad = sorted(set(data[col].unique()) - {0, 1})
        if bad:
            raise DataError(f"column {col!r} must be 0/1; it has the values {bad[:10]}.")
    if vcov not in ("iid", "hc1"):
        raise DataError(f"vcov must be 'iid' or 'hc1', got {vcov!r}.")
    frame = pd.DataFrame(
        {
            "_y": data[y].to_numpy(float),
            "_g": data[group].to_numpy(float),
            "_p": data[post].to_numpy(float),
        }
    )
    frame["_gp"] = frame["_g"] * frame["_p"]
    for c in covariates:
        frame[c] = data[c].to_numpy(float)
    cells_n = int(frame["_gp"].sum())
    if cells_n == 0 or frame.groupby(["_g", "_p"]).size().size < 4:
        raise DataError(f"a 2 x 2 DiD needs all four {group} x {post} cells to be non-empty.")
    res = engine.ols(
        "_y ~ _g + _p + _gp" + "".join(f" + {c}" for c in covariates),
        frame,
        vcov="iid" if vcov == "iid" else "hetero",
    )
    k = res.names.index("_gp")
    cells = pd.DataFrame(
        columns=["cohort", "period", "event_time", "estimate", "std_error", "weight", "n_obs"]
    )
    return DidResult(
        method="two_by_two",
        att=float(res.beta[k]),
        att_se=float(np.sqrt(res.cov[k, k])),
        cells=cells,
        cell_cov=np.zeros((0, 0)),
        df=res.df,
        vcov=vcov,
        native=res.native,
        diagnostics={"n_obs_treated": cells_n},
    )
