"""Shared test set-up: a headless plotting backend, quiet samplers, a BLAS for PyTensor.

The suite runs in parallel (``make test``: pytest-xdist). PyTensor compiles into
one directory guarded by a file lock, and a process waiting for that lock says
so on stderr, which fails a chapter test (a chapter must write nothing to
stderr). So every test process (each xdist worker, or the single process
without xdist) gets its own PyTensor ``base_compiledir``, set before anything
imports pytensor; the chapter kernels and PyMC's sampling processes inherit it
through the environment. The directories live in pytest's cache folder
(``.pytest_cache/d/pytensor-<worker>``), so the C and numba caches stay warm from
one run to the next.

``make test`` runs ``-n auto --dist loadscope --no-loadscope-reorder``: see
``pytest_xdist_make_scheduler`` and ``pytest_collection_modifyitems`` below.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports matplotlib or pytensor.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MLMCI_PROGRESS", "0")

import matplotlib.pyplot as plt
import pytest
from hypothesis import settings

# Property tests draw the same examples on every machine and run (derandomized), so
# `make test` gives one verdict everywhere; HYPOTHESIS_PROFILE=explore draws fresh ones
# to hunt for new failures during development.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: PyTensor links a BLAS for speed and warns without one (Debian: libopenblas-dev).
BLAS_FLAG = "blas__ldflags=-lopenblas"


def pytensor_flags(flags: str, compiledir: Path) -> str:
    """``PYTENSOR_FLAGS`` with ``base_compiledir`` set to ``compiledir`` and a BLAS to link.

    Other flags are kept; a ``base_compiledir`` already there is replaced, since a
    directory shared by the parallel test processes is what this avoids.

    >>> pytensor_flags("floatX=float32,base_compiledir=/x", Path("/tmp/gw0"))
    'floatX=float32,blas__ldflags=-lopenblas,base_compiledir=/tmp/gw0'
    """
    kept = [
        flag
        for flag in (part.strip() for part in flags.split(","))
        if flag and flag.split("=", 1)[0].strip() != "base_compiledir"
    ]
    if not any(flag.split("=", 1)[0].strip() == "blas__ldflags" for flag in kept):
        kept.append(BLAS_FLAG)
    return ",".join([*kept, f"base_compiledir={compiledir}"])


#: BLAS threads per test process under xdist. OpenBLAS spin-waits for its threads, so
#: two workers with two BLAS threads each on two cores slowed a chapter test 3x.
XDIST_BLAS_THREADS = "1"


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if worker != "main":
        # The chapter kernels, sampler and R processes inherit the variables; this
        # process loaded numpy already (a pytest plugin imports it), so it is limited live.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = XDIST_BLAS_THREADS
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(XDIST_BLAS_THREADS))
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    if cache is not None:
        compiledir = cache.mkdir(f"pytensor-{worker}")
    else:
        compiledir = Path(tempfile.mkdtemp(prefix=f"mlmci-pytensor-{worker}-"))
    os.environ["PYTENSOR_FLAGS"] = pytensor_flags(os.environ.get("PYTENSOR_FLAGS", ""), compiledir)


#: Test modules whose tests are handed to the xdist workers one by one, not as a
#: module: long, independent tests (a chapter, a book build each) that share no
#: module- or session-scoped fixture. Every other module goes to one worker whole.
PER_TEST_MODULES = ("tests/test_chapters.py", "tests/test_book_cache.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, start the slow tests (whole chapters, real MCMC) first.

    The long ones then run side by side at the start while the short ones fill
    the gaps, instead of one long test finishing last. The sort is stable, so
    every worker collects the same order, as xdist requires; without xdist the
    file order is kept.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(tryfirst=True)  # before xdist's own choice of scheduler
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope``, except that each test of ``PER_TEST_MODULES`` is a unit of its own.

    A module's tests stay on one worker, so its module- and session-scoped
    fixtures (a real MCMC fit, a background R run) are built once, not once per
    worker; the chapter and book-build tests, the longest and independent, are
    spread out.
    (``--dist loadgroup`` would do this with ``xdist_group`` marks, but under
    pytest 9.2 it silently stops grouping: pytest-xdist issue #1386.)
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module in PER_TEST_MODULES else module

    return ModuleScheduling(config, log)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
