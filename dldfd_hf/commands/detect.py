"""``dldfd detect``: deepfake verdicts for videos and photos (files or folders, recursive).

One summary row per file; a file that cannot be read gets its error in its row and the others
still run. ``score`` is the confidence of ``label`` (Hugging Face convention), ``fake_score`` the
fakeness the verdict thresholds (fake-vote ratio for ``majority``, mean P(fake) for ``mean``);
``warning`` says when a verdict may rest on less than the whole file (a video that looks truncated).

Exit status: 0 all files scored; 1 some file failed (its row says why); 2 nothing was done: bad
arguments, no files, a model that cannot be loaded, or an ``--output`` that cannot be written or
must not be (checked before any file is scored: an existing directory, a folder where no file can
be created, a file that cannot be replaced, one of the inputs); 3 every file was scored but writing
``--output`` failed at the end: the results are then printed on stdout instead, and stderr says
where they could not be written; 130 interrupted (Ctrl-C): the rows of the files already scored
are written as usual (to ``--output`` or stdout), and stderr says how far it got.

Rows and their formats are :mod:`dldfd_hf.inference.records`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tqdm.auto import tqdm

from .._hardware import default_device
from .._io import atomic_write_text, unwritable_reason
from ..inference.loading import (
    DEFAULT_MODEL,
    ModelLoadError,
    describe_model,
    load_pipeline_with_notice,
)
from ..inference.records import (
    FORMATS,
    collect_files,
    detect_file,
    escape_path,
    format_rows,
)
from ..inference.voting import STRATEGIES, VotingRule
from ._args import positive_int, threshold

EXIT_OUTPUT_NOT_WRITTEN = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``dldfd detect``."""
    parser.description = (
        "Crop faces (MTCNN), score them with a DLDFD model and vote one verdict per file."
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video/image files or folders (searched recursively)")
    # The default ships inside the package: nothing is downloaded that the user did not name.
    parser.add_argument(
        "--model", default=None,
        help="local model folder, Hub id, pretrained tag, or a DLDFD architecture name such as dldfd_tiny "
             "(random weights: smoke tests only); default: the detector shipped with dldfd-hf "
             "(dldfd_efficientnet_lite0.ffpp_sbi)",
    )
    parser.add_argument("--frames", type=positive_int, default=32, metavar="N", help="frames sampled per video (32)")
    parser.add_argument("--strategy", choices=STRATEGIES, default=VotingRule.strategy,
                        help="frame votes -> verdict: majority (the paper; ties by mean probability), mean, or "
                             "max_mean (SBI's: each frame's most fake face, every face scored, then the mean)")
    parser.add_argument("--threshold", type=threshold, default=VotingRule.threshold,
                        help="P(fake) at which a face counts as fake (0.5)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (table)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the results here instead of stdout")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="face crops per forward pass (default: 8 on CPU, 64 on GPU)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = collect_files(args.paths)
    if not files:
        _error(f"no image or video files found in: {' '.join(args.paths)}")
        return 2
    if args.output is not None:
        clash = input_at(args.output, files)
        if clash is not None:  # the results would replace a user's photo or video
            _error(f"--output {escape_path(str(args.output))} is the input file {escape_path(str(clash))}; "
                   "refusing to overwrite it (name another file)")
            return 2
        # Before any work: an output that cannot be written must not cost the whole run.
        reason = unwritable_reason(args.output)
        if reason is not None:
            _error(f"cannot write --output {escape_path(str(args.output))}: {reason}")
            return 2
    model = args.model or DEFAULT_MODEL
    device = args.device or default_device()
    try:
        detector, notice = load_pipeline_with_notice(model, device=device)
    except ModelLoadError as err:
        _error(str(err))
        return 2
    except (RuntimeError, AssertionError) as err:  # e.g. an unavailable device
        _error(f"cannot use device {device!r}: {err}")
        return 2
    if notice:
        print(f"\n{'!' * 78}\nWARNING: {notice}\n{'!' * 78}\n", file=sys.stderr)
    print(f"model: {describe_model(model)}", file=sys.stderr)

    rows, interrupted = _score_files(detector, files, args)
    if interrupted and not rows:  # nothing to keep: leave a previous --output as it was
        print(f"dldfd detect: interrupted before any of the {len(files)} file(s) was scored; nothing written",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    written = _write_results(rows, args)
    failed = sum(row["error"] is not None for row in rows)
    if interrupted:
        print(f"dldfd detect: interrupted: {len(rows)} of {len(files)} file(s) scored; their rows are written above"
              if args.output is None or not written else
              f"dldfd detect: interrupted: {len(rows)} of {len(files)} file(s) scored; their rows are in "
              f"{escape_path(str(args.output))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if failed:
        print(f"dldfd detect: {failed} of {len(rows)} file(s) failed", file=sys.stderr)
    if not written:
        return EXIT_OUTPUT_NOT_WRITTEN
    return 1 if failed else 0


def input_at(output: Path, files: Sequence[Path]) -> Optional[Path]:
    """The input among ``files`` that ``output`` names, after following links (or a hard link to
    it), else None: writing the results there would destroy it."""
    target = os.path.realpath(output)
    try:
        target_stat: Optional[os.stat_result] = os.stat(output)
    except (OSError, ValueError):  # not there yet: only a name can clash
        target_stat = None
    for path in files:
        if os.path.realpath(path) == target:
            return path
        if target_stat is not None:
            try:
                if os.path.samestat(os.stat(path), target_stat):
                    return path
            except (OSError, ValueError):  # an input that is no file: its row will say so
                continue
    return None


def _score_files(detector: Any, files: List[Path], args: argparse.Namespace) -> Tuple[List[Dict[str, Any]], bool]:
    """``(rows, interrupted)``: one row per file scored; a Ctrl-C stops the loop, keeping the rows done."""
    rows: List[Dict[str, Any]] = []
    progress = tqdm(files, desc="detect", unit="file", disable=args.no_progress, file=sys.stderr)
    try:
        for path in progress:
            rows.append(detect_file(detector, path, num_frames=args.frames, strategy=args.strategy,
                                    threshold=args.threshold, batch_size=args.batch_size))
    except KeyboardInterrupt:
        return rows, True
    finally:
        progress.close()
    return rows, False


def _write_results(rows: List[Dict[str, Any]], args: argparse.Namespace) -> bool:
    """Write ``rows`` to ``--output`` (atomically) or stdout; False when ``--output`` failed and
    they went to stdout instead."""
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
    return written


def _error(message: str) -> None:
    print(f"dldfd detect: error: {message}", file=sys.stderr)
