"""What :class:`~dldfd_hf.media.faces.FaceCropper` needs from a face detector.

A detector finds faces; the cropper picks among them and cuts the crops. MTCNN
(:class:`~dldfd_hf.media.mtcnn.MTCNNDetector`, the paper's detector) is the default; another
detector is one class with this ``__call__``, passed as ``FaceCropper(detector=...)``:

>>> class OneFace:
...     def __call__(self, images):
...         marks = [[50, 60], [70, 60], [60, 70], [52, 80], [68, 80]]  # eyes, nose, mouth corners
...         return [FaceDetections.of([[40, 40, 80, 90]], [0.99], [marks]) for _ in images]
>>> cropper = FaceCropper(detector=OneFace())
"""

from __future__ import annotations

from typing import List, NamedTuple, Protocol, Sequence

import numpy as np

__all__ = ["FaceDetections", "FaceDetector"]


class FaceDetections(NamedTuple):
    """The faces found in one image, in its pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float64: x1, y1, x2, y2
    scores: np.ndarray  # (N,) float64: how sure the detector is that each is a face, in [0, 1]
    landmarks: np.ndarray  # (N, 5, 2) float64: eyes, nose, mouth corners as (x, y)

    @classmethod
    def of(cls, boxes: object, scores: object, landmarks: object) -> "FaceDetections":
        """From any array-likes of those shapes (lists, float32, object arrays...)."""
        return cls(
            np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            np.asarray(scores, dtype=np.float64).reshape(-1),
            np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2),
        )

    @classmethod
    def none(cls) -> "FaceDetections":
        """No face."""
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2)))


class FaceDetector(Protocol):
    """Finds faces with their five landmarks.

    Called with a batch of HxWx3 uint8 RGB arrays (the cropper sends images of one size per call,
    at most its ``batch_size``: most detectors batch one size at a time); returns one
    :class:`FaceDetections` per image, in order. An optional ``batch_size`` attribute is the
    cropper's default batch.
    """

    def __call__(self, images: Sequence[np.ndarray]) -> List[FaceDetections]:
        ...
