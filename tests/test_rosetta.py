"""The guide's syntax Rosetta stone is executed: Python and R on the same data.

The rows are defined once, in a cell of ``book/guide.md`` (``ROSETTA``); the
page renders them and this test runs them. For every row the Python column
(the library a reader would pick) and the ``mlmci`` column are executed here,
and the R column by ``tests/reference/rosetta.R`` — live when ``Rscript`` is on
PATH, else from the stored output ``tests/reference/rosetta_r.csv``, which
records the hash of the R code it ran (a changed R line without a regenerated
output fails). Each row's ``checks`` say which estimates and standard errors
must agree, and to what relative tolerance; the page prints the same list.

Regenerate the stored R output (needs R with Debian's r-cran-lme4, r-cran-plm,
r-cran-sandwich, r-cran-lmtest, r-cran-estimatr)::

    .venv/bin/python tests/test_rosetta.py --write-reference
"""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import jupytext
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "book" / "guide.md"
REFERENCE = ROOT / "tests" / "reference"
R_SCRIPT = REFERENCE / "rosetta.R"
R_STORED = REFERENCE / "rosetta_r.csv"
COLUMNS = ("r", "python", "mlmci")


def load_rows() -> dict:
    """Execute the guide's cell that defines the rows; return its namespace."""
    notebook = jupytext.read(GUIDE)
    cells = [c for c in notebook.cells if c.cell_type == "code" and "ROSETTA = [" in c.source]
    assert len(cells) == 1, "book/guide.md must define ROSETTA in exactly one cell"
    namespace: dict = {}
    exec(cells[0].source, namespace)
    return namespace


SPEC = load_rows()
ROWS = SPEC["ROSETTA"]
IDS = [row["id"] for row in ROWS]


