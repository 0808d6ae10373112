"""Video verdicts from per-frame fake probabilities: majority (ties by mean), mean, SBI's max_mean, threshold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dldfd_hf.labels import LABEL_NAMES
from dldfd_hf.inference.voting import STRATEGIES, FrameRecord, Verdict, VotingRule


def test_majority_counts_votes_at_the_threshold():
    verdict = VotingRule().vote([0.9, 0.8, 0.2])
    assert verdict.label == "fake"
    assert verdict.fake_votes == 2 and verdict.votes == {"fake": 2, "real": 1}
    assert verdict.fake_ratio == pytest.approx(2 / 3) and verdict.fake_score == pytest.approx(2 / 3)
    assert verdict.score == pytest.approx(2 / 3)  # the share of the votes that agree with "fake"
    assert verdict.mean_prob == pytest.approx(1.9 / 3)
    assert verdict.frames_used == 3 and verdict.frames_without_face == 0
    # A probability equal to the threshold is a fake vote.
    assert VotingRule().vote([0.5, 0.5, 0.1]).label == "fake"
    assert VotingRule().vote([0.49, 0.49, 0.9]).label == "real"


def test_majority_tie_is_broken_by_mean_probability():
    fake_tie = VotingRule().vote([0.9, 0.1, 0.8, 0.4])  # 2 fake votes of 4, mean 0.55
    assert fake_tie.fake_ratio == 0.5 and fake_tie.label == "fake"
    real_tie = VotingRule().vote([0.6, 0.0, 0.55, 0.1])  # 2 of 4, mean 0.3125
    assert real_tie.fake_ratio == 0.5 and real_tie.label == "real"
    assert fake_tie.score == real_tie.score == fake_tie.fake_score == real_tie.fake_score == 0.5


def test_mean_strategy_can_disagree_with_majority():
    probs = [0.95, 0.4, 0.45]  # one fake vote of three, but mean 0.6
    assert VotingRule("majority").vote(probs).label == "real"
    mean = VotingRule("mean").vote(probs)
    assert mean.label == "fake" and mean.score == pytest.approx(0.6) and mean.strategy == "mean"
    assert mean.fake_score == pytest.approx(0.6)


def test_score_is_the_confidence_of_the_label_and_fake_score_measures_fakeness():
    # Hugging Face convention: ``score`` belongs to ``label``; ``fake_score`` is always about "fake".
    real = VotingRule().vote([0.1, 0.2, 0.9, 0.3])  # 1 fake vote of 4: real, and 3 of 4 frames agree
    assert real.label == "real"
    assert real.score == pytest.approx(0.75) and real.fake_score == pytest.approx(0.25)
    real_mean = VotingRule("mean").vote([0.1, 0.2, 0.9, 0.3])  # mean P(fake) 0.375
    assert real_mean.label == "real"
    assert real_mean.score == pytest.approx(0.625) and real_mean.fake_score == pytest.approx(0.375)
    fake_mean = VotingRule("mean").vote([0.7, 0.9])
    assert fake_mean.label == "fake" and fake_mean.score == fake_mean.fake_score == pytest.approx(0.8)
    # A confident verdict has a high score whichever way it goes.
    assert VotingRule().vote([0.0, 0.0, 0.0]).score == VotingRule().vote([1.0, 1.0, 1.0]).score == 1.0
    data = real.to_dict()
    assert (data["label"], data["score"], data["fake_score"]) == ("real", pytest.approx(0.75), pytest.approx(0.25))


def test_threshold_moves_votes_and_mean_decision():
    probs = [0.6, 0.65, 0.3]
    assert VotingRule(threshold=0.5).vote(probs).label == "fake"
    strict = VotingRule(threshold=0.7).vote(probs)
    assert strict.label == "real" and strict.fake_votes == 0 and strict.threshold == 0.7
    assert VotingRule("mean", threshold=0.5).vote(probs).label == "fake"  # mean 0.517
    assert VotingRule("mean", threshold=0.55).vote(probs).label == "real"


def test_frames_without_face_are_counted_not_voted():
    verdict = VotingRule().vote([None, 0.9, None, 0.7, 0.1])
    assert verdict.frames_without_face == 2 and verdict.frames_used == 3
    assert verdict.label == "fake" and verdict.fake_ratio == pytest.approx(2 / 3)


@pytest.mark.parametrize("probs", [[None, None, None], []])
def test_no_face_at_all_gives_no_label(probs):
    for strategy in STRATEGIES:
        verdict = VotingRule(strategy).vote(probs)
        assert verdict.label is None and verdict.score is None and verdict.fake_score is None
        assert verdict.mean_prob is None and verdict.fake_ratio is None
        assert verdict.to_dict()["fake_score"] is None
        assert verdict.frames_used == 0 and verdict.frames_without_face == len(probs)
        assert verdict.votes == {"fake": 0, "real": 0}


def test_records_and_dict_form():
    records = [FrameRecord(3, 0.12, (1.0, 2.0, 30.0, 40.0), 0.8, 0.99), FrameRecord(9, 0.36, None, None)]
    verdict = VotingRule().vote_records(records)
    assert isinstance(verdict, Verdict) and verdict.records == records
    data = verdict.to_dict()
    json.dumps(data)  # plain JSON types only
    assert data["label"] == "fake" and data["votes"] == {"fake": 1, "real": 0}
    assert data["frames"][0] == {"index": 3, "time": 0.12, "box": [1.0, 2.0, 30.0, 40.0], "fake_prob": 0.8, "face_score": 0.99}
    assert data["frames"][1]["box"] is None and data["frames_without_face"] == 1


def test_numpy_thresholds_are_accepted():
    probs = [0.6, 0.65, 0.3]
    for threshold in (np.float32(0.62), np.float64(0.62), np.array(0.62)[()]):
        verdict = VotingRule(threshold=threshold).vote(probs)
        assert verdict.fake_votes == 1 and verdict.label == "real"
        assert type(verdict.threshold) is float and verdict.threshold == pytest.approx(0.62)
    assert VotingRule(threshold=1).vote(probs).fake_votes == 0  # a Python int is a number too
    assert set(VotingRule().vote(probs).votes) == set(LABEL_NAMES)


@pytest.mark.parametrize("probs,message", [([0.2, 1.5], "item 1"), ([math.nan], "item 0")])
def test_invalid_probabilities_are_rejected(probs, message):
    with pytest.raises(ValueError, match=message):
        VotingRule().vote(probs)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(strategy="median"), "strategy"),
        (dict(threshold=2.0), "threshold"),
        (dict(threshold="0.5"), "threshold"),
        (dict(threshold=True), "threshold"),
    ],
)
def test_an_invalid_rule_cannot_be_made(kwargs, message):
    with pytest.raises(ValueError, match=f"^VotingRule: {message}"):
        VotingRule(**kwargs)


def test_a_rule_is_a_frozen_value():
    rule = VotingRule("mean", 0.3)
    assert rule == VotingRule("mean", np.float64(0.3)) and hash(rule) == hash(VotingRule("mean", 0.3))
    assert type(VotingRule("mean", np.float64(0.3)).threshold) is float
    with pytest.raises(AttributeError):
        rule.threshold = 0.9
    assert VotingRule() == VotingRule("majority", 0.5)  # the defaults every entry point shares


def test_max_mean_takes_each_frames_most_fake_face_then_the_mean():
    # Frame 0: faces 0.9 and 0.1 -> 0.9; frame 1: 0.2 -> 0.2; frame 2: no face. Mean of frames 0.55.
    verdict = VotingRule("max_mean").vote([0.9, 0.1, 0.2, None], frames=[0, 0, 1, 2])
    assert verdict.label == "fake" and verdict.fake_score == pytest.approx(0.55) == verdict.score
    assert verdict.frames_used == 2 and verdict.frames_without_face == 1 and verdict.fake_votes == 1
    # The same faces as separate votes: mean over faces 0.4 -> real.
    assert VotingRule("mean").vote([0.9, 0.1, 0.2, None], frames=[0, 0, 1, 2]).label == "real"
    # Without frames every face is a frame of its own: max_mean is the mean.
    assert VotingRule("max_mean").vote([0.9, 0.1, 0.2]).fake_score == pytest.approx(0.4)
    with pytest.raises(ValueError, match="3 probabilities but 2 frames"):
        VotingRule("max_mean").vote([0.9, 0.1, 0.2], frames=[0, 0])


def test_vote_records_groups_faces_by_their_frame():
    records = [FrameRecord(0, 0.0, (0, 0, 1, 1), 0.3), FrameRecord(0, 0.0, (2, 2, 3, 3), 0.8),
               FrameRecord(5, 0.2, (0, 0, 1, 1), 0.4), FrameRecord(9, 0.4, None, None)]
    verdict = VotingRule("max_mean").vote_records(records)
    assert verdict.mean_prob == pytest.approx((0.8 + 0.4) / 2) and verdict.frames_used == 2
    assert verdict.records == records and verdict.to_dict()["strategy"] == "max_mean"
