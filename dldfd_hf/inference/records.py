"""Result rows of deepfake detection: one row per file, and their JSON, CSV and table forms.

Shared by ``dldfd detect`` and the demo. A row holds the pipeline's verdict (``label``, ``score``,
``fake_score``, votes, per-frame records) or, for a file that could not be scored, its ``error``.

File names that are not valid UTF-8 (Linux paths are bytes; Python holds the undecodable bytes as
``surrogateescape`` code points, see :func:`os.fsdecode`) are written losslessly: in JSON as the
standard escapes of those code points (``face\\xe9.jpg`` on disk -> ``"face\\udce9.jpg"``;
``os.fsencode(json.loads(...))`` gives back the bytes), in CSV and in the table each such byte as
a backslash escape ``\\xNN`` (``face\\xe9.jpg``), the form ``bytes.decode("utf-8",
"backslashreplace")`` writes.

A table row is one line whatever the file's name: its control characters (a newline, a tab, a
terminal escape) are written as backslash escapes (``\\n``, ``\\t``, ``\\x1b``). CSV is safe to
open in a spreadsheet: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return (which a spreadsheet would run as a formula) gets a ``'`` in front, as OWASP advises.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..media.files import MediaError, file_problem, media_kind

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
    the images and videos found under folders, in sorted order, hidden files skipped.

    Under a folder, an entry named like an image or video that is no regular file (a symlink loop,
    a dangling symlink, a FIFO, ...) is kept too: its row says what it is, rather than it going
    missing without a word. Folders are never entered through symlinks (no loop can recurse).
    """
    files: List[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = [
                p for p in sorted(path.rglob("*"))
                if media_kind(p) is not None and not p.is_dir()
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
        return _csv(rows)
    return _table(rows)


def _csv(rows: List[Dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # Python < 3.12 quotes a cell only for the line terminator's characters: a carriage return
    # in a name would end the record for a reader. Such rows are written fully quoted.
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        votes = row["votes"] or {}
        cells = [
            _csv_text(row["path"]), row["kind"] or "", row["label"] or "", _num(row["score"]),
            _num(row["fake_score"]), votes.get("fake", ""), votes.get("real", ""), _num(row["mean_prob"]),
            row["frames_used"], row["frames_without_face"], _csv_text(row["error"] or ""),
            _csv_text(row.get("warning") or ""),
        ]
        (quoted if any("\r" in str(cell) for cell in cells) else writer).writerow(cells)
    return buffer.getvalue()


def _table(rows: List[Dict[str, Any]]) -> str:
    header = ("path", "kind", "label", "score", "fake score", "votes f/r", "mean P(fake)", "no face", "error")
    lines = [header]
    for row in rows:
        votes = row["votes"]
        note = row["error"] or (f"warning: {row['warning']}" if row.get("warning") else "")
        lines.append((
            _table_text(row["path"]), row["kind"] or "-", row["label"] or "-",
            _num(row["score"], "-"), _num(row["fake_score"], "-"),
            f"{votes['fake']}/{votes['real']}" if votes else "-", _num(row["mean_prob"], "-"),
            str(row["frames_without_face"]), _table_text(note),
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


# C0 controls, DEL and C1 controls: they would break a table row or drive the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Cells a spreadsheet (Excel, LibreOffice, Sheets) would evaluate as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _table_text(text: str) -> str:
    """``text`` for one table cell: :func:`escape_path`, and control characters as ``\\n``, ``\\xNN``."""
    return _CONTROL.sub(lambda m: _CONTROL_ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), escape_path(text))


def _csv_text(text: str) -> str:
    """``text`` for one CSV cell: :func:`escape_path`, and a ``'`` before a would-be formula."""
    text = escape_path(text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _num(value: Optional[float], missing: str = "") -> str:
    return missing if value is None else f"{value:.4f}"
