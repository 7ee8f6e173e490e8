"""mlmci.mixed.fit against lme4::lmer: the same models on the same data, timed in one run.

Run with ``make bench`` (needs Rscript with lme4; not part of CI). For each case
both sides fit the model once cold (the first call in the process, imports
excluded) and then ``--repeats`` times warm; the table shows the warm medians,
the cold first calls, the ratio lme4 / mlmci (above 1: mlmci is faster) and the
largest relative difference of the fixed effects, so a fast wrong answer
cannot pass for a win.

    python benchmarks/mixed_vs_lme4.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

R_SCRIPT = Path(__file__).with_name("lme4_timings.R")


def varying_slopes(n_groups: int, size: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=g.size)
    a = rng.normal(0, 1.0, n_groups)
    b = 0.5 + rng.normal(0, 0.3, n_groups)
    y = a[g] + b[g] * x + rng.normal(0, 1.0, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def cases(quick: bool) -> list[tuple[str, str, pd.DataFrame, int]]:
    """(name, lme4 formula, data, warm repeats multiplier) for every benchmark case."""
    from mlmci import datasets

    sleep = datasets.load("sleepstudy")
    radon = datasets.load("radon")
    out = [
        ("sleepstudy (180 rows)", "reaction ~ days + (days | subject)", sleep, 20),
        ("radon, varying intercept (919)", "log_radon ~ floor + (1 | county)", radon, 20),
        ("radon, varying slope (919)", "log_radon ~ floor + (floor | county)", radon, 20),
        ("small design 10 x 10", "y ~ x + (x | g)", varying_slopes(10, 10, 1), 40),
        ("small design 30 x 10", "y ~ x + (x | g)", varying_slopes(30, 10, 2), 40),
        ("8,000 (200 x 40)", "y ~ x + (x | g)", varying_slopes(200, 40, 3), 3),
    ]
    if not quick:
        out += [
            ("100,000 (1,000 x 100)", "y ~ x + (x | g)", varying_slopes(1000, 100, 4), 1),
            ("500,000 (5,000 x 100)", "y ~ x + (x | g)", varying_slopes(5000, 100, 5), 1),
        ]
    return out


def time_mlmci(formula: str, data: pd.DataFrame, repeats: int) -> tuple[float, float, pd.Series]:
    import warnings

    from mlmci import mixed

    # radon has one-home counties; mlmci warns about them on every varying-slope fit.
    warnings.simplefilter("ignore", UserWarning)
    start = time.perf_counter()
    res = mixed.fit(formula, data, allow_boundary=True)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        res = mixed.fit(formula, data, allow_boundary=True)
        warm.append(time.perf_counter() - start)
    return cold, float(np.median(warm)), res.beta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=5, help="warm runs per case (times a multiplier)"
    )
    parser.add_argument("--quick", action="store_true", help="skip the 100k and 500k rows cases")
    args = parser.parse_args()
    if shutil.which("Rscript") is None:
        print("Rscript not found: apt-get install r-base-core r-cran-lme4", file=sys.stderr)
        return 1
    import mlmci.mixed  # noqa: F401  (imports are not part of a fit's time)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, formula, data, mult) in enumerate(cases(args.quick)):
            repeats = max(1, args.repeats * mult)
            path = Path(tmp) / f"case{i}.csv"
            data.to_csv(path, index=False)
            py_cold, py_warm, beta = time_mlmci(formula, data, repeats)
            out = subprocess.run(
                ["Rscript", str(R_SCRIPT), str(path), formula, str(repeats)],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r_beta = pd.Series(
                r["beta"], index=["Intercept" if k == "(Intercept)" else k for k in r["names"]]
            )
            gap = float(((beta - r_beta[beta.index]).abs() / r_beta[beta.index].abs()).max())
            rows.append(
                {
                    "case": name,
                    "runs": repeats,
                    "mlmci warm (s)": py_warm,
                    "lme4 warm (s)": r["warm"],
                    "lme4/mlmci warm": r["warm"] / py_warm,
                    "mlmci cold (s)": py_cold,
                    "lme4 cold (s)": r["cold"],
                    "fits/s mlmci": 1 / py_warm,
                    "max rel. diff. beta": gap,
                }
            )
            print(f"  {name}: mlmci {py_warm:.4f} s, lme4 {r['warm']:.4f} s", file=sys.stderr)
    table = pd.DataFrame(rows)
    print(f"R: {r['r_version']}, lme4 {r['lme4_version']}; warm = median over the runs")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
