"""Video verdicts from per-frame fake probabilities: majority (ties by mean), mean, threshold."""

from __future__ import annotations

import json
import math

import pytest

from dldfd_hf.voting import FrameRecord, Verdict, vote


def test_majority_counts_votes_at_the_threshold():
    verdict = vote([0.9, 0.8, 0.2])
    assert verdict.label == "fake"
    assert verdict.fake_votes == 2 and verdict.votes == {"fake": 2, "real": 1}
    assert verdict.fake_ratio == pytest.approx(2 / 3) and verdict.score == pytest.approx(2 / 3)
    assert verdict.mean_prob == pytest.approx(1.9 / 3)
    assert verdict.frames_used == 3 and verdict.frames_without_face == 0
    # A probability equal to the threshold is a fake vote.
    assert vote([0.5, 0.5, 0.1]).label == "fake"
    assert vote([0.49, 0.49, 0.9]).label == "real"


def test_majority_tie_is_broken_by_mean_probability():
    fake_tie = vote([0.9, 0.1, 0.8, 0.4])  # 2 fake votes of 4, mean 0.55
    assert fake_tie.fake_ratio == 0.5 and fake_tie.label == "fake"
    real_tie = vote([0.6, 0.0, 0.55, 0.1])  # 2 of 4, mean 0.3125
    assert real_tie.fake_ratio == 0.5 and real_tie.label == "real"
    assert fake_tie.score == real_tie.score == 0.5


def test_mean_strategy_can_disagree_with_majority():
    probs = [0.95, 0.4, 0.45]  # one fake vote of three, but mean 0.6
    assert vote(probs, "majority").label == "real"
    mean = vote(probs, "mean")
    assert mean.label == "fake" and mean.score == pytest.approx(0.6) and mean.strategy == "mean"


def test_threshold_moves_votes_and_mean_decision():
    probs = [0.6, 0.65, 0.3]
    assert vote(probs, threshold=0.5).label == "fake"
    strict = vote(probs, threshold=0.7)
    assert strict.label == "real" and strict.fake_votes == 0 and strict.threshold == 0.7
    assert vote(probs, "mean", threshold=0.5).label == "fake"  # mean 0.517
    assert vote(probs, "mean", threshold=0.55).label == "real"


def test_frames_without_face_are_counted_not_voted():
    verdict = vote([None, 0.9, None, 0.7, 0.1])
    assert verdict.frames_without_face == 2 and verdict.frames_used == 3
    assert verdict.label == "fake" and verdict.fake_ratio == pytest.approx(2 / 3)


@pytest.mark.parametrize("probs", [[None, None, None], []])
def test_no_face_at_all_gives_no_label(probs):
    for strategy in ("majority", "mean"):
        verdict = vote(probs, strategy)
        assert verdict.label is None and verdict.score is None and verdict.mean_prob is None
        assert verdict.frames_used == 0 and verdict.frames_without_face == len(probs)
        assert verdict.votes == {"fake": 0, "real": 0}


def test_records_and_dict_form():
    records = [FrameRecord(3, 0.12, (1.0, 2.0, 30.0, 40.0), 0.8, 0.99), FrameRecord(9, 0.36, None, None)]
    verdict = vote([r.fake_prob for r in records], records=records)
    assert isinstance(verdict, Verdict) and verdict.records == records
    data = verdict.to_dict()
    json.dumps(data)  # plain JSON types only
    assert data["label"] == "fake" and data["votes"] == {"fake": 1, "real": 0}
    assert data["frames"][0] == {"index": 3, "time": 0.12, "box": [1.0, 2.0, 30.0, 40.0], "fake_prob": 0.8, "face_score": 0.99}
    assert data["frames"][1]["box"] is None and data["frames_without_face"] == 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(fake_probs=[0.2, 1.5]), "item 1"),
        (dict(fake_probs=[math.nan]), "item 0"),
        (dict(fake_probs=[0.2], strategy="median"), "strategy"),
        (dict(fake_probs=[0.2], threshold=2.0), "threshold"),
    ],
)
def test_invalid_input_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vote(**kwargs)
