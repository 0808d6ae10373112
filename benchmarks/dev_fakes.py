"""Detection of REAL manipulations no model here was trained on: ``../shared/data/dev_fakes``.

The development protocol of this project: every image goes through the video-detection pipeline
(MTCNN, the largest face, the model's P(fake)), exactly as ``dldfd detect`` scores a photo, and

* ``yonsei_photoshop``: frame ROC AUC of the 102 Photoshop composites against the 100 Yonsei reals
  (``faces/yonsei_real_and_fake_face_160``, kept out of the shipped model's training);
* ``dfdc_crops``: frame ROC AUC of 11 fake against 11 real DFDC face crops;
* ``dfdc_videos``: the verdicts (majority of 32 frames, and mean P(fake)) on two DFDC fake videos.

Images in which MTCNN finds no face are counted and left out of the AUC. ``--model`` takes what
``dldfd detect --model`` takes, several times, plus ``imagenet:ARCH`` (the architecture with its
ImageNet backbone and untrained head and stem: where training starts) and ``random:ARCH`` (all
random). Prints a table and ONE JSON line; ``--output FILE`` also writes the JSON (the model card
renders its table from it).

    python benchmarks/dev_fakes.py --model dldfd_efficientnet_lite0.sbi_faces \
        --model imagenet:dldfd_efficientnet_lite0 --model random:dldfd_efficientnet_lite0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import timm
import torch

import dldfd_hf  # noqa: F401  registers the models
from dldfd_hf.inference.loading import load_video_pipeline
from dldfd_hf.inference.pipelines import TASK, DeepfakeVideoDetectionPipeline
from dldfd_hf.metrics.core import frame_metrics
from dldfd_hf.modeling_dldfd import DLDFDForImageClassification, image_processor_for

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
IMAGE_SETS = {
    # set: (fake folder, real folder), relative to the data folder
    "yonsei_photoshop": ("dev_fakes/yonsei_photoshop", "faces/yonsei_real_and_fake_face_160"),
    "dfdc_crops": ("dev_fakes/dfdc_crops/fake", "dev_fakes/dfdc_crops/real"),
}
VIDEO_FOLDER = "dev_fakes/dfdc_videos"


def build_pipeline(spec: str, device: str):
    """The detection pipeline of ``spec`` (see the module doc for ``imagenet:`` / ``random:``)."""
    kind, _, arch = spec.partition(":")
    if kind in ("imagenet", "random") and arch:
        kwargs = dict(backbone_pretrained=True) if kind == "imagenet" else dict(stem_init="random")
        model = DLDFDForImageClassification.from_timm(timm.create_model(arch, **kwargs)).eval().to(device)
        return DeepfakeVideoDetectionPipeline(
            model=model, image_processor=image_processor_for(model.config), task=TASK, device=torch.device(device)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_video_pipeline(spec, device=device)


def _images(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def score_images(detector, paths: List[Path]) -> List[Any]:
    """P(fake) of the largest face per image (None where no face was found)."""
    scores = []
    for path in paths:
        result = detector(str(path), select="largest")
        faces = [r for r in result["frames"] if r.get("box") is not None]
        scores.append(faces[0]["fake_prob"] if faces else None)
    return scores


def image_set(detector, data: Path, name: str) -> Dict[str, Any]:
    fake_dir, real_dir = (data / p for p in IMAGE_SETS[name])
    fakes, reals = score_images(detector, _images(fake_dir)), score_images(detector, _images(real_dir))
    labels = [1] * len(fakes) + [0] * len(reals)
    scored = [(l, s) for l, s in zip(labels, fakes + reals) if s is not None]
    metrics = frame_metrics([l for l, _ in scored], [s for _, s in scored])
    return {
        "auc": metrics["auc"], "balanced_accuracy": metrics["balanced_accuracy"],
        "num_fake": metrics["num_fake"], "num_real": metrics["num_real"],
        "without_face": sum(s is None for s in fakes + reals),
        "mean_fake_prob": {"fake": _mean([s for s in fakes if s is not None]), "real": _mean([s for s in reals if s is not None])},
    }


def _mean(values: List[float]) -> Any:
    return round(sum(values) / len(values), 4) if values else None


def videos(detector, data: Path, num_frames: int) -> List[Dict[str, Any]]:
    folder = data / VIDEO_FOLDER
    truth = json.loads((folder / "metadata.json").read_text())
    out = []
    for path in sorted(folder.glob("*.mp4")):
        result = detector(str(path), num_frames=num_frames)
        out.append({
            "file": path.name, "truth": truth.get(path.name, {}).get("label", "?").lower(),
            "verdict": result["label"], "fake_ratio": result["fake_ratio"], "mean_prob": result["mean_prob"],
            "frames_used": result["frames_used"],
        })
    return out


def evaluate(spec: str, data: Path, device: str, num_frames: int) -> Dict[str, Any]:
    start = time.perf_counter()
    detector = build_pipeline(spec, device)
    report = {name: image_set(detector, data, name) for name in IMAGE_SETS}
    report["dfdc_videos"] = videos(detector, data, num_frames)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def print_table(results: Dict[str, Dict[str, Any]]) -> None:
    print(f"{'model':45s} {'Yonsei AUC':>10s} {'DFDC crops AUC':>14s}  DFDC videos (verdict, fake votes, mean P(fake))", file=sys.stderr)
    for spec, r in results.items():
        vids = "; ".join(f"{v['verdict']} {v['fake_ratio']:.2f} {v['mean_prob']:.2f}" for v in r["dfdc_videos"])
        print(f"{spec:45s} {_fmt(r['yonsei_photoshop']['auc']):>10s} {_fmt(r['dfdc_crops']['auc']):>14s}  {vids}", file=sys.stderr)


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (``platform.processor()`` is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="model to score (repeatable)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if not (args.data / "dev_fakes").is_dir():
        print(f"error: {args.data / 'dev_fakes'} not found (pass --data)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {spec: evaluate(spec, args.data, args.device, args.frames) for spec in args.model}
    print_table(results)
    line = {
        "benchmark": "dev_fakes", "device": args.device, "cpu": cpu_name(),
        "threads": torch.get_num_threads(), "frames_per_video": args.frames, "models": results,
    }
    text = json.dumps(line)
    print(text)
    if args.output:
        args.output.write_text(json.dumps(line, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
