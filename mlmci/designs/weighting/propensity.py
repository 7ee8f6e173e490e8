"""The four propensity models, fitted with the libraries that do the job.

Each returns the fitted propensity of every unit of the design:

- ``"pooled"``: a logit on the covariates (statsmodels ``GLM``), no cluster terms;
- ``"fe"``: a logit with one intercept per cluster (statsmodels ``GLM`` with cluster
  dummies). A cluster with one arm only has no finite intercept (its propensity is
  0 or 1), so the caller refuses or drops such clusters first;
- ``"re"``: a random-intercept logit (:func:`mlmci.mixed.fit` with
  ``family="binomial"``, lme4's ``glmer``); the propensity uses the cluster's
  conditional mode, ``expit(x'beta + b_j)``;
- ``"mundlak"``: the random-intercept logit with the cluster means of the
  covariates added (Mundlak 1978), which lets the cluster effect correlate with
  the covariates' cluster means.

Covariates a model cannot identify are left out, and the fit's notes say which:
with cluster intercepts, those constant within every cluster (or collinear once
the intercepts are absorbed); in every model, those collinear with the others;
and no Mundlak mean is added where it would repeat a covariate or a constant.
:func:`model_columns` decides, for the propensity and the outcome models alike.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import expit

from mlmci.designs.weighting.design import WeightingData
from mlmci.engines import Bayes, Engine
from mlmci.errors import ConvergenceError
from mlmci.identification import dependent_columns

__all__ = ["STRUCTURES", "model_columns", "propensity"]

#: The propensity (and outcome) model structures, with what each one is.
STRUCTURES = {
    "pooled": "pooled logit (no cluster terms)",
    "fe": "logit with cluster fixed effects",
    "re": "random-intercept logit",
    "mundlak": "random-intercept logit with cluster means of the covariates (Mundlak)",
}


def _independent(columns: np.ndarray, base: np.ndarray, scale: np.ndarray | None = None):
    """Which ``columns`` are linearly independent of ``base`` and of the columns kept before.

    Greedy, in order (:func:`mlmci.identification.dependent_columns`, after the
    ``base`` columns): a column the ones before it reproduce up to
    :data:`~mlmci.identification.RANK_TOL` of its ``scale`` (default: its norm) is
    collinear and dropped, so the user's first mention of a collinear set wins.
    Within-cluster deviations are judged against the spread of the raw covariate,
    since a cluster-level covariate leaves deviations of rounding size, not zero.
    """
    lengths = np.linalg.norm(columns, axis=0) if scale is None else scale
    dependent = set(
        dependent_columns(
            np.column_stack([base, columns]),
            scale=np.concatenate([np.linalg.norm(base, axis=0), lengths]),
        )
    )
    kept = [k for k in range(columns.shape[1]) if base.shape[1] + k not in dependent]
    return np.array(kept, dtype=int)


def model_columns(design: WeightingData, structure: str) -> tuple[np.ndarray, list[str]]:
    """The covariate columns a model of ``structure`` can identify, and notes on the rest.

    ``"fe"``: the covariates that vary within clusters and are not collinear once
    the cluster intercepts are absorbed (no intercept column is returned);
    ``"pooled"``, ``"re"``: the covariates not collinear with an intercept;
    ``"mundlak"``: those plus the cluster means of the within-varying covariates
    that are not collinear with the rest (a balanced panel's cluster means of year
    dummies are constants, say).
    """
    names = list(design.covariates)
    notes: list[str] = []
    if structure == "fe":
        within = design.x - design.cluster_means()
        spread = np.linalg.norm(design.x - design.x.mean(axis=0), axis=0)
        keep = _independent(within, np.zeros((len(within), 0)), spread)
        dropped = [n for k, n in enumerate(names) if k not in set(keep)]
        if dropped:
            notes.append(
                f"{dropped} are constant within every {design.cluster!r} or collinear with the "
                "other covariates once cluster intercepts are absorbed: the fixed-effects models "
                "leave them out."
            )
        return design.x[:, keep], notes
    ones = np.ones((len(design.x), 1))
    keep = _independent(design.x, ones)
    dropped = [n for k, n in enumerate(names) if k not in set(keep)]
    if dropped:
        notes.append(
            f"{dropped} are collinear with an intercept and the other covariates: left out."
        )
    x = design.x[:, keep]
    if structure != "mundlak":
        return x, notes
    means = design.cluster_means(x)
    extra = _independent(means, np.column_stack([ones, x]))
    kept_names = [names[k] for k in keep]
    no_mean = [n for k, n in enumerate(kept_names) if k not in set(extra)]
    if no_mean:
        notes.append(
            f"no Mundlak cluster mean for {no_mean}: it would be collinear with the covariates "
            "(a covariate constant within clusters, or a mean that does not vary across them)."
        )
    return np.column_stack([x, means[:, extra]]), notes


def propensity(design: WeightingData, structure: str, engine: Engine) -> dict:
    """Fitted propensities (``"p"``), the fitted model (``"native"``) and ``"notes"``.

    ``engine`` is the one :func:`mlmci.weighting.fit` resolved: for the random-intercept
    models ``REML(allow_boundary=...)``, or :class:`~mlmci.engines.Bayes`, which fits
    them in bambi instead (through the convergence gate); the propensity is then the
    posterior mean of each unit's probability of treatment.
    """
    x, notes = model_columns(design, structure)
    if structure == "pooled":
        fitted = _glm(design.d, _with_intercept(x))
    elif structure == "fe":
        dummies = np.eye(design.n_clusters)[design.codes]
        fitted = _glm(design.d, np.column_stack([dummies, x]))
    elif isinstance(engine, Bayes):
        fitted = _bayes(design, x, engine)
    else:
        fitted = _glmm(design, x, allow_boundary=engine.allow_boundary)
    return {**fitted, "notes": notes}


def _with_intercept(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), x])


def _glm(d: np.ndarray, x: np.ndarray) -> dict:
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    with warnings.catch_warnings():
        # Separation is reported below as an error, not as a warning on the way.
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        res = sm.GLM(d, x, family=sm.families.Binomial()).fit()
    if not res.converged:
        raise ConvergenceError(
            "the propensity logit did not converge (IRLS): the treatment is (nearly) "
            "separated by the covariates or the cluster dummies; use fewer or coarser "
            "covariates, or restrict the sample to units with overlap."
        )
    return {"p": np.asarray(res.fittedvalues, dtype=float), "native": res}


def _glmm(design: WeightingData, x: np.ndarray, *, allow_boundary: bool) -> dict:
    from mlmci import mixed

    # Neutral column names: the user's names need not be formula-safe.
    names = [f"x{k}" for k in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=names).assign(d=design.d, g=design.codes)
    formula = "d ~ " + " + ".join(["1", *names]) + " + (1 | g)"
    res = mixed.fit(formula, frame, family="binomial", allow_boundary=allow_boundary)
    beta = res.beta.to_numpy()
    modes = res.ranef("g")["Intercept"].reindex(range(design.n_clusters)).to_numpy(float)
    p = expit(_with_intercept(x) @ beta + modes[design.codes])
    return {"p": p, "native": res}


def _bayes(design: WeightingData, x: np.ndarray, engine) -> dict:
    from mlmci import bayes

    names = [f"x{k}" for k in range(x.shape[1])]
    # Cluster codes as text: bambi treats a numeric grouping column as a number.
    frame = pd.DataFrame(x, columns=names).assign(
        d=design.d.astype(int), g=pd.Categorical(design.codes.astype(str))
    )
    formula = "d ~ " + " + ".join(["1", *names]) + " + (1 | g)"
    res = bayes.fit(
        formula,
        frame,
        family="bernoulli",
        sampler=engine.sampler,
        gate=engine.gate,
        **dict(engine.model_options),
    )
    draws = res.model.predict(res.idata, kind="response_params", inplace=False)
    p = draws.posterior["p"].mean(dim=("chain", "draw")).to_numpy()
    return {"p": np.asarray(p, dtype=float), "native": res}
