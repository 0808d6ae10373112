"""Face outlines from five MTCNN landmarks, via a mean 68-point face (dlib / iBUG 300-W numbering).

Blending masks that follow the jawline and the brows (the convex hull of a face's 68 landmarks, as
self-blended images use) need more than MTCNN's five points. The mean 68-point face fitted to the
five points by a similarity transform gives that outline for frontal and near-frontal faces with
no extra model: :class:`FaceHull` has the interface of :class:`~dldfd_hf.data.blending.FaceEllipse`
(``a``, ``b``, ``outline``), so a mask drawer can take either.

The mean face: OpenFace's ``align_dlib.py`` ``TEMPLATE`` (Amos et al., Apache-2.0), rounded to 3 decimals.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from .blending import similarity_transform

__all__ = ["HULL_REGIONS", "MEAN_FACE_68", "FaceHull", "fit_mean_face"]

MEAN_FACE_68 = np.array([
    (0.079, 0.339), (0.083, 0.457), (0.097, 0.576), (0.122, 0.692), (0.169, 0.800), (0.240, 0.896),
    (0.326, 0.977), (0.422, 1.043), (0.532, 1.061), (0.641, 1.040), (0.738, 0.972), (0.824, 0.890),
    (0.895, 0.792), (0.939, 0.682), (0.961, 0.562), (0.971, 0.442), (0.971, 0.322), (0.164, 0.249),
    (0.218, 0.204), (0.291, 0.192), (0.367, 0.204), (0.439, 0.233), (0.586, 0.228), (0.660, 0.196),
    (0.737, 0.182), (0.813, 0.193), (0.871, 0.235), (0.515, 0.319), (0.516, 0.396), (0.517, 0.474),
    (0.518, 0.553), (0.434, 0.604), (0.476, 0.621), (0.521, 0.634), (0.566, 0.619), (0.607, 0.602),
    (0.252, 0.331), (0.299, 0.303), (0.356, 0.303), (0.404, 0.339), (0.353, 0.350), (0.297, 0.350),
    (0.631, 0.334), (0.679, 0.296), (0.736, 0.295), (0.783, 0.321), (0.740, 0.342), (0.685, 0.344),
    (0.353, 0.746), (0.415, 0.719), (0.478, 0.707), (0.523, 0.717), (0.570, 0.705), (0.635, 0.716),
    (0.700, 0.739), (0.639, 0.805), (0.576, 0.835), (0.525, 0.842), (0.476, 0.838), (0.414, 0.810),
    (0.380, 0.750), (0.478, 0.745), (0.523, 0.749), (0.571, 0.743), (0.672, 0.744), (0.573, 0.777),
    (0.524, 0.783), (0.478, 0.778),
])
# MTCNN's five points on the mean face: eye centres, nose tip, mouth corners (image left first).
_FIVE = np.stack([
    MEAN_FACE_68[36:42].mean(0), MEAN_FACE_68[42:48].mean(0), MEAN_FACE_68[30], MEAN_FACE_68[48], MEAN_FACE_68[54],
])
# Regions as landmark index sets; each blends through the convex hull of its points.
HULL_REGIONS = {
    "hull": tuple(range(68)),                                       # jaw and brows: the whole face
    "hull_lower": tuple(range(1, 16)) + tuple(range(28, 36)),       # nose bridge down to the chin
    "hull_inner": tuple(range(17, 68)),                             # brows, eyes, nose, mouth; no jaw
    "hull_eyes": tuple(range(17, 27)) + tuple(range(36, 48)),       # brows and eyes
    "hull_nose": tuple(range(27, 36)) + (39, 42),                   # the nose
    "hull_mouth": tuple(range(48, 68)) + (31, 35, 6, 10),           # mouth, down to the chin
}


def fit_mean_face(landmarks: np.ndarray) -> np.ndarray:
    """The mean 68-point face moved onto five landmarks ``(5, 2)`` by a least-squares similarity."""
    matrix = similarity_transform(_FIVE, np.asarray(landmarks, dtype=np.float64))
    return MEAN_FACE_68 @ matrix[:, :2].T + matrix[:, 2]


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull (monotone chain), counter-clockwise in image coordinates."""
    pts = sorted(map(tuple, points))

    def half(sequence):
        chain = []
        for p in sequence:
            while len(chain) >= 2 and (
                (chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1]) - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])
            ) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    return np.array(half(pts) + half(reversed(pts)))


