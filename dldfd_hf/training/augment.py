"""Face-crop augmentation shared by a real crop and its pseudo-fake (``augmentation: sbi``).

SBI's training crops are not one fixed square: the face is cut with random margins, and real and
fake alike go through colour changes and JPEG compression, so the detector cannot learn "sharper
(or blurrier) than the untouched images" and survives compressed footage. :class:`FaceAugment`
does that on crops stored wider than the model sees (``dldfd build-faces --crop-scale 1.8``):

- training: a crop of the face box scaled 1.15-1.5x (the pipelines crop 1.3x), each side moved on
  its own by up to 10%, then, each with its own chance, an RGB shift, a hue/saturation/value change,
  a brightness/contrast change (0.3 each), a loss of resolution (0.25) and JPEG at quality 40-100 (0.5);
  with ``h264_probability``, instead of the last two: a real H.264 re-encoding (:func:`h264_roundtrip`,
  CRF drawn over FF++'s c23-c40 range, the face shrunk to 40-100% of its side first, as a face in a
  smaller video frame), so "compressed" can no more mean "fake" than "sharp" can mean "real";
- evaluation (no ``rng``): the 1.3x square the pipelines cut, nothing else.

The face box comes from the crop's five landmarks (the square that puts them where MTCNN's 1.3x
crops put them on average). Every random choice comes from the sample's ``random.Random``, which a
real row and its pseudo-fake share: the pair differs only by the blend.
"""

from __future__ import annotations

import io
import random
from typing import Optional, Sequence

import av
import numpy as np
from PIL import Image

from ..data.blending import colour_matrix, similarity_transform
from ..data.sbi import template_landmarks
from ..data.video_writer import encode_frames

__all__ = ["FaceAugment", "face_square", "h264_roundtrip"]

_UNIT_TEMPLATE = template_landmarks((1, 1))
PIPELINE_SCALE = 1.3  # the crops of dldfd_hf.media.faces.FaceCropper: 1.3x the MTCNN box


def face_square(landmarks: Sequence[Sequence[float]], size: tuple[int, int]) -> tuple[float, float, float]:
    """``(centre_x, centre_y, side)`` of the 1.3x face square of a crop with these landmarks.

    Without usable landmarks: the whole (square-ish) crop, assumed to be a 1.3x face crop.
    """
    marks = None if landmarks is None else np.asarray(landmarks, dtype=np.float64)
    if marks is None or marks.shape != (5, 2) or not np.isfinite(marks).all():
        return size[0] / 2, size[1] / 2, float(min(size))
    matrix = similarity_transform(_UNIT_TEMPLATE, marks)
    side = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    cx, cy = matrix[:, :2] @ (0.5, 0.5) + matrix[:, 2]
    return float(cx), float(cy), side


