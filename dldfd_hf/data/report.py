"""``build_report.json``: the counts and settings a finished corpus records (the paper's Table 1).

Written last but one by :func:`dldfd_hf.data.finalize.finalize_corpus`; read here without
``datasets`` or PyAV, so that a model card can show the build settings of its corpus.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._io import PathLike
from .ffpp import format_table1

__all__ = ["REPORT_FILE", "corpus_settings", "read_report", "report_table"]

REPORT_FILE = "build_report.json"


def read_report(output: PathLike) -> dict[str, Any]:
    """The ``build_report.json`` of a finished corpus."""
    path = Path(output) / REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {output} is not a finished corpus (run build-ffpp / merge-ffpp)")
    return json.loads(path.read_text())


def report_table(report: dict[str, Any]) -> str:
    """The paper's Table 1 for a built corpus: images and videos per split and method."""
    return format_table1(report["videos"], report["images"], methods=report["methods"])


def corpus_settings(data: Any) -> dict[str, Any]:
    """The build settings of a local corpus folder (its report's ``config``), or ``{}``.

    Evaluation and training JSON name their corpus (``"data"``); when it is a folder on this machine,
    its compression, frames per video and crop settings go on the model card.
    """
    if not isinstance(data, (str, os.PathLike)) or not Path(data).is_dir():
        return {}
    try:
        return dict(read_report(data).get("config") or {})
    except (FileNotFoundError, ValueError):
        return {}
