"""Result rows of deepfake detection: one row per file, and their JSON, CSV and table forms.

Shared by ``dldfd detect`` and the demo. A row holds the pipeline's verdict (``label``, ``score``,
``fake_score``, votes, per-frame records) or, for a file that could not be scored, its ``error``.

File names that are not valid UTF-8 (Linux paths are bytes; Python holds the undecodable bytes as
``surrogateescape`` code points, see :func:`os.fsdecode`) are written losslessly: in JSON as the
standard escapes of those code points (``face\\xe9.jpg`` on disk -> ``"face\\udce9.jpg"``;
``os.fsencode(json.loads(...))`` gives back the bytes), in CSV and in the table each such byte as
a backslash escape ``\\xNN`` (``face\\xe9.jpg``), the form ``bytes.decode("utf-8",
"backslashreplace")`` writes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .media import MediaError, file_problem, media_kind

__all__ = [
    "CSV_COLUMNS", "FORMATS", "RESULT_KEYS", "collect_files", "detect_file", "error_row", "escape_path", "format_rows",
    "result_row",
]

logger = logging.getLogger(__name__)

FORMATS = ("table", "json", "csv")
CSV_COLUMNS = (
    "path", "kind", "label", "score", "fake_score", "fake_votes", "real_votes", "mean_prob",
    "frames_used", "frames_without_face", "error", "warning",
)
RESULT_KEYS = (
    "kind", "label", "score", "fake_score", "votes", "mean_prob", "frames_used", "frames_without_face", "frames",
)


def detect_file(detector: Any, path: Path, **call_kwargs: Any) -> Dict[str, Any]:
    """The output row for one file: ``detector`` (a deepfake-video-detection pipeline) called on
    ``path`` with ``call_kwargs``; a file that cannot be read gets its error in the row."""
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
