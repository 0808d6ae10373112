"""Self-blended pseudo-fakes (``pseudo_fakes: sbi | sbi+ffpp``) in the training data path.

- Training: each real row drawn by the sampler becomes a self-blended pseudo-fake (label fake) with
  probability ``pseudo_fake_probability``, inside the DataLoader worker
  (:class:`~dldfd_hf.training.data.FrameDataset` with a :class:`~dldfd_hf.data.sbi.SelfBlender`).
  With ``pseudo_fake_pairs`` (SBI's own batches) every real row drawn comes twice instead, as it is
  and as its pseudo-fake, side by side in one batch with the same flip: the only difference the
  model can learn from a pair is the blend (measured here: a tiny model learns faster and
  generalises more steadily to unseen face swaps than with independent draws).
  The choice and the blend are a function of the sample's seed, which
  :class:`~dldfd_hf.training.data.EpochSampler` derives from ``(seed, epoch, position)``: an
  interrupted run resumes with exactly the samples it would have seen. ``sbi`` trains on the
  corpus's real rows only (any folder of real footage: ``dldfd build-faces``); ``sbi+ffpp`` keeps the
  corpus's fakes too.
- Evaluation: a split with fakes (FF++) is scored as it is: unseen manipulations are the point. A
  split with real rows only (a ``build-faces`` corpus) gets one fixed pseudo-fake per real row
  (method ``SelfBlended``, blended with the row's own seed), so validation can still choose the
  best epoch, as SBI does on the real validation videos of FF++.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
from datasets import ClassLabel, concatenate_datasets
from torch.utils.data import Sampler

from ..data.sbi import SelfBlender

__all__ = [
    "PSEUDO_FAKE_METHOD",
    "PSEUDO_FAKE_MODES",
    "PseudoFakePairs",
    "expected_class_counts",
    "make_self_blender",
    "rows_used",
    "with_pseudo_fakes",
]

from .config import PSEUDO_FAKE_MODES

PSEUDO_FAKE_METHOD = "SelfBlended"


def _labels(split: Any) -> np.ndarray:
    return np.asarray(split.select_columns(["label"])["label"], dtype=np.int64)


def rows_used(split: Any, mode: str) -> Any:
    """The rows of a training or validation split under ``mode``: ``sbi`` keeps the real rows only
    (no manipulation is seen, in training or in choosing the best epoch); otherwise all."""
    if mode != "sbi":
        return split
    real = np.flatnonzero(_labels(split) == 0)
    if real.size == 0:
        raise ValueError("pseudo_fakes: sbi makes fakes from real rows, and the split has none")
    return split.select(real) if real.size < len(split) else split


def with_pseudo_fakes(split: Any) -> Any:
    """``split`` itself when it has fake rows; else its real rows followed by one pseudo-fake per
    real row (same image and landmarks, label fake, method :data:`PSEUDO_FAKE_METHOD`).

    Only the ``label`` and ``method`` columns differ; the images are blended on the fly by a
    :class:`~dldfd_hf.training.data.FrameDataset` given a self-blender.
    """
    if len(split) == 0 or (_labels(split) == 1).any():
        return split
    names = list(split.features["method"].names)
    if PSEUDO_FAKE_METHOD not in names:
        names.append(PSEUDO_FAKE_METHOD)
    features = split.features.copy()
    features["method"] = ClassLabel(names=names)
    marked = names.index(PSEUDO_FAKE_METHOD)
    reals = split.cast(features, keep_in_memory=True)
    fakes = reals.map(
        lambda method: {"label": [1] * len(method), "method": [marked] * len(method)},
        batched=True,
        input_columns=["method"],
        keep_in_memory=True,  # never write cache files next to the user's corpus
        desc="pseudo-fakes",
    )
    return concatenate_datasets([reals, fakes])


def expected_class_counts(counts: Dict[str, int], mode: str, probability: float, pairs: bool = False) -> Dict[str, float]:
    """Frames per class the model sees per epoch, on average, once real rows turn into pseudo-fakes."""
    if mode == "none":
        return {"real": float(counts["real"]), "fake": float(counts["fake"])}
    fakes = counts["fake"] if mode == "sbi+ffpp" else 0
    if pairs:
        return {"real": float(counts["real"]), "fake": float(fakes + counts["real"])}
    return {"real": counts["real"] * (1.0 - probability), "fake": fakes + counts["real"] * probability}


class PseudoFakePairs(Sampler):
    """SBI's batches: every real row ``sampler`` draws is followed by its own pseudo-fake.

    Yields ``(row, seed, 0)`` then ``(row, seed, 1)`` for a real row (one seed: the same flip, and
    the blend of that seed), ``(row, seed)`` for a fake one; the order is the wrapped sampler's, so a
    pure function of ``(seed, epoch)`` as well. Keep the batch size even to keep pairs together.
    """

    def __init__(self, sampler: Any, labels: Sequence[int]) -> None:
        if getattr(sampler, "balanced", False):
            raise ValueError("pseudo-fake pairs need every row once per epoch; balanced sampling draws with replacement")
        self.sampler = sampler
        self.labels = np.asarray(labels, dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        drawn = getattr(self.sampler, "drawn_per_label", None)
        if drawn is not None:  # a sampler that draws a share of the rows (SourceMixSampler)
            return len(self.sampler) + drawn().get(0, 0)
        return int(len(self.labels) + (self.labels == 0).sum())

    def __iter__(self) -> Iterator[Tuple[int, ...]]:
        for row, seed in self.sampler:
            if self.labels[row] == 0:
                yield row, seed, 0
                yield row, seed, 1
            else:
                yield row, seed


def make_self_blender(mode: str, probability: float) -> Optional[Any]:
    """The worker-side generator for ``mode`` (None for ``none``)."""
    if mode == "none":
        return None

    return SelfBlender(probability)
