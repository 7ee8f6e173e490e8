"""csdid reference for mlmci.did's Callaway-Sant'Anna cells (tests/test_did.py).

Writes ``csdid_staggered.csv`` next to this script: csdid's ATT(g, t) and analytic
standard errors on ``simulate_staggered(n_units=60, n_periods=6, seed=3)``, with
never-treated controls, outcome regression (``est_method="reg"``, no covariates)
and the universal base period g - 1 (mlmci's convention; csdid's default,
``"varying"``, compares each pre-period with the one before it). csdid is not in
requirements.txt (it pulls twine and keyring); to rerun:

    pip install csdid==0.4.3 && python tests/reference/csdid_staggered.py
"""

from __future__ import annotations

import contextlib
import io
import warnings
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from mlmci.simulate import simulate_staggered

HERE = Path(__file__).resolve().parent
DESIGN = dict(n_units=60, n_periods=6, seed=3)


def csdid_cells() -> pd.DataFrame:
    """csdid's ATT(g, t) and SEs on the reference design (csdid must be installed)."""
    from csdid.att_gt import ATTgt

    data, _ = simulate_staggered(**DESIGN)
    first = data[data["treated"] == 1].groupby("unit")["period"].min()
    data["g"] = data["unit"].map(first).fillna(0).astype(int)  # 0: never treated
    # csdid prints its tables and warns on small cohorts: keep both off the output.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ATTgt(
            yname="y", tname="period", idname="unit", gname="g", data=data,
            control_group="nevertreated",
        ).fit(est_method="reg", base_period="universal", bstrap=False)  # fmt: skip
    r = out.results
    cells = pd.DataFrame(
        {"cohort": r["group"], "period": r["year"], "att": r["att"], "se": r["se"]}
    )
    # The base period itself is a 0 by construction, without an SE.
    return cells[cells["se"].notna()].reset_index(drop=True)


if __name__ == "__main__":
    cells = csdid_cells().assign(versions=f"csdid {version('csdid')}")
    cells.to_csv(HERE / "csdid_staggered.csv", index=False, float_format="%.17g")
    print(f"wrote {HERE / 'csdid_staggered.csv'} ({len(cells)} cells)")
