"""Deepfake detection metrics: plain functions over NumPy arrays (no ``evaluate`` import).

Everything takes ``references`` (0 = real, 1 = fake) and ``fake_probs`` (``P(fake)`` per frame).
The ``evaluate`` modules in this folder, ``examples/train.py`` and ``examples/evaluate.py`` all call
these functions, so each number is computed in exactly one place.

Values that are undefined for the given input (AUC with a single class present, ...) are ``None``
rather than NaN, so results stay valid JSON.

The functions that score import ``sklearn.metrics`` themselves: it imports pandas and pyarrow (a
second or more), which reading results back (:mod:`.results`, model cards) does without.

Frame level: ``tcr`` (true classification rate = accuracy at the threshold), ``balanced_accuracy``,
``auc`` (ROC AUC), ``ap`` (average precision, fake = positive), ``eer`` (equal error rate).
Video level: frames are grouped by ``(method, video_id)`` -- never by ``video_id`` alone, since fake
ids such as ``"000_003"`` repeat across manipulation methods -- and each video gets a verdict from
:class:`dldfd_hf.inference.voting.VotingRule` (majority vote of the frame labels in the paper).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from dldfd_hf.inference.voting import VotingRule
from dldfd_hf.labels import FAKE, LABEL2ID, REAL

__all__ = [
    "FRAME_METRICS",
    "VIDEO_METRICS",
    "VideoScores",
    "deepfake_metrics",
    "equal_error_rate",
    "frame_metrics",
    "group_videos",
    "per_method_metrics",
    "video_metrics",
]

FRAME_METRICS = ("tcr", "balanced_accuracy", "auc", "ap", "eer")
VIDEO_METRICS = ("tcr", "balanced_accuracy", "auc", "mean_prob_tcr")


def _as_arrays(references: Sequence[int], fake_probs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(references)
    probs = np.asarray(fake_probs, dtype=np.float64)
    if labels.ndim != 1 or probs.ndim != 1:
        raise ValueError(
            f"references and fake_probs must be 1-D (one value per frame), got shapes {labels.shape} and {probs.shape}"
        )
    if labels.shape != probs.shape:
        raise ValueError(f"references ({labels.shape[0]}) and fake_probs ({probs.shape[0]}) differ in length")
    if labels.size and not np.isin(labels, (REAL, FAKE)).all():
        bad = sorted(set(np.unique(labels).tolist()) - {REAL, FAKE})
        raise ValueError(f"references must be 0 (real) or 1 (fake), found {bad[:5]}")
    if probs.size and (not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1):
        raise ValueError("fake_probs must be probabilities in [0, 1] (apply a sigmoid to logits first)")
    return labels.astype(np.int64), probs


def _both_classes(labels: np.ndarray) -> bool:
    return labels.size > 0 and 0 < labels.sum() < labels.size


def equal_error_rate(references: Sequence[int], fake_probs: Sequence[float]) -> Optional[float]:
    """The error rate where the false-positive rate equals the false-negative rate.

    The ROC curve is piecewise linear between its operating points; the EER is where it crosses the
    diagonal ``FPR = 1 - TPR``, interpolated linearly between the two points around the crossing.
    ``None`` when only one class is present.
    """
    from sklearn.metrics import roc_curve

    labels, probs = _as_arrays(references, fake_probs)
    if not _both_classes(labels):
        return None
    fpr, tpr, _ = roc_curve(labels, probs)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # decreasing from 1 (at fpr=0, tpr=0) to -1 (at fpr=1, tpr=1)
    crossing = int(np.argmax(diff <= 0))
    if diff[crossing] == 0 or crossing == 0:
        return float(fpr[crossing])
    # Linear interpolation between operating points crossing-1 (diff > 0) and crossing (diff <= 0).
    w = diff[crossing - 1] / (diff[crossing - 1] - diff[crossing])
    return float(fpr[crossing - 1] + w * (fpr[crossing] - fpr[crossing - 1]))


def frame_metrics(
    references: Sequence[int], fake_probs: Sequence[float], threshold: float = VotingRule.threshold
) -> Dict[str, Any]:
    """TCR, balanced accuracy, AUC, AP and EER of per-frame fake probabilities.

    A frame is called fake when ``fake_prob >= threshold``. Returns the metrics (fractions in [0, 1])
    plus the counts ``num_frames``, ``num_real`` and ``num_fake``.
    """
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

    labels, probs = _as_arrays(references, fake_probs)
    predictions = (probs >= threshold).astype(np.int64)
    both = _both_classes(labels)
    return {
        "tcr": float((predictions == labels).mean()) if labels.size else None,
        "balanced_accuracy": _balanced_accuracy(labels, predictions, balanced_accuracy_score),
        "auc": float(roc_auc_score(labels, probs)) if both else None,
        "ap": float(average_precision_score(labels, probs)) if both else None,
        "eer": equal_error_rate(labels, probs),
        "num_frames": int(labels.size),
        "num_real": int((labels == REAL).sum()),
        "num_fake": int((labels == FAKE).sum()),
        "threshold": float(threshold),
    }


def _balanced_accuracy(labels: np.ndarray, predictions: np.ndarray, score_fn: Any) -> Optional[float]:
    # With a single class present sklearn's balanced accuracy is that class's recall (= accuracy);
    # it warns about it, so compute the same value directly.
    if not labels.size:
        return None
    if not _both_classes(labels):
        return float((predictions == labels).mean())
    return float(score_fn(labels, predictions))


@dataclass
class VideoScores:
    """The frames of one video, identified by ``(method, video_id)``, and its verdict."""

    method: str
    video_id: str
    label: int
    fake_probs: np.ndarray
    predicted_label: int = -1
    mean_prob: float = float("nan")

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.video_id)


def group_videos(
    references: Sequence[int],
    fake_probs: Sequence[float],
    methods: Sequence[str],
    video_ids: Sequence[str],
) -> List[VideoScores]:
    """Group frame probabilities into videos keyed by ``(method, video_id)``, in first-seen order.

    Raises ``ValueError`` when the frames of one video disagree on the label (a corrupt corpus).
    """
    labels, probs = _as_arrays(references, fake_probs)
    if not len(methods) == len(video_ids) == labels.size:
        raise ValueError(
            f"methods ({len(methods)}), video_ids ({len(video_ids)}) and references ({labels.size}) "
            "must have one entry per frame"
        )
    rows: "OrderedDict[tuple[str, str], list[int]]" = OrderedDict()
    for row, key in enumerate(zip(methods, video_ids)):
        rows.setdefault((str(key[0]), str(key[1])), []).append(row)
    videos = []
    for (method, video_id), frame_rows in rows.items():
        video_labels = np.unique(labels[frame_rows])
        if video_labels.size != 1:
            raise ValueError(
                f"video ({method!r}, {video_id!r}) has frames labelled both real and fake; "
                "a video has a single label"
            )
        videos.append(VideoScores(method, video_id, int(video_labels[0]), probs[frame_rows]))
    return videos


def _verdicts(videos: List[VideoScores], rule: VotingRule) -> List[VideoScores]:
    # The voting rule (ties, thresholds) lives in dldfd_hf.inference.voting; metrics only consume verdicts.
    for video in videos:
        verdict = rule.vote(video.fake_probs)
        # Every grouped video has at least one frame, so the verdict always has a label.
        video.predicted_label = LABEL2ID[verdict.label]
        video.mean_prob = float(np.mean(video.fake_probs))
    return videos


def video_metrics(
    references: Sequence[int],
    fake_probs: Sequence[float],
    methods: Sequence[str],
    video_ids: Sequence[str],
    rule: VotingRule = VotingRule(),
) -> Dict[str, Any]:
    """Video-level metrics: frames grouped by ``(method, video_id)``.

    ``tcr`` and ``balanced_accuracy`` use each video's verdict under ``rule`` (by default the
    paper's majority vote at 0.5); ``auc`` ranks videos by their mean fake probability, and
    ``mean_prob_tcr`` is the accuracy of ``mean_prob >= rule.threshold``.
    """
    videos = _verdicts(group_videos(references, fake_probs, methods, video_ids), rule)
    return _video_summary(videos, rule)


def _video_summary(videos: List[VideoScores], rule: VotingRule) -> Dict[str, Any]:
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    labels = np.array([v.label for v in videos], dtype=np.int64)
    mean_probs = np.array([v.mean_prob for v in videos], dtype=np.float64)
    voted = np.array([v.predicted_label for v in videos], dtype=np.int64)

    both = _both_classes(labels)
    return {
        "tcr": float((voted == labels).mean()) if labels.size else None,
        "balanced_accuracy": _balanced_accuracy(labels, voted, balanced_accuracy_score),
        "auc": float(roc_auc_score(labels, mean_probs)) if both else None,
        "mean_prob_tcr": float(((mean_probs >= rule.threshold) == labels).mean()) if labels.size else None,
        "num_videos": int(labels.size),
        "num_real": int((labels == REAL).sum()),
        "num_fake": int((labels == FAKE).sum()),
        "strategy": rule.strategy,
        "threshold": rule.threshold,
    }


def per_method_metrics(
    references: Sequence[int],
    fake_probs: Sequence[float],
    methods: Sequence[str],
    video_ids: Sequence[str],
    rule: VotingRule = VotingRule(),
) -> Dict[str, Dict[str, Any]]:
    """A breakdown by manipulation method, at frame and video level.

    For every method: ``frame_accuracy`` and ``video_accuracy`` (the share of its frames / videos
    classified correctly: the real-detection rate for ``original``, the fake-detection rate for a
    manipulation) and ``mean_fake_prob``. For each manipulation, also ``frame_auc`` and
    ``video_auc`` against the real frames / videos of the same input, when present: how well that
    method alone is separated from real faces.
    """
    labels, probs = _as_arrays(references, fake_probs)
    videos = _verdicts(group_videos(labels, probs, methods, video_ids), rule)
    return _per_method(labels, probs, methods, videos, rule.threshold)


def _per_method(
    labels: np.ndarray, probs: np.ndarray, methods: Sequence[str], videos: List[VideoScores], threshold: float
) -> Dict[str, Dict[str, Any]]:
    from sklearn.metrics import roc_auc_score

    methods = np.asarray([str(m) for m in methods])
    real_frames = labels == REAL
    real_videos = [v for v in videos if v.label == REAL]
    breakdown: Dict[str, Dict[str, Any]] = {}
    for method in sorted(set(methods.tolist())):
        frames = methods == method
        method_videos = [v for v in videos if v.method == method]
        entry: Dict[str, Any] = {
            "num_frames": int(frames.sum()),
            "num_videos": len(method_videos),
            "frame_accuracy": float(((probs[frames] >= threshold) == labels[frames]).mean()),
            "video_accuracy": float(np.mean([v.predicted_label == v.label for v in method_videos])),
            "mean_fake_prob": float(probs[frames].mean()),
        }
        if labels[frames].any():  # a manipulation: how well is it told apart from the real faces?
            pair = frames | real_frames
            entry["frame_auc"] = (
                float(roc_auc_score(labels[pair], probs[pair])) if _both_classes(labels[pair]) else None
            )
            pair_videos = method_videos + real_videos
            pair_labels = np.array([v.label for v in pair_videos], dtype=np.int64)
            entry["video_auc"] = (
                float(roc_auc_score(pair_labels, [v.mean_prob for v in pair_videos]))
                if _both_classes(pair_labels)
                else None
            )
        breakdown[method] = entry
    return breakdown


def deepfake_metrics(
    references: Sequence[int],
    fake_probs: Sequence[float],
    methods: Optional[Sequence[str]] = None,
    video_ids: Optional[Sequence[str]] = None,
    rule: VotingRule = VotingRule(),
) -> Dict[str, Any]:
    """Everything at once: ``{"frame": ..., "video": ..., "per_method": ...}``.

    ``video`` and ``per_method`` need ``methods`` and ``video_ids`` (one per frame); without them
    only ``frame`` is returned. Votes (under ``rule``; its threshold is the frames' too) are computed
    once and shared by both.
    """
    labels, probs = _as_arrays(references, fake_probs)
    result: Dict[str, Any] = {"frame": frame_metrics(labels, probs, rule.threshold)}
    if methods is None or video_ids is None:
        return result
    videos = _verdicts(group_videos(labels, probs, methods, video_ids), rule)
    result["video"] = _video_summary(videos, rule)
    result["per_method"] = _per_method(labels, probs, methods, videos, rule.threshold)
    return result
