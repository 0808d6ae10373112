"""augmentation: sbi (dldfd_hf.training.augment): the pipelines' crop in evaluation, seeded jitter in training."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from dldfd_hf.data.sbi import template_landmarks
from dldfd_hf.training.augment import FaceAugment, face_square


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
