"""Video reading with PyAV: metadata, evenly spaced frames with keyframe-aware seeking, streaming.

Frame ``index`` is the frame's position in presentation order (0-based) and ``time`` its
timestamp in seconds from the first frame. :class:`VideoReader` demuxes the file once (cheap: no
decoding) to learn every frame's timestamp and where the keyframes are; it then reaches each
wanted frame by decoding forward, and seeks only when a keyframe lies between the current decoder
position and the wanted frame, i.e. when seeking skips frames that decoding forward would have had
to decode. So 32 frames of a 10-minute video cost 32 short decodes, never the whole video, and 32
frames inside one GOP cost one forward pass, never 32 seeks. On the way to a wanted frame the
decoder skips the frames nothing references (most B-frames).

>>> frames = sample_frames("talk.mp4", num_frames=32)       # [Frame(index, time, image), ...]
>>> for frame in iter_sampled_frames("talk.mp4", 32): ...    # the same frames, one at a time
>>> for frame in iter_frames("talk.mp4", step=5): ...        # streamed, bounded memory

A file that ends before what its header declares is an error (:class:`VideoReadError`) when the
header counts the frames (MP4, MOV, AVI). Where it does not, a file that still plays but looks cut
short gets a warning (:attr:`VideoReader.warning`, ``VideoInfo.warning``): its frames span less
than the duration the file declares (Matroska, WebM, ...), or, for MPEG program streams (``.mpg``,
``.vob``: nothing in them counts frames), the file ends inside a packet.

Frames come upright, as players show them: a phone's portrait clip stored landscape with a
display matrix (the old ``rotate`` tag) is turned by it (:func:`upright`). A file whose timestamps
cannot tell its frames apart (all 0, repeated) is read by frame position in decoding order.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import av
import numpy as np

from .._io import PathLike, atomic_path
from .files import MediaError, file_problem

__all__ = [
    "VideoReadError",
    "VideoInfo",
    "Frame",
    "VideoReader",
    "probe",
    "sample_frames",
    "iter_sampled_frames",
    "iter_frames",
    "evenly_spaced_indices",
    "frame_rotation",
    "upright",
    "write_video",
]


class VideoReadError(MediaError):
    """A file that cannot be read as a video: missing, empty, not a video, truncated or undecodable.

    ``str(err)`` is ``"<path>: <reason>"``; ``err.path`` and ``err.reason`` hold the parts.
    """


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video's first video stream."""

    path: str
    fps: float
    frame_count: int
    duration: float  # seconds
    width: int
    height: int
    codec: str = ""
    warning: Optional[str] = None
    """Why the frames may not be the whole video (a file that looks truncated), else None."""
    rotation: int = 0
    """Counter-clockwise degrees (0, 90, 180, 270) the stored frames are turned by to be shown
    upright (a phone's display matrix); ``width`` and ``height`` are the upright frames'."""


@dataclass
class Frame:
    """One decoded frame: presentation-order index, seconds from the first frame, HxWx3 uint8 RGB."""

    index: int
    time: float
    image: np.ndarray = field(repr=False)


