"""Detection of REAL manipulations, scored as a user scores them: the model-selection benchmark.

Every file goes through the video-detection pipeline (MTCNN, the largest face, the model's P(fake)),
exactly as ``dldfd detect`` scores it. Videos: ``--frames`` evenly spaced frames; the video score is
the mean P(fake) over its frames (video AUC), the verdict the majority vote ("right" counts).

* ``ffpp_val`` / ``ffpp_test``: the official val / test splits of ``../shared/data/ffpp_c23``
  (real FF++ c23: originals vs Deepfakes / Face2Face / FaceSwap, people unseen in training);
  video AUC overall and per method (that method's fakes against all the split's reals);
* ``web_clips``: ``dev_fakes/web_clips`` (5 real, 7 fake; labels from file names: weak);
* ``dfdc_crops``: frame ROC AUC of 11 fake against 11 real DFDC face crops;
* ``dfdc_videos``: the verdicts on two DFDC fake videos;
* ``yonsei_photoshop``: frame ROC AUC of the 102 Photoshop composites against the 100 Yonsei reals
  (weak since the faces corpus holds ~1,000 other Yonsei reals: same camera and studio).

``selection_auc``, the number models are chosen by, is the mean of the FF++ val video AUC, the
web_clips video AUC and the DFDC crops AUC: in-domain and cross-dataset together, never one small
set alone. The FF++ test split is for reporting only. Images in which MTCNN finds no face are
counted and left out of the AUC. ``--model`` takes what ``dldfd detect --model`` takes, several
times, plus ``imagenet:ARCH`` (ImageNet backbone, untrained head and stem) and ``random:ARCH``.
Prints a table and ONE JSON line per model; ``--output FILE`` writes them all as one JSON (the
model card renders its table from it).

    python benchmarks/dev_fakes.py --model dldfd_efficientnet_lite0.ffpp_sbi \
        --model dldfd_efficientnet_lite0.sbi_faces --model imagenet:dldfd_efficientnet_lite0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Sequence

import timm
import torch

import dldfd_hf  # noqa: F401  registers the models
from dldfd_hf.data.ffpp import index_ffpp
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
WEB_CLIPS = "dev_fakes/web_clips"
FFPP_ROOT = "ffpp_c23"
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap")
SELECTION_SETS = ("ffpp_val", "web_clips", "dfdc_crops")


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


def score_video(detector, path: Path, truth: str, num_frames: int, method: str) -> Dict[str, Any]:
    """One video's mean P(fake) and majority verdict (no face in any frame: mean None, verdict 'none')."""
    result = detector(str(path), num_frames=num_frames)
    return {"file": path.name, "method": method, "truth": truth, "verdict": result["label"],
            "mean_prob": result["mean_prob"], "fake_ratio": result["fake_ratio"], "frames_used": result["frames_used"]}


