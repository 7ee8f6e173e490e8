"""Propensity-score weighting with clustered data (public API in :mod:`mlmci.weighting`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlmci.designs.weighting.balance import SMD_THRESHOLD
from mlmci.designs.weighting.design import WeightingData, no_overlap, prepare, require_overlap
from mlmci.designs.weighting.estimators import ESTIMANDS, ESTIMATORS, MATCHING, estimate
from mlmci.designs.weighting.outcome import outcome_by_arm
from mlmci.designs.weighting.propensity import STRUCTURES, model_columns, propensity
from mlmci.designs.weighting.result import WeightingResult
from mlmci.engines import OLS, REML, Bayes, Engine, resolve
from mlmci.errors import ArgumentError, DataError

__all__ = [
    "ESTIMANDS",
    "ESTIMATORS",
    "PROPENSITY_BOUND",
    "SMD_THRESHOLD",
    "STRUCTURES",
    "WeightingResult",
    "fit",
]

#: A fitted propensity this close to 0 or 1 is refused: its weight would dominate the estimate.
PROPENSITY_BOUND = 1e-6

_ALLOWED: dict[str, tuple[type, ...]] = {
    "pooled": (OLS,),
    "fe": (OLS,),
    "re": (REML, Bayes),
    "mundlak": (REML, Bayes),
}
_DEFAULTS: dict[str, Engine] = {
    "pooled": OLS(cov_type="clustered"),
    "fe": OLS(cov_type="clustered"),
    # A zero cluster variance makes the random-intercept logit the pooled one, which is
    # still a propensity model; the notes say so.
    "re": REML(allow_boundary=True),
    "mundlak": REML(allow_boundary=True),
}


def fit(
    data: pd.DataFrame,
    y: str,
    *,
    treatment: str,
    covariates: Sequence[str],
    cluster: str,
    propensity: str,
    estimator: str,
    estimand: str = "ATE",
    outcome: str | None = None,
    no_overlap: str = "raise",
    engine: Engine | None = None,
    matches: int | None = None,
) -> WeightingResult:
    """Estimate the effect of a 0/1 ``treatment`` on ``y`` by weighting, with clustered units.

    Parameters
    ----------
    data
        One row per unit. Not modified. No missing values in the columns used.
    y, treatment
        The outcome (numeric) and the treatment (0/1).
    covariates
        Unit- and cluster-level confounders, numeric (make dummies of categorical
        ones first). May be empty.
    cluster
        The cluster (school, hospital, person of a panel) column; the standard
        errors are clustered by it.
    propensity
        The propensity model: ``"pooled"`` (a logit, no cluster terms), ``"fe"``
        (cluster fixed effects), ``"re"`` (a random-intercept logit, lme4's glmer)
        or ``"mundlak"`` (the random-intercept logit with the cluster means of
        the covariates). See ``mlmci.designs.weighting.propensity``.
    estimator
        ``"ipw"`` (Hajek weights normalized over the sample), ``"ipw_within"``
        (the weighted contrast inside each cluster, averaged over clusters) or
        ``"aipw"`` (augmented IPW, doubly robust); or by nearest-neighbour
        matching with replacement on the logit of the propensity, ``"match"``
        (across all clusters) or ``"match_within"`` (only inside each cluster,
        the matching counterpart of ``"ipw_within"``), ties averaged, without
        bias correction. See ``mlmci.designs.weighting.estimators`` and
        ``mlmci.designs.weighting.matching``.
    estimand
        ``"ATE"`` (all units) or ``"ATT"`` (the treated units).
    outcome
        For ``"aipw"``: the outcome model's structure, one of the propensity
        structures (default: the same as ``propensity``), fitted separately in
        each arm.
    no_overlap
        What to do with clusters whose units are all treated or all controls
        when the method compares units inside clusters (``propensity="fe"``,
        ``estimator="ipw_within"`` or ``"match_within"``, ``outcome="fe"``): ``"raise"`` (default)
        names them; ``"drop"`` leaves them out, which changes the estimand to
        the effect in the clusters with both arms (the notes say how many).
    engine
        ``REML(allow_boundary=...)`` for the random-intercept propensity models
        (default: a zero cluster variance is accepted and noted), or
        ``Bayes(...)`` to fit them in bambi through the convergence gate (the
        propensity is then each unit's posterior mean probability of treatment,
        plugged into the same estimators); ``OLS(cov_type="clustered")`` (the
        only SE convention) for the others. The random-intercept outcome models
        of AIPW are REML fits either way.
    matches
        The number of matches per unit ``M`` of the matching estimators (default
        1); refused with the others.

    Returns
    -------
    WeightingResult
        ``effect()`` is the ``estimand``'s row; ``propensity``, ``weights`` and
        ``balance()`` for the diagnostics.

    Raises
    ------
    DataError
        A missing value, a treatment that is not 0/1, one cluster only, clusters
        with one arm where both are needed (named), propensities at 0 or 1.
    ArgumentError
        An unknown option, an engine that cannot fit the propensity model, a
        column with two roles.

    Examples
    --------
    >>> from mlmci import weighting
    >>> from mlmci.simulate import simulate_clustered_treatment
    >>> data, truth = simulate_clustered_treatment(n_clusters=60, cluster_size=30, seed=3)
    >>> res = weighting.fit(data, "y", treatment="d", covariates=["x1", "x2"],
    ...                     cluster="cluster", propensity="fe", estimator="aipw",
    ...                     no_overlap="drop")
    >>> row = res.effect()
    >>> row["term"], int(row["n_clusters"]), res.notes[0][:40]
    ('ATE', 59, '1 of 60 clusters (30 units) have one arm')
    >>> bool(row["ci_low"] < truth["ate"] < row["ci_high"])
    True
    """
    engine = resolve(propensity, engine, allowed=_ALLOWED, defaults=_DEFAULTS, name="propensity")
    if isinstance(engine, OLS) and engine.cov_type != "clustered":
        raise ArgumentError(
            f"weighting's standard errors are clustered by `cluster`; got "
            f"OLS(cov_type={engine.cov_type!r}). Leave engine out."
        )
    _choice("estimator", estimator, tuple(ESTIMATORS))
    _choice("estimand", estimand, ESTIMANDS)
    _choice("no_overlap", no_overlap, ("raise", "drop"))
    if outcome is not None and estimator != "aipw":
        raise ArgumentError(f"`outcome` is the AIPW outcome model; estimator={estimator!r}.")
    if matches is not None and estimator not in MATCHING:
        raise ArgumentError(
            f"`matches` is the number of matches of the estimators {MATCHING}; "
            f"estimator={estimator!r}."
        )
    if estimator in MATCHING:
        matches = 1 if matches is None else matches
        if isinstance(matches, bool) or not isinstance(matches, int | np.integer) or matches < 1:
            raise ArgumentError(f"matches must be an integer >= 1, got {matches!r}.")
    if estimator == "aipw":
        outcome = propensity if outcome is None else outcome
        _choice("outcome", outcome, tuple(STRUCTURES))
    design = prepare(data, y, treatment=treatment, covariates=covariates, cluster=cluster)
    allow_boundary = engine.allow_boundary if isinstance(engine, REML) else True

    needs_both = [
        what
        for what, used in (
            ("propensity='fe'", propensity == "fe"),
            ("estimator='ipw_within'", estimator == "ipw_within"),
            ("estimator='match_within'", estimator == "match_within"),
            ("outcome='fe'", outcome == "fe"),
        )
        if used
    ]
    notes: list[str] = []
    if needs_both:
        design, dropped = _overlap(design, " and ".join(needs_both), no_overlap)
        if dropped:
            notes.append(dropped)
    if estimator == "match_within":
        _enough_within(design, estimand, matches)
    ps = _propensity(design, propensity, engine, notes)
    mu, outcome_fits = None, None
    if outcome:
        *mu, outcome_fits = outcome_by_arm(design, outcome, allow_boundary=allow_boundary)
    if outcome and outcome != propensity:
        notes += [f"outcome model: {note}" for note in model_columns(design, outcome)[1]]
    est = estimate(
        estimator,
        estimand,
        y=design.y,
        d=design.d,
        e=ps["p"],
        codes=design.codes,
        n_groups=design.n_clusters,
        mu=mu,
        matches=matches or 1,
    )
    diagnostics = _ess(design, est.weights)
    for arm in ("treated", "control"):
        size = int(design.d.sum()) if arm == "treated" else int((1 - design.d).sum())
        if diagnostics[f"ess_{arm}"] < 0.1 * size:
            notes.append(
                f"the weighted {arm} units count as {diagnostics[f'ess_{arm}']:.0f} of {size} "
                "(Kish's effective sample size): a few large weights dominate (poor overlap)."
            )
    return WeightingResult(
        estimator=estimator,
        estimand=estimand,
        propensity_model=propensity,
        outcome_model=outcome,
        estimate=est.estimate,
        std_error=est.std_error,
        design=design,
        propensity=pd.Series(ps["p"], index=design.rows, name="propensity"),
        weights=pd.Series(est.weights, index=design.rows, name="weight"),
        influence=pd.Series(est.influence, index=design.rows, name="influence"),
        native={"propensity": ps["native"], "outcome": outcome_fits},
        notes=tuple(notes),
        diagnostics=diagnostics,
        matches=matches,
    )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ArgumentError(f"{name} must be one of {allowed}, got {value!r}.")


def _overlap(design: WeightingData, what: str, policy: str) -> tuple[WeightingData, str]:
    flat = no_overlap(design)
    if not flat.size:
        return design, ""
    if policy == "raise":
        require_overlap(design, what)
    keep = ~np.isin(design.codes, flat)
    if not keep.any():
        raise DataError(f"no {design.cluster!r} has both treated units and controls.")
    note = (
        f"{flat.size} of {design.n_clusters} clusters ({int((~keep).sum())} units) have one "
        f"arm only and were dropped ({what}): the estimate is the effect in the clusters "
        "with both arms, a different estimand from the whole sample's."
    )
    return design.subset(keep), note


def _enough_within(design: WeightingData, estimand: str, m: int) -> None:
    """Refuse clusters with fewer than ``m`` units of an arm that within-cluster matching uses."""
    n1 = np.bincount(design.codes, weights=design.d, minlength=design.n_clusters)
    n0 = np.bincount(design.codes, minlength=design.n_clusters) - n1
    small = np.flatnonzero((n0 if estimand == "ATT" else np.minimum(n0, n1)) < m)
    if small.size:
        arms = "controls" if estimand == "ATT" else "treated units and controls"
        raise DataError(
            f"matches={m} within clusters needs at least {m} {arms} in every "
            f"{design.cluster!r}; {small.size} clusters have fewer: "
            f"{design.clusters[small[:10]].tolist()}{' ...' if small.size > 10 else ''}. "
            "Use fewer matches, or estimator='match'."
        )


def _propensity(design: WeightingData, structure: str, engine: Engine, notes: list) -> dict:
    ps = propensity(design, structure, engine)
    notes += ps["notes"]
    p = ps["p"]
    extreme = (p < PROPENSITY_BOUND) | (p > 1 - PROPENSITY_BOUND)
    if extreme.any():
        where = np.unique(design.codes[extreme])
        labels = design.clusters[where[:10]].tolist()
        raise DataError(
            f"{int(extreme.sum())} fitted propensities are within {PROPENSITY_BOUND:g} of 0 or 1 "
            f"(no overlap), in the {design.cluster!r} values {labels}"
            f"{' ...' if where.size > 10 else ''}. Restrict the sample to units with overlap, "
            "or use fewer or coarser covariates."
        )
    native = ps["native"]
    if isinstance(engine, Bayes):
        notes += list(native.notes)
    elif structure in ("re", "mundlak") and native.boundary:
        notes.append(
            "the random-intercept variance of the propensity model is estimated at zero "
            "(singular fit): its propensities are the pooled logit's."
        )
    return ps


def _ess(design: WeightingData, w: np.ndarray) -> dict:
    out = {}
    for arm, rows in (("treated", design.d == 1), ("control", design.d == 0)):
        out[f"ess_{arm}"] = float(w[rows].sum() ** 2 / (w[rows] ** 2).sum())
    return out
