"""Frame and video deepfake metrics: plain functions and the evaluate modules agree with scikit-learn."""

from __future__ import annotations


import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    roc_auc_score,
    roc_curve,
)

import dldfd_hf.metrics as metrics
from dldfd_hf.metrics import deepfake_metrics, equal_error_rate, frame_metrics, group_videos, video_metrics


@pytest.fixture(scope="module")
def frames():
    """200 frames, 1 real : 3 fake, overlapping score distributions (so nothing is trivially 0 or 1)."""
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.75).astype(int)
    probs = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
    return labels, probs


@pytest.fixture(scope="module")
def evaluate_modules():
    return metrics.load("frame"), metrics.load("video")


def dense_eer(labels, probs) -> float:
    """Independent EER: walk the (linearly interpolated) ROC curve on a fine FPR grid."""
    fpr, tpr, _ = roc_curve(labels, probs, drop_intermediate=False)
    grid = np.linspace(0, 1, 200_001)
    fnr = 1 - np.interp(grid, fpr, tpr)
    return float(grid[np.argmin(np.abs(fnr - grid))])


def test_frame_metrics_equal_sklearn(frames):
    labels, probs = frames
    result = frame_metrics(labels, probs)
    predicted = (probs >= 0.5).astype(int)
    assert result["tcr"] == pytest.approx(accuracy_score(labels, predicted))
    assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert result["auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert result["ap"] == pytest.approx(average_precision_score(labels, probs))
    assert result["eer"] == pytest.approx(dense_eer(labels, probs), abs=1e-4)
    assert 0.05 < result["eer"] < 0.5
    assert (result["num_frames"], result["num_real"], result["num_fake"]) == (200, (labels == 0).sum(), labels.sum())


def test_frame_threshold_moves_tcr_not_auc(frames):
    labels, probs = frames
    low, high = frame_metrics(labels, probs, threshold=0.2), frame_metrics(labels, probs, threshold=0.8)
    assert low["tcr"] == pytest.approx(accuracy_score(labels, probs >= 0.2))
    assert high["tcr"] == pytest.approx(accuracy_score(labels, probs >= 0.8))
    assert low["tcr"] != high["tcr"] and low["auc"] == high["auc"]


@pytest.mark.parametrize(
    "real, fake, expected",
    [
        ([0.1, 0.2, 0.3], [0.7, 0.8, 0.9], 0.0),        # separable
        ([0.7, 0.8, 0.9], [0.1, 0.2, 0.3], 1.0),        # inverted
        ([0.2, 0.6], [0.4, 0.8], 0.5),                  # crossing at an operating point
        ([0.1, 0.3, 0.5], [0.2, 0.4, 0.6], 1 / 3),
        ([0.3, 0.6], [0.5, 0.8, 0.9], 1 / 3),           # crossing between operating points
    ],
)
def test_eer_on_hand_made_scores(real, fake, expected):
    labels = [0] * len(real) + [1] * len(fake)
    assert equal_error_rate(labels, real + fake) == pytest.approx(expected)
    assert equal_error_rate(labels, real + fake) == pytest.approx(dense_eer(labels, real + fake), abs=1e-4)


def test_single_class_gives_none_not_nan():
    result = frame_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert result["auc"] is None and result["ap"] is None and result["eer"] is None
    assert result["tcr"] == pytest.approx(2 / 3) and result["balanced_accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "labels, probs, message",
    [
        ([0, 2], [0.1, 0.2], "0 \\(real\\) or 1 \\(fake\\)"),
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([0, 1], [0.1, 3.2], "probabilities in \\[0, 1\\]"),
        ([0, 1], [0.1, float("nan")], "probabilities"),
    ],
)
def test_bad_inputs_raise_clear_errors(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        frame_metrics(labels, probs)


# Frames of five videos. "000_003" exists for two methods and must stay two videos.
VIDEO_FRAMES = [
    # method, video_id, label, P(fake)
    ("Deepfakes", "000_003", 1, 0.9),
    ("Deepfakes", "000_003", 1, 0.8),
    ("Deepfakes", "000_003", 1, 0.3),   # 2 of 3 votes fake -> fake; mean 0.667
    ("FaceSwap", "000_003", 1, 0.4),
    ("FaceSwap", "000_003", 1, 0.45),
    ("FaceSwap", "000_003", 1, 0.95),   # 1 of 3 fake -> real (wrong); mean 0.6
    ("original", "000", 0, 0.1),
    ("original", "000", 0, 0.2),        # 0 of 2 -> real; mean 0.15
    ("original", "003", 0, 0.7),
    ("original", "003", 0, 0.65),
    ("original", "003", 0, 0.2),        # 2 of 3 fake -> fake (wrong); mean 0.517
    ("FaceSwap", "003_000", 1, 0.55),   # 1 of 1 -> fake; mean 0.55
]


def _columns():
    methods, ids, labels, probs = map(list, zip(*VIDEO_FRAMES))
    return methods, ids, labels, probs


def test_video_grouping_never_merges_ids_across_methods():
    methods, ids, labels, probs = _columns()
    videos = group_videos(labels, probs, methods, ids)
    assert [v.key for v in videos] == [
        ("Deepfakes", "000_003"), ("FaceSwap", "000_003"), ("original", "000"), ("original", "003"),
        ("FaceSwap", "003_000"),
    ]
    assert [len(v.fake_probs) for v in videos] == [3, 3, 2, 3, 1]


def test_video_metrics_majority_vote_and_mean_prob_auc():
    methods, ids, labels, probs = _columns()
    result = video_metrics(labels, probs, methods, ids)
    video_labels = [1, 1, 0, 0, 1]
    voted = [1, 0, 0, 1, 1]
    mean_probs = [np.mean([0.9, 0.8, 0.3]), np.mean([0.4, 0.45, 0.95]), 0.15, np.mean([0.7, 0.65, 0.2]), 0.55]
    assert result["num_videos"] == 5 and (result["num_real"], result["num_fake"]) == (2, 3)
    assert result["tcr"] == pytest.approx(accuracy_score(video_labels, voted))  # 3/5
    assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(video_labels, voted))
    assert result["auc"] == pytest.approx(roc_auc_score(video_labels, mean_probs))
    assert result["mean_prob_tcr"] == pytest.approx(accuracy_score(video_labels, np.array(mean_probs) >= 0.5))
    # Grouping by video_id alone would merge the two "000_003" videos: a different (wrong) count.
    assert result["num_videos"] != len({i for i in ids})


def test_video_metrics_break_exact_ties_by_the_mean_probability():
    """Two fake votes and two real ones: the verdict follows the mean, as dldfd_hf.inference.voting (and the paper) decide."""
    probs = [0.9, 0.95, 0.1, 0.2,    # tie, mean 0.5375 -> fake
             0.6, 0.55, 0.05, 0.1]   # tie, mean 0.325 -> real
    labels = [1] * 4 + [0] * 4
    methods, ids = ["Deepfakes"] * 4 + ["original"] * 4, ["000_003"] * 4 + ["000"] * 4
    result = video_metrics(labels, probs, methods, ids)
    assert result["tcr"] == 1.0 and result["balanced_accuracy"] == 1.0
    flipped = video_metrics([0] * 4 + [1] * 4, probs, ["original"] * 4 + ["Deepfakes"] * 4, ids[::-1])
    assert flipped["tcr"] == 0.0


def test_per_method_breakdown():
    methods, ids, labels, probs = _columns()
    breakdown = deepfake_metrics(labels, probs, methods, ids)["per_method"]
    assert sorted(breakdown) == ["Deepfakes", "FaceSwap", "original"]
    fs = breakdown["FaceSwap"]
    assert (fs["num_frames"], fs["num_videos"]) == (4, 2)
    assert fs["frame_accuracy"] == pytest.approx(2 / 4)        # 0.95 and 0.55 are >= 0.5
    assert fs["video_accuracy"] == pytest.approx(1 / 2)
    real_frames = [0.1, 0.2, 0.7, 0.65, 0.2]
    fs_frames = [0.4, 0.45, 0.95, 0.55]
    assert fs["frame_auc"] == pytest.approx(roc_auc_score([0] * 5 + [1] * 4, real_frames + fs_frames))
    assert fs["video_auc"] == pytest.approx(roc_auc_score([0, 0, 1, 1], [0.15, np.mean([0.7, 0.65, 0.2]), 0.6, 0.55]))
    real = breakdown["original"]
    assert real["video_accuracy"] == pytest.approx(1 / 2) and "frame_auc" not in real
    assert real["mean_fake_prob"] == pytest.approx(np.mean(real_frames))


def test_a_video_with_two_labels_is_an_error():
    with pytest.raises(ValueError, match="both real and fake"):
        group_videos([0, 1], [0.1, 0.9], ["original", "original"], ["000", "000"])


def test_evaluate_modules_equal_plain_functions(frames, evaluate_modules):
    frame_module, video_module = evaluate_modules
    labels, probs = frames
    # Batches added one by one, then computed: the streaming path users take in eval loops.
    for start in range(0, 200, 64):
        frame_module.add_batch(predictions=probs[start:start + 64], references=labels[start:start + 64])
    assert frame_module.compute(threshold=0.4) == pytest.approx(frame_metrics(labels, probs, threshold=0.4))

    methods, ids, video_labels, video_probs = _columns()
    result = video_module.compute(predictions=video_probs, references=video_labels, methods=methods, video_ids=ids)
    assert result == deepfake_metrics(video_labels, video_probs, methods, ids)
    assert result["video"]["num_videos"] == 5


def test_module_paths_and_unknown_name():
    assert metrics.module_path("frame").endswith("deepfake_frame.py")
    with pytest.raises(ValueError, match="unknown dldfd metric 'auc'"):
        metrics.module_path("auc")


