"""The settings and the work folder of a corpus build (:mod:`dldfd_hf.data.build`).

``OUTPUT/_build`` holds one Parquet unit per finished source file, one JSON record per failed one,
the shard manifests and the :class:`BuildConfig` they were all made with; :meth:`WorkDir.claim`
refuses to mix settings, :meth:`WorkDir.remove_temporaries` clears what killed runs left.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional

from datasets import ClassLabel, Features, Image, List, Value

from .._io import PathLike, atomic_write_json, is_stale_temporary, remove_path
from ..labels import LABEL_NAMES
from .ffpp import DEFAULT_METHODS, METHOD_NAMES
from .folders import check_output_folder
from .units import BuildUnit

WORK_DIR = "_build"
FAILED_FILE = "failed.json"
FORMAT_VERSION = 1
IMAGE_FORMATS = ("png", "jpeg")

# Presets fill in options the user did not give on the command line.
PRESETS: dict[str, dict[str, Any]] = {
    # The paper: FF++ low quality (c40), every frame, the four manipulation methods.
    "paper": {"compression": "c40", "frames_per_video": None, "methods": DEFAULT_METHODS},
}


class BuildError(RuntimeError):
    """The build cannot go on (mismatched settings, incomplete shards, a foreign output folder)."""


@dataclass(frozen=True)
class BuildConfig:
    """Settings that decide the content of a video's rows; a resumed build must use the same."""

    compression: str = "c40"
    frames_per_video: Optional[int] = 32  # None: every frame
    crop_size: int = 224
    image_format: str = "png"
    jpeg_quality: int = 95
    scale: float = 1.3
    select: str = "largest"
    min_score: float = 0.9

    def __post_init__(self) -> None:
        if self.frames_per_video is not None and self.frames_per_video < 1:
            raise ValueError(f"frames_per_video must be >= 1 or None (all frames), got {self.frames_per_video}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {self.image_format!r}")
        if self.crop_size < 8:
            raise ValueError(f"crop_size must be >= 8, got {self.crop_size}")
        if not self.scale >= 1.0:
            raise ValueError(f"scale (crop side / face box side) must be >= 1, got {self.scale}")
        if self.select not in ("largest", "confident"):
            raise ValueError(f"select must be 'largest' or 'confident' (one face per frame), got {self.select!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def corpus_features():
    """The row schema of the corpus: the face crop, its label and where it came from (method, video, frame)."""
    return Features(
        {
            "image": Image(),
            "label": ClassLabel(names=list(LABEL_NAMES)),
            "method": ClassLabel(names=list(METHOD_NAMES)),
            "video_id": Value("string"),
            "frame_index": Value("int32"),
            "box": List(Value("float32"), length=4),  # MTCNN box (x1, y1, x2, y2), frame pixels
            "face_score": Value("float32"),
            "landmarks": List(List(Value("float32"), length=2), length=5),  # crop pixels
            "compression": Value("string"),
        }
    )


# --------------------------------------------------------------------------------------------
# The work folder: units, failures, shard manifests, the settings they were made with.


class WorkDir:
    """``OUTPUT/_build``: one Parquet unit per finished video, one JSON record per failed one."""

    def __init__(self, output: PathLike):
        self.output = Path(output)
        self.path = self.output / WORK_DIR

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def unit_path(self, split: str, method: str, video_id: str) -> Path:
        return self.path / "videos" / split / method / f"{video_id}.parquet"

    def failure_path(self, split: str, method: str, video_id: str) -> Path:
        return self.path / "failed" / split / method / f"{video_id}.json"

    def manifest_path(self, shard_index: int, num_shards: int) -> Path:
        return self.path / "shards" / f"{shard_index:05d}-of-{num_shards:05d}.json"

    def manifests(self) -> list[dict[str, Any]]:
        folder = self.path / "shards"
        if not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*-of-*.json"))]

    def read_config(self) -> Optional[BuildConfig]:
        if not self.config_path.is_file():
            return None
        data = json.loads(self.config_path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise BuildError(f"{self.config_path} was written by another corpus format ({data.get('format_version')})")
        return BuildConfig.from_dict(data["config"])

    def claim(self, config: BuildConfig) -> None:
        """Start or resume a build here; refuses settings that differ from the units already built."""
        check_output_folder(self.output, error=BuildError)
        if self.output.exists() and not self.path.is_dir():
            entries = [p.name for p in self.output.iterdir()]
            if entries:
                raise BuildError(
                    f"{self.output} exists and is not a corpus folder (no {WORK_DIR}/ inside; it holds "
                    f"{', '.join(sorted(entries)[:5])}{' ...' if len(entries) > 5 else ''}); choose an empty or new OUTPUT"
                )
        previous = self.read_config()
        if previous is None:
            atomic_write_json(self.config_path, {"format_version": FORMAT_VERSION, "config": config.to_dict()})
        elif previous != config:
            diff = ", ".join(
                f"{k}: built with {v!r}, now {getattr(config, k)!r}"
                for k, v in previous.to_dict().items()
                if getattr(config, k) != v
            )
            raise BuildError(
                f"{self.output} was started with other settings ({diff}); resume with the same settings "
                "or build into a new OUTPUT"
            )

    def remove_temporaries(self, this_host_only: bool = True) -> int:
        """Delete the half-written files and folders of killed runs (see :func:`dldfd_hf._io.temporary_name`).

        Temporaries of a process of this host that is still running are kept: parallel builds may
        share a work folder. With ``this_host_only`` (a shared disk) other hosts' are kept too, as
        their processes cannot be checked from here. Call it before this process writes any: ones
        bearing its own pid are taken for a killed run's (a restarted container reuses pids).
        """
        removed = 0
        if not self.path.is_dir():
            return removed
        for path in list(self.path.rglob("*.tmp-*")):
            if is_stale_temporary(path, this_host_only):
                remove_path(path)
                removed += 1
        return removed


def shard_of(video: BuildUnit, num_shards: int) -> int:
    """Stable shard of a video, the same on every machine and Python run."""
    return zlib.crc32(video.key.encode()) % num_shards


__all__ = [
    "FAILED_FILE",
    "FORMAT_VERSION",
    "IMAGE_FORMATS",
    "PRESETS",
    "WORK_DIR",
    "BuildConfig",
    "BuildError",
    "BuildUnit",
    "WorkDir",
    "corpus_features",
    "shard_of",
]
