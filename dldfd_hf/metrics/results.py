"""Evaluation results as they are written to JSON, and read back for model cards.

One :class:`EvaluationEntry` per protocol: ``examples/evaluate.py`` writes
``{"format": "dldfd-eval/1", ..., "results": [entry, ...]}`` (its docstring is the schema) and
``examples/train.py`` writes one entry as ``results.json["test"]``; both make it with
:func:`dldfd_hf.training.evaluation.evaluation_entry`, which returns ``EvaluationEntry(...).to_dict()``.
:func:`load_evaluation` reads either file (or a hand-written one) back into an
:class:`EvaluationReport` and refuses, naming the file and the field, anything it cannot read.

Metric values are fractions in [0, 1] (names from :mod:`dldfd_hf.metrics.core`); ``None`` means
undefined. Light on purpose: reading results imports neither ``datasets`` nor torch's data stack.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .._io import PathLike
from ..data.ffpp import DEFAULT_METHODS
from ..data.report import corpus_settings
from ..data.units import ORIGINAL
from .core import FRAME_METRICS, VIDEO_METRICS

__all__ = ["LEVEL_METRICS", "EvaluationEntry", "EvaluationReport", "load_evaluation"]

# The scores of each level, as deepfake_metrics names them; other keys there are counts and settings.
LEVEL_METRICS = {"frame": FRAME_METRICS, "video": VIDEO_METRICS}
PROTOCOL_KINDS = ("combined", "single", "cross")


@dataclass
class EvaluationEntry:
    """One protocol's evaluation of one split (``"protocol"``: ``combined``, ``single:<Method>``,
    ``cross:<Method>`` with the held-out method). Field order is the JSON's key order."""

    protocol: str
    split: str = "test"
    num_frames: Optional[int] = None
    class_counts: Dict[str, int] = field(default_factory=dict)  # frames: {"real", "fake"}
    methods: List[str] = field(default_factory=list)  # corpus methods present ("original" = real)
    metrics: Dict[str, Any] = field(default_factory=dict)  # {"frame", "video", "per_method", "loss", ...}
    table2: Optional[Dict[str, Any]] = None  # dldfd_hf.metrics.paper.table2_row (percent)

    @property
    def kind(self) -> str:
        return self.protocol.partition(":")[0]

    @property
    def method(self) -> Optional[str]:
        return self.protocol.partition(":")[2] or None

    def scores(self, level: str) -> Dict[str, float]:
        """The defined metric values of ``level`` (``"frame"`` or ``"video"``)."""
        values = self.metrics.get(level) or {}
        return {name: float(values[name]) for name in LEVEL_METRICS[level] if values.get(name) is not None}

    def video_counts(self) -> Optional[Tuple[int, int]]:
        """``(real, fake)`` videos of the split, when the entry records them."""
        video = self.metrics.get("video") or {}
        real, fake = video.get("num_real"), video.get("num_fake")
        return (real, fake) if isinstance(real, int) and isinstance(fake, int) else None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "evaluation entry") -> "EvaluationEntry":
        """Read and check an entry; ``where`` (the file and the entry) starts every error message.

        ``frame`` / ``video`` may also sit directly in the entry instead of under ``metrics``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object with a protocol and its metrics")
        protocol = _check_protocol(data.get("protocol"), where)
        if isinstance(data.get("metrics"), Mapping):
            metrics, prefix = dict(data["metrics"]), f"{where}.metrics"
        else:
            metrics, prefix = {level: data[level] for level in LEVEL_METRICS if level in data}, where
        for level, names in LEVEL_METRICS.items():
            _check_scores(metrics.get(level), names, f"{prefix}.{level}")
        entry = cls(
            protocol=protocol,
            split=str(data.get("split") or "test"),
            num_frames=data.get("num_frames"),
            class_counts=dict(data.get("class_counts") or {}),
            methods=_check_methods(data.get("methods"), f"{where}.methods"),
            metrics=metrics,
            table2=data.get("table2"),
        )
        if not entry.scores("frame") and not entry.scores("video"):
            raise ValueError(f"{where} ({protocol}): no frame-level or video-level metrics found")
        return entry


def _check_protocol(name: Any, where: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"{where}: 'protocol' must be a string like 'combined' or 'single:Deepfakes', got {name!r}")
    kind, _, method = name.partition(":")
    if kind not in PROTOCOL_KINDS or (kind == "combined") == bool(method):
        raise ValueError(f"{where}: unknown protocol {name!r} (combined, single:<Method> or cross:<Method>)")
    return name


def _check_scores(values: Any, names: Tuple[str, ...], where: str) -> None:
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: expected a mapping of metric name -> value, got {type(values).__name__}")
    for name in names:
        value = values.get(name)
        if value is None:
            continue  # undefined (e.g. the AUC of a one-class split)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}.{name}: expected a number, got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}.{name} = {value!r}: metric values must be fractions in [0, 1]")


def _check_methods(methods: Any, where: str) -> List[str]:
    if methods is None:
        return []
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise ValueError(f"{where}: expected a list of method names, got {methods!r}")
    return list(methods)


@dataclass
class EvaluationReport:
    """An evaluation file: its entries and what it says about the data and the video verdict."""

    results: List[EvaluationEntry]
    dataset: Dict[str, Any] = field(default_factory=dict)  # optional "dataset": {"name", "compression", "id"}
    source: Optional[str] = None  # the file it was read from
    strategy: str = "majority"  # frame votes -> video label

    def __post_init__(self) -> None:
        seen = [r.protocol for r in self.results]
        duplicates = sorted({p for p in seen if seen.count(p) > 1})
        if duplicates:
            raise ValueError(f"evaluation results list protocol(s) {duplicates} more than once")

    @property
    def compression(self) -> Optional[str]:
        value = self.dataset.get("compression")
        return str(value) if value else None

    @property
    def methods(self) -> List[str]:
        """The manipulation methods evaluated, the paper's four first (those four when no entry says)."""
        seen = [m for entry in self.results for m in entry.methods if m != ORIGINAL]
        methods = list(dict.fromkeys(seen))
        if not methods:
            return list(DEFAULT_METHODS)
        return [m for m in DEFAULT_METHODS if m in methods] + [m for m in methods if m not in DEFAULT_METHODS]


