"""``dldfd index-ffpp``: list an FF++ tree's videos by split and method (no decoding)."""

from __future__ import annotations

import argparse
import json
import sys

from ..data.ffpp import (
    COMPRESSIONS,
    DEFAULT_METHODS,
    OPTIONAL_METHODS,
    FFPPLayoutError,
    SplitFileError,
    format_table1,
    index_ffpp,
)
from ..data.report import read_report


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``dldfd index-ffpp``."""
    parser.description = (
        "Validate a FaceForensics++ tree against the official layout and splits, and print "
        "the videos per split and method in the layout of the paper's Table 1. With --corpus, also the "
        "images of a built corpus."
    )
    parser.add_argument("root", help="FaceForensics++ root (original_sequences/, manipulated_sequences/)")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="c40", help="quality level (default c40)")
    parser.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        choices=DEFAULT_METHODS + OPTIONAL_METHODS,
        default=list(DEFAULT_METHODS),
        help=f"manipulation methods (default: {' '.join(DEFAULT_METHODS)}; also {' '.join(OPTIONAL_METHODS)})",
    )
    parser.add_argument("--splits-dir", help="folder with train.json/val.json/test.json (default: the official splits)")
    parser.add_argument("--allow-missing", action="store_true", help="index the videos present even if the splits list more")
    parser.add_argument("--corpus", help="a corpus built by build-ffpp: add its image counts")
    parser.add_argument("--json", action="store_true", help="print every video as JSON lines instead of the table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        index = index_ffpp(args.root, args.compression, args.methods, args.splits_dir, args.allow_missing)
        report = read_report(args.corpus) if args.corpus else None
    except (FFPPLayoutError, SplitFileError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        for v in index.videos:
            print(json.dumps({"split": v.split, "method": v.method, "video_id": v.video_id, "label": v.label, "path": str(v.path)}))
        return 0
    print(f"FaceForensics++ {args.compression} at {index.root} (splits: {index.splits_source})")
    print(format_table1(index.counts(), report["images"] if report else None, methods=index.methods))
    classes = index.class_counts()
    print("videos per class: " + "; ".join(f"{s} real {c['real']} fake {c['fake']}" for s, c in classes.items()))
    if index.missing:
        print(f"{len(index.missing)} video(s) listed in the splits are missing (indexed without them)")
    if index.unlisted:
        print(f"{len(index.unlisted)} video file(s) are in no split and were left out")
    return 0
