"""How mlmci behaves in the three places it runs: a reader's session, the book build, the tests.

Three environment variables, read at call time:

``MLMCI_PROGRESS``
    ``0`` switches sampler progress bars off. On by default, so a long local
    run shows progress; the book build sets ``0`` so no bar reaches a page.
``MLMCI_QUICK``
    ``1`` is for the chapter tests only: MCMC is mocked (:data:`QUICK_DRAWS`
    draws from the prior, results marked ungated), and Monte Carlo
    studies are cut to :data:`QUICK_REPS` replications per cell, so every
    chapter's code runs top to bottom in seconds. The book build always unsets
    it: the book's numbers come from full runs.
``MLMCI_BOOK``
    ``1`` is set by the book build: a result that skipped the convergence gate
    (or came from quick mode) raises instead of reaching a page.
"""

from __future__ import annotations

import os

#: Name of the progress-bar switch.
PROGRESS_ENV = "MLMCI_PROGRESS"
#: Name of the quick-mode switch.
QUICK_ENV = "MLMCI_QUICK"
#: Name of the switch the book build sets.
BOOK_ENV = "MLMCI_BOOK"
#: Draws and tuning steps per chain in quick mode.
QUICK_DRAWS = 100
#: Monte Carlo replications per cell in quick mode.
QUICK_REPS = 4


def quick() -> bool:
    """Whether the chapter-test quick mode is on (``MLMCI_QUICK=1``).

    Examples
    --------
    >>> import os
    >>> saved = os.environ.pop(QUICK_ENV, None)
    >>> os.environ[QUICK_ENV] = "1"
    >>> quick()
    True
    >>> _ = os.environ.pop(QUICK_ENV)
    >>> quick()
    False
    >>> if saved is not None:
    ...     os.environ[QUICK_ENV] = saved
    """
    return os.environ.get(QUICK_ENV, "0").strip() == "1"


def book() -> bool:
    """Whether code runs inside the book build (``MLMCI_BOOK=1``).

    Examples
    --------
    >>> import os
    >>> book() == (os.environ.get(BOOK_ENV) == "1")
    True
    """
    return os.environ.get(BOOK_ENV, "0").strip() == "1"


def progress() -> bool:
    """Whether progress bars are wanted: ``MLMCI_PROGRESS`` is not 0, false, no or off.

    Examples
    --------
    >>> import os
    >>> saved = os.environ.get(PROGRESS_ENV)
    >>> os.environ[PROGRESS_ENV] = "off"
    >>> progress()
    False
    >>> os.environ[PROGRESS_ENV] = saved if saved is not None else "1"
    """
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