class FaceAugment:
    """Crop jitter and photometric augmentation of a face crop; see the module doc."""

    def __init__(
        self,
        scale_range: tuple[float, float] = (1.15, 1.5),
        side_jitter: float = 0.1,
        jpeg_probability: float = 0.5,
        jpeg_quality: tuple[int, int] = (40, 100),
        colour_probability: float = 0.3,
        downscale_probability: float = 0.25,
        h264_probability: float = 0.0,
        h264_crf: tuple[int, int] = (23, 40),
        h264_scale: tuple[float, float] = (0.4, 1.0),
    ) -> None:
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
        if not 0 <= h264_crf[0] <= h264_crf[1] <= 51:
            raise ValueError(f"h264_crf must be (low, high) with 0 <= low <= high <= 51, got {h264_crf}")
        if not 0 < h264_scale[0] <= h264_scale[1] <= 1:
            raise ValueError(f"h264_scale must be (low, high) with 0 < low <= high <= 1, got {h264_scale}")
        self.scale_range = tuple(scale_range)
        self.side_jitter = side_jitter
        self.jpeg_probability = jpeg_probability
        self.jpeg_quality = tuple(jpeg_quality)
        self.colour_probability = colour_probability
        self.downscale_probability = downscale_probability
        self.h264_probability = h264_probability
        self.h264_crf = tuple(h264_crf)
        self.h264_scale = tuple(h264_scale)

    def __call__(self, image: Image.Image, landmarks, rng: Optional[random.Random] = None) -> Image.Image:
        if image.mode != "RGB":
            image = image.convert("RGB")
        cx, cy, side = face_square(landmarks, image.size)
        if rng is None:
            half = side / 2
            return image.crop(_inside((cx - half, cy - half, cx + half, cy + half), image.size))
        scale = rng.uniform(*self.scale_range) / PIPELINE_SCALE
        half = side * scale / 2
        j = self.side_jitter
        box = tuple(c + half * (sign + rng.uniform(-j, j)) for c, sign in ((cx, -1), (cy, -1), (cx, 1), (cy, 1)))
        out = image.crop(_inside(box, image.size))
        return self._photometric(out, rng)

    def _photometric(self, image: Image.Image, rng: random.Random) -> Image.Image:
        p = self.colour_probability
        # Drawn in a fixed order whatever is applied, so a pair stays in step.
        draws = [rng.random() for _ in range(4)] + [rng.uniform(-1, 1) for _ in range(8)]
        gains, offsets = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
        saturation = 1.0
        if draws[0] < p:  # RGB shift, +-20 levels per channel
            offsets = [20 * v for v in draws[4:7]]
        if draws[1] < p:  # saturation and value +-30% (hue: SBI's limit is a fraction of a degree)
            saturation = 1 + 0.3 * draws[7]
            gains = [g * (1 + 0.3 * draws[8]) for g in gains]
        if draws[2] < p:  # brightness and contrast +-0.3 (contrast about mid-grey)
            contrast, brightness = 1 + 0.3 * draws[9], 0.3 * 255 * draws[10]
            gains = [g * contrast for g in gains]
            offsets = [o * contrast + brightness + 127.5 * (1 - contrast) for o in offsets]
        if gains != [1.0, 1.0, 1.0] or offsets != [0.0, 0.0, 0.0] or saturation != 1.0:
            image = image.convert("RGB", colour_matrix(gains, offsets, saturation))
        if self.h264_probability > 0:  # drawn only then: runs without it keep their old random stream
            encode, crf, scale = rng.random(), rng.randint(*self.h264_crf), rng.uniform(*self.h264_scale)
            if encode < self.h264_probability:
                return h264_roundtrip(image, crf, scale)
        if draws[3] < self.downscale_probability:  # footage of lower resolution than the crop
            factor = 0.35 + 0.45 * (draws[11] + 1) / 2
            small = (max(8, round(image.size[0] * factor)), max(8, round(image.size[1] * factor)))
            image = image.resize(small, Image.Resampling.BILINEAR).resize(image.size, Image.Resampling.BILINEAR)
        if rng.random() < self.jpeg_probability:
            quality = rng.randint(*self.jpeg_quality)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            buffer.seek(0)
            image = Image.open(buffer).convert("RGB")
        else:
            rng.randint(*self.jpeg_quality)
        return image


def h264_roundtrip(image: Image.Image, crf: int, scale: float = 1.0) -> Image.Image:
    """``image`` encoded as one H.264 frame (libx264, CRF ``crf``, 4:2:0) and decoded again.

    The frame is first shrunk to ``scale`` of its side (even sides, as 4:2:0 needs) and brought back
    to the input size after decoding: the macroblocks, the chroma subsampling and the deblocking
    of compressed video, on a face of video-frame resolution. FF++ c23 / c40 are CRF 23 / 40.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    size = image.size
    small = tuple(max(16, int(round(side * scale)) // 2 * 2) for side in size)
    frame = np.asarray(image.resize(small, Image.Resampling.BILINEAR) if small != size else image)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as container:
        # One thread: this runs inside DataLoader workers that already fill the cores.
        encode_frames(container, [frame], "libx264", 25, {"crf": str(int(crf)), "preset": "veryfast", "threads": "1"})
    buffer.seek(0)
    with av.open(buffer, "r", format="h264") as container:
        decoded = next(container.decode(video=0)).to_image()
    return decoded.resize(size, Image.Resampling.BILINEAR) if decoded.size != size else decoded


def _inside(box: tuple, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` rounded and moved (not cut) inside the image; shrunk to the image when larger."""
    left, top, right, bottom = box
    out = []
    for low, high, limit in ((left, right, size[0]), (top, bottom, size[1])):
        length = min(high - low, limit)
        low = min(max(low, 0.0), limit - length)
        out.append((int(round(low)), int(round(low + length))))
    (l, r), (t, b) = out
    return l, t, max(r, l + 1), max(b, t + 1)
