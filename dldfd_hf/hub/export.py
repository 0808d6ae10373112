"""Export a model to a folder ready for the Hub: the model folder format plus its model card."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional

from .._io import PathLike, atomic_folder
from ..metrics.results import load_evaluation
from ..model_folder import CARD_NAME, ModelLike, is_trained, save_model_folder
from .cards import render_model_card

__all__ = ["export_model"]

_logger = logging.getLogger(__name__)


def export_model(
    model: ModelLike,
    output_dir: PathLike,
    *,
    repo_id: Optional[str] = None,
    results: Any = None,
    training: Optional[Mapping[str, Any]] = None,
    trained: Optional[bool] = None,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` to ``output_dir``: weights, config, preprocessing, remote code and model card.

    Args:
        model: a timm ``DLDFD`` module or a ``DLDFDForImageClassification``.
        output_dir: the folder to write; written atomically (a temporary sibling renamed into place).
        repo_id: the Hub id the folder is meant for (used in the card's usage snippets).
        results: evaluation JSON (path, dict or :class:`~dldfd_hf.metrics.results.EvaluationReport`) whose
            metrics fill the card's ``model-index`` and results table; None = a card without results.
        training: training details for the card (see :func:`dldfd_hf.hub.cards.render_model_card`).
        trained: whether the weights are trained; None = infer from the BatchNorm batch counters
            (:func:`dldfd_hf.model_folder.is_trained`). An untrained export gets a warning at the top of its card.
        overwrite: replace an existing non-empty ``output_dir``.
    """
    output_dir = Path(output_dir)
    report = load_evaluation(results) if results is not None else None
    if trained is None:
        trained = is_trained(model)
    if trained is False:
        _logger.warning("exporting an untrained DLDFD model: its card says so")

    with atomic_folder(output_dir, overwrite=overwrite) as folder:
        hf_config = save_model_folder(model, folder)
        card = render_model_card(hf_config, repo_id=repo_id, results=report, training=training, trained=trained)
        card.save(folder / CARD_NAME)
    return output_dir