def video_set_summary(scored: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Video AUC (mean P(fake)), majority right, and per method its fakes' AUC against all reals."""
    usable = [v for v in scored if v["mean_prob"] is not None]
    labels = [int(v["truth"] == "fake") for v in usable]
    probs = [v["mean_prob"] for v in usable]
    summary = {
        "auc": frame_metrics(labels, probs)["auc"] if usable else None,
        "right": sum(v["verdict"] == v["truth"] for v in scored), "videos": len(scored),
        "num_real": labels.count(0), "num_fake": labels.count(1), "without_face": len(scored) - len(usable),
    }
    methods = sorted({v["method"] for v in usable if v["truth"] == "fake"})
    if len(methods) > 1:
        summary["per_method"] = {}
        for method in methods:
            pick = [(l, p) for l, p, v in zip(labels, probs, usable) if l == 0 or v["method"] == method]
            summary["per_method"][method] = frame_metrics([l for l, _ in pick], [p for _, p in pick])["auc"]
    summary["videos_scored"] = scored
    return summary


def ffpp_split(detector, data: Path, split: str, num_frames: int) -> Dict[str, Any]:
    index = index_ffpp(data / FFPP_ROOT, compression="c23", methods=FFPP_METHODS, allow_missing=True)
    scored = [score_video(detector, v.path, "fake" if v.label else "real", num_frames, v.method)
              for v in index.videos if v.split == split]
    return video_set_summary(scored)


def web_clips(detector, data: Path, num_frames: int) -> Dict[str, Any]:
    folder = data / WEB_CLIPS
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    scored = [score_video(detector, folder / row["path"], row["label"], num_frames, row["path"].split("/")[0])
              for row in rows]
    return video_set_summary(scored)


def selection_auc(report: Dict[str, Any]) -> Any:
    """The mean AUC of :data:`SELECTION_SETS` (None when one of them has no AUC)."""
    values = [report[name]["auc"] for name in SELECTION_SETS]
    return None if any(v is None for v in values) else round(sum(values) / len(values), 4)


SETS = ("ffpp_val", "ffpp_test", "web_clips", "dfdc_crops", "dfdc_videos", "yonsei_photoshop")


def evaluate(spec: str, data: Path, device: str, num_frames: int, sets: Sequence[str] = SETS) -> Dict[str, Any]:
    """Every set of ``sets`` scored with ``spec``; the FF++ splits only where ``data`` holds ffpp_c23."""
    start = time.perf_counter()
    detector = build_pipeline(spec, device)
    scorers = {
        "ffpp_val": lambda: ffpp_split(detector, data, "validation", num_frames),
        "ffpp_test": lambda: ffpp_split(detector, data, "test", num_frames),
        "web_clips": lambda: web_clips(detector, data, num_frames),
        "dfdc_crops": lambda: image_set(detector, data, "dfdc_crops"),
        "yonsei_photoshop": lambda: image_set(detector, data, "yonsei_photoshop"),
        "dfdc_videos": lambda: videos(detector, data, num_frames),
    }
    report: Dict[str, Any] = {}
    for name in sets:
        if name.startswith("ffpp") and not (data / FFPP_ROOT).is_dir():
            continue
        report[name] = scorers[name]()
    report["selection_auc"] = selection_auc(report) if all(n in report for n in SELECTION_SETS) else None
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def print_table(results: Dict[str, Dict[str, Any]]) -> None:
    sets = ("ffpp_val", "ffpp_test", "web_clips")
    header = "".join(f"{name + ' AUC/right':>22s}" for name in sets)
    print(f"{'model':42s}{header}{'DFDC crops':>11s}{'Yonsei':>8s}{'select':>8s}  DFDC videos", file=sys.stderr)
    for spec, r in results.items():
        cells = "".join(
            f"{_fmt(r[name]['auc']) + ' ' + str(r[name]['right']) + '/' + str(r[name]['videos']):>22s}"
            if name in r else f"{'n/a':>22s}" for name in sets
        )
        vids = "; ".join(f"{v['verdict']} {_fmt(v['mean_prob'])}" for v in r.get("dfdc_videos", []))
        images = "".join(f"{_fmt((r.get(name) or {}).get('auc')):>{width}s}"
                         for name, width in (("dfdc_crops", 11), ("yonsei_photoshop", 8)))
        print(f"{spec:42s}{cells}{images}{_fmt(r['selection_auc']):>8s}  {vids}", file=sys.stderr)


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
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per video (dldfd detect's default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS),
                        help="the sets to score (default: all; the selection needs ffpp_val, web_clips, dfdc_crops)")
    args = parser.parse_args(argv)
    if not (args.data / "dev_fakes").is_dir():
        print(f"error: {args.data / 'dev_fakes'} not found (pass --data)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    context = {"benchmark": "dev_fakes", "device": args.device, "cpu": cpu_name(),
               "threads": torch.get_num_threads(), "frames_per_video": args.frames}
    results = {}
    for spec in args.model:
        results[spec] = evaluate(spec, args.data, args.device, args.frames, args.sets)
        print(json.dumps(dict(context, model=spec, **_without_video_lists(results[spec]))), flush=True)
    print_table(results)
    if args.output:
        args.output.write_text(json.dumps(dict(context, models=results), indent=2) + "\n")
    return 0


def _without_video_lists(report: Dict[str, Any]) -> Dict[str, Any]:
    """The report without the per-video rows (the JSON line stays one readable summary)."""
    return {k: ({kk: vv for kk, vv in v.items() if kk != "videos_scored"} if isinstance(v, dict) else v)
            for k, v in report.items()}


if __name__ == "__main__":
    sys.exit(main())
