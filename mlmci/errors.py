"""The exceptions mlmci raises.

Every error mlmci raises on purpose derives from :class:`MlmciError`, so a
caller can catch them all at once. Input problems are also ``ValueError`` /
``TypeError`` subclasses, so code written against plain Python conventions
keeps working.
"""

from __future__ import annotations


class MlmciError(Exception):
    """Base class of every error raised deliberately by mlmci."""


class DataError(MlmciError, ValueError):
    """The data cannot be used as given: a missing column, a NaN, too few groups.

    The message names the offending column or value and says what to do.
    """


class ArgumentError(MlmciError, ValueError):
    """An option has a value mlmci cannot use (``prob=1.5``, an unknown method).

    The message names the option, the value and what is allowed.
    """


class DataTypeError(MlmciError, TypeError):
    """A column or argument has the wrong type (e.g. text where a number is needed)."""


class ConvergenceError(MlmciError, RuntimeError):
    """A fit did not converge: an MCMC posterior failed the gate, or an optimizer stopped short.

    Attributes
    ----------
    diagnostics : pandas.DataFrame or None
        One row per failing parameter with its R-hat and effective sample sizes
        (for MCMC), so the caller can inspect what failed.
    """

    def __init__(self, message: str, diagnostics=None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics
