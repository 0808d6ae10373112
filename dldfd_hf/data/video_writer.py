"""Encoding frames to video with PyAV: the synthetic FF++ tree's videos (:mod:`.synth`), test and
benchmark clips (:func:`write_video`), and the one-frame H.264 round trip of the training
augmentation (:func:`~dldfd_hf.training.augment.h264_roundtrip`), all through :func:`encode_frames`.

>>> write_video("clip.mp4", frames, fps=25, gop=12, crf=23)    # HxWx3 uint8 RGB arrays -> frames written
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import av
import numpy as np

from .._io import PathLike, atomic_path

__all__ = ["write_video", "encode_frames"]


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
    codec_options = dict(options or {})
    if gop is not None:
        codec_options["g"] = str(gop)
        if codec == "libx264":
            # x264 may also insert keyframes at scene cuts; a fixed GOP is the point here.
            codec_options.setdefault("sc_threshold", "0")
            codec_options.setdefault("keyint_min", str(gop))
    if crf is not None:
        codec_options["crf"] = str(crf)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=muxer, options=dict(container_options or {})) as container:
            return encode_frames(
                container, frames, codec, Fraction(fps).limit_denominator(1001), codec_options, rotation
            )


def encode_frames(
    container: Any,
    frames: Iterable[np.ndarray],
    codec: str,
    rate: Union[int, Fraction],
    options: Dict[str, str],
    rotation: int = 0,
) -> int:
    """Encode HxWx3 uint8 RGB ``frames`` as a new yuv420p stream of the PyAV output ``container``
    (its size from the first frame, odd sides cropped by one pixel) and flush it; returns the count.
    ``options`` are the codec's, ``rotation`` the display matrix's counter-clockwise degrees."""
    stream = container.add_stream(codec, rate=rate)
    stream.pix_fmt = "yuv420p"
    if rotation % 360:
        stream.set_display_rotation(rotation)
    stream.options = options
    count = 0
    for image in frames:
        if count == 0:
            height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
            stream.width, stream.height = width, height
        image = np.ascontiguousarray(image[:height, :width])
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        count += 1
    for packet in stream.encode():
        container.mux(packet)
    return count


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
