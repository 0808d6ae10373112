"""A real-faces corpus from any folder of videos and photos (``dldfd build-faces``): no FF++ needed.

Every video or photo under the input folder becomes one unit of the corpus builder
(:func:`dldfd_hf.data.build.build_units`: per-file atomic Parquet, resume, worker processes, a
report of the files that could not be read), with the same row schema as the FF++ corpus: label
``real``, method ``original``, ``video_id`` = the file's path relative to the input folder (so a
row always leads back to its file), ``frame_index`` (0 for a photo), the MTCNN box and score,
the five landmarks in crop pixels (what self-blended pseudo-fakes need), ``compression`` =
``"source"`` (the files as they are).

Splits. Rows of one person must not be split between train and evaluation, or validation scores
measure recognition of the person. Files are grouped: a file directly in the input folder is its
own group; files anywhere under ``INPUT_DIR/<name>/`` form group ``<name>`` (one folder per person
or per recording keeps them together; ``group_by="file"`` makes every file its own group). Groups
are ordered by a hash of their name, so the assignment depends neither on the order files are
listed in nor on the machine; the first ``validation_fraction`` of them (at least one) go to
validation, the next ``test_fraction`` (at least one) to test, the rest to train. With fewer than
three groups everything goes to train. Adding or removing files changes the assignment: build
into a new output folder then.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .._io import PathLike
from ..media.files import media_kind
from .build import BuildConfig, BuildSummary, BuildUnit, build_units
from .ffpp import ORIGINAL, SPLITS
from .folders import require_folder

logger = logging.getLogger(__name__)


SOURCE_COMPRESSION = "source"  # the ``compression`` of rows cropped from a user's own files
GROUP_BY = ("folder", "file")


class FacesInputError(ValueError):
    """The input folder cannot make a corpus (missing, or without any video or photo)."""


@dataclass
class MediaIndex:
    """The media files of an input folder, each with its group and split (no decoding)."""

    root: Path
    files: list[BuildUnit]  # method "original", video_id = relative path, compression "source"
    groups: dict[str, str]  # group -> split
    ignored: list[Path] = field(default_factory=list)  # files that are neither video nor photo

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {"groups": n, "videos": n, "photos": n}}``."""
        out = {s: {"groups": 0, "videos": 0, "photos": 0} for s in SPLITS}
        for split in self.groups.values():
            out[split]["groups"] += 1
        for item in self.files:
            out[item.split]["photos" if media_kind(item.path) == "image" else "videos"] += 1
        return out


def group_of(relative: Path, group_by: str = "folder") -> str:
    """The group of a file (path relative to the input folder): its top folder, or the file itself."""
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, got {group_by!r}")
    parts = relative.parts
    return parts[0] if group_by == "folder" and len(parts) > 1 else relative.as_posix()


def assign_splits(groups: Sequence[str], validation_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, str]:
    """``{group: split}``: hash-ordered groups, validation and test first (see the module doc)."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(f"validation_fraction + test_fraction must leave groups for training, got {validation_fraction + test_fraction}")
    ordered = sorted(set(groups), key=lambda g: (zlib.crc32(g.encode("utf-8")), g))
    n = len(ordered)
    if n < 3:
        return {g: "train" for g in ordered}
    n_val = max(1, round(validation_fraction * n)) if validation_fraction > 0 else 0
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    n_val, n_test = min(n_val, n - 1), min(n_test, max(0, n - 1 - n_val))
    splits = ["validation"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)
    return dict(zip(ordered, splits))


def index_media(
    input_dir: PathLike,
    group_by: str = "folder",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> MediaIndex:
    """Every video and photo under ``input_dir`` (recursive; hidden files and folders skipped)."""
    root = require_folder(input_dir, "input folder", FacesInputError)
    media, ignored = [], []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        (media if media_kind(path) is not None else ignored).append(path)
    if not media:
        raise FacesInputError(
            f"no videos or photos found under {root}"
            + (f" (found {len(ignored)} other file(s), e.g. {ignored[0].name})" if ignored else " (the folder is empty)")
        )
    groups = {path: group_of(path.relative_to(root), group_by) for path in media}
    split_of = assign_splits(list(groups.values()), validation_fraction, test_fraction)
    files = [
        BuildUnit(split_of[groups[path]], ORIGINAL, path.relative_to(root).as_posix(), SOURCE_COMPRESSION, path)
        for path in media
    ]
    return MediaIndex(root=root, files=files, groups=split_of, ignored=ignored)


def build_faces(
    input_dir: PathLike,
    output: PathLike,
    frames_per_video: Optional[int] = 32,
    crop_size: int = 224,
    crop_scale: float = 1.3,
    image_format: str = "png",
    group_by: str = "folder",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    num_proc: int = 1,
    retry_failed: bool = False,
    device: str = "cpu",
    batch_size: int = 16,
    threads: Optional[int] = 1,
    progress: bool = True,
) -> tuple[MediaIndex, BuildSummary]:
    """Crop the faces of every video and photo under ``input_dir`` into a corpus at ``output``.

    ``frames_per_video``: evenly spaced frames per video (None: every frame); a photo gives one.
    ``crop_scale``: side of the square crop as a multiple of the MTCNN box (1.3 as the pipelines crop;
    wider crops leave room for the scale jitter of ``augmentation: sbi`` in training).
    An interrupted build resumes (same settings); unreadable files are skipped and listed in
    ``OUTPUT/failed.json``; see :func:`dldfd_hf.data.build.build_units`.
    """
    config = BuildConfig(
        compression=SOURCE_COMPRESSION, frames_per_video=frames_per_video, crop_size=crop_size, image_format=image_format,
        scale=crop_scale,
    )
    index = index_media(input_dir, group_by, validation_fraction, test_fraction)
    summary = build_units(
        index.files, index.root, output, config, methods=(), num_proc=num_proc, retry_failed=retry_failed,
        device=device, batch_size=batch_size, threads=threads, progress=progress, desc="build-faces", unit="file",
    )
    return index, summary


def split_summary(index: MediaIndex, report: dict) -> str:
    """Per split: groups, files and face crops, as a small table."""
    counts = index.counts()
    rows = [("split", "groups", "videos", "photos", "faces")]
    for split in SPLITS:
        c = counts[split]
        rows.append((split, str(c["groups"]), str(c["videos"]), str(c["photos"]), str(report["images"][split][ORIGINAL])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows)


__all__ = [
    "FacesInputError",
    "GROUP_BY",
    "MediaIndex",
    "SOURCE_COMPRESSION",
    "assign_splits",
    "build_faces",
    "group_of",
    "index_media",
    "split_summary",
]
