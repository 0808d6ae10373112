"""Landmark-driven face blending: the primitives of every pseudo-manipulation in dldfd-hf.

Driven by MTCNN's five landmarks (eyes, nose, mouth corners):

- :func:`face_swap`: the source person's face is aligned onto the target's with the least-squares
  5-point similarity transform, colour-matched to the target's skin inside the face region, and
  blended in through a feathered elliptical mask. Two different people give an identity swap, the
  artefact FF++'s Deepfakes/FaceSwap leave.
- :func:`self_blend`: a face blended back onto itself after a colour and geometry jitter
  (:class:`Jitter`, :func:`jittered_copy`), which leaves the blending boundary and the statistics
  mismatch of a manipulation without a second identity. It works on whole frames and on corpus
  crops (whose ``landmarks`` are in crop pixels).

:mod:`dldfd_hf.data.synth` fills FF++-layout trees with them; :mod:`dldfd_hf.data.sbi` builds
self-blended images (SBI) on the fly from the same pieces.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "FaceEllipse",
    "Jitter",
    "Manipulation",
    "apply_transform",
    "blend",
    "colour_matrix",
    "face_mask",
    "face_swap",
    "fill_polygon",
    "invert_transform",
    "jitter_matrix",
    "jittered_copy",
    "match_colour",
    "self_blend",
    "similarity_transform",
    "warp",
]


# --------------------------------------------------------------------------------------------
# Geometry, masks, colour.


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) mapping ``src`` points onto ``dst``
    in the least-squares sense (Umeyama, 1991; reflections excluded)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"expected two (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points are all the same: no transform is defined")
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = (sigma * sign).sum() / var_s
    translation = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (HxWx3 uint8 or HxW float32) moved by the 2x3 ``matrix`` into a ``(width, height)`` canvas."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]  # PIL maps output -> input
    pil = Image.fromarray(image)
    out = pil.transform(size, Image.Transform.AFFINE, tuple(inverse.ravel()), resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


@dataclass(frozen=True)
class FaceEllipse:
    """The elliptical face region of five landmarks: ``centre``, unit axes ``across`` (the eye line)
    and ``down`` (eyes to mouth), semi-axes ``a`` (across) and ``b`` (down), in image pixels."""

    centre: np.ndarray
    across: np.ndarray
    down: np.ndarray
    a: float
    b: float

    @classmethod
    def of(cls, landmarks: np.ndarray, region: str = "face", expand: Union[float, tuple[float, float]] = 1.0) -> Optional["FaceEllipse"]:
        """``region="face"`` spans brows to chin and cheek to cheek; ``"mouth"`` the mouth and chin
        area. ``expand`` scales both semi-axes, or ``(across, down)`` each. None for a degenerate face."""
        if region not in ("face", "mouth"):
            raise ValueError(f"region must be 'face' or 'mouth', got {region!r}")
        left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(landmarks, dtype=np.float64)
        eye_centre, mouth_centre = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
        eye_distance = np.linalg.norm(right_eye - left_eye)
        eye_mouth = mouth_centre - eye_centre
        em = np.linalg.norm(eye_mouth)
        if eye_distance < 1 or em < 1:
            return None
        down = eye_mouth / em
        across = np.array([down[1], -down[0]])
        if region == "face":
            centre = eye_centre + down * 0.55 * em
            axes = (0.95 * eye_distance, 1.25 * em)
        else:
            centre = mouth_centre + down * 0.1 * em
            axes = (0.8 * eye_distance, 0.7 * em)
        expand_a, expand_b = (expand, expand) if np.isscalar(expand) else expand
        return cls(centre, across, down, float(axes[0] * expand_a), float(axes[1] * expand_b))

    def outline(self, radial: Optional[np.ndarray] = None, points: int = 64) -> np.ndarray:
        """``(points, 2)`` outline; ``radial`` (one factor per point, going round from ``across``)
        scales each point's distance from the centre, deforming the ellipse into a star-shaped blob."""
        cos, sin = _unit_circle(points)
        scale = 1.0 if radial is None else np.asarray(radial, dtype=np.float64)
        return self.centre + np.outer(scale * cos * self.a, self.across) + np.outer(scale * sin * self.b, self.down)


@functools.lru_cache(maxsize=8)
def _unit_circle(points: int) -> tuple[np.ndarray, np.ndarray]:
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.cos(angles), np.sin(angles)


