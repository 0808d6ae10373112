"""Corpus build throughput: frames per second through decode + detect (MTCNN) + crop + encode.

Makes an FF++-layout tree at c40 from real face clips (``dldfd synth-ffpp``; not timed), then builds
its corpus with every frame of every video (the paper preset's ``--frames-per-video all``) once
with 1 process and once with 2, and prints ONE JSON line: frames/s and videos/s per process count,
the time the finalising step (Parquet units -> DatasetDict) took, a per-stage breakdown on a few
frames, and the estimated build time of the paper preset (2,341,239 face crops, the paper's
Table 1) at the best measured rate.

    python benchmarks/build_corpus.py                          # CPU
    python benchmarks/build_corpus.py --device cuda --num-proc 1 2 4

Clips default to ../shared/data/videos/{video-retalking,SadTalker} (512-844 px, FF++-like sizes);
the estimate holds for frames of that size (MTCNN detects on frames downscaled to <= 640 px).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from dldfd_hf.data.build import BuildConfig, build_corpus, torch_threads
from dldfd_hf.data.synth import make_synth_tree
from dldfd_hf.media.faces import FaceCropper
from dldfd_hf.media.video_stream import iter_frames

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIPS = [
    *sorted((REPO_ROOT.parent / "shared" / "data" / "videos" / "video-retalking").glob("*.mp4")),
    REPO_ROOT.parent / "shared" / "data" / "videos" / "SadTalker" / "examples_ref_video_WDA_KatieHill_000.mp4",
]
PAPER_FRAMES = 2_341_239  # Table 1: images of all splits, pristine + four methods (~2.4M)


def stage_breakdown(video: Path, frames: int, device: str) -> dict:
    """Seconds per frame of each stage, single process, on the first ``frames`` frames of one video."""
    start = time.perf_counter()
    images = [f.image for _, f in zip(range(frames), iter_frames(video))]
    decode = time.perf_counter() - start
    cropper = FaceCropper(crop_size=224, device=device)
    with torch_threads(1):  # as the builder runs it
        cropper(images[:1])  # warm-up
        start = time.perf_counter()
        faces = cropper(images)
        detect = time.perf_counter() - start
    start = time.perf_counter()
    for found in faces:
        for face in found[:1]:
            face.crop.save(io.BytesIO(), format="PNG")
    encode = time.perf_counter() - start
    n = len(images)
    return {"frames": n, "frame_size": list(images[0].shape[1::-1]), "decode_ms": 1e3 * decode / n,
            "detect_crop_ms": 1e3 * detect / n, "png_encode_ms": 1e3 * encode / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", nargs="+", type=Path, default=DEFAULT_CLIPS, help="real face clips (>= 2)")
    parser.add_argument("--max-frames", type=int, default=16, help="frames per original of the synthetic tree")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2], help="process counts to measure")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", type=Path, help="where to put the tree and corpora (default: a temp dir)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        tmp = Path(tmp)
        tree = make_synth_tree(args.videos, tmp / "tree", compression="c40", max_frames=args.max_frames, progress=False)
        config = BuildConfig(compression="c40", frames_per_video=None)
        results = {}
        for num_proc in args.num_proc:
            output = tmp / f"corpus-{num_proc}"
            start = time.perf_counter()
            summary = build_corpus(tree.root, output, config, splits_dir=tree.splits_dir, num_proc=num_proc,
                                   device=args.device, progress=False)
            total = time.perf_counter() - start
            results[str(num_proc)] = {
                "frames_per_s": summary.frames / summary.seconds,
                "videos_per_s": summary.built / summary.seconds,
                "process_seconds": summary.seconds,  # decode + detect + crop + encode (+ worker start-up)
                "finalize_seconds": total - summary.seconds,
                "frames": summary.frames,
                "videos": summary.built,
                "crops": sum(sum(c.values()) for c in summary.report["class_images"].values()),
            }
        breakdown = stage_breakdown(tree.videos[0].clip, 16, args.device)
    best = max(results, key=lambda k: results[k]["frames_per_s"])
    print(json.dumps({
        "benchmark": "build_corpus",
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads_per_process": 1,
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other processes on the CPU
        "compression": "c40",
        "clips": [p.name for p in args.videos],
        "results": results,
        "stages_1proc": breakdown,
        "paper_preset_frames": PAPER_FRAMES,
        "paper_preset_hours": {k: PAPER_FRAMES / r["frames_per_s"] / 3600 for k, r in results.items()},
        "best_num_proc": int(best),
    }))


if __name__ == "__main__":
    main()
