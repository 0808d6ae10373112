"""The paper's Table 2 (true classification rate, %, FF++ c40) and our numbers beside it.

Singh & Ramachandra, "DLDFD: Recurrence Free 2D Convolution Approach for Deep Fake Detection",
Table 2, row "Proposed Method". The paper reports TCR without saying whether per frame or per
video, so our rows show both.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

__all__ = ["CITATION", "PAPER_TCR", "TABLE2_PROTOCOLS", "format_table2", "table2_row"]

CITATION = """\
@inproceedings{singh2022dldfd,
  title     = {{DLDFD}: Recurrence Free {2D} Convolution Approach for Deep Fake Detection},
  author    = {Singh, Jag Mohan and Ramachandra, Raghavendra},
  booktitle = {Proceedings of the 17th International Joint Conference on Computer Vision, Imaging and Computer Graphics Theory and Applications (VISAPP)},
  year      = {2022},
  doi       = {10.5220/0010880500003124}
}
"""

# Protocol -> (Table 2 section, column as printed in the paper, the paper's TCR %).
TABLE2: Dict[str, tuple] = {
    "combined": ("combined", "FS,DF,F2F,NT", 96.07),
    "single:Deepfakes": ("single", "DF", 94.64),
    "single:Face2Face": ("single", "F2F", 81.4),
    "single:FaceSwap": ("single", "FS", 94.28),
    "single:NeuralTextures": ("single", "NT", 100.0),
    "cross:NeuralTextures": ("cross", "train FS,DF,F2F -> test NT", 49.2),
    "cross:Face2Face": ("cross", "train FS,DF,NT -> test F2F", 40.0),
    "cross:Deepfakes": ("cross", "train FS,F2F,NT -> test DF", 69.28),
    "cross:FaceSwap": ("cross", "train DF,F2F,NT -> test FS", 94.28),
}
TABLE2_PROTOCOLS = tuple(TABLE2)
PAPER_TCR = {protocol: tcr for protocol, (_, _, tcr) in TABLE2.items()}


def _percent(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(100.0 * value, 2)


def table2_row(protocol: str, metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """Our Table 2 entry for ``protocol`` from ``{"frame": ..., "video": ...}`` metrics (percent).

    Keys: ``protocol``, ``section``, ``column``, ``paper_tcr`` (None for a protocol outside
    Table 2), ``frame_tcr``, ``video_tcr``, ``frame_balanced_accuracy``, ``video_balanced_accuracy``,
    ``frame_auc``, ``video_auc``.
    """
    section, column, paper = TABLE2.get(protocol, (protocol.partition(":")[0], protocol, None))
    frame, video = metrics.get("frame") or {}, metrics.get("video") or {}
    return {
        "protocol": protocol,
        "section": section,
        "column": column,
        "paper_tcr": paper,
        "frame_tcr": _percent(frame.get("tcr")),
        "video_tcr": _percent(video.get("tcr")),
        "frame_balanced_accuracy": _percent(frame.get("balanced_accuracy")),
        "video_balanced_accuracy": _percent(video.get("balanced_accuracy")),
        "frame_auc": _percent(frame.get("auc")),
        "video_auc": _percent(video.get("auc")),
    }


def format_table2(rows: Iterable[Mapping[str, Any]]) -> str:
    """A plain-text Table 2: the paper's TCR beside ours (frame and video level), by section."""
    headers = ["protocol", "paper TCR", "frame TCR", "video TCR", "frame bal.acc", "video bal.acc", "frame AUC"]
    keys = ["column", "paper_tcr", "frame_tcr", "video_tcr", "frame_balanced_accuracy",
            "video_balanced_accuracy", "frame_auc"]
    rows = list(rows)
    lines: List[str] = []
    for section in ("combined", "single", "cross"):
        selected = [r for r in rows if r["section"] == section]
        if not selected:
            continue
        table = [[_cell(r[k]) for k in keys] for r in selected]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
        lines.append(f"{section.capitalize()} evaluation (TCR %, paper Table 2)")
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend("  ".join(c.ljust(w) for c, w in zip(t, widths)) for t in table)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)
