"""Pseudo-manipulations (5-point aligned face swap, self-blend) and the synth-ffpp tree maker."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from datasets import load_from_disk

from dldfd_hf.cli import main as dldfd
from dldfd_hf.data import index_ffpp, load_splits
from dldfd_hf.data.ffpp import original_dir
from dldfd_hf.data.blending import (
    Jitter,
    apply_transform,
    face_mask,
    face_swap,
    match_colour,
    self_blend,
    similarity_transform,
    warp,
)
from dldfd_hf.data.synth import CRF, SynthError, make_synth_tree
from dldfd_hf.data.video_writer import write_video
from dldfd_hf.media.video_reader import probe
from dldfd_hf.media.video_stream import iter_frames
from tests.conftest import SYNTH_FFPP_COMPRESSION as COMPRESSION
from tests.conftest import SYNTH_FFPP_MAX_FRAMES as VIDEO_FRAMES

# Landmarks of an upright face in a 200 x 200 image: eyes, nose, mouth corners.
LANDMARKS = np.array([[70.0, 80.0], [130.0, 80.0], [100.0, 110.0], [75.0, 140.0], [125.0, 140.0]])


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_similarity_transform_recovers_a_known_transform():
    matrix = similarity(1.7, 23.0, -12.0, 40.0)
    estimated = similarity_transform(LANDMARKS, apply_transform(matrix, LANDMARKS))
    np.testing.assert_allclose(estimated, matrix, atol=1e-9)
    # mirrored points are fitted by a rotation, never a reflection
    mirrored = LANDMARKS * [-1, 1]
    fitted = similarity_transform(LANDMARKS, mirrored)
    assert np.linalg.det(fitted[:, :2]) > 0
    with pytest.raises(ValueError, match="all the same"):
        similarity_transform(np.ones((5, 2)), LANDMARKS)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        similarity_transform(LANDMARKS, LANDMARKS[:3])


def test_warp_moves_pixels_where_the_transform_says():
    image = np.zeros((200, 200, 3), np.uint8)
    image[79:82, 69:72] = 255  # a dot on the left eye
    matrix = similarity(1.2, 10.0, 15.0, -5.0)
    out = warp(image, matrix, (200, 200))
    y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    np.testing.assert_allclose([x, y], apply_transform(matrix, [[70.0, 80.0]])[0], atol=1.5)


def test_face_mask_covers_the_face_feathered_and_follows_its_roll():
    mask = face_mask(LANDMARKS, (200, 200))
    assert mask[110, 100] == pytest.approx(1.0) and mask[5, 5] == 0.0
    assert ((mask > 0.05) & (mask < 0.95)).sum() > 200  # a soft edge, not a hard cut
    mouth = face_mask(LANDMARKS, (200, 200), region="mouth")
    assert mouth[140, 100] == pytest.approx(1.0) and mouth[80, 70] == 0.0 and mouth.sum() < mask.sum() / 2
    # the same face rolled by 90 degrees gives the mask rolled by 90 degrees
    rolled = np.stack([LANDMARKS[:, 1], 199 - LANDMARKS[:, 0]], axis=1)  # (x, y) -> (y, 199 - x)
    rotated = face_mask(rolled, (200, 200))
    overlap = np.minimum(rotated, np.rot90(mask)).sum() / np.maximum(rotated, np.rot90(mask)).sum()
    assert overlap > 0.95
    with pytest.raises(ValueError, match="region"):
        face_mask(LANDMARKS, (200, 200), region="eyes")


def test_match_colour_moves_masked_statistics_to_the_target():
    rng = np.random.default_rng(0)
    source = rng.normal(80, 10, (50, 50, 3)).clip(0, 255)
    target = rng.normal([150, 120, 100], [15, 8, 12], (50, 50, 3)).clip(0, 255)
    mask = np.zeros((50, 50), np.float32)
    mask[10:40, 10:40] = 1
    out = match_colour(source, target, mask)
    inside = mask > 0.5
    np.testing.assert_allclose(out[inside].mean(0), target[inside].mean(0), atol=1e-3)
    np.testing.assert_allclose(out[inside].std(0), target[inside].std(0), rtol=1e-3)
    # contrast changes are capped at 2x, so a flat source region is not blown up into noise
    flat = match_colour(source * 0.1, target, mask)
    assert flat[inside].std(0).max() == pytest.approx(2 * (source * 0.1)[inside].std(0).max(), rel=1e-3)


@pytest.fixture(scope="module")
def faces(synth_ffpp_corpus):
    """Face crops of two different people (train originals 000 and 001) with their MTCNN landmarks."""
    train = load_from_disk(str(synth_ffpp_corpus))["train"]
    picked = {}
    for row in train:
        if row["method"] == 0 and row["video_id"] not in picked:
            picked[row["video_id"]] = (np.asarray(row["image"]), np.asarray(row["landmarks"]))
    return picked["000"], picked["001"]


def test_face_swap_between_two_real_people(faces):
    (target, target_marks), (source, source_marks) = faces
    swap = face_swap(target, target_marks, source, source_marks)
    outside, inside = swap.mask == 0, swap.mask > 0.95
    assert outside.sum() > 0.2 * outside.size and inside.sum() > 0.1 * inside.size
    np.testing.assert_array_equal(swap.image[outside], target[outside])  # the rest is untouched
    assert np.abs(swap.image[inside].astype(float) - target[inside]).mean() > 8  # the face is another one
    # 5 points of two real faces are fitted well by one similarity (residual << eye distance)
    matrix = similarity_transform(source_marks, target_marks)
    residual = np.linalg.norm(apply_transform(matrix, source_marks) - target_marks, axis=1).max()
    assert residual < 0.15 * np.linalg.norm(target_marks[1] - target_marks[0])
    # swapping a face with itself changes (almost) nothing: alignment and colour match are exact
    same = face_swap(target, target_marks, target, target_marks)
    assert np.abs(same.image.astype(float) - target).mean() < 1.0


def test_self_blend_changes_only_the_face_and_is_reproducible(faces):
    (image, marks), _ = faces
    first = self_blend(image, marks, rng=np.random.default_rng(7))
    again = self_blend(image, marks, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first.image, again.image)
    outside, inside = first.mask == 0, first.mask > 0.95
    np.testing.assert_array_equal(first.image[outside], image[outside])
    assert np.abs(first.image[inside].astype(float) - image[inside]).mean() > 5
    mouth = self_blend(image, marks, Jitter(offsets=(20.0, -20.0, 20.0)), region="mouth")
    changed = np.abs(mouth.image.astype(float) - image).mean(2) > 3
    eyes_y = int(marks[:2, 1].mean())
    assert changed[eyes_y + 1 :].sum() > 0 and changed[: eyes_y - 5].sum() == 0  # the mouth region only


def test_synth_tree_layout_splits_and_videos(synth_ffpp_tree):
    splits = load_splits(synth_ffpp_tree / "splits")
    assert {s: len(p) for s, p in splits.pairs.items()} == {"train": 1, "validation": 1, "test": 1}
    index = index_ffpp(synth_ffpp_tree, COMPRESSION, splits_dir=synth_ffpp_tree / "splits")
    assert index.class_counts() == {s: {"real": 2, "fake": 8} for s in ("train", "validation", "test")}
    manifest = json.loads((synth_ffpp_tree / "synth_manifest.json").read_text())
    assert manifest["crf"] == CRF[COMPRESSION] == 23
    for pairs in splits.pairs.values():
        for a, b in pairs:  # two different people: segments of two different clips
            assert manifest["videos"][a]["clip"] != manifest["videos"][b]["clip"]
    for video in index.videos:
        info = probe(video.path)
        assert (info.frame_count, info.fps, info.width, info.height, info.codec) == (VIDEO_FRAMES, 25.0, 360, 288, "h264")
    # an original is its clip's frames, re-encoded at CRF 23: close to the source (PSNR > 30 dB)
    entry = manifest["videos"]["003"]
    clip_frames = [f.image for f in iter_frames(entry["clip"]) if entry["start"] <= f.index < entry["start"] + VIDEO_FRAMES]
    ours = [f.image for f in iter_frames(original_dir(synth_ffpp_tree, COMPRESSION) / "003.mp4")]
    mse = np.mean([(a.astype(float) - b) ** 2 for a, b in zip(clip_frames, ours)])
    assert len(ours) == len(clip_frames) == VIDEO_FRAMES and 10 * math.log10(255**2 / mse) > 30


def test_synth_errors_are_clear_and_leave_nothing(tmp_path, shared_data, capsys):
    clip = sorted((shared_data / "videos" / "LipNet_GRID").glob("*.mpg"))[0]
    with pytest.raises(SynthError, match="need at least 2 videos of different people, found 1"):
        make_synth_tree([clip], tmp_path / "one")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep")
    with pytest.raises(SynthError, match="already exists and is not empty"):
        make_synth_tree([clip, clip], occupied)
    assert [p.name for p in occupied.iterdir()] == ["mine.txt"]
    # an unreadable clip and a clip without faces are skipped and named; too few are left
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"\x00" * 2048)
    write_video(videos / "wall.mp4", [np.full((64, 64, 3), 128, np.uint8)] * 6, fps=25)
    output = tmp_path / "tree"
    assert dldfd(["synth-ffpp", str(videos), str(output), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: only 0 usable video segment(s)" in err and "broken.mp4: not a video" in err
    assert "wall.mp4 frames 0-1 (no face found)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied", "videos"]  # no tree, no staging
    with pytest.raises(SynthError, match="no synthetic recipe for DeepFakeDetection"):
        make_synth_tree(videos, output, methods=["DeepFakeDetection"])
