"""Build the FaceForensics++ face-crop corpus as a ``datasets.DatasetDict`` (train/validation/test).

The work is done one video at a time. Each video's face crops are streamed into a Parquet file
(``OUTPUT/_build/videos/<split>/<method>/<video_id>.parquet``) written under a temporary name and
renamed when complete, so a unit on disk is always whole and a killed build resumes where it
stopped: finished videos are skipped, half-written temporaries are discarded. A video that cannot be
decoded is recorded under ``_build/failed/`` and listed in ``OUTPUT/failed.json``; it does not stop
the build.

Work is spread over processes (``num_proc``) and over machines (``shard_index``/``num_shards``:
each machine builds the videos whose key hashes to its shard, then :func:`merge_shards` joins the
shard folders). Finalising reads the units in a fixed order (split, method, video id, frame index),
so the corpus does not depend on the order the videos were processed in, and writes the
``DatasetDict`` with ``dataset_dict.json`` last: its presence marks a complete corpus.

:func:`build_units` is that machinery for any list of source files (videos or photos) whose split,
method and id are already decided: :func:`build_corpus` feeds it an FF++ tree's index,
:mod:`dldfd_hf.data.faces_corpus` (``dldfd build-faces``) a folder of a user's own real footage.

This module runs the units; the settings and the work folder live in :mod:`.workdir`, finalising and
merging in :mod:`.finalize` (their public names are importable from here too).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from .._io import DiskFullError, PathLike, atomic_path, atomic_write_json
from ..media.faces import FaceCropper
from ..media.files import MediaError, media_kind
from ..media.image import load_image, to_rgb_array
from ..media.video import Frame, VideoReadError
from ..media.video_reader import iter_sampled_frames
from ..media.video_stream import iter_frames
from .ffpp import DEFAULT_METHODS, METHOD_NAMES, index_ffpp
from .finalize import finalize_corpus, merge_shards
from .folders import check_output_folder
from .workdir import (
    FAILED_FILE,
    FORMAT_VERSION,
    IMAGE_FORMATS,
    PRESETS,
    WORK_DIR,
    BuildConfig,
    BuildError,
    BuildUnit,
    WorkDir,
    corpus_features,
    shard_of,
)

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None: unchanged), then restore.

    MTCNN is many small tensor ops: one thread per process runs it fastest (measured ~10x faster
    than two threads on a busy 2-core machine, where spinning OpenMP threads steal each other's
    cores). Use more processes, not more threads, for more cores.
    """
    if threads is None:
        yield
        return

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# One video -> one unit.


@dataclass
class VideoResult:
    split: str
    method: str
    video_id: str
    ok: bool
    frames: int = 0  # decoded
    faces: int = 0  # rows written
    error: str = ""


