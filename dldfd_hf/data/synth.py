"""FaceForensics++-layout trees made from real face videos (``dldfd synth-ffpp``).

:func:`make_synth_tree` turns a folder of real face videos into an FF++ tree: originals re-encoded
with H.264 at the CRF of the compression level, fakes ``<target>_<source>`` made by the landmark-driven
manipulations of :mod:`dldfd_hf.data.blending` (a 5-point aligned :func:`face_swap` between two
people, or a :func:`self_blend` of a jittered face onto itself), and split files so that
``dldfd build-ffpp`` can build a corpus from it. The FF++ method folders are filled with stand-ins,
one recipe each (see :data:`RECIPES`); they are not the FF++ methods, only manipulations with
comparable kinds of traces.
"""
from __future__ import annotations

import json
import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
from tqdm.auto import tqdm

from .._io import PathLike, atomic_folder
from ..media.faces import FaceCropper
from ..media.files import VIDEO_EXTENSIONS
from ..media.video import VideoReadError
from ..media.video_reader import probe
from ..media.video_stream import iter_frames
from .blending import Jitter, face_swap, self_blend
from .build import torch_threads
from .ffpp import COMPRESSIONS, DEFAULT_METHODS, Splits, method_dir, original_dir
from .folders import check_output_folder, require_folder
from .video_writer import write_video

logger = logging.getLogger(__name__)


# x264 CRF of FaceForensics++'s quality levels (raw = lossless, c23 = HQ, c40 = LQ).
CRF = {"raw": 0, "c23": 23, "c40": 40}
MIN_PAIRS = 3  # one pair in each of train / validation / test


# --------------------------------------------------------------------------------------------
# Recipes: what fills each FF++ method folder of a synthetic tree.


@dataclass(frozen=True)
class Recipe:
    kind: str  # "swap" or "self_blend"
    region: str = "face"
    feather: float = 0.25
    colour_match: bool = True
    description: str = ""


RECIPES: dict[str, Recipe] = {
    "Deepfakes": Recipe("swap", "face", 0.25, True, "identity swap, colour-matched, soft mask"),
    "FaceSwap": Recipe("swap", "face", 0.08, False, "identity swap, no colour transfer, hard mask edge"),
    "Face2Face": Recipe("self_blend", "face", 0.25, True, "own face, geometry+colour jitter, blended back"),
    "NeuralTextures": Recipe("self_blend", "mouth", 0.3, True, "own mouth region, jittered and blended back"),
    "FaceShifter": Recipe("swap", "face", 0.4, True, "identity swap, colour-matched, very soft mask"),
}


def manipulate(recipe: Recipe, target: np.ndarray, target_landmarks: np.ndarray, source: np.ndarray, source_landmarks: np.ndarray, jitter: Jitter) -> np.ndarray:
    if recipe.kind == "swap":
        return face_swap(target, target_landmarks, source, source_landmarks, recipe.region, recipe.feather, recipe.colour_match).image
    return self_blend(target, target_landmarks, jitter, region=recipe.region, feather=recipe.feather).image


# --------------------------------------------------------------------------------------------
# The synthetic FF++ tree.


@dataclass
class SynthVideo:
    """One original of the tree: a frame range of a source clip, with its per-frame landmarks."""

    video_id: str
    clip: Path
    start: int
    landmarks: np.ndarray  # (frames, 5, 2)
    fps: float

    @property
    def frames(self) -> int:
        return len(self.landmarks)


@dataclass
class SynthTree:
    root: Path
    splits: Splits
    videos: list[SynthVideo]
    methods: tuple[str, ...]
    compression: str
    skipped_clips: list[str] = field(default_factory=list)

    @property
    def splits_dir(self) -> Path:
        return self.root / "splits"


class SynthError(ValueError):
    """The input cannot make a usable tree (too few clips, no faces, bad arguments)."""


def find_videos(videos_dir: PathLike) -> list[Path]:
    """Video files under ``videos_dir`` (recursive, sorted)."""
    videos_dir = require_folder(videos_dir, "folder of videos", SynthError)
    return sorted(p for p in videos_dir.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))


