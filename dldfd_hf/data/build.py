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
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import shutil
import socket
import time
import zlib
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from .._io import TEMPORARY_PATTERN, atomic_path, atomic_write_json, temporary_name
from ..labels import FAKE, LABEL_NAMES, REAL
from .ffpp import (
    DEFAULT_METHODS,
    METHOD_NAMES,
    ORIGINAL,
    SPLITS,
    FFPPVideo,
    counts_by_split,
    format_table1,
    index_ffpp,
)
from .folders import check_output_folder

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

WORK_DIR = "_build"
REPORT_FILE = "build_report.json"
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
        if self.select not in ("largest", "confident"):
            raise ValueError(f"select must be 'largest' or 'confident' (one face per frame), got {self.select!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def corpus_features():
    """The row schema of the corpus (see DESIGN.md)."""
    from datasets import ClassLabel, Features, Image, List, Value

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


@dataclass(frozen=True)
class BuildUnit:
    """One source file of a build (a video, or a photo as a one-frame video) and the rows it makes:
    their ``split``, ``method`` (one of :data:`~dldfd_hf.data.ffpp.METHOD_NAMES`), ``video_id`` and
    ``compression`` column. FF++ videos become units via :meth:`from_ffpp`; ``dldfd build-faces``
    makes its own (see :mod:`dldfd_hf.data.faces_corpus`)."""

    split: str
    method: str
    video_id: str
    compression: str
    path: Path

    @property
    def label(self) -> int:
        """0 = real (the ``original`` method), 1 = fake."""
        return REAL if self.method == ORIGINAL else FAKE

    @property
    def key(self) -> str:
        return f"{self.method}/{self.video_id}"

    @classmethod
    def from_ffpp(cls, video: FFPPVideo) -> "BuildUnit":
        return cls(video.split, video.method, video.video_id, video.compression, video.path)


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
        their processes cannot be checked from here.
        """
        removed = 0
        if not self.path.is_dir():
            return removed
        host = socket.gethostname()
        for path in list(self.path.rglob("*.tmp-*")):
            match = TEMPORARY_PATTERN.match(path.name)
            if match is None:
                continue
            if match["host"] == host:
                if _process_alive(int(match["pid"])):
                    continue
            elif this_host_only:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
        return removed


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this host (signal 0 checks without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError as error:
        return error.errno != errno.ESRCH
    # A killed worker whose parent has not reaped it yet (a zombie) has stopped writing for good.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): assume it runs
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


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
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def shard_of(video: BuildUnit, num_shards: int) -> int:
    """Stable shard of a video, the same on every machine and Python run."""
    return zlib.crc32(video.key.encode()) % num_shards


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
        from ..faces import FaceCropper

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
        from ..media import MediaError

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
        from ..media import load_image, media_kind, to_rgb_array
        from ..video import Frame, iter_frames, iter_sampled_frames

        if media_kind(path) == "image":  # a photo is a one-frame video (``dldfd build-faces``)
            return iter([Frame(0, 0.0, to_rgb_array(load_image(path)))])
        # Streamed either way: memory is bounded by the detection batch, not the video or the sample.
        if self.config.frames_per_video is None:
            return iter_frames(path)
        return iter_sampled_frames(path, self.config.frames_per_video)

    def _write_unit(self, video: BuildUnit, unit: Path) -> tuple[int, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..video import VideoReadError

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


def _init_worker(config: BuildConfig, device: str, batch_size: int, threads: Optional[int]) -> None:
    import torch

    global _WORKER
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
    check_parallelism(num_proc, shard_index, num_shards)
    check_output_folder(output, error=BuildError)
    index = index_ffpp(root, config.compression, methods, splits_dir=splits_dir, allow_missing=allow_missing)
    return build_units(
        [BuildUnit.from_ffpp(v) for v in index.videos], root, output, config, index.methods, num_proc=num_proc, shard_index=shard_index,
        num_shards=num_shards, retry_failed=retry_failed, device=device, batch_size=batch_size,
        threads=threads, progress=progress, desc="build-ffpp",
    )


def check_parallelism(num_proc: int, shard_index: int, num_shards: int) -> None:
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    if num_proc < 1:
        raise ValueError(f"num_proc must be >= 1, got {num_proc}")


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
    check_parallelism(num_proc, shard_index, num_shards)
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
            logger.warning("skipped %s/%s (%s): %s", result.method, result.video_id, result.split, result.error)
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
    from tqdm.auto import tqdm

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
        import multiprocessing

        # spawn: forking a process that already runs torch threads can deadlock.
        with ProcessPoolExecutor(
            max_workers=num_proc,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(config, device, batch_size, threads),
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


# --------------------------------------------------------------------------------------------
# Finalising and merging.


def merge_shards(output: PathLike, shard_dirs: Sequence[PathLike] = (), progress: bool = True) -> dict[str, Any]:
    """Join shard folders (built with ``shard_index``/``num_shards``) into the corpus at ``output``.

    ``shard_dirs`` defaults to ``[output]`` (every machine wrote into one shared folder). Checks
    that every shard is present once, was built with the same settings, and is complete.
    """
    dirs = [Path(d) for d in shard_dirs] or [Path(output)]
    return finalize_corpus(output, dirs, progress=progress)


def finalize_corpus(output: PathLike, shard_dirs: Sequence[PathLike], progress: bool = True) -> dict[str, Any]:
    """Write ``output`` as a ``DatasetDict`` from the units of ``shard_dirs``; returns the report."""
    output = check_output_folder(output, error=BuildError)
    works = [WorkDir(d) for d in shard_dirs]
    config, manifests = _check_shards(works)
    out_work = WorkDir(output)
    if out_work.path.resolve() not in {w.path.resolve() for w in works}:
        out_work.claim(config)
    out_work.remove_temporaries(this_host_only=False)
    cache = out_work.path / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # left by a killed finalisation

    units: dict[str, list[Path]] = {s: [] for s in SPLITS}
    failed, seen = [], set()
    method_order = {m: i for i, m in enumerate(METHOD_NAMES)}
    entries = []
    for work, manifest in manifests:
        for split, method, video_id, path in manifest["videos"]:
            if (split, method, video_id) in seen:
                raise BuildError(f"video {method}/{video_id} appears in two shards")
            seen.add((split, method, video_id))
            entries.append((split, method, video_id, work))
    entries.sort(key=lambda e: (SPLITS.index(e[0]), method_order[e[1]], e[2]))
    video_stats = []
    for split, method, video_id, work in entries:
        unit = work.unit_path(split, method, video_id)
        if unit.is_file():
            units[split].append(unit)
            video_stats.append((split, method, video_id, _unit_stats(unit)))
        else:
            failed.append(json.loads(work.failure_path(split, method, video_id).read_text()))

    import datasets
    from datasets import Dataset

    features = corpus_features()
    bars_were_on = not datasets.are_progress_bars_disabled()
    if not progress:
        datasets.disable_progress_bars()
    staging = temporary_name(out_work.path / "final")
    trash = temporary_name(out_work.path / "trash")
    try:
        for split in SPLITS:
            if units[split]:
                ds = Dataset.from_parquet([str(p) for p in units[split]], split=split, features=features, cache_dir=str(cache))
                ds.save_to_disk(str(staging / split))
            else:
                # datasets writes no shard at all for an empty split unless told to, and cannot load that back.
                ds = Dataset.from_dict({name: [] for name in features}, features=features, split=split)
                ds.save_to_disk(str(staging / split), num_shards=1)
            del ds
        report = _report(config, manifests, video_stats, failed)
        (output / "dataset_dict.json").unlink(missing_ok=True)  # from here on: not a complete corpus
        trash.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            if (output / split).exists():
                os.replace(output / split, trash / split)
            os.replace(staging / split, output / split)
        atomic_write_json(output / REPORT_FILE, report)
        atomic_write_json(output / FAILED_FILE, failed)
        # Last: the marker that load_from_disk reads.
        atomic_write_json(output / "dataset_dict.json", {"splits": list(SPLITS)})
    finally:
        for path in (staging, trash, cache):
            shutil.rmtree(path, ignore_errors=True)
        if bars_were_on:
            datasets.enable_progress_bars()
    return report


def _check_shards(works: Sequence[WorkDir]) -> tuple[BuildConfig, list[tuple[WorkDir, dict[str, Any]]]]:
    config: Optional[BuildConfig] = None
    manifests: list[tuple[WorkDir, dict[str, Any]]] = []
    for work in works:
        found = work.read_config()
        if found is None:
            raise BuildError(f"{work.output} is not a corpus build folder (no {WORK_DIR}/config.json)")
        if config is not None and found != config:
            raise BuildError(f"{work.output} was built with other settings than {works[0].output}: {found} vs {config}")
        config = found
        for manifest in work.manifests():
            manifests.append((work, manifest))
    assert config is not None
    counts = {m["num_shards"] for _, m in manifests}
    if len(counts) != 1:
        raise BuildError(f"the shard folders were built with different --num-shards: {sorted(counts)}")
    num_shards = counts.pop()
    indices = Counter(m["shard_index"] for _, m in manifests)
    twice = sorted(i for i, n in indices.items() if n > 1)
    if twice:
        raise BuildError(f"shard(s) {twice} of {num_shards} found in more than one folder")
    absent = sorted(set(range(num_shards)) - set(indices))
    if absent:
        raise BuildError(
            f"shard(s) {absent} of {num_shards} missing: pass every shard folder "
            f"(built with --shard-index i --num-shards {num_shards})"
        )
    for work, manifest in manifests:
        todo = [
            f"{method}/{video_id}"
            for split, method, video_id, _ in manifest["videos"]
            if not work.unit_path(split, method, video_id).is_file()
            and not work.failure_path(split, method, video_id).is_file()
        ]
        if todo:
            raise BuildError(
                f"shard {manifest['shard_index']} of {num_shards} in {work.output} is incomplete: "
                f"{len(todo)} of {len(manifest['videos'])} videos not built yet (e.g. {', '.join(todo[:3])}); "
                "rerun its build-ffpp command to finish it"
            )
    return config, sorted(manifests, key=lambda wm: wm[1]["shard_index"])


def _unit_stats(unit: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    meta = pq.read_metadata(unit)
    return json.loads(meta.metadata[b"dldfd_video"])


def _report(
    config: BuildConfig,
    manifests: list[tuple[WorkDir, dict[str, Any]]],
    video_stats: list[tuple[str, str, str, dict[str, Any]]],
    failed: list[dict[str, Any]],
) -> dict[str, Any]:
    methods = list(dict.fromkeys(m for _, man in manifests for m in man["methods"]))
    videos = counts_by_split(((s, m) for s, m, _, st in video_stats if st["faces"] > 0), methods)
    images: dict[str, dict[str, int]] = {s: {m: 0 for m in (ORIGINAL, *methods)} for s in SPLITS}
    for split, method, _, stats in video_stats:
        images[split][method] += stats["faces"]
    return {
        "config": config.to_dict(),
        "methods": methods,
        "num_shards": manifests[0][1]["num_shards"] if manifests else 1,
        "videos": videos,
        "images": images,
        "class_images": {
            s: {"real": images[s][ORIGINAL], "fake": sum(n for m, n in images[s].items() if m != ORIGINAL)} for s in SPLITS
        },
        "frames_decoded": sum(st["frames"] for *_, st in video_stats),
        "frames_without_face": sum(st["frames"] - st["faces"] for *_, st in video_stats),
        "videos_without_face": [f"{m}/{v}" for _, m, v, st in video_stats if st["faces"] == 0],
        "failed": [f"{f['method']}/{f['video_id']}" for f in failed],
    }


def read_report(output: PathLike) -> dict[str, Any]:
    """The ``build_report.json`` of a finished corpus."""
    path = Path(output) / REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {output} is not a finished corpus (run build-ffpp / merge-ffpp)")
    return json.loads(path.read_text())


def report_table(report: dict[str, Any]) -> str:
    """The paper's Table 1 for a built corpus: images and videos per split and method."""
    return format_table1(report["videos"], report["images"], methods=report["methods"])
