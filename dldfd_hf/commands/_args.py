"""Argument types shared by several sub-commands."""

from __future__ import annotations

import argparse
from typing import Optional


def frames_per_video(value: str) -> Optional[int]:
    """``--frames-per-video``: a positive number of evenly spaced frames, or ``all`` (None)."""
    if value == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames or 'all', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"frames per video must be >= 1, got {n}")
    return n