def evenly_spaced_indices(frame_count: int, num_frames: int) -> List[int]:
    """``num_frames`` indices at the centres of equal segments of ``[0, frame_count)``.

    Centres rather than ``linspace(0, n - 1)`` keep the first and last frames (often black or a
    fade) out of the sample. With ``num_frames >= frame_count`` every frame is returned.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames!r}")
    if frame_count <= num_frames:
        return list(range(frame_count))
    return [int((i + 0.5) * frame_count / num_frames) for i in range(num_frames)]


class _FrameIndex:
    """Presentation timestamps of every frame (sorted) and the positions of the keyframes.

    Streams whose packets lack timestamps, or whose timestamps repeat (all 0), get ``pts=None``:
    frames are then identified by their decoding order and reached by decoding from the start (no
    seeking).
    """

    def __init__(self, count: int, pts: Optional[List[int]], keyframe_pts: Iterable[int] = (),
                 warning: Optional[str] = None) -> None:
        self.count = count
        self.warning = warning
        self.pts = None if pts is None else np.asarray(sorted(pts), dtype=np.int64)
        self.keyframes = [0]
        if self.pts is not None:
            positions = {int(p): i for i, p in enumerate(self.pts)}
            # A stream must start decodable: its first frame is always an entry point.
            self.keyframes = sorted({0} | {positions[int(p)] for p in keyframe_pts if int(p) in positions})

    def __len__(self) -> int:
        return self.count

    def keyframe_at_or_before(self, index: int) -> int:
        return self.keyframes[bisect.bisect_right(self.keyframes, index) - 1]

    def position(self, pts: Optional[int]) -> Optional[int]:
        """Index of the frame with timestamp ``pts`` (None when unknown)."""
        if pts is None or self.pts is None:
            return None
        i = int(np.searchsorted(self.pts, pts))
        if i < len(self.pts) and self.pts[i] == pts:
            return i
        # Not an exact match (a decoder that rewrites timestamps): the nearest frame.
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.pts)]
        return min(candidates, key=lambda j: abs(int(self.pts[j]) - pts))


class VideoReader:
    """Random access to one video file (a context manager); :func:`iter_frames` streams a whole file.

    ``seeks`` and ``frames_decoded`` count the work done, so callers and tests can check that
    sampling is cheap.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = str(path)
        _check_file(self.path)
        self._container = _open(self.path)
        self._stream = _video_stream(self._container, self.path)
        self._index: Optional[_FrameIndex] = None
        self._decoder: Optional[Iterator[Tuple[int, Any]]] = None
        self._pos = -1  # index of the last frame the decoder produced
        self._seek_keyframe = 0  # where the decoder was last positioned
        self._fresh_seek = True  # nothing decoded since that positioning
        self._seek_back = 0  # keyframes to aim early, for demuxers whose seeks land late
        self._wanted_pts: set = set()  # timestamps of the frames the current read() returns
        self.seeks = 0
        self.frames_decoded = 0

    # --- context manager -------------------------------------------------------------------
    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    # --- metadata --------------------------------------------------------------------------
    @property
    def time_base(self) -> Fraction:
        return self._stream.time_base or Fraction(1, 1)

    @property
    def info(self) -> VideoInfo:
        """Metadata with the exact frame count (from the frame index)."""
        index = self._frame_index()
        fps = _fps(self._stream)
        if fps is None and index.pts is not None:
            span = float((index.pts[-1] - index.pts[0]) * self.time_base)
            fps = (len(index) - 1) / span if span > 0 else 0.0
        duration = _duration(self._stream, self._container) or (len(index) / fps if fps else 0.0)
        width, height = int(self._stream.codec_context.width), int(self._stream.codec_context.height)
        rotation = _first_frame_rotation(self.path, self._stream.index)
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            path=self.path,
            fps=float(fps or 0.0),
            frame_count=len(index),
            duration=float(duration),
            width=width,
            height=height,
            codec=self._stream.codec_context.name,
            warning=index.warning,
            rotation=rotation,
        )

    @property
    def warning(self) -> Optional[str]:
        """None, or why the frames may not be the whole video (see the module doc on truncation)."""
        return self._frame_index().warning

    @property
    def frame_count(self) -> int:
        return len(self._frame_index())

    # --- random access ---------------------------------------------------------------------
    def sample(self, num_frames: int = 32) -> List[Frame]:
        """``num_frames`` evenly spaced frames (see :func:`evenly_spaced_indices`)."""
        return list(self.iter_sample(num_frames))

    def iter_sample(self, num_frames: int = 32) -> Iterator[Frame]:
        """:meth:`sample`, one frame at a time: only the frame being returned is held in memory."""
        return self.iter_read(evenly_spaced_indices(self.frame_count, num_frames))

    def read(self, indices: Sequence[int]) -> List[Frame]:
        """The frames at ``indices`` (returned sorted, duplicates removed)."""
        return list(self.iter_read(indices))

    def iter_read(self, indices: Sequence[int]) -> Iterator[Frame]:
        """:meth:`read`, one frame at a time. The indices are checked now, not at the first ``next()``."""
        index = self._frame_index()
        targets = sorted({int(i) for i in indices})
        if targets and (targets[0] < 0 or targets[-1] >= len(index)):
            raise IndexError(f"{self.path}: frame indices must lie in [0, {len(index)}), got {targets[0]}..{targets[-1]}")
        # Every wanted frame is decoded even if the decoder sees it while looking for an earlier one.
        self._wanted_pts = set() if index.pts is None else {int(index.pts[t]) for t in targets}
        return (self._read_one(target) for target in targets)

    def _read_one(self, target: int) -> Frame:
        index = self._frame_index()
        keyframe = index.keyframe_at_or_before(target)
        # Seek only when a keyframe lies beyond the decoder's position and at or before the
        # target: decoding forward would pass through that keyframe anyway.
        if self._decoder is None or target <= self._pos or keyframe > self._pos + 1:
            self._seek(keyframe)
        while True:
            found = self._decode_until(target)
            if found is not None:
                return self._frame(*found)
            # The seek landed past the target (demuxers that seek by scanning timestamps, e.g.
            # MPEG-PS, land a GOP late): aim one keyframe earlier, now and for later seeks.
            self._seek_back += 1
            self._seek(keyframe)

    def _decode_until(self, target: int) -> Optional[Tuple[int, Any]]:
        for position, frame in self._decoder:
            if position is None:
                position = self._pos + 1
            if self._fresh_seek and position > target and self._seek_keyframe > 0:
                return None
            self._fresh_seek = False
            self._pos = position
            if position >= target:
                return position, frame
        if self._fresh_seek and self._seek_keyframe > 0:
            return None  # the seek landed at the end of the file
        raise VideoReadError(
            self.path,
            f"truncated or corrupt: decoding stopped before frame {target} (the file lists {len(self._frame_index())} frames)",
        )

    def _seek(self, keyframe: int) -> None:
        """Position the decoder at ``keyframe`` (or ``_seek_back`` keyframes earlier)."""
        index = self._frame_index()
        position = bisect.bisect_left(index.keyframes, keyframe)
        landing = index.keyframes[max(0, position - self._seek_back)]
        if landing == 0:
            if self._decoder is not None:
                # Back to the start: a fresh demuxer is exact for every format.
                self.seeks += 1
                self._container.close()
                self._container = _open(self.path)
                self._stream = _video_stream(self._container, self.path)
        else:
            self.seeks += 1
            try:
                self._container.seek(int(index.pts[landing]), stream=self._stream, backward=True)
            except av.error.FFmpegError as err:
                raise VideoReadError(self.path, f"cannot seek to frame {landing} ({_ffmpeg_reason(err)})") from None
        self._decoder = self._decode()
        self._pos = landing - 1
        self._seek_keyframe = landing
        self._fresh_seek = True

    def _decode(self) -> Iterator[Tuple[Optional[int], Any]]:
        index = self._frame_index()
        codec = self._stream.codec_context
        try:
            for packet in self._container.demux(self._stream):
                # Frames no other frame references (most B-frames) are skipped unless wanted:
                # ~half the decoding work between keyframe and target, same pixels for the rest.
                skip = index.pts is not None and packet.pts is not None and packet.pts not in self._wanted_pts
                codec.skip_frame = "NONREF" if skip else "DEFAULT"
                for frame in packet.decode():
                    self.frames_decoded += 1
                    yield index.position(frame.pts), frame
        except av.error.FFmpegError as err:
            raise VideoReadError(
                self.path,
                f"truncated or corrupt: undecodable video data after frame {self._pos} ({_ffmpeg_reason(err)})",
            ) from None

    def _frame(self, position: int, frame: Any) -> Frame:
        index = self._frame_index()
        if index.pts is not None:
            time = float((int(index.pts[position]) - int(index.pts[0])) * self.time_base)
        else:
            fps = _fps(self._stream)
            time = position / fps if fps else 0.0
        return Frame(index=position, time=time, image=upright(frame, self._stream))

    def _frame_index(self) -> _FrameIndex:
        if self._index is None:
            self._index = _build_index(self.path, self._stream.index)
        return self._index


