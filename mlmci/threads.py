"""One BLAS thread for small dense algebra.

mlmci's fits work on matrices with a few columns (or a few rows per group), where a
multi-threaded BLAS spends more time waking its threads than computing: sleepstudy
took 80 ms a REML fit on two busy cores and 14 ms single-threaded; Card's 2SLS
0.2-1.9 s against 30 ms; a Monte Carlo replication of the multi-site IV fast path
83 ms against 11 ms.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["one_blas_thread", "single_blas_thread"]


@functools.cache
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_blas_thread() -> Any:
    """A context manager limiting the BLAS to one thread while it is open."""
    return _controller().limit(limits=1, user_api="blas")


def one_blas_thread(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``func`` to run with the BLAS on one thread."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_blas_thread():
            return func(*args, **kwargs)

    return wrapper
