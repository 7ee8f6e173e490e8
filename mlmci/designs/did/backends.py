"""Which engine fits which DiD method (:mod:`mlmci.engines`), and the refusals.

``method`` names the estimator, ``engine`` the backend; ``vcov`` stays the
covariance convention of :func:`mlmci.did.fit` for every engine, so an
``OLS(cov_type=...)`` that would compete with it is refused.
"""

from __future__ import annotations

from mlmci.engines import OLS, REML, Bayes, Engine, resolve
from mlmci.errors import ArgumentError, DataError

__all__ = ["ENGINES", "choose"]

_OLS_METHODS = ("twfe", "twfe_event", "mundlak", "etwfe", "callaway_santanna")
#: The engines that can fit each method (the first is the default's kind).
ENGINES: dict[str, tuple[type, ...]] = {
    **{m: (OLS,) for m in _OLS_METHODS},
    "re": (REML,),
    "re_cohort": (REML,),
    "pooled_cells": (REML,),
    "re_cells": (REML, Bayes),
}
_DEFAULTS: dict[str, Engine] = {
    **{m: OLS() for m in _OLS_METHODS},
    "re": REML(),
    "re_cohort": REML(),
    # A zero SD of the cells is a legitimate answer (every cell equals the mean); the
    # result says so in its notes. REML(allow_boundary=False) makes it an error instead.
    "pooled_cells": REML(allow_boundary=True),
    "re_cells": REML(allow_boundary=True),
}


def choose(method: str, engine: Engine | None, vcov: str) -> Engine:
    """The engine for ``method`` (its default if ``engine`` is None), or a clear refusal."""
    engine = resolve(method, engine, allowed=ENGINES, defaults=_DEFAULTS)
    if isinstance(engine, OLS) and engine.cov_type != OLS().cov_type:
        raise ArgumentError(
            f"did.fit sets the covariance with vcov= ('cluster' or 'iid'), not with "
            f"OLS(cov_type={engine.cov_type!r}): pass engine=OLS() or leave engine out."
        )
    if method == "re_cells" and vcov != "iid":
        raise DataError(
            "method='re_cells' has model-based (REML or posterior) intervals only; pass "
            "vcov='iid' — and read its intervals as assuming independent errors."
        )
    return engine
