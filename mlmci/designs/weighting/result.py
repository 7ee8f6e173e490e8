"""The result of a weighting fit: the effect, the propensities, the weights and the balance."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from mlmci.designs.weighting.balance import balance_table
from mlmci.designs.weighting.design import WeightingData
from mlmci.designs.weighting.estimators import ESTIMATORS, clustered_se
from mlmci.designs.weighting.propensity import STRUCTURES
from mlmci.errors import ArgumentError
from mlmci.results import Fit, interval_label, tidy

__all__ = ["WeightingResult"]


@dataclass(repr=False)
class WeightingResult(Fit):
    """A weighting estimate from :func:`mlmci.weighting.fit`, on mlmci's result protocol.

    ``tidy(prob)`` has one row, the ``estimand`` (``term`` ``"ATE"`` or ``"ATT"``,
    the headline), with a normal interval from the cluster-robust SE and the
    columns ``n_obs``, ``n_clusters``, ``ess_treated`` and ``ess_control`` (Kish's
    effective sample sizes of the weighted arms).

    Attributes
    ----------
    estimator, estimand, propensity_model, outcome_model : str
        What was fitted (``outcome_model`` is ``None`` without augmentation).
    matches : int or None
        The matches per unit of ``"match"`` and ``"match_within"`` (else ``None``).
    propensity : pandas.Series
        Each used row's fitted propensity, indexed like the input rows.
    weights : pandas.Series
        Each used row's weight in the estimator's weighted means (not normalized):
        the inverse-probability weights, rescaled within each cluster and arm for
        ``"ipw_within"``, and the implied weights of the matching estimators (see
        ``mlmci.designs.weighting.estimators.Estimate``).
        :meth:`balance` and the effective sample sizes use them.
    influence : pandas.Series
        Each used row's term of the estimator's linearization (``Estimate.influence``):
        the SE is their cluster-robust sum; :meth:`difference` uses them.
    native : dict
        The fitted models: ``"propensity"`` (a statsmodels GLM result, a
        :class:`~mlmci.mixed.MixedResult` or a :class:`~mlmci.bayes.BayesFit`) and
        ``"outcome"`` (AIPW's two arm-wise fits, ``None`` without augmentation).
    """

    estimator: str
    estimand: str
    propensity_model: str
    outcome_model: str | None
    estimate: float
    std_error: float
    design: WeightingData = field(repr=False)
    propensity: pd.Series = field(repr=False)
    weights: pd.Series = field(repr=False)
    influence: pd.Series = field(repr=False)
    native: object = None
    notes: tuple[str, ...] = ()
    diagnostics: dict = field(default_factory=dict)
    matches: int | None = None

    @property
    def bayes_propensity(self) -> bool:
        """Whether the propensity model was fitted by bambi (a posterior-mean score)."""
        # Without mlmci.bayes imported there is no BayesFit, and importing it (PyMC,
        # ArviZ) for a title would cost seconds.
        bayes = sys.modules.get("mlmci.bayes")
        native = self.native.get("propensity") if isinstance(self.native, dict) else None
        return bayes is not None and isinstance(native, bayes.BayesFit)

    @property
    def headline(self) -> str:  # type: ignore[override]
        return self.estimand

    @property
    def title(self) -> str:  # type: ignore[override]
        outcome = (
            f"; outcome model: {STRUCTURES[self.outcome_model].replace('logit', 'linear model')}"
            if self.outcome_model
            else ""
        )
        m = f" ({self.matches} per unit)" if self.matches else ""
        return (
            f"Weighting: {ESTIMATORS[self.estimator]}{m}; propensity: "
            f"{STRUCTURES[self.propensity_model]}"
            f"{' (bambi, posterior mean)' if self.bayes_propensity else ''}{outcome} (SEs "
            "clustered by "
            f"{self.design.cluster})"
        )

    def _tidy(self, prob: float) -> pd.DataFrame:
        q = stats.norm.ppf((1 + prob) / 2)
        row = {
            "estimator": f"{self.estimator}:{self.propensity_model}"
            + (f"+{self.outcome_model}" if self.outcome_model else ""),
            "term": self.estimand,
            "estimate": self.estimate,
            "std_error": self.std_error,
            "ci_low": self.estimate - q * self.std_error,
            "ci_high": self.estimate + q * self.std_error,
            "interval": interval_label(prob, "CI"),
            "n_obs": len(self.design.y),
            "n_clusters": self.design.n_clusters,
            "ess_treated": self.diagnostics["ess_treated"],
            "ess_control": self.diagnostics["ess_control"],
        }
        return tidy([row])

    def difference(self, other: WeightingResult, prob: float | None = None) -> pd.DataFrame:
        """This estimate minus ``other``'s, with the cluster-robust SE of the difference.

        Two estimates on the same units are correlated, so the SE of their difference
        is not the two SEs combined: it is that of the difference of their influence
        values, summed by cluster over the clusters either fit used (the ``G/(G-1)``
        factor, the propensities and outcome predictions treated as known: the
        convention of each estimate's own SE). Both fits must come from the same data,
        outcome, treatment, cluster and estimand; units that one fit dropped (clusters
        without overlap) enter through the other only.

        Returns the tidy table of one row, ``term`` ``"<estimand> difference"``, with a
        normal interval at ``prob`` and ``n_clusters``.

        Examples
        --------
        >>> from mlmci import weighting
        >>> from mlmci.simulate import simulate_clustered_treatment
        >>> data, _ = simulate_clustered_treatment(n_clusters=40, cluster_size=25, seed=1)
        >>> kw = dict(treatment="d", covariates=["x1", "x2"], cluster="cluster", estimator="ipw",
        ...           no_overlap="drop")
        >>> pooled = weighting.fit(data, "y", propensity="pooled", **kw)
        >>> fe = weighting.fit(data, "y", propensity="fe", **kw)  # drops a one-arm cluster
        >>> fe.design.n_clusters
        39
        >>> row = pooled.difference(fe).iloc[0]
        >>> gap = pooled.estimate - fe.estimate
        >>> row["term"], int(row["n_clusters"]), bool(row["estimate"] == gap)
        ('ATE difference', 40, True)
        """
        from mlmci.config import default_prob

        if not isinstance(other, WeightingResult):
            raise ArgumentError(
                f"difference() takes another WeightingResult, got {type(other).__name__}."
            )
        a, b = self.design, other.design
        keys = ("n_input", "outcome", "treatment", "cluster")
        mine, theirs = (tuple(getattr(x, k) for k in keys) for x in (a, b))
        if mine != theirs or self.estimand != other.estimand:
            raise ArgumentError(
                "difference() compares fits of the same data, outcome, treatment, cluster and "
                f"estimand; got (rows, outcome, treatment, cluster) {mine}, {self.estimand} "
                f"against {theirs}, {other.estimand}."
            )
        labels_a = pd.Series(a.clusters[a.codes], index=a.positions)
        labels_b = pd.Series(b.clusters[b.codes], index=b.positions)
        common = labels_a.index.intersection(labels_b.index)
        if not labels_a.loc[common].equals(labels_b.loc[common]):
            raise ArgumentError(
                "difference(): the two fits put the same rows in different clusters, so they "
                "were not fitted on the same data."
            )
        labels = labels_a.combine_first(labels_b)
        codes, clusters = pd.factorize(labels.to_numpy())
        influence = pd.Series(self.influence.to_numpy(), index=a.positions).reindex(
            labels.index, fill_value=0.0
        ) - pd.Series(other.influence.to_numpy(), index=b.positions).reindex(
            labels.index, fill_value=0.0
        )
        estimate = self.estimate - other.estimate
        se = clustered_se(influence.to_numpy(), codes, len(clusters))
        prob = default_prob(bayesian=False) if prob is None else float(prob)
        q = stats.norm.ppf((1 + prob) / 2)
        first, second = (r._tidy(prob)["estimator"].iloc[0] for r in (self, other))
        return tidy(
            [
                {
                    "estimator": f"{first} - {second}",
                    "term": f"{self.estimand} difference",
                    "estimate": estimate,
                    "std_error": se,
                    "ci_low": estimate - q * se,
                    "ci_high": estimate + q * se,
                    "interval": interval_label(prob, "CI"),
                    "n_clusters": len(clusters),
                }
            ]
        )

    def balance(self, extra: dict[str, np.ndarray] | pd.DataFrame | None = None) -> pd.DataFrame:
        """Standardized differences before and after weighting, overall, within and between.

        ``extra`` adds columns to check that are not covariates of the models (a
        simulation's unobserved confounder, say): a DataFrame or a dict of arrays
        with one row per input row, in the input's order. Rows the
        fit dropped (clusters without overlap) are left out. See
        ``mlmci.designs.weighting.balance`` for the definitions.
        """
        design = self.design
        if isinstance(extra, pd.DataFrame):
            if len(extra) != design.n_input:
                raise ArgumentError(
                    f"extra must have one row per row of the input data ({design.n_input}), "
                    f"got {len(extra)}."
                )
            extra = {c: extra[c].to_numpy(float)[design.positions] for c in extra.columns}
        elif extra:
            extra = {name: _input_rows(values, design, name) for name, values in extra.items()}
        return balance_table(design, self.weights.to_numpy(float), extra)


def _input_rows(values, design: WeightingData, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.shape != (design.n_input,):
        raise ArgumentError(
            f"extra[{name!r}] must hold one value per row of the input data "
            f"({design.n_input}), got shape {values.shape}."
        )
    return values[design.positions]