def probe(path: PathLike) -> VideoInfo:
    """Metadata of a video, with the exact frame count. The file is demuxed once (no decoding),
    so an empty or truncated file raises :class:`VideoReadError` here already."""
    with VideoReader(path) as reader:
        return reader.info


def sample_frames(path: PathLike, num_frames: int = 32) -> List[Frame]:
    """``num_frames`` evenly spaced frames of a video (keyframe-aware seeking, see module doc)."""
    return list(iter_sampled_frames(path, num_frames))


def iter_sampled_frames(path: PathLike, num_frames: int = 32) -> Iterator[Frame]:
    """:func:`sample_frames` streamed: the frames come one at a time, so memory does not grow with
    ``num_frames``. The file is opened and indexed now (errors are raised here, not at the first
    ``next()``); it is closed when the iterator is exhausted or closed.
    """
    reader = VideoReader(path)
    try:
        frames = reader.iter_sample(num_frames)
    except BaseException:
        reader.close()
        raise
    return _closing(reader, frames)


def _closing(reader: VideoReader, frames: Iterator[Frame]) -> Iterator[Frame]:
    with reader:
        yield from frames


def iter_frames(path: PathLike, step: int = 1) -> Iterator[Frame]:
    """Stream every ``step``-th frame (index 0, step, 2*step, ...) without holding the video in memory.

    Raises :class:`VideoReadError` (possibly after yielding frames) when the file is unreadable,
    has no frames, or ends before the frame count its header promises.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step!r}")
    path = str(path)
    _check_file(path)  # now, not at the first next()
    return _iter_frames(path, step)


def _iter_frames(path: str, step: int) -> Iterator[Frame]:
    count = 0
    with _open(path) as container:
        stream = _video_stream(container, path)
        expected = int(stream.frames or 0)
        time_base = stream.time_base or Fraction(1, 1)
        first_pts: Optional[int] = None
        fps = _fps(stream) or 0.0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if frame.pts is not None and first_pts is None:
                        first_pts = frame.pts
                    if count % step == 0:
                        if frame.pts is not None and first_pts is not None:
                            time = float((frame.pts - first_pts) * time_base)
                        else:
                            time = count / fps if fps else 0.0
                        yield Frame(index=count, time=time, image=upright(frame, stream))
                    count += 1
        except av.error.FFmpegError as err:
            raise VideoReadError(
                path, f"truncated or corrupt: undecodable video data after frame {count} ({_ffmpeg_reason(err)})"
            ) from None
    if count == 0:
        raise VideoReadError(path, "contains no decodable video frames")
    if expected and count < expected:
        raise VideoReadError(path, f"truncated: decoding ended after {count} of the {expected} frames the file lists")


def write_video(
    path: PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    gop: Optional[int] = None,
    crf: Optional[int] = None,
    options: Optional[Dict[str, str]] = None,
    container_options: Optional[Dict[str, str]] = None,
    rotation: int = 0,
) -> int:
    """Encode HxWx3 uint8 RGB frames into a video file; returns the number of frames written.

    ``gop`` sets the keyframe interval, ``crf`` the quality (x264: 23 default, FF++ c40 ~ 40),
    ``options`` are codec options, ``container_options`` muxer options (e.g. ``{"movflags": "+faststart"}``),
    ``rotation`` the counter-clockwise degrees players turn the frames by (a display matrix, as
    phones write for portrait video stored landscape; MP4, MOV, Matroska).
    Odd widths/heights are cropped by one pixel (yuv420p needs even sizes). The file appears
    only once complete (written under a unique temporary name, see :mod:`dldfd_hf._io`, then
    renamed); a failed encode leaves nothing behind.
    """
    path = Path(path)
    muxer = _muxer_for(path)  # from the real name: the temporary one has no video extension
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=muxer, options=dict(container_options or {})) as container:
            stream = container.add_stream(codec, rate=rate)
            stream.pix_fmt = "yuv420p"
            if rotation % 360:
                stream.set_display_rotation(rotation)
            codec_options = dict(options or {})
            if gop is not None:
                codec_options["g"] = str(gop)
                if codec == "libx264":
                    # x264 may also insert keyframes at scene cuts; a fixed GOP is the point here.
                    codec_options.setdefault("sc_threshold", "0")
                    codec_options.setdefault("keyint_min", str(gop))
            if crf is not None:
                codec_options["crf"] = str(crf)
            stream.options = codec_options
            for image in frames:
                if count == 0:
                    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
                    stream.width, stream.height = width, height
                image = np.ascontiguousarray(image[:height, :width])
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
            for packet in stream.encode():
                container.mux(packet)
    return count


# --- helpers ---------------------------------------------------------------------------------
def frame_rotation(frame: Any, stream: Any = None) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) that turn a decoded ``frame`` upright.

    From the frame's display matrix (FFmpeg attaches the stream's to every frame: phones store
    portrait video landscape and say so there), else from a ``rotate`` tag in ``stream``'s
    metadata (older muxers; clockwise degrees).
    """
    degrees = int(getattr(frame, "rotation", 0) or 0)
    if not degrees and stream is not None:
        tag = (stream.metadata or {}).get("rotate")
        try:
            degrees = -int(float(tag)) if tag else 0
        except ValueError:  # a tag that is not a number: show the frame as stored
            degrees = 0
    return int(round(degrees / 90.0)) * 90 % 360


