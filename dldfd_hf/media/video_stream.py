"""Every ``step``-th frame of a video, streamed in one forward pass (bounded memory, no seeking).

>>> for frame in iter_frames("talk.mp4", step=5): ...     # Frame(index, time, image), upright

For a few frames of a long video, :func:`~dldfd_hf.media.video_reader.iter_sampled_frames` is far
cheaper: it seeks instead of decoding everything.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterator, Optional

import av

from .._io import PathLike
from .video import (
    Frame,
    VideoReadError,
    check_frame_count,
    check_video_file,
    ffmpeg_reason,
    first_video_stream,
    frame_time,
    open_video,
    stream_fps,
    upright,
)

__all__ = ["iter_frames"]


def iter_frames(path: PathLike, step: int = 1) -> Iterator[Frame]:
    """Stream every ``step``-th frame (index 0, step, 2*step, ...) without holding the video in memory.

    Raises :class:`~dldfd_hf.media.video.VideoReadError` (possibly after yielding frames) when the
    file is unreadable, has no frames, or ends before the frame count its header promises.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step!r}")
    path = str(path)
    check_video_file(path)  # now, not at the first next()
    return _iter_frames(path, step)


def _iter_frames(path: str, step: int) -> Iterator[Frame]:
    count = 0
    with open_video(path) as container:
        stream = first_video_stream(container, path)
        expected = int(stream.frames or 0)
        time_base = stream.time_base or Fraction(1, 1)
        first_pts: Optional[int] = None
        fps = stream_fps(stream)
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if frame.pts is not None and first_pts is None:
                        first_pts = frame.pts
                    if count % step == 0:
                        time = frame_time(frame.pts, first_pts, time_base, count, fps)
                        yield Frame(index=count, time=time, image=upright(frame, stream))
                    count += 1
        except av.error.FFmpegError as err:
            raise VideoReadError(
                path, f"truncated or corrupt: undecodable video data after frame {count} ({ffmpeg_reason(err)})"
            ) from None
    check_frame_count(path, count, expected, found="decodable")
