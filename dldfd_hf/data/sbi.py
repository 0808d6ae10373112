"""Self-blended images (SBI; Shiohara & Yamasaki, CVPR 2022): pseudo-fakes made from real faces alone.

A real face is blended back onto itself: a copy of the image, jittered in colour, sharpness and
geometry (:func:`~dldfd_hf.data.blending.jittered_copy`), is pasted through a randomly deformed,
blurred face mask with a random blend ratio. The result has no second identity, only the traces
every blending manipulation leaves (a boundary, colour and sharpness statistics that differ inside
it, a slight misalignment), so a detector trained to tell such images from real ones learns those
traces rather than the fingerprint of one manipulation method, and generalises to unseen ones.

Differences from the paper, and why:

- MTCNN gives five landmarks, not dlib's 81: the mask's hull is that of a fitted mean face (or, now
  and then, the landmark ellipse of :func:`~dldfd_hf.data.blending.face_mask`), deformed by random
  low-frequency radial waves where SBI uses an elastic transform (the same kind of smooth,
  irregular outline, at a fraction of the cost).
- As in SBI, the colour / sharpness jitter goes to the pasted copy or, half the time
  (``SBIParams.target``), to the image it is pasted onto; the mask follows the convex hull of a
  region of a mean 68-point face fitted to the five landmarks (:mod:`~dldfd_hf.data.face_shape`).

>>> params = SBIParams.random(np.random.default_rng(0))
>>> fake = self_blended_image(face, landmarks, params)   # Manipulation(image, mask)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from ..media.faces import FaceCropper
from .blending import (
    FaceEllipse,
    Jitter,
    Manipulation,
    apply_transform,
    fill_polygon,
    jitter_matrix,
    jittered_copy,
)
from .face_shape import HULL_REGIONS, FaceHull

__all__ = [
    "BLEND_RATIOS",
    "MaskShape",
    "SBIParams",
    "SelfBlender",
    "sbi_jitter",
    "sbi_mask",
    "self_blended_image",
    "template_landmarks",
]

logger = logging.getLogger(__name__)

# SBI's blend ratios: a full paste half the time, partial (ghost-like) blends otherwise.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
# Radial harmonics that deform the mask outline: low orders only, so the outline stays a smooth blob.
HARMONICS = (2, 3, 4, 5)
OUTLINE_POINTS = 48


@dataclass(frozen=True)
class MaskShape:
    """A randomly deformed, blurred face mask (the blending mask of one pseudo-fake).

    ``region``: a hull of the mean 68-point face fitted to the landmarks (a :data:`~dldfd_hf.data.face_shape.HULL_REGIONS`
    key: the whole face, its lower half, the inner face, eyes, nose or mouth, as SBI varies its hulls and
    as composites paste single features), or the landmark ellipse (``"face"``, ``"mouth"``);
    ``expand``: ``(across, down)`` scaling of the region; ``waves``: ``(amplitude, phase)`` per
    :data:`HARMONICS` order of the outline's radial deformation; ``feather``: the ``(x, y)``
    Gaussian radii of the soft edge, as fractions of the ellipse's smaller semi-axis (so a shape
    means the same on a 64 px and a 1080p face); ``ratio``: the blend ratio (the mask's maximum).
    """

    region: str = "face"
    expand: tuple[float, float] = (1.0, 1.0)
    waves: tuple[tuple[float, float], ...] = ()
    feather: tuple[float, float] = (0.05, 0.05)
    ratio: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> "MaskShape":
        u = rng.random(6 + 2 * len(HARMONICS)).tolist()  # one draw: this runs per training sample
        waves = tuple((_lerp(u[6 + 2 * i], 0.0, 0.12 / k), _lerp(u[7 + 2 * i], 0.0, 2 * math.pi)) for i, k in enumerate(HARMONICS))
        region = _pick(u[0], REGION_WEIGHTS)
        # Single features are pasted with some of their surroundings, as composites are.
        low, high = (0.75, 1.1) if region in ("hull", "hull_lower", "hull_inner", "face", "mouth") else (1.0, 1.5)
        return cls(
            region=region,
            # SBI shrinks its hull by a blur-and-threshold; a random expansion covers that and more.
            expand=(_lerp(u[1], low, high), _lerp(u[2], low, high)),
            waves=waves,
            # SBI's blur kernels (5-25 px on a ~250 px face crop) are 1.5-6% of the face's half-width;
            # independent x and y radii stand for its random resizing of the mask.
            feather=(_lerp(u[3], 0.015, 0.08), _lerp(u[4], 0.015, 0.08)),
            ratio=BLEND_RATIOS[min(int(u[5] * len(BLEND_RATIOS)), len(BLEND_RATIOS) - 1)],
        )


# How often each mask region is drawn: mostly the whole face's hull (SBI's own), partial hulls and
# single features the rest of the time, the landmark ellipse now and then.
REGION_WEIGHTS = (
    ("hull", 0.45), ("hull_lower", 0.1), ("hull_inner", 0.1), ("hull_eyes", 0.08), ("hull_nose", 0.05),
    ("hull_mouth", 0.1), ("face", 0.07), ("mouth", 0.05),
)


def _pick(u: float, weighted: tuple) -> str:
    total = 0.0
    for name, weight in weighted:
        total += weight
        if u < total:
            return name
    return weighted[-1][0]


def _lerp(u: float, low: float, high: float) -> float:
    return low + (high - low) * u


def sbi_mask(landmarks: np.ndarray, size: tuple[int, int], shape: MaskShape, matrix: Optional[np.ndarray] = None) -> np.ndarray:
    """The blending mask (HxW float32 in ``[0, shape.ratio]``) of ``shape`` on a ``(width, height)`` image.

    ``matrix`` (2x3) moves the shape along with the pasted copy, as SBI moves its mask with the source.
    """
    full = Image.new("L", size, 0)
    drawn = _draw_mask(landmarks, size, shape, matrix)
    if drawn is not None:
        full.paste(drawn[0], drawn[1][:2])
    return np.asarray(full, dtype=np.float32) / np.float32(255.0)


def _draw_mask(
    landmarks: np.ndarray, size: tuple[int, int], shape: MaskShape, matrix: Optional[np.ndarray]
) -> Optional[tuple[Image.Image, tuple[int, int, int, int]]]:
    """The mask as an "L" image of the box that holds all of it, and that box; None when empty.

    This runs per training sample, so it works on the face's box only, at half resolution (the
    mask is smooth; one bilinear upsampling brings it back), in PIL's C loops.
    """
    region = FaceHull if shape.region in HULL_REGIONS else FaceEllipse
    ellipse = region.of(landmarks, shape.region, shape.expand)
    if ellipse is None:
        return None
    radial = 1.0 + _wave_table(shape.waves) if shape.waves else None
    outline = ellipse.outline(radial, OUTLINE_POINTS)
    if matrix is not None:
        outline = apply_transform(matrix, outline)
    unit = min(ellipse.a, ellipse.b) / max(shape.expand)  # the undeformed ellipse's smaller semi-axis
    radii = (shape.feather[0] * unit, shape.feather[1] * unit)
    # The blur's tail: PIL's Gaussian (three box passes) reaches 3 radii.
    reach = 3 * np.asarray(radii) + 2
    low = np.floor(np.maximum(outline.min(0) - reach, 0)).astype(int)
    high = np.ceil(np.minimum(outline.max(0) + reach, size)).astype(int)
    if (high - low < 2).any():
        return None
    box = (int(low[0]), int(low[1]), int(high[0]), int(high[1]))
    full_size = (box[2] - box[0], box[3] - box[1])
    small_size = ((full_size[0] + 1) // 2, (full_size[1] + 1) // 2)
    canvas = fill_polygon((outline - low) * 0.5, small_size)
    if max(radii) > 1.0:
        canvas = canvas.filter(ImageFilter.GaussianBlur((radii[0] / 2, radii[1] / 2)))
    if shape.ratio != 1.0:
        canvas = ImageChops.multiply(canvas, Image.new("L", canvas.size, round(255 * shape.ratio)))
    return canvas.resize(full_size, Image.Resampling.BILINEAR), box


_ANGLES = np.linspace(0, 2 * np.pi, OUTLINE_POINTS, endpoint=False)
_SIN = np.stack([np.sin(k * _ANGLES) for k in HARMONICS])
_COS = np.stack([np.cos(k * _ANGLES) for k in HARMONICS])


def _wave_table(waves: tuple[tuple[float, float], ...]) -> np.ndarray:
    # sum_k a_k sin(k t + p_k) = sum_k a_k (sin(k t) cos p_k + cos(k t) sin p_k), from fixed tables.
    amplitude, phase = np.asarray(waves, dtype=np.float64).T
    n = len(amplitude)
    return (amplitude * np.cos(phase)) @ _SIN[:n] + (amplitude * np.sin(phase)) @ _COS[:n]


def sbi_jitter(rng: np.random.Generator) -> Jitter:
    """A jitter in SBI's ranges (its ``get_source_transforms``): an RGB shift 30% of the time,
    small brightness/contrast and saturation changes, and always one frequency change (a 2x or 4x
    down-and-up sampling, or a sharpening); a small rescale and shift (no rotation, as SBI).

    Unlike :meth:`Jitter.random` (which makes every synth-ffpp fake clearly visible) weak jitters are
    drawn too: a blend must be detectable from its boundary and its sharpness, not from a colour cast.
    """
    u = rng.random(15).tolist()  # one draw: this runs per training sample
    brightness = _lerp(u[0], -0.1, 0.1) * 255
    contrast = 1 + _lerp(u[1], -0.1, 0.1)
    shift = u[14] < 0.3
    return Jitter(
        gains=tuple(contrast * _lerp(v, 0.97, 1.03) for v in u[3:6]),
        offsets=tuple(brightness + (_lerp(v, -20, 20) if shift else 0.0) for v in u[6:9]),
        scale=_lerp(u[9], 0.95, 1 / 0.95),
        # SBI translates by up to 3% (x) / 1.5% (y) of the crop, ~0.1 / 0.05 eye distances on a 1.3x crop.
        shift=(_lerp(u[10], -0.1, 0.1), _lerp(u[11], -0.05, 0.05)),
        saturation=_lerp(u[12], 0.85, 1.15),
        downscale=(0.5 if u[13] < 0.25 else 0.25) if u[2] < 0.5 else 1.0,
        sharpen=_lerp(u[13], 0.2, 0.6) if u[2] >= 0.5 else 0.0,
    )


@dataclass(frozen=True)
class SBIParams:
    """Everything random about one pseudo-fake: the jitter, the mask shape, and whether the jitter's
    colour and sharpness change goes to the pasted face (``target=False``) or to the image it is
    pasted onto (``target=True``, SBI's other half: the face stays as it was, its surroundings change)."""

    jitter: Jitter = field(default_factory=Jitter)
    mask: MaskShape = field(default_factory=MaskShape)
    target: bool = False

    @classmethod
    def random(cls, rng: np.random.Generator) -> "SBIParams":
        return cls(sbi_jitter(rng), MaskShape.random(rng), bool(rng.random() < 0.5))


def self_blended_image(
    image: Union[np.ndarray, Image.Image],
    landmarks: np.ndarray,
    params: Optional[SBIParams] = None,
    rng: Optional[np.random.Generator] = None,
) -> Manipulation:
    """A self-blended pseudo-fake of ``image`` (HxWx3 uint8 or PIL RGB; ``landmarks`` (5, 2) in its pixels).

    Pass ``params`` for a fixed blend, or an ``rng`` to draw one. The mask is the shape drawn on the
    face intersected with the same shape moved with the copy (as in :func:`~dldfd_hf.data.blending.self_blend`),
    so nothing from outside the copy's face comes along; ``Manipulation.mask`` is the mask used
    (0 = the source pixel is kept exactly, unless ``params.target`` jittered the surroundings).
    """
    if params is None:
        params = SBIParams.random(rng if rng is not None else np.random.default_rng())
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2) or not np.isfinite(landmarks).all():
        raise ValueError(f"expected (5, 2) finite landmarks (eyes, nose, mouth corners), got {landmarks.tolist()}")
    blended, drawn = _self_blend(Image.fromarray(image), landmarks, params)
    mask = Image.new("L", blended.size, 0)
    if drawn is not None:
        mask.paste(drawn[0], drawn[1][:2])
    return Manipulation(np.asarray(blended), np.asarray(mask, dtype=np.float32) / np.float32(255.0))


