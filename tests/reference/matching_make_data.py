"""Write ``matching_data.csv``: two seeded datasets for the propensity-score matching reference.

``continuous``: 400 units, a logit score with no ties; ``grid``: 300 units whose scores lie
on a grid of step 1/8 (exact in binary), so that many matches are tied. The outcome has a
nonlinear mean in the score, an effect that varies with it and heteroskedastic noise.
Rerunning rewrites the file identically: ``.venv/bin/python tests/reference/matching_make_data.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit


def dataset(name: str, n: int, seed: int, grid: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    s = 0.3 + 0.8 * x
    if grid:
        s = np.round(s * 8) / 8
    d = (rng.random(n) < expit(s)).astype(int)
    y = 1 + s + 0.5 * s**2 + d * (1 + 0.5 * s) + (0.5 + 0.5 * np.abs(s)) * rng.normal(size=n)
    return pd.DataFrame({"dataset": name, "y": y, "d": d, "s": s})


if __name__ == "__main__":
    data = pd.concat([dataset("continuous", 400, 11, False), dataset("grid", 300, 12, True)])
    data.to_csv(Path(__file__).with_name("matching_data.csv"), index=False, float_format="%.17g")