def _entries(source: Mapping[str, Any], where: str) -> List[Any]:
    if "results" in source:
        if not isinstance(source["results"], list):
            raise ValueError(f"{where}: 'results' must be a list of protocol entries")
        return source["results"]
    if "test" in source:  # a training run's results.json
        if source["test"] is None:
            raise ValueError(f"{where}: the training run has no test metrics yet ('test' is null)")
        return [source["test"]]
    if "protocol" in source:
        return [source]
    raise ValueError(f"{where}: no evaluation results found (expected 'results', 'test' or a 'protocol' entry)")


def load_evaluation(source: Union[PathLike, Mapping[str, Any], List[Any], EvaluationReport]) -> EvaluationReport:
    """Read evaluation results: a JSON path or the loaded object (evaluate.py's file, train.py's
    ``results.json``, a list of entries or one entry).

    Raises ``ValueError`` naming the file and the entry for anything it cannot read as results.
    A corpus folder named by ``"data"`` that is on this machine supplies the compression.
    """
    if isinstance(source, EvaluationReport):
        return source
    name = None
    if not isinstance(source, (Mapping, list)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"evaluation results file {path} does not exist")
        name = str(path)
        try:
            source = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
    where = name or "evaluation results"
    if isinstance(source, list):
        source = {"results": source}
    if not isinstance(source, Mapping):
        raise ValueError(f"{where}: expected a JSON object")
    results = [EvaluationEntry.from_dict(entry, f"{where}: results[{i}]")
               for i, entry in enumerate(_entries(source, where))]
    if not results:
        raise ValueError(f"{where}: the results list is empty")
    dataset = dict(source.get("dataset") or {})
    corpus = corpus_settings(source.get("data"))
    if corpus.get("compression"):
        dataset.setdefault("compression", corpus["compression"])
    strategy = str(source.get("strategy") or (results[0].metrics.get("video") or {}).get("strategy") or "majority")
    return EvaluationReport(results, dataset, name, strategy)