class VideoProcessor:
    """Decodes a video, crops its faces and writes the unit; one per process (holds the MTCNN)."""

    def __init__(self, config: BuildConfig, device: str = "cpu", batch_size: int = 16):
        self.config = config
        self.batch_size = batch_size
        self.cropper = FaceCropper(
            crop_size=config.crop_size,
            scale=config.scale,
            select=config.select,
            min_score=config.min_score,
            device=device,
        )
        self.features = corpus_features()
        self.schema = self.features.arrow_schema

    def __call__(self, video: BuildUnit, work: WorkDir) -> VideoResult:
        unit = work.unit_path(video.split, video.method, video.video_id)
        failure = work.failure_path(video.split, video.method, video.video_id)
        try:
            frames, faces = self._write_unit(video, unit)
        except MediaError as error:  # an unreadable video or photo
            atomic_write_json(
                failure,
                {"split": video.split, "method": video.method, "video_id": video.video_id, "path": str(video.path), "error": str(error)},
            )
            return VideoResult(video.split, video.method, video.video_id, ok=False, error=str(error))
        failure.unlink(missing_ok=True)  # a retried video that now works
        return VideoResult(video.split, video.method, video.video_id, ok=True, frames=frames, faces=faces)

    def _frames(self, path: Path) -> Iterator:
        if media_kind(path) == "image":  # a photo is a one-frame video (``dldfd build-faces``)
            return iter([Frame(0, 0.0, to_rgb_array(load_image(path)))])
        # Streamed either way: memory is bounded by the detection batch, not the video or the sample.
        if self.config.frames_per_video is None:
            return iter_frames(path)
        return iter_sampled_frames(path, self.config.frames_per_video)

    def _write_unit(self, video: BuildUnit, unit: Path) -> tuple[int, int]:
        frames = faces = 0
        with atomic_path(unit) as tmp:
            with pq.ParquetWriter(tmp, self.schema) as writer:
                for batch in _batched(self._frames(video.path), self.batch_size):
                    rows = self._rows(video, batch)
                    frames += len(batch)
                    faces += len(rows)
                    if rows:
                        writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
                if frames == 0:
                    raise VideoReadError(video.path, "no frames could be decoded")
                stats = {"path": str(video.path), "frames": frames, "faces": faces}
                writer.add_key_value_metadata({"dldfd_video": json.dumps(stats)})
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        return frames, faces

    def _rows(self, video: BuildUnit, frames: Sequence) -> list[dict[str, Any]]:
        detections = self.cropper([frame.image for frame in frames])
        rows = []
        for frame, faces in zip(frames, detections):
            if not faces:
                continue  # no face in this frame: it yields no row (counted in the report)
            face = faces[0]
            rows.append(
                {
                    "image": {"bytes": self._encode(face.crop), "path": None},
                    "label": video.label,
                    "method": METHOD_NAMES.index(video.method),
                    "video_id": video.video_id,
                    "frame_index": int(frame.index),
                    "box": [float(v) for v in face.box],
                    "face_score": float(face.score),
                    "landmarks": landmarks_in_crop(face, self.config.crop_size),
                    "compression": video.compression,
                }
            )
        return rows

    def _encode(self, image) -> bytes:
        buffer = io.BytesIO()
        if self.config.image_format == "png":
            image.save(buffer, format="PNG")
        else:
            image.save(buffer, format="JPEG", quality=self.config.jpeg_quality)
        return buffer.getvalue()


def landmarks_in_crop(face, crop_size: int) -> list[list[float]]:
    """MTCNN landmarks (frame pixels) mapped into the resized crop's pixels."""
    x1, y1, x2, y2 = face.crop_box
    sx, sy = crop_size / max(x2 - x1, 1), crop_size / max(y2 - y1, 1)
    return [[float((x - x1) * sx), float((y - y1) * sy)] for x, y in face.landmarks]


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# Worker processes keep one VideoProcessor (MTCNN weights load once per process).
_WORKER: Optional[VideoProcessor] = None


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker die when the build that started it dies, even by ``kill -9``.

    Otherwise an orphaned worker finishes its queued units (and holds its MTCNN, ~1 GB) while a
    re-run builds the same units. Linux: the kernel sends SIGKILL on the parent's death
    (``PR_SET_PDEATHSIG``); the parent may have died before this call, hence the check after it.
    Elsewhere a thread watches the parent pid.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:
                    os._exit(1)  # orphaned already: the signal will never come
                return
        except (OSError, AttributeError):
            pass  # no prctl (an unusual libc): watch instead
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="dldfd-parent-watch").start()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)


def _init_worker(config: BuildConfig, device: str, batch_size: int, threads: Optional[int], parent_pid: int) -> None:
    global _WORKER
    _die_with_parent(parent_pid)
    if threads is not None:
        torch.set_num_threads(threads)
    _WORKER = VideoProcessor(config, device=device, batch_size=batch_size)


def _work(video: BuildUnit, output: str) -> VideoResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(video, WorkDir(output))


# --------------------------------------------------------------------------------------------
# The build.