def _self_blend(
    image: Image.Image, landmarks: np.ndarray, params: SBIParams, in_place: bool = False
) -> tuple[Image.Image, Optional[tuple[Image.Image, tuple[int, int, int, int]]]]:
    # The pseudo-fake, and its mask as drawn by _draw_mask (None: nothing was pasted). Only the
    # mask's box of the copy is computed, and pasted through the mask in one step.
    matrix = jitter_matrix(landmarks, params.jitter)
    drawn = _draw_mask(landmarks, image.size, params.mask, matrix)
    if drawn is not None:
        patch_mask, box = drawn
        # Only where the moved copy has pixels: beyond the image's moved edges there is nothing to
        # paste (the mask is cut there), and the copy stays one fast axis-aligned resampling.
        (a, b, tx), (c, d, ty) = matrix.tolist()
        inner = box
        if b == 0 and c == 0:  # SBI's jitter has no rotation: the moved image's edges stay axis-aligned
            x0, y0, x1, y1 = tx, ty, a * image.size[0] + tx, d * image.size[1] + ty
            inner = (max(box[0], math.ceil(min(x0, x1))), max(box[1], math.ceil(min(y0, y1))),
                     min(box[2], math.floor(max(x0, x1))), min(box[3], math.floor(max(y0, y1))))
        if inner[0] >= inner[2] or inner[1] >= inner[3]:
            return (image if in_place else image.copy()), None
        if inner != box:
            patch_mask = patch_mask.crop((inner[0] - box[0], inner[1] - box[1], inner[2] - box[0], inner[3] - box[1]))
            drawn = patch_mask, inner
        if params.target:
            # The face keeps its pixels (moved only); the image around it gets the colour/sharpness change.
            geometry = Jitter(scale=params.jitter.scale, rotation=params.jitter.rotation, shift=params.jitter.shift)
            source, _ = jittered_copy(image, landmarks, geometry, inner, matrix)
            appearance = dataclasses.replace(params.jitter, scale=1.0, rotation=0.0, shift=(0.0, 0.0))
            out, _ = jittered_copy(image, landmarks, appearance)
        else:
            source, _ = jittered_copy(image, landmarks, params.jitter, inner, matrix)
            out = image if in_place else image.copy()
        out.paste(source, inner[:2], patch_mask)
        return out, drawn
    return (image if in_place else image.copy()), None


