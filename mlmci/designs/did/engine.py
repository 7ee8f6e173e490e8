"""The only code of the DiD design that touches a library's internals (pyfixest, mixedlm).

- :func:`ols`: a pyfixest ``feols`` fit, returned as names, coefficients and
  covariance (pyfixest keeps the full covariance in the private ``_vcov``).
- :func:`reml`: a random-intercept model through :func:`mlmci.mixed.fit`.

Small-sample conventions (those of pyfixest's ``CRV1``, which follow fixest):
clustered by unit, ``V = G/(G-1) (n-1)/(n-k) (X̃'X̃)^{-1} M (X̃'X̃)^{-1}`` with
``k`` the number of coefficients plus the number of period effects (unit
effects are nested in the clusters and not counted), and t intervals with
``G - 1`` degrees of freedom.
"""

from __future__ import annotations

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


def _pyfixest():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyfixest

    return pyfixest


def ols(formula: str, frame: pd.DataFrame, *, vcov: str, cluster: str = "_unit") -> OLSFit:
    """Fit ``formula`` with pyfixest's feols; ``vcov``: ``"cluster"``, ``"iid"``, ``"hetero"``."""
    pf = _pyfixest()
    spec = {"CRV1": cluster} if vcov == "cluster" else vcov  # "iid" or "hetero" (HC1)
    # pyfixest 0.60 on pandas 3 warns (Pandas4Warning: the `inplace=` keyword of
    # DataFrame.reset_index / drop is deprecated) from inside its own code on every fit.
    with warnings.catch_warnings():
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


def reml(formula: str, frame: pd.DataFrame):
    """A REML fit of a random-intercept model through :func:`mlmci.mixed.fit`."""
    from mlmci import mixed

    return mixed.fit(formula, frame, reml=True)