def code_sha(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def python_data() -> dict:
    namespace: dict = {}
    exec(SPEC["ROSETTA_SETUP"], namespace)
    return namespace


def run_r(outdir: Path) -> pd.DataFrame:
    """Run every row's R code with rosetta.R; return its output table."""
    data = python_data()
    datadir = outdir / "data"
    datadir.mkdir(parents=True, exist_ok=True)
    for name, columns in SPEC["ROSETTA_R_DATA"].items():
        data[name][columns].to_csv(datadir / f"{name}.csv", index=False)
    rows = pd.DataFrame(
        [
            {"id": r["id"], "code": r["r"], "get": r["r_get"], "code_sha": code_sha(r["r"])}
            for r in ROWS
        ]
    )
    rows.to_csv(outdir / "rows.csv", index=False)
    out = outdir / "rosetta_r.csv"
    subprocess.run(
        ["Rscript", str(R_SCRIPT), str(outdir / "rows.csv"), str(datadir), str(out)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return pd.read_csv(out)


def _has_r() -> bool:
    return shutil.which("Rscript") is not None


@pytest.fixture(scope="module")
def r_results(tmp_path_factory) -> pd.DataFrame:
    if _has_r():
        return run_r(tmp_path_factory.mktemp("rosetta")).set_index("id")
    return pd.read_csv(R_STORED).set_index("id")


@pytest.fixture(scope="module")
def py_data() -> dict:
    return python_data()


def _run_python(row: dict, column: str, data: dict) -> tuple[float, float]:
    env = dict(data)
    get = row["py_get"] if column == "python" else row["mlmci_get"]
    with warnings.catch_warnings():
        # pyfixest and linearmodels warn about pandas 3 internals (upstream, harmless).
        warnings.simplefilter("ignore")
        exec(row[column], env)
        estimate, se = eval(get, env)
    return float(estimate), float(se)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_row_agrees(row, r_results, py_data):
    values = {c: _run_python(row, c, py_data) for c in ("python", "mlmci")}
    r_row = r_results.loc[row["id"]]
    if row.get("r_missing"):
        # Marked "not checked" on the page: R's package is not available here.
        assert not any(a == "r" or b == "r" for a, b, _, _ in row["checks"])
    else:
        assert bool(r_row["ok"]), f"R code of {row['id']!r} failed: {r_row['message']}"
        values["r"] = (float(r_row["estimate"]), float(r_row["std_error"]))
    assert row["checks"], f"row {row['id']!r} checks nothing"
    for a, b, what, rtol in row["checks"]:
        k = 0 if what == "estimate" else 1
        x, y = values[a][k], values[b][k]
        assert math.isfinite(x) and math.isfinite(y), (row["id"], a, b, what)
        assert abs(x - y) <= rtol * max(abs(x), abs(y)), (
            f"{row['id']}: {a} {what} {x!r} vs {b} {y!r} (rtol {rtol:g})"
        )


def test_every_row_is_complete_and_marked():
    for row in ROWS:
        for key in (
            "id",
            "model",
            "data",
            "chapter",
            "term",
            "stata",
            "r",
            "r_get",
            "python",
            "py_get",
            "mlmci",
            "mlmci_get",
            "checks",
            "note",
        ):
            assert row.get(key), f"row {row.get('id')!r} lacks {key!r}"
        assert row["data"] in SPEC["ROSETTA_R_DATA"]
        assert (ROOT / "book" / f"{row['chapter']}.md").exists()
        for a, b, what, rtol in row["checks"]:
            assert {a, b} <= set(COLUMNS) and a != b and what in ("estimate", "se")
            assert 0 < rtol <= 1e-2
    assert len(set(IDS)) == len(IDS)


def test_stored_r_output_matches_the_code_on_the_page():
    """The fallback is only valid for the R code the page shows now."""
    stored = pd.read_csv(R_STORED).set_index("id")
    assert sorted(stored.index) == sorted(IDS), "regenerate tests/reference/rosetta_r.csv"
    for row in ROWS:
        assert stored.loc[row["id"], "code_sha"] == code_sha(row["r"]), (
            f"R code of {row['id']!r} changed: regenerate tests/reference/rosetta_r.csv "
            "(python tests/test_rosetta.py --write-reference)"
        )
        # A row is checked against R exactly when R could run it.
        assert bool(stored.loc[row["id"], "ok"]) == (not row.get("r_missing")), row["id"]


#: The live R output must match the stored one at least this closely.
LIVE_RTOL = 1e-8


def live_tolerance(row: dict, what: str) -> float:
    """How closely live R must reproduce the stored R value ``what`` of ``row``.

    The stored output stands in for R where R is absent, so it must give every
    check the verdict live R gives: agree to a tenth of the tightest tolerance
    any check applies to R's value, and never looser than ``LIVE_RTOL`` needs.
    Bit-for-bit is not the rule: glmer's optimizer endpoint follows the BLAS's
    summation order (the glmm row's SE moved by 8e-7 relative between an AMD EPYC
    and an Intel Xeon).

    >>> live_tolerance({"checks": [("r", "mlmci", "se", 0.01), ("python", "r", "se", 1e-3)]}, "se")
    0.0001
    >>> live_tolerance({"checks": [("r", "python", "estimate", 1e-10)]}, "estimate")
    1e-08
    """
    used = [rtol for a, b, kind, rtol in row["checks"] if kind == what and "r" in (a, b)]
    return max(LIVE_RTOL, min(used, default=0.0) / 10)


@pytest.mark.skipif(not _has_r(), reason="Rscript is not on PATH")
def test_live_r_reproduces_the_stored_output(r_results):
    stored = pd.read_csv(R_STORED).set_index("id")
    for row in ROWS:
        if not stored.loc[row["id"], "ok"]:
            continue
        for column, what in (("estimate", "estimate"), ("std_error", "se")):
            live = float(r_results.loc[row["id"], column])
            kept = float(stored.loc[row["id"], column])
            rtol = live_tolerance(row, what)
            assert (math.isnan(live) and math.isnan(kept)) or abs(live - kept) <= rtol * abs(
                kept
            ), f"{row['id']} {column}: live R {live!r}, stored {kept!r} (rtol {rtol:g})"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-reference"]:
        with tempfile.TemporaryDirectory() as tmp:
            table = run_r(Path(tmp))
        table.to_csv(R_STORED, index=False)
        print(table[["id", "estimate", "std_error", "ok", "message"]].to_string())
    else:
        sys.exit("usage: python tests/test_rosetta.py --write-reference")
