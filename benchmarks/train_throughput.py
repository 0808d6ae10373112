#!/usr/bin/env python
"""Training throughput: DLDFD vs its plain backbone, and the input pipeline. Prints ONE JSON line.

    python benchmarks/train_throughput.py                                   # CPU, fp32
    python benchmarks/train_throughput.py --device cuda --bf16 --channels-last --batch-size 128
    python benchmarks/train_throughput.py --corpus CORPUS --workers 0 2 8

- ``train_img_per_s``: optimizer steps (forward, BCE on one logit, backward, Adam) per second x
  batch size, for ``dldfd_resnet50`` and ``resnet50`` measured in the same run, on random tensors
  (no input pipeline); ``dldfd_over_backbone`` is their ratio: what the augmented layers cost.
- ``loading_img_per_s``: images per second out of the training DataLoader of ``examples/train.py``
  (decode PNG/JPEG face crops, resize, flip, normalise in worker processes), per worker count,
  from ``--corpus`` or from a temporary corpus of synthetic 224 px PNG crops. Loading is not the
  bottleneck when it exceeds the training rate at the same number of workers.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import datasets
import numpy as np
import timm
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader

import dldfd_hf  # noqa: F401  (registers the dldfd_* models)
from dldfd_hf.training.data import (
    EpochSampler,
    FrameDataset,
    FrameTransform,
    collate_frames,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--models", nargs="*", default=["dldfd_resnet50", "resnet50"], help="none: loading only")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--corpus", type=Path, help="corpus folder for the loading benchmark (default: synthetic)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to time")
    parser.add_argument("--loader-batches", type=int, default=8, help="timed batches per worker count")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args()


def build_model(name: str) -> torch.nn.Module:
    # One fake logit for both, so the head and loss are identical and only the stem differs.
    return timm.create_model(name, num_classes=1)


def train_throughput(name: str, args: argparse.Namespace) -> float:
    device = torch.device(args.device)
    model = build_model(name).to(device).train()
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device).to(memory_format=memory_format)
    y = torch.randint(0, 2, (args.batch_size,), device=device).float()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()

    def step() -> None:
        with autocast:
            logits = model(x)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_corpus(folder: Path, rows: int = 128, size: int = 224):
    """A train split of PNG face-crop-sized images with the corpus's image/label columns."""
    datasets.disable_progress_bars()
    rng = np.random.default_rng(0)
    images = []
    for _ in range(rows):
        # Smooth noise compresses like a photo rather than like white noise.
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"])})
    split = datasets.Dataset.from_dict({"image": images, "label": (rng.random(rows) < 0.8).astype(int).tolist()},
                                       features=features)
    split.save_to_disk(str(folder))
    return datasets.load_from_disk(str(folder))  # memory-mapped, as a real corpus


def loading_throughput(split, workers: int, args: argparse.Namespace) -> float:
    labels = split.select_columns(["label"])["label"]
    transform = FrameTransform(args.image_size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, hflip=0.5)
    loader = DataLoader(FrameDataset(split, transform), batch_size=args.batch_size,
                        sampler=EpochSampler(labels, seed=0), collate_fn=collate_frames, num_workers=workers)
    batches = iter(loader)
    next(batches)  # worker start-up is not throughput
    start, images = time.perf_counter(), 0
    for _ in range(args.loader_batches):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        images += batch["pixel_values"].shape[0]
    return images / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {
        "benchmark": "train_throughput",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": "bf16" if args.bf16 else "fp32",
        "channels_last": args.channels_last,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "steps": args.steps,
        "train_img_per_s": {name: round(train_throughput(name, args), 2) for name in args.models},
    }
    if len(args.models) >= 2:
        first, second = args.models[:2]
        result["dldfd_over_backbone"] = round(result["train_img_per_s"][first] / result["train_img_per_s"][second], 3)
    with tempfile.TemporaryDirectory() as tmp:
        if args.corpus:
            split = datasets.load_from_disk(str(args.corpus))["train"]
        else:
            split = synthetic_corpus(Path(tmp) / "train")
        result["loading_source"] = str(args.corpus) if args.corpus else "synthetic 224px PNG"
        result["loading_img_per_s"] = {str(w): round(loading_throughput(split, w, args), 2) for w in args.workers}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