@functools.lru_cache(maxsize=8)
def _directions(points: int) -> tuple[np.ndarray, np.ndarray]:
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.cos(angles), np.sin(angles)


@dataclass(frozen=True)
class FaceHull:
    """The convex hull of a face region, described from its centre along the face's own axes
    (``across``: the eye line, ``down``), with semi-extents ``a`` and ``b`` in pixels."""

    centre: np.ndarray
    across: np.ndarray
    down: np.ndarray
    hull: np.ndarray  # (n, 2) hull vertices in (across, down) coordinates about ``centre``
    a: float
    b: float
    expand: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def of(cls, landmarks: np.ndarray, region: str = "hull", expand: Union[float, tuple[float, float]] = 1.0) -> Optional["FaceHull"]:
        """The hull of ``region`` (a :data:`HULL_REGIONS` key) on a face; None for a degenerate face."""
        if region not in HULL_REGIONS:
            raise ValueError(f"region must be one of {', '.join(HULL_REGIONS)}, got {region!r}")
        landmarks = np.asarray(landmarks, dtype=np.float64)
        eye_line = landmarks[1] - landmarks[0]
        if np.linalg.norm(eye_line) < 1:
            return None
        across = eye_line / np.linalg.norm(eye_line)
        down = np.array([-across[1], across[0]])
        points = fit_mean_face(landmarks)[list(HULL_REGIONS[region])]
        centre = points.mean(0)
        local = np.stack([(points - centre) @ across, (points - centre) @ down], axis=1)
        hull = _convex_hull(local)
        a, b = float(np.abs(hull[:, 0]).max()), float(np.abs(hull[:, 1]).max())
        if a < 1 or b < 1 or len(hull) < 3:
            return None
        ea, eb = (expand, expand) if np.isscalar(expand) else expand
        return cls(centre, across, down, hull, a * ea, b * eb, (float(ea), float(eb)))

    def outline(self, radial: Optional[np.ndarray] = None, points: int = 64) -> np.ndarray:
        """``(points, 2)`` outline at evenly spaced angles (a star-shaped polygon); ``radial`` scales
        each point's distance from the centre, as for the ellipse."""
        cos, sin = _directions(points)
        radius = _ray_lengths(self.hull, cos, sin)
        if radial is not None:
            radius = radius * np.asarray(radial, dtype=np.float64)
        u, v = radius * cos * self.expand[0], radius * sin * self.expand[1]
        return self.centre + np.outer(u, self.across) + np.outer(v, self.down)


def _ray_lengths(polygon: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Distance from the origin (inside the convex ``polygon``) to its edge along each direction."""
    p, q = polygon, np.roll(polygon, -1, axis=0)
    e = q - p  # edges
    # Solve t * d = p + s * e for every (direction, edge): 2x2 systems by Cramer's rule.
    det = cos[:, None] * (-e[None, :, 1]) - sin[:, None] * (-e[None, :, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (p[None, :, 0] * (-e[None, :, 1]) - p[None, :, 1] * (-e[None, :, 0])) / det
        s = (cos[:, None] * p[None, :, 1] - sin[:, None] * p[None, :, 0]) / det
    hit = (np.abs(det) > 1e-12) & (s >= -1e-9) & (s <= 1 + 1e-9) & (t > 0)
    t = np.where(hit, t, np.inf)
    out = t.min(axis=1)
    return np.where(np.isfinite(out), out, 0.0)
