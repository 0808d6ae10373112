"""MTCNN (facenet-pytorch; its weights ship inside the wheel), the paper's face detector and
:class:`~dldfd_hf.media.faces.FaceCropper`'s default."""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import numpy as np
import torch

from .face_detector import FaceDetections

__all__ = ["MTCNNDetector"]


class MTCNNDetector:
    """A :class:`~dldfd_hf.media.face_detector.FaceDetector`: MTCNN in eval mode.

    Args:
        min_face_size: smallest face looked for, in pixels; smaller images are not searched.
        thresholds: the three stage thresholds.
        device: where MTCNN runs (``"cpu"``, ``"cuda"``, a ``torch.device``).
    """

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: Tuple[float, float, float] = (0.6, 0.7, 0.7),
        device: Union[str, torch.device] = "cpu",
    ) -> None:
        from facenet_pytorch import MTCNN  # imported when a detector is made, not with dldfd_hf

        self.min_face_size = min_face_size
        self.device = torch.device(device)
        # Frames per call: small batches keep MTCNN's image pyramid in cache on CPU; GPUs like big ones.
        self.batch_size = 8 if self.device.type == "cpu" else 32
        self.mtcnn = MTCNN(
            min_face_size=min_face_size, thresholds=list(thresholds), keep_all=True, device=self.device
        ).eval()

    def __call__(self, images: Sequence[np.ndarray]) -> List[FaceDetections]:
        """Faces per image; images must share one size (MTCNN stacks them)."""
        if not images:
            return []
        if min(images[0].shape[:2]) < self.min_face_size:
            return [FaceDetections.none() for _ in images]  # nothing to find (and MTCNN would crash)
        try:
            boxes, probs, points = self.mtcnn.detect(np.stack(images), landmarks=True)
        except RuntimeError as err:
            # facenet-pytorch concatenates an empty list when every candidate box of a stage is
            # degenerate; that only means "no face", but it fails the whole batch.
            if "non-empty" not in str(err):
                raise
            if len(images) > 1:
                return [found for image in images for found in self([image])]
            return [FaceDetections.none()]
        # Batched MTCNN returns None for an image without faces, object-dtype arrays otherwise.
        return [
            FaceDetections.none() if frame_boxes is None else FaceDetections.of(frame_boxes, frame_probs, frame_points)
            for frame_boxes, frame_probs, frame_points in zip(boxes, probs, points)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_face_size={self.min_face_size}, device={str(self.device)!r})"