def upright(frame: Any, stream: Any = None) -> np.ndarray:
    """A decoded PyAV ``frame`` as an HxWx3 uint8 RGB array turned as players show it
    (see :func:`frame_rotation`); contiguous, so it can be handed to encoders and torch as is."""
    image = frame.to_ndarray(format="rgb24")
    turns = frame_rotation(frame, stream) // 90
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def _first_frame_rotation(path: str, stream_index: int) -> int:
    """:func:`frame_rotation` of the first decodable frame (0 when none decodes)."""
    with _open(path) as container:
        stream = container.streams[stream_index]
        try:
            for frame in container.decode(stream):
                return frame_rotation(frame, stream)
        except av.error.FFmpegError:
            pass
    return 0


def _muxer_for(path: Path) -> str:
    """The FFmpeg muxer FFmpeg picks for ``path``'s extension (``.mp4`` -> mp4, ``.mkv`` -> matroska).

    Opening a container for writing only allocates the muxer; the file is created when the
    header is written, so ``path`` itself is not touched.
    """
    try:
        container = av.open(str(path), mode="w")
    except (av.error.FFmpegError, ValueError) as err:
        raise ValueError(f"{path}: cannot tell the video container from the file name ({err})") from None
    try:
        return container.format.name
    finally:
        container.close()


