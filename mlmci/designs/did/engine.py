"""The only code of the DiD design that touches a library's internals (pyfixest, mixedlm).

- :func:`ols`: a pyfixest ``feols`` fit, returned as names, coefficients and
  covariance (pyfixest keeps the full covariance in the private ``_vcov``).
- :func:`reml`: a mixed model through :func:`mlmci.mixed.fit`.
- :func:`bayes`: a bambi model through :func:`mlmci.bayes.fit`, and the posterior
  draws of named variables as numpy arrays (the names are bambi's).

Small-sample conventions (those of pyfixest's ``CRV1``, which follow fixest):
clustered by unit, ``V = G/(G-1) (n-1)/(n-k) (X̃'X̃)^{-1} M (X̃'X̃)^{-1}`` with
``k`` the number of coefficients plus the number of period effects (unit
effects are nested in the clusters and not counted), and t intervals with
``G - 1`` degrees of freedom.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class OLSFit:
    """Coefficients and covariance of one linear fit, with its t degrees of freedom."""

    names: list[str]
    beta: np.ndarray
    cov: np.ndarray
    df: float | None
    native: object


@contextlib.contextmanager
def _keep_root_logging():
    """Undo what pyfixest does to the root logger while it runs.

    pyfixest 0.60's first ``feols`` imports modules (lazily) that configure the root
    logger (level INFO, a stderr handler), so every library's INFO message afterwards
    (arviz on import, PyTensor compiling) would reach a page's stderr. Logging
    configuration is the caller's: restore it.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)


def _pyfixest():
    with warnings.catch_warnings(), _keep_root_logging():
        warnings.simplefilter("ignore")
        import pyfixest

    return pyfixest


def ols(formula: str, frame: pd.DataFrame, *, vcov: str, cluster: str = "_unit") -> OLSFit:
    """Fit ``formula`` with pyfixest's feols; ``vcov``: ``"cluster"``, ``"iid"``, ``"hetero"``."""
    pf = _pyfixest()
    spec = {"CRV1": cluster} if vcov == "cluster" else vcov  # "iid" or "hetero" (HC1)
    # pyfixest 0.60 on pandas 3 warns (Pandas4Warning: the `inplace=` keyword of
    # DataFrame.reset_index / drop is deprecated) from inside its own code on every fit.
    with warnings.catch_warnings(), _keep_root_logging():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from pandas.errors import Pandas4Warning

            warnings.simplefilter("ignore", Pandas4Warning)
        except ImportError:  # pragma: no cover - older pandas
            pass
        # A tight tolerance on the alternating projections that absorb the fixed effects
        # (pyfixest's default, 1e-8, leaves errors of ~1e-8 in the coefficients).
        native = pf.feols(formula, data=frame, vcov=spec, fixef_tol=1e-13, fixef_maxiter=100_000)
    names = list(native._coefnames)
    beta = native.coef().reindex(names).to_numpy(dtype=float)
    cov = np.asarray(native._vcov, dtype=float)
    # The t degrees of freedom pyfixest uses: G - 1 clustered, n - (all parameters) iid.
    df = float(native._df_t)
    return OLSFit(names=names, beta=beta, cov=(cov + cov.T) / 2, df=df, native=native)


def reml(formula: str, frame: pd.DataFrame, *, allow_boundary: bool = False):
    """A REML fit of a mixed model through :func:`mlmci.mixed.fit`."""
    from mlmci import mixed

    return mixed.fit(formula, frame, reml=True, allow_boundary=allow_boundary)


def bayes(formula: str, frame: pd.DataFrame, engine_: object):
    """A bambi fit through :func:`mlmci.bayes.fit` with an ``engines.Bayes``'s options."""
    from mlmci import bayes as mbayes

    return mbayes.fit(
        formula, frame, sampler=engine_.sampler, gate=engine_.gate, **dict(engine_.model_options)
    )


def draws(idata, name: str, labels: list[str] | None = None) -> np.ndarray:
    """Posterior draws of ``name``, chains stacked: ``(n_draws,)`` or ``(n_draws, len(labels))``.

    ``labels`` select (and order) the levels of a group-specific term (bambi's
    ``<term>__factor_dim`` coordinate).
    """
    var = idata.posterior[name]
    extra = [d for d in var.dims if d not in ("chain", "draw")]
    if labels is not None:
        (dim,) = extra
        var = var.sel({dim: labels}).transpose("chain", "draw", dim)
        return var.to_numpy().reshape(-1, len(labels))
    return var.to_numpy().reshape(-1)
