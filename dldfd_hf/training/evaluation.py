"""Prediction over a corpus split (any number of processes) and its metrics.

Used by ``examples/train.py`` (validation every epoch, final test) and ``examples/evaluate.py``.
Predictions are gathered across processes with ``accelerator.gather_for_metrics``, which drops
the samples a distributed sampler repeats to even out the last batch; every gathered frame carries
its row ``index``, so the result is checked to cover each row exactly once before any metric is computed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .._io import atomic_path
from ..inference.voting import VotingRule
from ..metrics.core import deepfake_metrics
from ..metrics.paper import table2_row
from ..metrics.results import LEVEL_METRICS, EvaluationEntry
from ..models.dldfd import fake_probabilities
from .data import read_column
from .sources import SOURCE_COLUMN

__all__ = [
    "Predictions",
    "evaluation_entry",
    "flatten_metrics",
    "predict",
    "split_metrics",
    "write_predictions",
]


@dataclass
class Predictions:
    """Per-frame outputs of one split, sorted by row index (one entry per row)."""

    index: np.ndarray
    labels: np.ndarray
    fake_probs: np.ndarray
    loss: Optional[float] = None

    def __len__(self) -> int:
        return int(self.index.size)


@torch.no_grad()
def predict(model: Any, dataloader: Any, accelerator: Any, desc: str = "evaluating",
            expected_rows: Optional[int] = None) -> Predictions:
    """Run ``model`` (a prepared ``DLDFDForImageClassification``) over a prepared DataLoader.

    Every process runs its shard; all processes return the same gathered predictions.
    ``expected_rows``: the split's size; the gathered rows must be exactly ``0 .. expected_rows-1``.
    """
    was_training = model.training
    model.eval()
    chunks: Dict[str, list] = {"index": [], "labels": [], "probs": [], "loss": []}
    for batch in tqdm(dataloader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        outputs = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
        probs = fake_probabilities(outputs.logits)
        # The batch mean repeated per sample: summed over the gathered samples it is the sum of losses.
        loss = outputs.loss.detach().float().repeat(batch["labels"].shape[0])
        gathered = accelerator.gather_for_metrics((batch["index"], batch["labels"], probs, loss))
        for key, value in zip(chunks, gathered):
            chunks[key].append(value.cpu())
    model.train(was_training)
    if not chunks["index"]:
        raise ValueError(f"{desc}: the split is empty")
    index = torch.cat(chunks["index"]).numpy()
    order = np.argsort(index, kind="stable")
    predictions = Predictions(
        index=index[order],
        labels=torch.cat(chunks["labels"]).numpy()[order],
        fake_probs=torch.cat(chunks["probs"]).double().numpy()[order],
        loss=float(torch.cat(chunks["loss"]).double().mean()),
    )
    if expected_rows is not None and not np.array_equal(predictions.index, np.arange(expected_rows)):
        raise RuntimeError(
            f"{desc}: gathered {len(predictions)} predictions for {expected_rows} rows "
            f"({len(np.unique(predictions.index))} distinct): samples were dropped or duplicated"
        )
    return predictions


def split_metrics(dataset: Any, predictions: Predictions, rule: VotingRule = VotingRule()) -> Dict[str, Any]:
    """``{"frame", "video", "per_method", "loss"}`` for predictions over ``dataset`` (a corpus split);
    a split merged from several corpora (a ``source`` column) also gets ``per_source``: the same
    metrics (but the loss) for each corpus's rows alone."""
    methods = np.asarray(read_column(dataset, "method"), dtype=object)[predictions.index]
    video_ids = np.asarray(read_column(dataset, "video_id"), dtype=object)[predictions.index]
    result = deepfake_metrics(
        predictions.labels, predictions.fake_probs, methods.tolist(), video_ids.tolist(),
        rule,
    )
    result["loss"] = predictions.loss
    if SOURCE_COLUMN in dataset.column_names:
        sources = np.asarray(read_column(dataset, SOURCE_COLUMN), dtype=object)[predictions.index]
        result["per_source"] = {
            name: deepfake_metrics(
                predictions.labels[mine], predictions.fake_probs[mine], methods[mine].tolist(),
                video_ids[mine].tolist(), rule,
            )
            for name in dict.fromkeys(sources.tolist())
            for mine in [sources == name]
        }
    return result


def evaluation_entry(protocol: str, split: str, dataset: Any, predictions: Predictions,
                     rule: VotingRule = VotingRule()) -> Dict[str, Any]:
    """One protocol's evaluation as written to JSON by ``examples/evaluate.py`` and ``train.py``:
    an :class:`~dldfd_hf.metrics.results.EvaluationEntry` as a dict (schema: ``examples/evaluate.py``)."""
    metrics = split_metrics(dataset, predictions, rule)
    labels = predictions.labels
    return EvaluationEntry(
        protocol=protocol,
        split=split,
        num_frames=len(predictions),
        class_counts={"real": int((labels == 0).sum()), "fake": int((labels == 1).sum())},
        methods=sorted(metrics["per_method"]),
        metrics=metrics,
        table2=table2_row(protocol, metrics),
    ).to_dict()


def flatten_metrics(result: Dict[str, Any]) -> Dict[str, float]:
    """``{"loss": .., "frame/tcr": .., "video/auc": ..}``: the numeric summary values, for logging and model selection."""
    flat = {"loss": result.get("loss")}
    for level, names in LEVEL_METRICS.items():
        for name in names:
            flat[f"{level}/{name}"] = (result.get(level) or {}).get(name)
    for source, metrics in (result.get("per_source") or {}).items():
        for level in ("frame", "video"):
            flat[f"{source}:{level}/auc"] = (metrics.get(level) or {}).get("auc")
    return {k: v for k, v in flat.items() if v is not None}


def write_predictions(path: Union[str, Path], dataset: Any, predictions: Predictions) -> Path:
    """Per-frame CSV: row, method, video_id, frame_index, label, fake_prob."""
    path = Path(path)
    rows = predictions.index
    columns = {name: np.asarray(read_column(dataset, name), dtype=object)[rows]
               for name in ("method", "video_id", "frame_index") if name in dataset.column_names}
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", *columns, "label", "fake_prob"])
        for i, row in enumerate(rows):
            writer.writerow([int(row), *(columns[c][i] for c in columns), int(predictions.labels[i]),
                             f"{predictions.fake_probs[i]:.6f}"])
    return path
