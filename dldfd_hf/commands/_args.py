"""Argument types shared by several sub-commands."""

from __future__ import annotations

import argparse
from typing import Optional

from ..inference.voting import check_threshold


def positive_int(value: str) -> int:
    """An integer >= 1 (counts, batch sizes, processes)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def threshold(value: str) -> float:
    """``--threshold``: a number in [0, 1]."""
    try:
        return check_threshold(float(value), "--threshold")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}") from None


def frames_per_video(value: str) -> Optional[int]:
    """``--frames-per-video``: a positive number of evenly spaced frames, or ``all`` (None)."""
    if value == "all":
        return None
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number of frames (>= 1) or 'all', got {value!r}") from None


def add_allow_failures_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow-failures`` (build-ffpp, build-faces): by default a build whose corpus lists inputs
    that could not be read exits with status 1 (the corpus is still written, failed.json lists them)."""
    parser.add_argument(
        "--allow-failures", action="store_true",
        help="exit 0 even when some inputs could not be read (default: exit status 1; the corpus is written "
        "and OUTPUT/failed.json lists them either way)",
    )


def failure_status(failed: int, allow_failures: bool) -> int:
    """The exit status of a build that finished with ``failed`` unreadable inputs."""
    return 1 if failed and not allow_failures else 0


def add_face_detection_arguments(parser: argparse.ArgumentParser) -> None:
    """How a corpus build runs MTCNN: processes, device, batch size, threads (build-ffpp, build-faces)."""
    # positive_int: a bad count is refused by argparse (exit 2) before OUTPUT is created.
    parser.add_argument("--num-proc", type=positive_int, default=1, help="worker processes (default 1)")
    parser.add_argument("--device", default="cpu", help="face detector device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="frames per face-detection batch")
    parser.add_argument(
        "--threads", type=positive_int, default=1,
        help="torch threads per process (default 1: MTCNN's small ops run fastest on one; add processes instead)",
    )
