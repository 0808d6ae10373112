"""``dldfd detect``: deepfake verdicts for videos and photos (files or folders, recursive).

One summary row per file; a file that cannot be read gets its error in its row and the others
still run. ``score`` is the confidence of ``label`` (Hugging Face convention), ``fake_score`` the
fakeness the verdict thresholds (fake-vote ratio for ``majority``, mean P(fake) for ``mean``);
``warning`` says when a verdict may rest on less than the whole file (a video that looks truncated).

Exit status: 0 all files scored; 1 some file failed (its row says why); 2 nothing was done: bad
arguments, no files, a model that cannot be loaded, or an ``--output`` that cannot be written
(checked before any file is scored: an existing directory, a folder where no file can be created,
a file that cannot be replaced); 3 every file was scored but writing ``--output`` failed at the end:
the results are then printed on stdout instead, and stderr says where they could not be written.

File names that are not valid UTF-8 (Linux paths are bytes; Python holds the undecodable bytes as
``surrogateescape`` code points, see :func:`os.fsdecode`) are written losslessly: in JSON as the
standard escapes of those code points (``face\\xe9.jpg`` on disk -> ``"face\\udce9.jpg"``;
``os.fsencode(json.loads(...))`` gives back the bytes), in CSV and in the table each such byte as
a backslash escape ``\\xNN`` (``face\\xe9.jpg``), the form ``bytes.decode("utf-8",
"backslashreplace")`` writes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ._args import positive_int, probability

logger = logging.getLogger(__name__)

FORMATS = ("table", "json", "csv")
CSV_COLUMNS = (
    "path", "kind", "label", "score", "fake_score", "fake_votes", "real_votes", "mean_prob",
    "frames_used", "frames_without_face", "error", "warning",
)
RESULT_KEYS = (
    "kind", "label", "score", "fake_score", "votes", "mean_prob", "frames_used", "frames_without_face", "frames",
)
EXIT_OUTPUT_NOT_WRITTEN = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="detect deepfakes in videos and photos",
        description="Crop faces (MTCNN), score them with a DLDFD model and vote one verdict per file.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video/image files or folders (searched recursively)")
    # The default ships inside the package: nothing is downloaded that the user did not name.
    parser.add_argument(
        "--model", default=None,
        help="local model folder, Hub id, pretrained tag, or a DLDFD architecture name such as dldfd_tiny "
             "(random weights: smoke tests only); default: the detector shipped with dldfd-hf "
             "(dldfd_efficientnet_lite0.sbi_faces)",
    )
    parser.add_argument("--frames", type=positive_int, default=32, metavar="N", help="frames sampled per video (32)")
    parser.add_argument("--strategy", choices=("majority", "mean"), default="majority",
                        help="frame votes -> verdict: majority (the paper; ties by mean probability) or mean")
    parser.add_argument("--threshold", type=probability, default=0.5, help="P(fake) at which a face counts as fake (0.5)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (table)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the results here instead of stdout")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="face crops per forward pass (default: 8 on CPU, 64 on GPU)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from .._io import atomic_write_text, unwritable_reason
    from ..loading import DEFAULT_MODEL, ModelLoadError, RandomWeightsWarning, describe_model, load_video_pipeline

    files = collect_files(args.paths)
    if not files:
        _error(f"no image or video files found in: {' '.join(args.paths)}")
        return 2
    if args.output is not None:
        # Before any work: an output that cannot be written must not cost the whole run.
        reason = unwritable_reason(args.output)
        if reason is not None:
            _error(f"cannot write --output {escape_path(str(args.output))}: {reason}")
            return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RandomWeightsWarning)
            detector = load_video_pipeline(args.model or DEFAULT_MODEL, device=device)
    except ModelLoadError as err:
        _error(str(err))
        return 2
    except (RuntimeError, AssertionError) as err:  # e.g. an unavailable device
        _error(f"cannot use device {device!r}: {err}")
        return 2
    for warning in caught:
        if issubclass(warning.category, RandomWeightsWarning):
            print(f"\n{'!' * 78}\nWARNING: {warning.message}\n{'!' * 78}\n", file=sys.stderr)
    print(f"model: {describe_model(args.model or DEFAULT_MODEL)}", file=sys.stderr)

    rows = [
        detect_file(detector, path, num_frames=args.frames, strategy=args.strategy,
                    threshold=args.threshold, batch_size=args.batch_size)
        for path in tqdm(files, desc="detect", unit="file", disable=args.no_progress, file=sys.stderr)
    ]

    text = format_rows(rows, args.format)
    written = True
    if args.output is not None:
        try:
            atomic_write_text(args.output, text)
        except OSError as err:  # it could be written when checked: keep the results anyway
            written = False
            sys.stdout.write(text)
            sys.stdout.flush()
            _error(f"could not write the results to {escape_path(str(args.output))} "
                   f"({err.strerror or err}); they were printed on stdout instead")
    else:
        sys.stdout.write(text)
    failed = sum(row["error"] is not None for row in rows)
    if failed:
        print(f"dldfd detect: {failed} of {len(rows)} file(s) failed", file=sys.stderr)
    if not written:
        return EXIT_OUTPUT_NOT_WRITTEN
    return 1 if failed else 0


def detect_file(detector: Any, path: Path, **call_kwargs: Any) -> Dict[str, Any]:
    """The output row for one file: ``detector`` (a deepfake-video-detection pipeline) called on
    ``path`` with ``call_kwargs``; a file that cannot be read gets its error in the row."""
    from ..media import MediaError, file_problem

    path = Path(path)
    try:
        problem = file_problem(path)
        if problem is not None:
            raise MediaError(path, problem)
        return result_row(str(path), detector(str(path), **call_kwargs))
    except MediaError as err:
        return error_row(str(path), str(err.reason))
    except Exception as err:  # one bad file must not stop the others; the row says what happened
        logger.debug("detect failed on %s", path, exc_info=True)
        return error_row(str(path), f"unexpected {type(err).__name__}: {err}")


def result_row(path: str, result: Dict[str, Any]) -> Dict[str, Any]:
    """The output row (``--format json`` schema) for a pipeline ``result``; "no face found" is an error."""
    row = error_row(path, None)
    row.update({key: result[key] for key in RESULT_KEYS})
    row["warning"] = result.get("warning")
    if result["label"] is None:
        where = "the image" if result["kind"] == "image" else f"any of the {result['frames_sampled']} sampled frames"
        row["error"] = f"no face found in {where}"
    return row


def error_row(path: str, error: Optional[str]) -> Dict[str, Any]:
    """An output row with no result, only ``error``."""
    return {"path": path, "kind": None, "label": None, "score": None, "fake_score": None, "votes": None,
            "mean_prob": None, "frames_used": 0, "frames_without_face": 0, "frames": [], "error": error,
            "warning": None}


def collect_files(paths: Sequence[str]) -> List[Path]:
    """Files named directly (kept whatever their extension, so bad ones get an error row) plus
    the images and videos found under folders, in sorted order, hidden files skipped."""
    from ..media import media_kind

    files: List[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = [
                p for p in sorted(path.rglob("*"))
                if p.is_file() and media_kind(p) is not None
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
            files.extend(found)
        else:
            files.append(path)
    unique = list(dict.fromkeys(files))
    return unique


def format_rows(rows: List[Dict[str, Any]], fmt: str) -> str:
    """``rows`` as ``fmt`` text: ``"json"`` (the full rows), ``"csv"`` (:data:`CSV_COLUMNS`) or ``"table"``.

    Always encodable as UTF-8: see the module doc for file names that are not.
    """
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=True) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            votes = row["votes"] or {}
            writer.writerow([
                escape_path(row["path"]), row["kind"] or "", row["label"] or "", _num(row["score"]),
                _num(row["fake_score"]), votes.get("fake", ""), votes.get("real", ""), _num(row["mean_prob"]),
                row["frames_used"], row["frames_without_face"], escape_path(row["error"] or ""),
                escape_path(row.get("warning") or ""),
            ])
        return buffer.getvalue()
    return _table(rows)


def _table(rows: List[Dict[str, Any]]) -> str:
    header = ("path", "kind", "label", "score", "fake score", "votes f/r", "mean P(fake)", "no face", "error")
    lines = [header]
    for row in rows:
        votes = row["votes"]
        note = row["error"] or (f"warning: {row['warning']}" if row.get("warning") else "")
        lines.append((
            escape_path(row["path"]), row["kind"] or "-", row["label"] or "-",
            _num(row["score"], "-"), _num(row["fake_score"], "-"),
            f"{votes['fake']}/{votes['real']}" if votes else "-", _num(row["mean_prob"], "-"),
            str(row["frames_without_face"]), escape_path(note),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "".join(
        ("  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths)) + "  " + line[-1]).rstrip() + "\n"
        for line in lines
    )


def escape_path(text: str) -> str:
    """``text`` with the undecodable bytes of a file name (``surrogateescape`` code points, as
    :func:`os.fsdecode` gives them) written as ``\\xNN``: valid UTF-8, and the bytes can be told."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name gave: escape it as it is
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _num(value: Optional[float], missing: str = "") -> str:
    return missing if value is None else f"{value:.4f}"


def _error(message: str) -> None:
    print(f"dldfd detect: error: {message}", file=sys.stderr)