def fill_polygon(polygon: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A ``(width, height)`` "L" image: 255 inside ``polygon``, 0 outside."""
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).polygon(np.asarray(polygon, dtype=np.float64).ravel().tolist(), fill=255)
    return canvas


def face_mask(
    landmarks: np.ndarray,
    size: tuple[int, int],
    region: str = "face",
    expand: float = 1.0,
    feather: float = 0.15,
) -> np.ndarray:
    """A feathered elliptical mask (HxW float32 in [0, 1]) of the face or its lower part.

    The ellipse (:class:`FaceEllipse`) follows the face's roll: its axes are the eye line and the
    eyes-to-mouth direction. ``feather`` is the Gaussian blur radius as a fraction of the ellipse's
    smaller semi-axis.
    """
    ellipse = FaceEllipse.of(landmarks, region, expand)
    if ellipse is None:
        return np.zeros((size[1], size[0]), dtype=np.float32)
    canvas = fill_polygon(ellipse.outline(), size)
    radius = feather * min(ellipse.a, ellipse.b)
    if radius > 0.5:
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def match_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``source`` with each channel's mean and spread inside ``mask`` moved to the target's (float32)."""
    weights = (mask > 0.5).astype(np.float64)
    total = weights.sum()
    source = source.astype(np.float32)
    if total < 16:
        return source
    out = np.empty_like(source)
    for c in range(source.shape[2]):
        s, t = source[..., c], target[..., c].astype(np.float64)
        mu_s, mu_t = (s * weights).sum() / total, (t * weights).sum() / total
        sd_s = math.sqrt(((s - mu_s) ** 2 * weights).sum() / total)
        sd_t = math.sqrt(((t - mu_t) ** 2 * weights).sum() / total)
        gain = float(np.clip(sd_t / sd_s, 0.5, 2.0)) if sd_s > 1e-3 else 1.0
        out[..., c] = (s - mu_s) * gain + mu_t
    return out


def blend(background: np.ndarray, foreground: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask * foreground + (1 - mask) * background`` as uint8."""
    alpha = mask[..., None].astype(np.float32)
    out = alpha * foreground.astype(np.float32) + (1.0 - alpha) * background.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class Manipulation:
    """A manipulated image and the blending mask that made it (1 = fully replaced)."""

    image: np.ndarray
    mask: np.ndarray


def face_swap(
    target: np.ndarray,
    target_landmarks: np.ndarray,
    source: np.ndarray,
    source_landmarks: np.ndarray,
    region: str = "face",
    feather: float = 0.25,
    colour_match: bool = True,
) -> Manipulation:
    """Put the face of ``source`` onto ``target`` (both HxWx3 uint8, landmarks (5, 2) in their pixels).

    The source is aligned by the 5-point similarity transform; the mask is the target's face region
    intersected with the warped source face region, so no source background comes along.
    """
    height, width = target.shape[:2]
    matrix = similarity_transform(source_landmarks, target_landmarks)
    warped = warp(source, matrix, (width, height))
    source_region = face_mask(source_landmarks, (source.shape[1], source.shape[0]), region, feather=feather)
    mask = np.minimum(face_mask(target_landmarks, (width, height), region, feather=feather), warp(source_region, matrix, (width, height)))
    foreground = match_colour(warped, target, mask) if colour_match else warped
    return Manipulation(blend(target, foreground, mask), mask)


@dataclass(frozen=True)
class Jitter:
    """The perturbation of a self-blend: colour gains/offsets, scale, rotation (degrees), shift
    (fraction of the eye distance), Gaussian blur radius (fraction of the eye distance), saturation
    factor (1 = unchanged), ``downscale`` (a low-pass: sampled down to this fraction of the size and
    back up, 1 = none) and ``sharpen`` (unsharp amount against a half-resolution copy, 0 = none)."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    rotation: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    blur: float = 0.0
    saturation: float = 1.0
    downscale: float = 1.0
    sharpen: float = 0.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Jitter":
        """A jitter strong enough to matter: at least an 8-level colour shift and a 2% rescale."""
        offsets = rng.uniform(8, 18, 3) * rng.choice([-1, 1], 3)
        return cls(
            gains=tuple(rng.uniform(0.9, 1.1, 3)),
            offsets=tuple(offsets),
            scale=float(1 + rng.uniform(0.02, 0.05) * rng.choice([-1, 1])),
            rotation=float(rng.uniform(-3, 3)),
            shift=tuple(rng.uniform(-0.04, 0.04, 2)),
            blur=float(rng.uniform(0.0, 0.02)),
        )


# ITU-R BT.601 luma weights: the grey a saturation change pivots around.
_LUMA = (0.299, 0.587, 0.114)


def colour_matrix(gains: Sequence[float], offsets: Sequence[float], saturation: float) -> tuple:
    """PIL's 3x4 ``convert("RGB", matrix)``: per-channel gains and offsets, then saturation about the grey.

    ``S = s I + (1 - s) 1 luma^T``, so the matrix is ``[S diag(gains) | S offsets]``; plain floats,
    as this runs per training sample.
    """
    s = saturation
    matrix: list = []
    for i in range(3):
        row = [s * (i == j) + (1 - s) * _LUMA[j] for j in range(3)]
        matrix += [row[j] * gains[j] for j in range(3)] + [sum(row[j] * offsets[j] for j in range(3))]
    return tuple(matrix)


def jitter_matrix(landmarks: np.ndarray, jitter: Jitter) -> np.ndarray:
    """The 2x3 similarity of ``jitter`` (scale and rotation about the landmarks' centre, then shift)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    eye_distance = math.hypot(rx - lx, ry - ly)
    cx, cy = landmarks.mean(0)
    angle = math.radians(jitter.rotation)
    c, s = jitter.scale * math.cos(angle), jitter.scale * math.sin(angle)
    # Plain floats: this runs per training sample, where numpy's per-call overhead would dominate.
    tx = cx - (c * cx - s * cy) + jitter.shift[0] * eye_distance
    ty = cy - (s * cx + c * cy) + jitter.shift[1] * eye_distance
    return np.array([[c, -s, tx], [s, c, ty]])


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine transform."""
    (a, b, tx), (c, d, ty) = np.asarray(matrix, dtype=np.float64)
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)]])