# Mean MTCNN landmarks of a face crop (1.3x the MTCNN box, square), as fractions of the crop side;
# measured on 89 real photos of the project's test data (spread ~0.07 of the side: pose). Used
# when a crop's own landmarks are unknown and MTCNN finds no face in it.
_TEMPLATE = np.array([[0.313, 0.432], [0.666, 0.43], [0.486, 0.613], [0.335, 0.759], [0.643, 0.758]])


def template_landmarks(size: tuple[int, int]) -> np.ndarray:
    """Typical landmarks of a ``(width, height)`` face crop made as :class:`~dldfd_hf.media.faces.FaceCropper` makes them."""
    return _TEMPLATE * np.asarray(size, dtype=np.float64)


class SelfBlender:
    """Turns real face crops into pseudo-fakes with probability ``probability``, reproducibly.

    ``blender(image, landmarks, seed)`` returns the pseudo-fake (PIL RGB) or None (the sample stays
    real); the choice and the blend are a pure function of ``seed``. Crops without landmarks
    (``None``, or a corpus without the column) are run through MTCNN once per process and cached by
    ``key``; a crop where MTCNN finds no face uses :func:`template_landmarks`.
    """

    def __init__(self, probability: float = 0.5, detect_missing: bool = True) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self.probability = float(probability)
        self.detect_missing = detect_missing
        self._detector = None
        self._detected: dict = {}

    def __call__(
        self,
        image: Image.Image,
        landmarks: Optional[Sequence[Sequence[float]]],
        seed: int,
        key: Optional[object] = None,
        in_place: bool = False,
    ) -> Optional[Image.Image]:
        """The pseudo-fake of ``image`` with probability :attr:`probability`, else None (stays real).

        ``in_place``: paste into ``image`` itself (saves a copy when the caller owns a fresh decode).
        """
        rng = self._rng(seed)
        if rng.random() >= self.probability:
            return None
        return self._blend(image, landmarks, rng, key, in_place)

    def blend(
        self,
        image: Image.Image,
        landmarks: Optional[Sequence[Sequence[float]]],
        seed: int,
        key: Optional[object] = None,
        in_place: bool = False,
    ) -> Image.Image:
        """Always the pseudo-fake (the one ``__call__`` makes for ``seed`` when it makes one)."""
        rng = self._rng(seed)
        rng.random()  # the coin of __call__: the same seed gives the same blend
        return self._blend(image, landmarks, rng, key, in_place)

    @staticmethod
    def _rng(seed: int) -> np.random.Generator:
        return np.random.default_rng([int(seed), 0x5B1])  # a stream of its own, apart from the flips

    def _blend(self, image: Image.Image, landmarks, rng: np.random.Generator, key: Optional[object], in_place: bool) -> Image.Image:
        params = SBIParams.random(rng)
        if image.mode != "RGB":
            image, in_place = image.convert("RGB"), True  # already a copy
        marks = self.landmarks(image, landmarks, key)
        return _self_blend(image, marks, params, in_place)[0]

    def landmarks(self, image: Image.Image, landmarks: Optional[Sequence[Sequence[float]]], key: Optional[object] = None) -> np.ndarray:
        """The crop's landmarks: given, else detected (cached by ``key``), else the template."""
        if landmarks is not None:
            marks = np.asarray(landmarks, dtype=np.float64)
            if marks.shape == (5, 2) and np.isfinite(marks).all():
                return marks
        if key is not None and key in self._detected:
            return self._detected[key]
        marks = self._detect(image) if self.detect_missing else None
        if marks is None:
            marks = template_landmarks(image.size)
        if key is not None:
            self._detected[key] = marks
        return marks

    def _detect(self, image: Image.Image) -> Optional[np.ndarray]:
        if self._detector is None:
            # Crops are small and already centred on the face: no downscaling, the default threshold.
            self._detector = FaceCropper(crop_size=None, detect_max_size=None)
        faces = self._detector.detect([image])[0]
        return np.asarray(faces[0].landmarks, dtype=np.float64) if faces else None

    def __getstate__(self) -> dict:
        # DataLoader workers get a copy without the detector (rebuilt lazily in each).
        state = self.__dict__.copy()
        state["_detector"] = None
        return state