@dataclass
class BuildSummary:
    """What one ``build_corpus`` call did."""

    output: Path
    total: int  # videos of this shard
    skipped: int  # finished or failed in an earlier run
    built: int
    failed: list[VideoResult] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    finalized: bool = False
    report: Optional[dict[str, Any]] = None


def build_corpus(
    root: PathLike,
    output: PathLike,
    config: Optional[BuildConfig] = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    splits_dir: Optional[PathLike] = None,
    num_proc: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    allow_missing: bool = False,
    retry_failed: bool = False,
    device: str = "cpu",
    batch_size: int = 16,
    threads: Optional[int] = 1,
    progress: bool = True,
) -> BuildSummary:
    """Build (or resume) the corpus of an FF++ tree into ``output``.

    With ``num_shards == 1`` the ``DatasetDict`` is written at the end; a shard of several only
    builds its units (join the shards with :func:`merge_shards`). ``threads``: torch threads per
    process while detecting (see :func:`torch_threads`; None leaves torch's setting).
    """
    config = config or BuildConfig()
    check_parallelism(num_proc, shard_index, num_shards, threads=threads, batch_size=batch_size)
    check_output_folder(output, error=BuildError)
    index = index_ffpp(root, config.compression, methods, splits_dir=splits_dir, allow_missing=allow_missing)
    return build_units(
        list(index.videos), root, output, config, index.methods, num_proc=num_proc, shard_index=shard_index,
        num_shards=num_shards, retry_failed=retry_failed, device=device, batch_size=batch_size,
        threads=threads, progress=progress, desc="build-ffpp",
    )


