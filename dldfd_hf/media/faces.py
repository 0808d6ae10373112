"""Face crops: a face detector's boxes made into the square crops the model sees.

The detector is MTCNN by default (:mod:`.mtcnn`, the paper's); any
:class:`~dldfd_hf.media.face_detector.FaceDetector` can take its place. The crop follows the
paper's recipe (a 1.3x face box): a square of 1.3x the detector box's longer side around its
centre, kept inside the frame (shifted, never clipped, so the crop is always square and the resize
never distorts the face), resized to the model's input size.

>>> cropper = FaceCropper(crop_size=224)
>>> faces_per_frame = cropper([frame_a, frame_b])     # [[Face, ...], []]  ([] = no face found)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .._checks import check_positive_int
from .face_detector import FaceDetections, FaceDetector
from .image import ImageLike, to_rgb_array
from .mtcnn import MTCNNDetector

__all__ = ["Face", "FaceCropper", "square_crop_box"]

Box = Tuple[float, float, float, float]
SelectMode = Literal["largest", "confident", "all"]
_SELECT_MODES = ("largest", "confident", "all")


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the frame it came from."""

    box: Box  # the detector's box (x1, y1, x2, y2)
    crop_box: Tuple[int, int, int, int]  # the square box actually cropped (scaled, inside the frame)
    score: float  # the detector's face probability
    landmarks: np.ndarray = field(repr=False)  # (5, 2): eyes, nose, mouth corners as (x, y)
    crop: Optional[Image.Image] = field(default=None, repr=False)  # RGB, crop_size x crop_size

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def square_crop_box(box: Sequence[float], width: int, height: int, scale: float = 1.3) -> Tuple[int, int, int, int]:
    """The square crop ``(left, top, right, bottom)`` for a face ``box`` in a ``width x height`` frame.

    Its side is ``scale * max(w, h)`` (rounded up to whole pixels), centred on the box. The crop is
    always square and inside the frame, so resizing it to the model's input never changes the
    face's aspect ratio (training and inference crops agree at the borders too):

    * at a border the square is shifted inside the frame, still containing the whole face box
      (where the box itself lies in the frame);
    * when the square is larger than the frame's shorter side, it shrinks to that side (the
      largest square that fits), placed as centred on the face as the frame allows.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = int(math.ceil(max(x2 - x1, y2 - y1) * scale - 1e-9))
    # At least the whole pixels the box touches (matters for scale ~1 and fractional boxes only).
    side = max(side, math.ceil(x2) - math.floor(x1), math.ceil(y2) - math.floor(y1), 1)
    side = min(side, width, height)
    left = _square_start((x1 + x2) / 2.0, side, x1, x2, width)
    top = _square_start((y1 + y2) / 2.0, side, y1, y2, height)
    return left, top, left + side, top + side


def _square_start(centre: float, side: int, low: float, high: float, limit: int) -> int:
    """First pixel of a ``side``-long span: centred, moved to cover [low, high] where it can, then into [0, limit)."""
    start = int(round(centre - side / 2.0))
    first, last = math.ceil(high) - side, math.floor(low)  # starts whose span covers the whole face
    if first <= last:
        start = min(max(start, first), last)
    return min(max(start, 0), limit - side)


class FaceCropper:
    """Batched face detection + square face crops.

    Args:
        crop_size: side of the returned crops (the model's input size); None keeps the crop's own size.
        scale: box enlargement around its centre (1.3 in DLDFD / FaceForensics++ practice).
        select: per frame, ``"largest"`` face (default), most ``"confident"`` face, or ``"all"``
            (largest first).
        min_score: faces the detector scores below this are ignored.
        detect_max_size: frames whose longer side exceeds this are downscaled for detection (boxes
            and landmarks are mapped back, crops come from the full-resolution frame). None = never.
        batch_size: frames per detector call (frames of one size are detected together); default
            the detector's ``batch_size`` (MTCNN: 8 on CPU, 32 on GPU), else 8.
        detector: a :class:`~dldfd_hf.media.face_detector.FaceDetector`; default MTCNN
            (:class:`~dldfd_hf.media.mtcnn.MTCNNDetector`) made from the three options below.
        device: where MTCNN runs (``"cpu"``, ``"cuda"``, a ``torch.device``); default CPU.
        min_face_size: smallest face MTCNN looks for, in detection pixels; default 20.
        thresholds: MTCNN's three stage thresholds; default (0.6, 0.7, 0.7).
    """

    def __init__(
        self,
        crop_size: Optional[int] = 224,
        scale: float = 1.3,
        select: SelectMode = "largest",
        min_score: float = 0.9,
        device: Optional[Union[str, torch.device]] = None,
        detect_max_size: Optional[int] = 640,
        min_face_size: Optional[int] = None,
        batch_size: Optional[int] = None,
        thresholds: Optional[Tuple[float, float, float]] = None,
        detector: Optional[FaceDetector] = None,
    ) -> None:
        if select not in _SELECT_MODES:
            raise ValueError(f"FaceCropper: select must be one of {_SELECT_MODES}, got {select!r}")
        if crop_size is not None and crop_size < 1:
            raise ValueError(f"FaceCropper: crop_size must be a positive integer or None, got {crop_size!r}")
        if scale < 1.0:
            raise ValueError(f"FaceCropper: scale must be >= 1, got {scale!r}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"FaceCropper: min_score must be in [0, 1], got {min_score!r}")
        if detector is None:
            detector = _default_detector(device, min_face_size, thresholds, detect_max_size)
        elif (device, min_face_size, thresholds) != (None, None, None):
            raise ValueError("FaceCropper: device, min_face_size and thresholds configure the default MTCNN; "
                             "set them on the detector passed instead")
        if batch_size is None:
            batch_size = getattr(detector, "batch_size", 8)
        batch_size = check_positive_int("FaceCropper", "batch_size", batch_size)

        self.crop_size = crop_size
        self.scale = scale
        self.select = select
        self.min_score = min_score
        self.detect_max_size = detect_max_size
        self.batch_size = batch_size
        self.detector = detector

    def __call__(
        self, frames: Sequence[ImageLike], *, detect_max_size: Optional[int] = -1
    ) -> List[List[Face]]:
        """Faces per frame (``[]`` for a frame without a face), each with its crop.

        ``detect_max_size`` overrides the instance setting for this call (e.g. larger for photos).
        """
        images = [to_rgb_array(frame) for frame in frames]
        detections = self.detect(images, detect_max_size=detect_max_size)
        results = []
        for image, faces in zip(images, detections):
            for face in faces:
                face.crop = self._crop(image, face.crop_box)
            results.append(faces)
        return results

    def detect(
        self, frames: Sequence[ImageLike], *, detect_max_size: Optional[int] = -1
    ) -> List[List[Face]]:
        """Like ``__call__`` without the crops (``Face.crop`` is None): boxes, scores, landmarks."""
        max_size = self.detect_max_size if detect_max_size == -1 else detect_max_size
        images = [to_rgb_array(frame) for frame in frames]
        # Frames are resized for detection and grouped by that size: detectors batch one size at a time.
        scales: List[Tuple[float, float]] = []
        groups: Dict[Tuple[int, int], List[int]] = {}
        small_images: List[np.ndarray] = []
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            factor = 1.0 if max_size is None else min(1.0, max_size / max(height, width))
            small = image if factor == 1.0 else _resize(image, factor)
            scales.append((small.shape[1] / width, small.shape[0] / height))
            small_images.append(small)
            groups.setdefault(small.shape[:2], []).append(i)
        found: List[FaceDetections] = [FaceDetections.none()] * len(images)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                for i, detections in zip(chunk, self.detector([small_images[i] for i in chunk])):
                    found[i] = detections
        return [
            self._select(self._faces(
                boxes / np.array([sx, sy, sx, sy]), scores, points / np.array([sx, sy]), image.shape[1], image.shape[0]
            ))
            for (boxes, scores, points), (sx, sy), image in zip(found, scales, images)
        ]

    # --- internals ----------------------------------------------------------------------------
    def _faces(
        self, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, width: int, height: int
    ) -> List[Face]:
        faces = []
        for box, score, landmarks in zip(boxes, scores, points):
            if not score >= self.min_score:
                continue
            if box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
                continue  # the box lies outside the frame
            crop_box = square_crop_box(box, width, height, self.scale)
            faces.append(Face(
                box=tuple(float(v) for v in box),
                crop_box=crop_box,
                score=float(score),
                landmarks=landmarks.astype(np.float32),
            ))
        return faces

    def _select(self, faces: List[Face]) -> List[Face]:
        if not faces:
            return faces
        if self.select == "confident":
            return [max(faces, key=lambda face: face.score)]
        ordered = sorted(faces, key=lambda face: face.area, reverse=True)
        return ordered if self.select == "all" else ordered[:1]

    def _crop(self, image: np.ndarray, crop_box: Tuple[int, int, int, int]) -> Image.Image:
        left, top, right, bottom = crop_box
        crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
        if self.crop_size is not None and crop.size != (self.crop_size, self.crop_size):
            crop = crop.resize((self.crop_size, self.crop_size), Image.Resampling.BILINEAR)
        return crop

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(crop_size={self.crop_size}, scale={self.scale}, select={self.select!r}, "
            f"min_score={self.min_score}, detect_max_size={self.detect_max_size}, detector={self.detector!r})"
        )


def _default_detector(
    device: Optional[Union[str, torch.device]],
    min_face_size: Optional[int],
    thresholds: Optional[Tuple[float, float, float]],
    detect_max_size: Optional[int],
) -> MTCNNDetector:
    options = dict(min_face_size=min_face_size, thresholds=thresholds, device=device)
    detector = MTCNNDetector(**{name: value for name, value in options.items() if value is not None})
    if detect_max_size is not None and detect_max_size < detector.min_face_size:
        raise ValueError(f"FaceCropper: detect_max_size must be >= min_face_size ({detector.min_face_size})")
    return detector


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # PIL's bilinear filter widens its support when shrinking, i.e. it antialiases.
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
