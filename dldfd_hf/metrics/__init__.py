"""Deepfake detection metrics: plain functions (:mod:`.core`) and ``evaluate`` modules over them.

``import dldfd_hf.metrics`` does not import ``evaluate``; :func:`load` does, on first use.

>>> from dldfd_hf.metrics import frame_metrics
>>> frame_metrics([0, 1, 1], [0.2, 0.9, 0.4])["tcr"]
0.6666666666666666
>>> import dldfd_hf.metrics
>>> video = dldfd_hf.metrics.load("video")        # an evaluate.Metric, offline
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .core import (
    FRAME_METRICS,
    VIDEO_METRICS,
    deepfake_metrics,
    equal_error_rate,
    frame_metrics,
    group_videos,
    per_method_metrics,
    video_metrics,
)

__all__ = [
    "FRAME_METRICS",
    "VIDEO_METRICS",
    "MODULES",
    "deepfake_metrics",
    "equal_error_rate",
    "frame_metrics",
    "group_videos",
    "load",
    "module_path",
    "per_method_metrics",
    "video_metrics",
]

# Short name -> evaluate module file in this folder.
MODULES = {
    "frame": "deepfake_frame.py",
    "video": "deepfake_video.py",
}


def module_path(name: str) -> str:
    """Path of the ``evaluate`` module ``name`` ("frame" or "video"), for ``evaluate.load(path)``."""
    if name not in MODULES:
        raise ValueError(f"unknown dldfd metric {name!r}; choose one of {sorted(MODULES)}")
    return str(Path(__file__).with_name(MODULES[name]))


def load(name: str, **kwargs: Any):
    """``evaluate.load`` of one of our metric modules by path: works offline.

    ``kwargs`` go to :func:`evaluate.load` (``experiment_id``, ``num_process``, ``process_id``...).
    """
    import evaluate  # a second or more to import; only users of the evaluate modules need it

    return evaluate.load(module_path(name), **kwargs)