def check_parallelism(
    num_proc: int, shard_index: int, num_shards: int, *, threads: Optional[int] = None, batch_size: int = 1
) -> None:
    """Refuse bad process / shard / thread counts before OUTPUT is created (``torch.set_num_threads(0)``
    would fail only inside the workers, after the work folder exists)."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    for name, value in (("num_proc", num_proc), ("batch_size", batch_size), ("threads", threads)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def build_units(
    videos: Sequence[BuildUnit],
    root: PathLike,
    output: PathLike,
    config: BuildConfig,
    methods: Sequence[str],
    num_proc: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    retry_failed: bool = False,
    device: str = "cpu",
    batch_size: int = 16,
    threads: Optional[int] = 1,
    progress: bool = True,
    desc: str = "build",
    unit: str = "video",
) -> BuildSummary:
    """Build (or resume) one unit per source file of ``videos`` (split, method and id decided by the
    caller) into ``output``, then, with one shard, write the ``DatasetDict``. Shared by
    :func:`build_corpus` (FF++) and :func:`dldfd_hf.data.faces_corpus.build_faces` (any real footage).
    """
    check_parallelism(num_proc, shard_index, num_shards, threads=threads, batch_size=batch_size)
    with _disk_full_stops_the_build(output):
        return _build_units(
            videos, root, output, config, methods, num_proc, shard_index, num_shards, retry_failed, device,
            batch_size, threads, progress, desc, unit,
        )


@contextlib.contextmanager
def _disk_full_stops_the_build(output: PathLike) -> Iterator[None]:
    """A full disk is a :class:`BuildError` (one line from the commands), not a traceback: the atomic
    writers left every unit whole, so the same command resumes once there is space."""
    try:
        yield
    except DiskFullError as error:
        raise BuildError(
            f"disk full while writing {error.filename} ({error.strerror}): nothing half-written was left in {output} "
            "and its finished units are kept; free space and run the same command again to resume"
        ) from error


def _build_units(
    videos: Sequence[BuildUnit],
    root: PathLike,
    output: PathLike,
    config: BuildConfig,
    methods: Sequence[str],
    num_proc: int,
    shard_index: int,
    num_shards: int,
    retry_failed: bool,
    device: str,
    batch_size: int,
    threads: Optional[int],
    progress: bool,
    desc: str,
    unit: str,
) -> BuildSummary:
    work = WorkDir(output)
    work.claim(config)  # first: refuses an OUTPUT that is a file or a foreign folder
    removed = work.remove_temporaries()
    if removed:
        logger.info("removed %d half-written file(s) of an interrupted run", removed)

    videos = [v for v in videos if shard_of(v, num_shards) == shard_index]
    atomic_write_json(
        work.manifest_path(shard_index, num_shards),
        {
            "shard_index": shard_index,
            "num_shards": num_shards,
            "root": str(Path(root).resolve()),
            "methods": list(methods),
            "videos": [[v.split, v.method, v.video_id, str(v.path)] for v in videos],
        },
    )
    for stale in (work.path / "shards").glob("*-of-*.json"):
        if not stale.name.endswith(f"-of-{num_shards:05d}.json"):
            stale.unlink()  # written with another --num-shards: those manifests no longer apply

    def pending(v: BuildUnit) -> bool:
        if work.unit_path(v.split, v.method, v.video_id).is_file():
            return False
        return retry_failed or not work.failure_path(v.split, v.method, v.video_id).is_file()

    todo = [v for v in videos if pending(v)]
    summary = BuildSummary(output=Path(output), total=len(videos), skipped=len(videos) - len(todo), built=0)
    start = time.perf_counter()
    results = _run(todo, work, config, num_proc, device, batch_size, threads, progress, summary.skipped, len(videos), desc, unit)
    for result in results:
        if result.ok:
            summary.built += 1
            summary.frames += result.frames
        else:
            summary.failed.append(result)
            # Not a warning: the caller reports failures (the CLI prints each once, failed.json lists them).
            logger.info("skipped %s/%s (%s): %s", result.method, result.video_id, result.split, result.error)
    summary.seconds = time.perf_counter() - start
    if num_shards == 1:
        summary.report = finalize_corpus(output, [output], progress=progress)
        summary.finalized = True
    return summary


def _run(
    todo: list[BuildUnit],
    work: WorkDir,
    config: BuildConfig,
    num_proc: int,
    device: str,
    batch_size: int,
    threads: Optional[int],
    progress: bool,
    initial: int,
    total: int,
    desc: str = "build",
    unit: str = "video",
) -> Iterator[VideoResult]:
    bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, disable=not progress, smoothing=0.1)
    frames, failed, start = 0, 0, time.perf_counter()

    def advance(result: VideoResult) -> VideoResult:
        nonlocal frames, failed
        frames += result.frames
        failed += not result.ok
        bar.update(1)
        rate = frames / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix_str(f"{rate:.1f} frames/s, {failed} failed", refresh=False)
        return result

    try:
        if not todo:
            return
        if num_proc == 1:
            processor = VideoProcessor(config, device=device, batch_size=batch_size)
            for video in todo:
                with torch_threads(threads):
                    result = processor(video, work)
                yield advance(result)
            return

        # spawn: forking a process that already runs torch threads can deadlock.
        with ProcessPoolExecutor(
            max_workers=num_proc,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(config, device, batch_size, threads, os.getpid()),
        ) as pool:
            queue = iter(todo)
            running = set()
            try:
                while True:
                    # A short queue keeps memory flat and lets Ctrl-C stop quickly.
                    while len(running) < 2 * num_proc:
                        video = next(queue, None)
                        if video is None:
                            break
                        running.add(pool.submit(_work, video, str(work.output)))
                    if not running:
                        break
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield advance(future.result())
            except BaseException:
                for future in running:
                    future.cancel()
                raise
    finally:
        bar.close()


__all__ = [
    # the build (this module)
    "BuildSummary",
    "VideoProcessor",
    "VideoResult",
    "build_corpus",
    "build_units",
    "check_parallelism",
    "landmarks_in_crop",
    "torch_threads",
    # settings and work folder (.workdir), finalising (.finalize): importable from here too
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
    "finalize_corpus",
    "merge_shards",
    "shard_of",
]
