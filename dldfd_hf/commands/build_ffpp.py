"""``dldfd build-ffpp`` / ``dldfd merge-ffpp``: the FaceForensics++ face-crop corpus."""

from __future__ import annotations

import argparse
import sys

from ..data.build import (
    PRESETS,
    BuildConfig,
    BuildError,
    build_corpus,
    merge_shards,
)
from ..data.ffpp import (
    COMPRESSIONS,
    DEFAULT_METHODS,
    OPTIONAL_METHODS,
    FFPPLayoutError,
    SplitFileError,
)
from ..data.publish import export_parquet
from ..data.report import report_table
from ..hub import push
from ..hub.push import PushError
from ._args import (
    add_allow_failures_argument,
    add_face_detection_arguments,
    failure_status,
    frames_per_video,
)

_UNSET = object()  # --frames-per-video not given (None means "all")


def configure_build(build: argparse.ArgumentParser) -> None:
    """The arguments of ``dldfd build-ffpp``."""
    build.description = (
        "Crop the faces of every video of a FaceForensics++ tree into a DatasetDict "
        "(train/validation/test) that datasets.load_from_disk(OUTPUT) opens. Interrupted builds "
        "resume where they stopped; undecodable videos are skipped and listed in OUTPUT/failed.json."
    )
    build.add_argument("root", help="FaceForensics++ root (original_sequences/, manipulated_sequences/)")
    build.add_argument("output", help="corpus folder (created; an unfinished one is resumed)")
    build.add_argument("--preset", choices=["paper"], help="paper: c40, every frame, the four methods (options given explicitly win)")
    build.add_argument("--compression", choices=COMPRESSIONS, help="FF++ quality level (default c40)")
    build.add_argument(
        "--methods", nargs="+", metavar="METHOD", choices=DEFAULT_METHODS + OPTIONAL_METHODS, help="manipulation methods (default: the four FF++ methods)"
    )
    build.add_argument("--frames-per-video", type=frames_per_video, default=_UNSET, help="evenly spaced frames per video, or 'all' (default 32)")
    build.add_argument("--crop-size", type=int, help="side of the stored face crops (default 224)")
    build.add_argument(
        "--crop-scale", type=float,
        help="crop side as a multiple of the face box (default 1.3, as the pipelines crop; wider, e.g. 1.8, "
        "leaves room for training's crop jitter, augmentation: sbi)",
    )
    build.add_argument("--image-format", choices=["png", "jpeg"], help="crop encoding (default png, lossless)")
    build.add_argument("--jpeg-quality", type=int, help="JPEG quality (default 95)")
    build.add_argument("--splits-dir", help="folder with train.json/val.json/test.json (default: the official splits)")
    build.add_argument("--allow-missing", action="store_true", help="build the videos present even if the splits list more")
    build.add_argument("--retry-failed", action="store_true", help="try the videos that failed in an earlier run again")
    add_allow_failures_argument(build)
    add_face_detection_arguments(build)
    build.add_argument("--shard-index", type=int, default=0, help="this machine's shard (with --num-shards)")
    build.add_argument("--num-shards", type=int, default=1, help="machines sharing the build; join with `dldfd merge-ffpp`")
    _add_publish_args(build)
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)


def configure_merge(merge: argparse.ArgumentParser) -> None:
    """The arguments of ``dldfd merge-ffpp``."""
    merge.description = (
        "Join shard folders built with --shard-index/--num-shards into the corpus OUTPUT. "
        "Without SHARD_DIR, the shards were all written into OUTPUT (a shared disk)."
    )
    merge.add_argument("output", help="corpus folder to write")
    merge.add_argument("shard_dirs", nargs="*", metavar="SHARD_DIR", help="shard build folders (default: OUTPUT)")
    _add_publish_args(merge)
    merge.set_defaults(func=run_merge)


def _add_publish_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parquet", metavar="DIR", help="also export Hub-layout Parquet shards and the dataset card to DIR")
    parser.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload to a PRIVATE Hub dataset repo (FF++ may not be redistributed); token from HF_TOKEN / hf auth login"
    )


def resolve_options(args: argparse.Namespace) -> tuple[BuildConfig, tuple[str, ...]]:
    """Defaults, then the preset, then the options given on the command line."""
    values: dict = {"methods": DEFAULT_METHODS}
    if args.preset:
        values.update(PRESETS[args.preset])
    given = {
        "compression": args.compression,
        "crop_size": args.crop_size,
        "scale": args.crop_scale,
        "image_format": args.image_format,
        "jpeg_quality": args.jpeg_quality,
        "methods": tuple(args.methods) if args.methods else None,
    }
    values.update({k: v for k, v in given.items() if v is not None})
    if args.frames_per_video is not _UNSET:
        values["frames_per_video"] = args.frames_per_video
    methods = tuple(values.pop("methods"))
    return BuildConfig(**values), methods


def run_build(args: argparse.Namespace) -> int:
    return _guarded(lambda: _build(args))


def _build(args: argparse.Namespace) -> int:
    config, methods = resolve_options(args)
    summary = build_corpus(
        args.root,
        args.output,
        config,
        methods=methods,
        splits_dir=args.splits_dir,
        num_proc=args.num_proc,
        shard_index=args.shard_index,
        num_shards=args.num_shards,
        allow_missing=args.allow_missing,
        retry_failed=args.retry_failed,
        device=args.device,
        batch_size=args.batch_size,
        threads=args.threads,
        progress=not args.quiet,
    )
    rate = summary.frames / summary.seconds if summary.seconds else 0.0
    print(
        f"{summary.built} video(s) built, {summary.skipped} already done, {len(summary.failed)} failed "
        f"({summary.frames} frames, {rate:.1f} frames/s)"
    )
    for result in summary.failed:
        print(f"  skipped {result.method}/{result.video_id}: {result.error}", file=sys.stderr)
    if not summary.finalized:
        print(
            f"shard {args.shard_index} of {args.num_shards} done in {args.output}; when every shard is done, run "
            f"`dldfd merge-ffpp OUTPUT SHARD_DIR ...`"
        )
        return failure_status(len(summary.failed), args.allow_failures)
    _print_report(summary.report, args.output)
    _publish(args)
    return failure_status(len(summary.report["failed"]), args.allow_failures)


def run_merge(args: argparse.Namespace) -> int:
    def merge() -> int:
        report = merge_shards(args.output, args.shard_dirs)
        _print_report(report, args.output)
        _publish(args)
        return 0

    return _guarded(merge)


def _print_report(report: dict, output: str) -> None:
    print(report_table(report))
    if report["failed"]:
        print(f"{len(report['failed'])} video(s) could not be decoded: listed in {output}/failed.json")
    print(f"corpus written to {output} (datasets.load_from_disk)")


def _publish(args: argparse.Namespace) -> None:
    if args.parquet:
        print(f"Parquet export and dataset card written to {export_parquet(args.output, args.parquet)}")
    if args.push_to_hub:
        result = push.push_corpus(args.output, args.push_to_hub)
        print(f"pushed {len(result.files)} file(s) to the private dataset repo {result.repo_id}: {result.url}")


def _guarded(action) -> int:
    """Expected failures (bad layout, split files, settings) print one clear line, no traceback."""
    try:
        return action()
    except (FFPPLayoutError, SplitFileError, BuildError, FileExistsError, FileNotFoundError, ValueError,
            PushError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