def _check_file(path: str) -> None:
    problem = file_problem(path)
    if problem is not None:
        raise VideoReadError(path, problem)


def _open(path: str) -> Any:
    try:
        return av.open(path, mode="r")
    except av.error.FFmpegError as err:
        raise VideoReadError(path, f"not a video, or a truncated/corrupt one (FFmpeg: {_ffmpeg_reason(err)})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise VideoReadError(path, f"cannot open ({err})") from None


def _video_stream(container: Any, path: str) -> Any:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoReadError(path, f"no video stream (streams found: {', '.join(kinds)})")
    return container.streams.video[0]


def _build_index(path: str, stream_index: int) -> _FrameIndex:
    """Demux (no decoding) the video stream once: timestamps and keyframe flags of all frames."""
    pts: List[int] = []
    keyframe_pts: List[int] = []
    missing_pts = 0
    with _open(path) as container:
        stream = container.streams[stream_index]
        expected = int(stream.frames or 0)
        format_name = container.format.name
        declared = _duration(stream, container)
        fps = _fps(stream)
        time_base = stream.time_base or Fraction(1, 1)
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the end-of-stream flush packet
                if packet.pts is None:
                    missing_pts += 1
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframe_pts.append(packet.pts)
        except av.error.FFmpegError as err:
            raise VideoReadError(
                path, f"truncated or corrupt: demuxing failed after {len(pts)} frames ({_ffmpeg_reason(err)})"
            ) from None
    count = len(pts) + missing_pts
    if count == 0:
        raise VideoReadError(path, "contains no video frames")
    if expected and count < expected:
        raise VideoReadError(path, f"truncated: the file lists {expected} frames but only {count} are present")
    # Timestamps that do not tell the frames apart (all 0: some screen recorders and muxers write
    # no times at all) cannot place a frame: frames are then counted in decoding order instead.
    usable = not missing_pts and len(set(pts)) == len(pts)
    warning = None
    if not expected:  # nothing counts the frames: compare with the duration, or the container's own structure
        span = None
        if usable and fps:
            span = float((max(pts) - min(pts)) * time_base) + 1.0 / fps
        if declared and span is not None and span < 0.8 * declared and declared - span > 1.0:
            warning = (f"possibly truncated: {count} frames ({span:.1f} s) found, "
                       f"the file declares {declared:.1f} s; the verdict rests on the frames present")
        elif format_name == "mpeg":
            cut = _mpeg_ps_cut(path)
            if cut is not None:
                warning = (f"possibly truncated: the file ends inside an MPEG packet (at byte {cut[0]}, the "
                           f"packet runs to byte {cut[1]}); the verdict rests on the {count} frames present")
    return _FrameIndex(count, pts if usable else None, keyframe_pts, warning)


def _mpeg_ps_cut(path: str, window: int = 1 << 20) -> Optional[Tuple[int, int]]:
    """``(file size, end of the last packet)`` when an MPEG program stream ends inside a packet.

    MPEG-PS counts no frames and its duration is estimated from the timestamps found, so a file cut
    short looks complete to FFmpeg; its last pack or PES packet, whose length is in its header, does
    not. The packets of the file's last ``window`` bytes are followed from the first pack header
    there; None when the file ends on a packet boundary, or when the structure cannot be followed
    (trailing padding, an unusual muxer): no warning rather than a wrong one.
    """
    size = os.path.getsize(path)
    start = max(0, size - window)
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read()
    candidate = data.find(b"\x00\x00\x01\xba")
    for _ in range(8):  # a pack start code inside payload bytes loses the structure at once: try the next
        if candidate < 0:
            return None
        end = _follow_mpeg_ps(data, candidate)
        if end is None:
            candidate = data.find(b"\x00\x00\x01\xba", candidate + 4)
            continue
        return None if end <= len(data) else (size, start + end)
    return None


def _follow_mpeg_ps(data: bytes, pos: int) -> Optional[int]:
    """Follow packs and packets from ``pos``: the end of the last one (past ``len(data)`` when the data
    ends inside it), or None when the bytes stop looking like MPEG-PS before the end."""
    while pos < len(data):
        if len(data) - pos < 4:
            return pos + 4 if data[pos:] == b"\x00\x00\x01"[: len(data) - pos] else None
        if data[pos:pos + 3] != b"\x00\x00\x01":
            return None
        code = data[pos + 3]
        if code == 0xB9:  # program end code
            length = 4
        elif code == 0xBA:  # pack header: MPEG-2 (14 bytes + stuffing) or MPEG-1 (12 bytes)
            if pos + 5 > len(data):
                return pos + 12
            marker = data[pos + 4]
            if marker >> 6 == 0b01:
                if pos + 14 > len(data):
                    return pos + 14
                length = 14 + (data[pos + 13] & 0x07)
            elif marker >> 4 == 0b0010:
                length = 12
            else:
                return None
        elif code >= 0xBB:  # system header and PES packets: 16-bit length after the start code
            if pos + 6 > len(data):
                return pos + 6
            length = 6 + int.from_bytes(data[pos + 4:pos + 6], "big")
        else:
            return None
        pos += length
    return pos


def _fps(stream: Any) -> Optional[float]:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    return None


def _duration(stream: Any, container: Any) -> Optional[float]:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _ffmpeg_reason(err: Exception) -> str:
    reason = getattr(err, "strerror", None) or str(err)
    return re.sub(r"^\[Errno -?\d+\]\s*", "", reason)