def make_synth_tree(
    videos: Union[PathLike, Sequence[PathLike]],
    output: PathLike,
    compression: str = "c23",
    methods: Sequence[str] = DEFAULT_METHODS,
    max_frames: Optional[int] = None,
    segments: Optional[int] = None,
    seed: int = 0,
    device: str = "cpu",
    x264_preset: str = "medium",
    threads: Optional[int] = 1,
    progress: bool = True,
) -> SynthTree:
    """Build an FF++-layout tree in ``output`` from real face videos (a folder or a list of files).

    Each clip is one person (clips are assumed to show different people). With fewer than six
    clips, every clip is cut into ``segments`` consecutive parts (default: enough for three pairs)
    so that each split gets a pair; partners always come from different clips. ``max_frames``
    caps each original's length. ``threads``: torch threads for face detection (see
    :func:`dldfd_hf.data.build.torch_threads`). The tree appears complete in ``output`` or not at all.
    """
    output = check_output_folder(output, "output tree", SynthError)  # before any work
    clips = _checked_clips(videos, output, compression, methods, max_frames, segments)
    segments = segments or (1 if len(clips) >= 2 * MIN_PAIRS else math.ceil(2 * MIN_PAIRS / len(clips)))
    parts, skipped = _usable_segments(clips, segments, max_frames, device, threads, progress)
    synth_videos = [SynthVideo(f"{i:03d}", *part) for i, part in enumerate(parts[: len(parts) // 2 * 2])]
    pairs = [(synth_videos[i], synth_videos[i + 1]) for i in range(0, len(synth_videos), 2)]
    splits = _assign_splits([(a.video_id, b.video_id) for a, b in pairs])

    with atomic_folder(output) as staging:  # an existing OUTPUT is empty: checked above
        _write_tree(staging, pairs, methods, compression, seed, x264_preset, progress)
        splits.to_json_files(staging / "splits")
        _write_manifest(staging, compression, seed, methods, synth_videos, skipped)
    return SynthTree(output, splits, synth_videos, tuple(methods), compression, skipped)


def _checked_clips(
    videos: Union[PathLike, Sequence[PathLike]],
    output: Path,
    compression: str,
    methods: Sequence[str],
    max_frames: Optional[int],
    segments: Optional[int],
) -> list[Path]:
    """The input clips, once every argument of :func:`make_synth_tree` is checked (else SynthError)."""
    if compression not in COMPRESSIONS:
        raise SynthError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    unknown = [m for m in methods if m not in RECIPES]
    if unknown:
        raise SynthError(f"no synthetic recipe for {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if max_frames is not None and max_frames < 1:
        raise SynthError(f"max_frames must be >= 1, got {max_frames}")
    clips = find_videos(videos) if isinstance(videos, (str, Path)) else [Path(v) for v in videos]
    if len(clips) < 2:
        raise SynthError(f"need at least 2 videos of different people, found {len(clips)} in {videos}")
    if output.exists() and any(output.iterdir()):
        raise SynthError(f"{output} already exists and is not empty")
    if segments is not None and segments < 1:
        raise SynthError(f"segments must be >= 1, got {segments}")
    return clips


def _usable_segments(
    clips: Sequence[Path],
    segments: int,
    max_frames: Optional[int],
    device: str,
    threads: Optional[int],
    progress: bool,
) -> tuple[list[tuple[Path, int, np.ndarray, float]], list[str]]:
    """The segments with faces (see :func:`_plan_segments`) and what was skipped; SynthError when
    they are too few for a pair in each split."""
    detector = FaceCropper(crop_size=None, device=device)
    with torch_threads(threads):
        parts, skipped = _plan_segments(clips, segments, max_frames, detector, progress)
    if len(parts) < 2 * MIN_PAIRS:
        raise SynthError(
            f"only {len(parts)} usable video segment(s) with faces from {len(clips)} clip(s) "
            f"(skipped: {', '.join(skipped) or 'none'}); need {2 * MIN_PAIRS}: add clips or raise --segments"
        )
    return parts, skipped


def _write_manifest(
    root: Path, compression: str, seed: int, methods: Sequence[str], videos: Sequence[SynthVideo], skipped: list[str]
) -> None:
    """``synth_manifest.json``: how the tree was made, down to each original's clip and frame range."""
    manifest = {
        "compression": compression,
        "crf": CRF[compression],
        "seed": seed,
        "methods": {m: RECIPES[m].description for m in methods},
        "videos": {v.video_id: {"clip": str(v.clip), "start": v.start, "frames": v.frames} for v in videos},
        "skipped_clips": skipped,
    }
    (root / "synth_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _assign_splits(pairs: list[tuple[str, str]]) -> Splits:
    n = len(pairs)
    n_eval = max(1, round(0.14 * n))  # FF++: 360 / 70 / 70 pairs
    n_train = n - 2 * n_eval
    return Splits(
        {"train": tuple(pairs[:n_train]), "validation": tuple(pairs[n_train : n_train + n_eval]), "test": tuple(pairs[n_train + n_eval :])},
        source="synth",
    )


def _plan_segments(
    clips: Sequence[Path], segments: int, max_frames: Optional[int], detector, progress: bool
) -> tuple[list[tuple[Path, int, np.ndarray, float]], list[str]]:
    """Cut clips into segments and find each segment frame's landmarks.

    Ordered segment-major (A0 B0 C0 A1 B1 ...), so neighbours, which become pairs, come from
    different clips.
    """
    per_clip: list[list[tuple[Path, int, np.ndarray, float]]] = []
    skipped: list[str] = []
    for clip in tqdm(clips, desc="synth-ffpp: landmarks", unit="clip", disable=not progress):
        per_clip.append([])
        try:
            info = probe(clip)
            length = info.frame_count // segments
            if length < 1:
                skipped.append(f"{clip} (only {info.frame_count} frames)")
                continue
            used = min(length, max_frames) if max_frames else length
            ranges = [(k * length, k * length + used) for k in range(segments)]
            landmarks = _detect_landmarks(clip, ranges, detector)
        except VideoReadError as error:  # an unreadable clip is left out, like a corpus video
            skipped.append(f"{error}")
            continue
        fps = info.fps or 25.0
        for (start, end), marks in zip(ranges, landmarks):
            if marks is None:
                skipped.append(f"{clip} frames {start}-{end - 1} (no face found)")
            else:
                per_clip[-1].append((clip, start, marks, fps))
    ordered = [parts[k] for k in range(segments) for parts in per_clip if k < len(parts)]
    # Pairs are neighbours: drop a segment that would be paired with its own clip.
    pairs_ok: list[tuple[Path, int, np.ndarray, float]] = []
    for part in ordered:
        if len(pairs_ok) % 2 == 1 and pairs_ok[-1][0] == part[0]:
            continue
        pairs_ok.append(part)
    return pairs_ok, skipped


def _frames(path: Path) -> Iterator[np.ndarray]:
    # Odd-sized frames are fine: write_video crops them to the even sides yuv420p needs.
    for frame in iter_frames(path):
        yield frame.image


def _detect_landmarks(clip: Path, ranges: list[tuple[int, int]], detector, batch: int = 16) -> list[Optional[np.ndarray]]:
    """Per range, (frames, 5, 2) landmarks (gaps filled from the nearest detection, lightly
    smoothed over time), or None when no frame of the range has a face."""
    wanted = {i: k for k, (a, b) in enumerate(ranges) for i in range(a, b)}
    found: dict[int, np.ndarray] = {}
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        for (index, _), faces in zip(pending, detector.detect([image for _, image in pending])):
            if faces:
                found[index] = np.asarray(faces[0].landmarks, dtype=np.float64)
        pending.clear()

    for index, image in enumerate(_frames(clip)):
        if index in wanted:
            pending.append((index, image))
            if len(pending) == batch:
                flush()
        elif index >= ranges[-1][1]:
            break
    flush()
    out: list[Optional[np.ndarray]] = []
    for a, b in ranges:
        hits = [i for i in range(a, b) if i in found]
        if not hits:
            out.append(None)
            continue
        marks = np.stack([found[min(hits, key=lambda h: abs(h - i))] for i in range(a, b)])
        out.append(_smooth(marks))
    return out


def _smooth(marks: np.ndarray, radius: int = 2) -> np.ndarray:
    # MTCNN landmarks jitter by a pixel or two between frames; a short moving average steadies the mask.
    if len(marks) <= 2:
        return marks
    padded = np.concatenate([marks[:1].repeat(radius, 0), marks, marks[-1:].repeat(radius, 0)])
    kernel = np.ones(2 * radius + 1) / (2 * radius + 1)
    return np.apply_along_axis(lambda s: np.convolve(s, kernel, mode="valid"), 0, padded)


def _segment_frames(video: SynthVideo) -> Iterator[np.ndarray]:
    for index, image in enumerate(_frames(video.clip)):
        if index >= video.start + video.frames:
            return
        if index >= video.start:
            yield image


def _cycled(video: SynthVideo) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    # A source shorter than its target starts over.
    while True:
        count = 0
        for image, marks in zip(_segment_frames(video), video.landmarks):
            count += 1
            yield image, marks
        if count == 0:
            raise SynthError(f"{video.clip}: no frames decoded from frame {video.start} on")


def _write_tree(
    root: Path,
    pairs: list[tuple[SynthVideo, SynthVideo]],
    methods: Sequence[str],
    compression: str,
    seed: int,
    x264_preset: str,
    progress: bool,
) -> None:
    options = {"preset": x264_preset}
    for folder in [original_dir(root, compression)] + [method_dir(root, m, compression) for m in methods]:
        folder.mkdir(parents=True, exist_ok=True)
    jobs = [(t, s) for a, b in pairs for t, s in ((a, b), (b, a))]
    for target, source in tqdm(jobs, desc="synth-ffpp: videos", unit="target", disable=not progress):
        write_video(
            original_dir(root, compression) / f"{target.video_id}.mp4",
            _segment_frames(target),
            fps=target.fps,
            crf=CRF[compression],
            options=options,
        )
        fake_id = f"{target.video_id}_{source.video_id}"
        for method in methods:
            # Fixed per video: a manipulation looks the same throughout its video.
            jitter = Jitter.random(np.random.default_rng([seed, zlib.crc32(f"{method}/{fake_id}".encode())]))
            frames = (
                manipulate(RECIPES[method], image, marks, source_image, source_marks, jitter)
                for (image, marks), (source_image, source_marks) in zip(
                    zip(_segment_frames(target), target.landmarks), _cycled(source)
                )
            )
            write_video(method_dir(root, method, compression) / f"{fake_id}.mp4", frames, fps=target.fps, crf=CRF[compression], options=options)


__all__ = [
    "CRF",
    "MIN_PAIRS",
    "RECIPES",
    "Recipe",
    "SynthError",
    "SynthTree",
    "SynthVideo",
    "find_videos",
    "make_synth_tree",
    "manipulate",
]
