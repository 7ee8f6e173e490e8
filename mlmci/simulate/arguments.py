"""Argument checks the simulators share."""

from __future__ import annotations

import numpy as np

from mlmci.errors import ArgumentError


def finite(value: object) -> bool:
    """Whether ``value`` is a finite real number (``True``/``False`` are not numbers here)."""
    if isinstance(value, bool):
        return False
    try:
        return bool(np.isfinite(value))
    except TypeError:
        return False


def check_int(name: str, value: object, *, least: int) -> None:
    """Raise :class:`~mlmci.errors.ArgumentError` unless ``value`` is an integer >= ``least``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ArgumentError(f"{name} must be an integer >= {least}, got {value!r}.")
