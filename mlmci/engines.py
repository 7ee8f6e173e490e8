"""Engines: the backends that fit a design's estimator, each with its own options.

A design function takes ``method`` (which estimator: ``"no_pooling"``,
``"partial_pooling"``, ``"etwfe"``, ...) and ``engine`` (which backend fits it,
with that backend's options); no design function has arguments that other
engines ignore. A method-engine pair that makes no sense raises.

- :class:`OLS` — least squares (linearmodels, statsmodels, pyfixest) with its
  covariance type;
- :class:`REML` — the mixed-model engine :func:`mlmci.mixed.fit` (mixedlm);
- :class:`Bayes` — bambi / PyMC through :func:`mlmci.bayes.fit`, with the
  book-wide sampler settings and the convergence gate.

Examples
--------
>>> from mlmci.engines import OLS, REML, Bayes, resolve
>>> resolve("partial_pooling", None, allowed={"partial_pooling": (REML, Bayes)},
...         defaults={"partial_pooling": REML(allow_boundary=True)})
REML(allow_boundary=True)
>>> Bayes(model_options={"noncentered": False}).model_options
{'noncentered': False}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlmci.errors import ArgumentError

__all__ = ["OLS", "REML", "Bayes", "Engine", "resolve"]


@dataclass(frozen=True)
class OLS:
    """Least squares with a covariance type (its name as the design documents it)."""

    cov_type: str = "nonrobust"


@dataclass(frozen=True)
class REML:
    """The REML mixed-model engine; ``allow_boundary`` accepts a singular fit."""

    allow_boundary: bool = False


@dataclass(frozen=True)
class Bayes:
    """bambi / PyMC through :func:`mlmci.bayes.fit`.

    ``sampler`` overrides the book-wide :data:`mlmci.bayes.SETTINGS` (a
    :class:`~mlmci.bayes.SamplerSettings` or a mapping of its fields); ``gate``
    the convergence thresholds (``True`` for the book's); ``model_options`` go
    to :class:`bambi.Model` (e.g. ``{"noncentered": False}``, ``{"priors": ...}``).
    """

    sampler: Any = None
    gate: Any = True
    model_options: Mapping[str, Any] = field(default_factory=dict)


Engine = OLS | REML | Bayes


def resolve(
    method: str,
    engine: Engine | None,
    *,
    allowed: Mapping[str, tuple[type, ...]],
    defaults: Mapping[str, Engine],
    name: str = "method",
) -> Engine:
    """The engine for ``method``: ``engine`` if it can fit it, else the method's default.

    Raises :class:`~mlmci.errors.ArgumentError` for an unknown method or a senseless pair;
    ``name`` is the design's argument that chooses the method (``"method"``,
    ``"propensity"``), as the messages call it.

    Examples
    --------
    >>> allowed, defaults = {"no_pooling": (OLS,)}, {"no_pooling": OLS()}
    >>> resolve("no_pooling", OLS(cov_type="HC2"), allowed=allowed, defaults=defaults)
    OLS(cov_type='HC2')
    >>> try:
    ...     resolve("no_pooling", REML(), allowed=allowed, defaults=defaults)
    ... except ArgumentError as err:
    ...     print(str(err).split(":")[0])
    method 'no_pooling' is fitted by OLS(...), not by REML
    """
    if method not in allowed:
        raise ArgumentError(f"{name} must be one of {tuple(allowed)}, got {method!r}.")
    if engine is None:
        return defaults[method]
    kinds = allowed[method]
    if not isinstance(engine, kinds):
        names = " or ".join(k.__name__ + "(...)" for k in kinds)
        raise ArgumentError(
            f"{name} {method!r} is fitted by {names}, not by {type(engine).__name__}: "
            f"pass engine={kinds[0].__name__}(...) or leave engine out."
        )
    return engine
