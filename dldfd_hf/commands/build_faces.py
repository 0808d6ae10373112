"""``dldfd build-faces``: a real-faces corpus from any folder of videos and photos (no FF++ needed)."""

from __future__ import annotations

import argparse
import sys

from ..data.build import BuildError
from ..data.faces_corpus import FacesInputError, build_faces, split_summary
from ._args import (
    add_allow_failures_argument,
    add_face_detection_arguments,
    failure_status,
    frames_per_video,
)


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``dldfd build-faces``."""
    parser.description = (
        "Crop the largest face of evenly spaced frames of every video, and of every photo, under "
        "INPUT_DIR into a DatasetDict (train/validation/test) with the FF++ corpus's row schema: label real, "
        "method original, video_id = the file's path under INPUT_DIR, five landmarks in crop pixels. Files "
        "under INPUT_DIR/<name>/ are one group (e.g. one person) and stay in one split; files directly in "
        "INPUT_DIR are groups of their own. Interrupted builds resume; unreadable files are skipped and listed "
        "in OUTPUT/failed.json. Train on it with self-blended pseudo-fakes: "
        "`accelerate launch examples/train.py --config examples/configs/sbi.yaml --data OUTPUT --output_dir RUN`."
    )
    parser.add_argument("input_dir", help="folder of videos and photos (searched recursively)")
    parser.add_argument("output", help="corpus folder (created; an unfinished one is resumed)")
    parser.add_argument("--frames-per-video", type=frames_per_video, default=32, help="evenly spaced frames per video, or 'all' (default 32)")
    parser.add_argument("--crop-size", type=int, default=224, help="side of the stored face crops (default 224)")
    parser.add_argument(
        "--crop-scale", type=float, default=1.3,
        help="crop side as a multiple of the face box (default 1.3, as the pipelines crop; wider, e.g. 1.8, "
        "leaves room for training's crop jitter)",
    )
    parser.add_argument("--image-format", choices=["png", "jpeg"], default="png", help="crop encoding (default png, lossless)")
    parser.add_argument(
        "--group-by", choices=["folder", "file"], default="folder",
        help="what must not be split between train and evaluation: the top folder under INPUT_DIR (default) or each file",
    )
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="share of the groups for validation (default 0.1, at least one)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of the groups for test (default 0.1, at least one)")
    parser.add_argument("--retry-failed", action="store_true", help="try the files that failed in an earlier run again")
    add_allow_failures_argument(parser)
    add_face_detection_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        index, summary = build_faces(
            args.input_dir,
            args.output,
            frames_per_video=args.frames_per_video,
            crop_size=args.crop_size,
            crop_scale=args.crop_scale,
            image_format=args.image_format,
            group_by=args.group_by,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            num_proc=args.num_proc,
            retry_failed=args.retry_failed,
            device=args.device,
            batch_size=args.batch_size,
            threads=args.threads,
            progress=not args.quiet,
        )
    except (FacesInputError, BuildError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = summary.report
    rate = summary.frames / summary.seconds if summary.seconds else 0.0
    print(
        f"{summary.built} file(s) built, {summary.skipped} already done, {len(summary.failed)} failed "
        f"({summary.frames} frames, {rate:.1f} frames/s)"
    )
    print(split_summary(index, report))
    without_face = [key.split("/", 1)[1] for key in report["videos_without_face"]]  # keys are "original/<path>"
    if without_face:
        shown = ", ".join(without_face[:5]) + (" ..." if len(without_face) > 5 else "")
        print(f"{len(without_face)} file(s) without a face (no rows): {shown}")
    for result in summary.failed:
        print(f"  skipped {result.video_id}: {result.error}", file=sys.stderr)
    if report["failed"]:
        print(f"{len(report['failed'])} file(s) could not be read: listed in {args.output}/failed.json")
    if index.ignored:
        print(f"{len(index.ignored)} file(s) that are neither videos nor photos were ignored (e.g. {index.ignored[0].name})")
    print(f"corpus written to {args.output} (datasets.load_from_disk)")
    return failure_status(len(report["failed"]), args.allow_failures)
