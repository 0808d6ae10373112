"""What a corpus build works on: one source file and the rows it makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..labels import FAKE, REAL

__all__ = ["ORIGINAL", "BuildUnit"]

# The ``method`` of real rows (FF++'s "original_sequences"; every build-faces row).
ORIGINAL = "original"


@dataclass(frozen=True, order=True)
class BuildUnit:
    """One source file of a build (a video, or a photo as a one-frame video) and its rows' ``split``,
    ``method``, ``video_id`` and ``compression`` columns. Identified by ``(method, video_id)``.

    An FF++ index yields them (:class:`~dldfd_hf.data.ffpp.FFPPVideo`); ``dldfd build-faces`` makes
    its own (:mod:`dldfd_hf.data.faces_corpus`).
    """

    split: str
    method: str
    video_id: str
    compression: str
    path: Path = field(compare=False)

    @property
    def label(self) -> int:
        """0 = real (the ``original`` method), 1 = fake (:mod:`dldfd_hf.labels`)."""
        return REAL if self.method == ORIGINAL else FAKE

    @property
    def key(self) -> str:
        return f"{self.method}/{self.video_id}"