def jittered_copy(
    image: Union[np.ndarray, Image.Image],
    landmarks: np.ndarray,
    jitter: Jitter,
    box: Optional[tuple[int, int, int, int]] = None,
    matrix: Optional[np.ndarray] = None,
) -> tuple[Image.Image, np.ndarray]:
    """``image`` (HxWx3 uint8 or PIL RGB) moved, recoloured and blurred/sharpened by ``jitter`` about its face.

    Returns the copy (PIL RGB) and the 2x3 matrix that moved it (the copy's landmarks are
    ``apply_transform(matrix, landmarks)``). ``box`` ``(left, top, right, bottom)``: make only that
    part of the copy; ``matrix``: ``jitter_matrix(landmarks, jitter)`` when the caller has it. Every step is one C loop of PIL (resamplings, a colour matrix, filters), as
    this runs once per training sample when pseudo-fakes are made on the fly. The steps are linear
    (up to rounding), so their order is chosen for speed: a ``downscale`` jitter resamples straight
    from the source to the low resolution and recolours there.
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    left, top, right, bottom = box if box is not None else (0, 0, *pil.size)
    size = (right - left, bottom - top)
    work_size = size
    if jitter.downscale < 1:
        work_size = (max(1, round(size[0] * jitter.downscale)), max(1, round(size[1] * jitter.downscale)))
    matrix = jitter_matrix(landmarks, jitter) if matrix is None else matrix
    inverse = invert_transform(matrix)  # PIL maps output -> input
    # The box's corners in the input (a rotation-free similarity keeps boxes axis-aligned).
    (x0, y0), (x1, y1) = apply_transform(inverse, [[left, top], [right, bottom]])
    # (rounding: a box cut to the moved image's edges maps back onto them up to ~1e-13)
    x0, y0, x1, y1 = (v if abs(v - round(v)) > 1e-9 else float(round(v)) for v in (x0, y0, x1, y1))
    if jitter.rotation == 0 and 0 <= x0 < x1 <= pil.size[0] and 0 <= y0 < y1 <= pil.size[1]:
        out = pil.resize(work_size, Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))  # separable: ~3x faster
    else:
        inverse[:, 2] += inverse[:, :2] @ [left, top]
        out = pil.transform(size, Image.Transform.AFFINE, tuple(inverse.ravel()), resample=Image.Resampling.BILINEAR)
        if work_size != size:
            out = out.resize(work_size, Image.Resampling.BILINEAR)
    if jitter.gains != (1.0, 1.0, 1.0) or jitter.offsets != (0.0, 0.0, 0.0) or jitter.saturation != 1.0:
        out = out.convert("RGB", colour_matrix(jitter.gains, jitter.offsets, jitter.saturation))
    if work_size != size:
        out = out.resize(size, Image.Resampling.BILINEAR)
    if jitter.blur > 0:
        eye_distance = float(np.linalg.norm(np.subtract(landmarks[1], landmarks[0])))
        out = out.filter(ImageFilter.GaussianBlur(jitter.blur * eye_distance))
    if jitter.sharpen > 0:
        # Unsharp masking against a half-resolution copy (alpha > 1 extrapolates away from it).
        half = out.reduce(2) if min(out.size) >= 2 else out
        out = Image.blend(half.resize(out.size, Image.Resampling.BILINEAR), out, 1 + jitter.sharpen)
    return out, matrix


def self_blend(
    image: np.ndarray,
    landmarks: np.ndarray,
    jitter: Optional[Jitter] = None,
    rng: Optional[np.random.Generator] = None,
    region: str = "face",
    feather: float = 0.25,
) -> Manipulation:
    """Blend a colour/geometry-jittered copy of the face back onto itself.

    Pass a fixed ``jitter`` to treat every frame of a video alike, or an ``rng`` to draw one.
    (:mod:`dldfd_hf.data.sbi` draws SBI's wider range of jitters and deformed masks.)
    """
    if jitter is None:
        jitter = Jitter.random(rng if rng is not None else np.random.default_rng())
    landmarks = np.asarray(landmarks, dtype=np.float64)
    height, width = image.shape[:2]
    source, matrix = jittered_copy(image, landmarks, jitter)
    mask = np.minimum(face_mask(landmarks, (width, height), region, feather=feather), face_mask(apply_transform(matrix, landmarks), (width, height), region, feather=feather))
    return Manipulation(blend(image, np.asarray(source), mask), mask)
