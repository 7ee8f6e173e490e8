"""Shared test set-up: a headless plotting backend, quiet samplers, a BLAS for PyTensor."""

from __future__ import annotations

import os

# Before anything imports matplotlib or pytensor.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=-lopenblas")
os.environ.setdefault("MLMCI_PROGRESS", "0")

import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
