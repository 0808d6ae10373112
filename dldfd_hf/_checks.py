"""Argument checks shared by the model, its stem, its config and the face cropper (one wording for one rule)."""

from __future__ import annotations

import numbers
from typing import Any


def is_integer(value: Any) -> bool:
    """An integer that is not a bool (``True`` would otherwise pass as 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` if it is an integer >= 1; ValueError naming ``owner`` and ``name`` otherwise."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)
