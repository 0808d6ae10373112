"""From per-frame fake probabilities to one verdict per video (or photo).

A :class:`VotingRule` (strategy + threshold) is the one place the rule lives; the pipeline, the
metrics, training, the CLI and the demo all vote through it.

``majority`` is the paper's rule: each scored face votes fake when its probability reaches the
threshold; the video is fake when more than half the votes are fake, and an exact tie is broken
by the mean probability. ``mean`` thresholds the mean probability. ``max_mean`` is the test rule of
Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): a frame's score is the highest P(fake) of its
faces, and the video's is the mean over frames, thresholded (so it needs each face's frame; with one
face per frame it equals ``mean``). Frames without a face do not vote; they are counted.

Scores follow the Hugging Face classification convention: ``score`` is the confidence of the
returned ``label`` (so a "real" verdict with score 0.9 is a confident one), while ``fake_score``
always measures fakeness (higher = more likely fake), whatever the label.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Hashable, List, Literal, Optional, Sequence, Tuple, get_args

from ..labels import FAKE, ID2LABEL, REAL

__all__ = ["FrameRecord", "Verdict", "VotingRule", "STRATEGIES", "check_strategy", "check_threshold"]

Strategy = Literal["majority", "mean", "max_mean"]
STRATEGIES: Tuple[str, ...] = get_args(Strategy)  # the CLI, pipeline, demo and configs offer these


def check_strategy(strategy: Any, where: str) -> str:
    """``strategy`` if it names a voting strategy, else a ValueError that starts with ``where``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"{where}: strategy must be one of {STRATEGIES}, got {strategy!r}")
    return strategy


def check_threshold(threshold: Any, where: str) -> float:
    """``threshold`` as a float if it is a real number in [0, 1] (Python or NumPy; not a bool or a
    string), else a ValueError that starts with ``where``."""
    if not (isinstance(threshold, numbers.Real) and not isinstance(threshold, bool) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"{where}: threshold must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


@dataclass
class FrameRecord:
    """One scored face (or one frame without a face: ``box`` and ``fake_prob`` are None)."""

    index: int  # frame index in the video (0 for a photo)
    time: Optional[float]  # seconds from the first frame (None for a photo or bare frames)
    box: Optional[Tuple[float, float, float, float]]  # face box (x1, y1, x2, y2) in frame pixels
    fake_prob: Optional[float]
    face_score: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["box"] = None if self.box is None else [float(v) for v in self.box]
        return data


@dataclass
class Verdict:
    """A video-level decision.

    ``score`` is the confidence of ``label``: for ``majority`` the share of the voting frames that
    agree with it, for ``mean`` (and ``max_mean``) the mean P(fake) when the label is fake and
    ``1 - mean P(fake)`` when it is real. ``fake_score`` is the number the decision thresholds,
    higher = more likely fake: the fake-vote ratio for ``majority``, the mean P(fake) for ``mean``.
    For ``max_mean`` the votes, ratio and mean are over frames (each its faces' highest P(fake)),
    and ``frames_used`` counts frames. ``label``, ``score`` and ``fake_score`` are None when no face
    was scored.
    """

    label: Optional[str]
    score: Optional[float]
    fake_score: Optional[float]
    fake_ratio: Optional[float]
    mean_prob: Optional[float]
    fake_votes: int
    frames_used: int
    frames_without_face: int
    strategy: str
    threshold: float
    records: List[FrameRecord] = field(default_factory=list)

    @property
    def votes(self) -> Dict[str, int]:
        return {ID2LABEL[FAKE]: self.fake_votes, ID2LABEL[REAL]: self.frames_used - self.fake_votes}

    def to_dict(self) -> Dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "fake_score": self.fake_score,
            "votes": self.votes,
            "fake_ratio": self.fake_ratio,
            "mean_prob": self.mean_prob,
            "frames_used": self.frames_used,
            "frames_without_face": self.frames_without_face,
            "strategy": self.strategy,
            "threshold": self.threshold,
            "frames": [record.to_dict() for record in self.records],
        }


@dataclass(frozen=True)
class VotingRule:
    """How per-face P(fake) become one verdict: ``strategy`` (``"majority"``, ``"mean"`` or
    ``"max_mean"``) and ``threshold`` (a probability at or above it counts as fake, for votes and
    for means; any real number in [0, 1], Python or NumPy). Checked when made, so a rule that
    exists is valid."""

    strategy: Strategy = "majority"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        check_strategy(self.strategy, "VotingRule")
        object.__setattr__(self, "threshold", check_threshold(self.threshold, "VotingRule"))

    def vote(self, fake_probs: Sequence[Optional[float]], frames: Optional[Sequence[Hashable]] = None) -> Verdict:
        """Combine per-face fake probabilities into a :class:`Verdict`.

        Args:
            fake_probs: one probability per scored face; ``None`` marks a frame without a face.
            frames: the frame of each item (e.g. its index), for ``max_mean``; by default every item
                is a frame of its own. ``majority`` and ``mean`` count every face.
        """
        if frames is not None and len(frames) != len(fake_probs):
            raise ValueError(f"vote: {len(fake_probs)} probabilities but {len(frames)} frames")
        probs: List[float] = []
        frame_of: List[Hashable] = []
        without_face = 0
        for i, p in enumerate(fake_probs):
            if p is None:
                without_face += 1
                continue
            p = float(p)
            if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                raise ValueError(f"vote: fake probabilities must lie in [0, 1]; item {i} is {p!r}")
            probs.append(p)
            frame_of.append(i if frames is None else frames[i])
        if self.strategy == "max_mean":
            highest: Dict[Hashable, float] = {}
            for frame, p in zip(frame_of, probs):
                highest[frame] = max(p, highest.get(frame, 0.0))
            probs = list(highest.values())
        if not probs:
            return Verdict(None, None, None, None, None, 0, 0, without_face, self.strategy, self.threshold)

        fake_votes = sum(p >= self.threshold for p in probs)
        fake_ratio = fake_votes / len(probs)
        mean_prob = sum(probs) / len(probs)
        mean_says_fake = mean_prob >= self.threshold
        if self.strategy == "majority":
            is_fake = 2 * fake_votes > len(probs) or (2 * fake_votes == len(probs) and mean_says_fake)
            fake_score = fake_ratio
        else:
            is_fake, fake_score = mean_says_fake, mean_prob
        return Verdict(
            label=ID2LABEL[FAKE if is_fake else REAL],
            score=fake_score if is_fake else 1.0 - fake_score,
            fake_score=fake_score,
            fake_ratio=fake_ratio,
            mean_prob=mean_prob,
            fake_votes=fake_votes,
            frames_used=len(probs),
            frames_without_face=without_face,
            strategy=self.strategy,
            threshold=self.threshold,
        )

    def vote_records(self, records: Sequence[FrameRecord]) -> Verdict:
        """:meth:`vote` over scored face records (each knows its frame); the verdict keeps them."""
        verdict = self.vote([r.fake_prob for r in records], frames=[r.index for r in records])
        verdict.records = list(records)
        return verdict
