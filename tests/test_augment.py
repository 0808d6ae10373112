"""augmentation: sbi (dldfd_hf.training.augment): the pipelines' crop in evaluation, seeded jitter in training."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from dldfd_hf.data.sbi import template_landmarks
from dldfd_hf.training.augment import FaceAugment, face_square, h264_roundtrip


def _wide_crop(size: int = 320) -> tuple[Image.Image, np.ndarray]:
    # A 1.8x crop holds the 1.3x crop in its middle, 1.3/1.8 of its side.
    inner = round(size * 1.3 / 1.8)
    offset = (size - inner) / 2
    landmarks = template_landmarks((inner, inner)) + offset
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels), landmarks


def test_face_square_recovers_the_pipelines_crop_from_landmarks():
    image, landmarks = _wide_crop()
    cx, cy, side = face_square(landmarks, image.size)
    assert abs(cx - 160) < 1 and abs(cy - 160) < 1 and abs(side - 320 * 1.3 / 1.8) < 1
    assert face_square(None, (100, 80)) == (50.0, 40.0, 80.0)  # no landmarks: the crop itself


def test_evaluation_cuts_the_square_and_nothing_else():
    image, landmarks = _wide_crop()
    out = FaceAugment()(image, landmarks)
    side = round(320 * 1.3 / 1.8)
    assert abs(out.size[0] - side) <= 1 and out.size[0] == out.size[1]
    # Pixels copied unchanged from the centred square (the landmark fit may round to a neighbour pixel).
    n = out.size[0]
    starts = [(x, y) for x in range(43, 47) for y in range(43, 47)
              if np.array_equal(np.asarray(out), np.asarray(image.crop((x, y, x + n, y + n))))]
    assert len(starts) == 1


def test_training_jitter_is_a_function_of_the_seed_shared_by_a_pair():
    image, landmarks = _wide_crop()
    augment = FaceAugment(jpeg_probability=1.0, colour_probability=1.0, downscale_probability=1.0)
    first = augment(image, landmarks, random.Random(7))
    again = augment(image.copy(), landmarks, random.Random(7))  # the pseudo-fake's twin draws the same
    other = augment(image, landmarks, random.Random(8))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert first.size != other.size or not np.array_equal(np.asarray(first), np.asarray(other))
    sides = {augment(image, landmarks, random.Random(s)).size[0] for s in range(20)}
    # 1.15-1.5x the face box (the pipelines cut 1.3x), each side moved by up to 10%
    side = 320 * 1.3 / 1.8
    assert min(sides) >= side * 1.15 / 1.3 * 0.9 - 1 and max(sides) <= side * 1.5 / 1.3 * 1.1 + 1
    assert len(sides) > 10


def _blockiness(image: Image.Image, period: int) -> float:
    """Mean luma step across ``period``-pixel grid lines over the mean step elsewhere (1.0: no grid)."""
    luma = np.asarray(image.convert("L"), dtype=np.float64)
    steps_x, steps_y = np.abs(np.diff(luma, axis=1)), np.abs(np.diff(luma, axis=0))
    on_x = np.arange(steps_x.shape[1]) % period == period - 1
    on_y = np.arange(steps_y.shape[0]) % period == period - 1
    return (steps_x[:, on_x].mean() + steps_y[on_y].mean()) / (steps_x[:, ~on_x].mean() + steps_y[~on_y].mean())


def _smooth_face_like(size: int = 224) -> Image.Image:
    # Smooth shading plus mild texture: what compression turns into macroblocks.
    y, x = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(1)
    base = 120 + 60 * np.sin(3 * x) * np.cos(2 * y) + rng.normal(0, 6, (size, size))
    rgb = np.stack([base, base * 0.8, base * 0.7], axis=-1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(rgb)


def test_h264_roundtrip_carries_macroblocks_that_grow_with_the_crf():
    image = _smooth_face_like()
    c23, c40 = h264_roundtrip(image, 23), h264_roundtrip(image, 40)
    assert c23.size == c40.size == image.size and c40.mode == "RGB"
    # The source has no 16-pixel grid; H.264's 16x16 macroblocks leave one, stronger at c40.
    assert _blockiness(image, 16) < 1.1
    assert _blockiness(c40, 16) > 1.3 > _blockiness(c23, 16) - 0.1
    error = [np.abs(np.asarray(out, float) - np.asarray(image, float)).mean() for out in (c23, c40)]
    assert 0 < error[0] < error[1]
    # Shrunk before encoding: the macroblocks land on a coarser grid of the restored crop.
    assert h264_roundtrip(image, 40, scale=0.5).size == image.size


def test_h264_probability_compresses_a_pair_alike_and_changes_nothing_when_zero():
    image, landmarks = _wide_crop()
    always = FaceAugment(h264_probability=1.0, colour_probability=0.0)
    a, b = (always(image, landmarks, random.Random(7)) for _ in range(2))
    assert np.array_equal(np.asarray(a), np.asarray(b))  # same seed: the same re-encoding
    never = FaceAugment(h264_probability=0.0)
    assert np.array_equal(np.asarray(never(image, landmarks, random.Random(3))),
                          np.asarray(FaceAugment()(image, landmarks, random.Random(3))))
    with pytest.raises(ValueError, match="h264_crf"):
        FaceAugment(h264_crf=(40, 23))
