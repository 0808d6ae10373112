"""Video verdicts from per-frame fake probabilities: majority (ties by mean), mean, threshold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dldfd_hf.labels import LABEL_NAMES
from dldfd_hf.inference.voting import FrameRecord, Verdict, vote


def test_majority_counts_votes_at_the_threshold():
    verdict = vote([0.9, 0.8, 0.2])
    assert verdict.label == "fake"
    assert verdict.fake_votes == 2 and verdict.votes == {"fake": 2, "real": 1}
    assert verdict.fake_ratio == pytest.approx(2 / 3) and verdict.fake_score == pytest.approx(2 / 3)
    assert verdict.score == pytest.approx(2 / 3)  # the share of the votes that agree with "fake"
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
    assert fake_tie.score == real_tie.score == fake_tie.fake_score == real_tie.fake_score == 0.5


def test_mean_strategy_can_disagree_with_majority():
    probs = [0.95, 0.4, 0.45]  # one fake vote of three, but mean 0.6
    assert vote(probs, "majority").label == "real"
    mean = vote(probs, "mean")
    assert mean.label == "fake" and mean.score == pytest.approx(0.6) and mean.strategy == "mean"
    assert mean.fake_score == pytest.approx(0.6)


def test_score_is_the_confidence_of_the_label_and_fake_score_measures_fakeness():
    # Hugging Face convention: ``score`` belongs to ``label``; ``fake_score`` is always about "fake".
    real = vote([0.1, 0.2, 0.9, 0.3])  # 1 fake vote of 4: real, and 3 of 4 frames agree
    assert real.label == "real"
    assert real.score == pytest.approx(0.75) and real.fake_score == pytest.approx(0.25)
    real_mean = vote([0.1, 0.2, 0.9, 0.3], "mean")  # mean P(fake) 0.375
    assert real_mean.label == "real"
    assert real_mean.score == pytest.approx(0.625) and real_mean.fake_score == pytest.approx(0.375)
    fake_mean = vote([0.7, 0.9], "mean")
    assert fake_mean.label == "fake" and fake_mean.score == fake_mean.fake_score == pytest.approx(0.8)
    # A confident verdict has a high score whichever way it goes.
    assert vote([0.0, 0.0, 0.0]).score == vote([1.0, 1.0, 1.0]).score == 1.0
    data = real.to_dict()
    assert (data["label"], data["score"], data["fake_score"]) == ("real", pytest.approx(0.75), pytest.approx(0.25))


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
        assert verdict.label is None and verdict.score is None and verdict.fake_score is None
        assert verdict.mean_prob is None and verdict.fake_ratio is None
        assert verdict.to_dict()["fake_score"] is None
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


def test_numpy_thresholds_are_accepted():
    probs = [0.6, 0.65, 0.3]
    for threshold in (np.float32(0.62), np.float64(0.62), np.array(0.62)[()]):
        verdict = vote(probs, threshold=threshold)
        assert verdict.fake_votes == 1 and verdict.label == "real"
        assert type(verdict.threshold) is float and verdict.threshold == pytest.approx(0.62)
    assert vote(probs, threshold=1).fake_votes == 0  # a Python int is a number too
    assert set(vote(probs).votes) == set(LABEL_NAMES)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(fake_probs=[0.2, 1.5]), "item 1"),
        (dict(fake_probs=[math.nan]), "item 0"),
        (dict(fake_probs=[0.2], strategy="median"), "strategy"),
        (dict(fake_probs=[0.2], threshold=2.0), "threshold"),
        (dict(fake_probs=[0.2], threshold="0.5"), "threshold"),
        (dict(fake_probs=[0.2], threshold=True), "threshold"),
    ],
)
def test_invalid_input_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vote(**kwargs)
