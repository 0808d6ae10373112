"""Video frames as PyAV decodes them: the types and checks the readers share.

Frame ``index`` is the frame's position in presentation order (0-based) and ``time`` its
timestamp in seconds from the first frame. Frames come upright, as players show them: a phone's
portrait clip stored landscape with a display matrix (the old ``rotate`` tag) is turned by it
(:func:`upright`).

The readers: :mod:`.video_reader` (random access: metadata, evenly spaced frames with
keyframe-aware seeking) and :mod:`.video_stream` (every ``step``-th frame, streamed). Videos are
written by :func:`dldfd_hf.data.video_writer.write_video`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, List, Optional

import av
import numpy as np

from .files import MediaError, file_problem

__all__ = ["VideoReadError", "VideoInfo", "Frame", "evenly_spaced_indices", "frame_rotation", "upright"]


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


def check_video_file(path: str) -> None:
    """:class:`VideoReadError` now for a path that is not a non-empty regular file (see :func:`file_problem`)."""
    problem = file_problem(path)
    if problem is not None:
        raise VideoReadError(path, problem)


def open_video(path: str) -> Any:
    """The file opened for reading by PyAV; :class:`VideoReadError` when FFmpeg cannot open it."""
    try:
        return av.open(path, mode="r")
    except av.error.FFmpegError as err:
        raise VideoReadError(path, f"not a video, or a truncated/corrupt one (FFmpeg: {ffmpeg_reason(err)})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise VideoReadError(path, f"cannot open ({err})") from None


def first_video_stream(container: Any, path: str) -> Any:
    """The container's first video stream; closes it and raises :class:`VideoReadError` when it has none."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoReadError(path, f"no video stream (streams found: {', '.join(kinds)})")
    return container.streams.video[0]


def stream_fps(stream: Any) -> Optional[float]:
    """Frames per second the stream declares (average, guessed or base rate), None when none does."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    return None


def stream_duration(stream: Any, container: Any) -> Optional[float]:
    """Seconds the stream (else the container) declares, None when neither does."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def ffmpeg_reason(err: Exception) -> str:
    """FFmpeg's message without the ``[Errno -N]`` prefix, for a user-facing reason."""
    reason = getattr(err, "strerror", None) or str(err)
    return re.sub(r"^\[Errno -?\d+\]\s*", "", reason)


def frame_time(pts: Optional[int], first_pts: Optional[int], time_base: Fraction, position: int,
               fps: Optional[float]) -> float:
    """Seconds from the first frame: from the timestamps where both are known, else from the frame's
    position and the declared frame rate (0.0 when there is none)."""
    if pts is not None and first_pts is not None:
        return float((pts - first_pts) * time_base)
    return position / fps if fps else 0.0


def check_frame_count(path: str, count: int, expected: int, found: str = "present") -> None:
    """:class:`VideoReadError` when no frame was ``found`` (``"present"``: demuxed, ``"decodable"``:
    decoded), or fewer than the ``expected`` number the header lists (0: the header lists none)."""
    if count == 0:
        raise VideoReadError(path, "contains no video frames" if found == "present" else f"contains no {found} video frames")
    if expected and count < expected:
        raise VideoReadError(path, f"truncated: the file lists {expected} frames but only {count} are {found}")
