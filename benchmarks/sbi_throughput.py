#!/usr/bin/env python
"""Self-blended pseudo-fakes: generation speed, and what they cost the training input pipeline.
Prints ONE JSON line.

    python benchmarks/sbi_throughput.py                       # synthetic 224 px crops
    python benchmarks/sbi_throughput.py --corpus CORPUS       # a built corpus (build-faces / build-ffpp)

- ``generation_per_s``: pseudo-fakes per second on one core (``SelfBlender.blend`` on decoded
  crops: jitter, mask, blend; PIL's loops are single-threaded), at the corpus's crop size.
- ``loading_img_per_s``: images per second out of ``examples/train.py``'s training DataLoader
  (decode, [self-blend], resize, flip, normalise, collate) for ``plain`` (no pseudo-fakes),
  ``sbi_pairs`` (``pseudo_fake_pairs``: every real row as it is and as its pseudo-fake, the SBI
  config), ``sbi_p0.5`` (independent draws), and the pairs with the shared augmentation
  (``augmentation: sbi``) without and with H.264 re-encoding (``sbi_pairs_aug``,
  ``sbi_pairs_aug_h264``: ``h264_probability`` 0.5, the shipped recipe); every mode timed in the same run, interleaved
  over ``--repeats`` rounds (median), so load from other processes hits all of them alike.
- ``loading_slowdown``: ``1 - sbi / plain`` per mode (the goal: <= 0.20).

Without ``--corpus``, the crops are synthetic (smooth noise, 224 px PNG) with typical landmarks
(:func:`dldfd_hf.data.sbi.template_landmarks`): the blend's cost depends on the crop and face
size, not on the face itself.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader

from dldfd_hf.data.sbi import SelfBlender, template_landmarks
from dldfd_hf.training.augment import FaceAugment
from dldfd_hf.training.data import (
    EpochSampler,
    FrameDataset,
    FrameTransform,
    collate_frames,
)
from dldfd_hf.training.pseudo_fakes import PseudoFakePairs, rows_used


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="corpus folder (its train split's real rows); default: synthetic")
    parser.add_argument("--image-size", type=int, default=224, help="model input size (the paper's 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: the main process, one core)")
    parser.add_argument("--batches", type=int, default=8, help="timed batches per mode and round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (the median is reported)")
    parser.add_argument("--generate", type=int, default=300, help="pseudo-fakes timed for generation_per_s")
    return parser.parse_args()


def synthetic_split(folder: Path, rows: int = 96, size: int = 224):
    """A train split of PNG crops with the corpus's image/label/landmarks columns (all real)."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(rows):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)  # compresses like a photo
        buffer = io.BytesIO()
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    marks = template_landmarks((size, size)).tolist()
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=["real", "fake"]),
        "landmarks": datasets.List(datasets.List(datasets.Value("float32"), length=2), length=5),
    })
    split = datasets.Dataset.from_dict({"image": images, "label": [0] * rows, "landmarks": [marks] * rows}, features=features)
    split.save_to_disk(str(folder))
    return datasets.load_from_disk(str(folder))  # memory-mapped, as a real corpus


def generation_per_s(split, count: int) -> float:
    rows = [split[i] for i in range(min(len(split), 64))]
    blender = SelfBlender()
    for i in range(10):  # warm-up
        blender.blend(rows[i % len(rows)]["image"], rows[i % len(rows)]["landmarks"], seed=i)
    start = time.perf_counter()
    for i in range(count):
        row = rows[i % len(rows)]
        blender.blend(row["image"], row["landmarks"], seed=i)
    return count / (time.perf_counter() - start)


def make_loader(split, mode: str, args: argparse.Namespace) -> DataLoader:
    labels = split.select_columns(["label"])["label"]
    transform = FrameTransform(args.image_size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, hflip=0.5)
    sampler = EpochSampler(labels, seed=0)
    blender = augment = None
    if mode.startswith("sbi_pairs"):
        sampler, blender = PseudoFakePairs(sampler, labels), SelfBlender()
    elif mode == "sbi_p0.5":
        blender = SelfBlender(0.5)
    if mode.startswith("sbi_pairs_aug"):
        augment = FaceAugment(h264_probability=0.5 if mode.endswith("h264") else 0.0)
    return DataLoader(FrameDataset(split, transform, blender, augment), batch_size=args.batch_size, sampler=sampler,
                      collate_fn=collate_frames, num_workers=args.workers, persistent_workers=args.workers > 0)


def timed_batches(loader: DataLoader, count: int, state: dict) -> float:
    """Images per second over ``count`` batches, continuing the loader's iterator across calls."""
    images, start = 0, time.perf_counter()
    for _ in range(count):
        try:
            batch = next(state["it"])
        except (KeyError, StopIteration):
            state["epoch"] = state.get("epoch", -1) + 1
            loader.sampler.set_epoch(state["epoch"])
            state["it"] = iter(loader)
            batch = next(state["it"])
        images += batch["pixel_values"].shape[0]
    return images / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        if args.corpus:
            split = rows_used(datasets.load_from_disk(str(args.corpus))["train"], "sbi")
        else:
            split = synthetic_split(Path(tmp) / "train")
        crop = split[0]["image"].size
        modes = ("plain", "sbi_pairs", "sbi_p0.5", "sbi_pairs_aug", "sbi_pairs_aug_h264")
        loaders = {mode: make_loader(split, mode, args) for mode in modes}
        states = {mode: {} for mode in modes}
        for mode in modes:
            timed_batches(loaders[mode], 1, states[mode])  # worker start-up and first decode: not throughput
        rates = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode in modes:
                rates[mode].append(timed_batches(loaders[mode], args.batches, states[mode]))
        loading = {mode: statistics.median(r) for mode, r in rates.items()}
        result = {
            "benchmark": "sbi_throughput",
            "cpu": platform.processor() or platform.machine(),
            "source": str(args.corpus) if args.corpus else "synthetic PNG crops, template landmarks",
            "crop_size": list(crop),
            "image_size": args.image_size,
            "rows": len(split),
            "workers": args.workers,
            "batch_size": args.batch_size,
            "generation_per_s": round(generation_per_s(split, args.generate), 1),
            "loading_img_per_s": {mode: round(rate, 1) for mode, rate in loading.items()},
            "loading_slowdown": {mode: round(1 - loading[mode] / loading["plain"], 3) for mode in modes[1:]},
            "repeats": args.repeats,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
