"""Building the model to train, and resolving the model to evaluate, from a name or a path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import timm

from ..modeling_dldfd import DLDFDForImageClassification

__all__ = ["build_model", "load_detector"]

_logger = logging.getLogger(__name__)


def build_model(
    model: str,
    *,
    model_kwargs: Optional[dict] = None,
    pretrained_backbone: bool = False,
    init_from: Optional[str] = None,
    image_size: Optional[int] = None,
    pos_weight: Optional[float] = None,
) -> DLDFDForImageClassification:
    """The transformers model to train: a fresh ``model`` (timm architecture) or ``init_from`` weights.

    Training goes through :class:`~dldfd_hf.DLDFDForImageClassification` so the loss (BCE on the fake
    logit with ``pos_weight``) is the model's own, and the best model saves with ``save_pretrained``.
    """
    if init_from:
        network = load_detector(init_from)
    else:
        if not timm.is_model(model):
            raise ValueError(f"unknown model {model!r}: use a registered timm architecture such as "
                             f"{', '.join(timm.list_models('dldfd_*'))}")
        kwargs = dict(model_kwargs or {})
        if pretrained_backbone:
            kwargs["backbone_pretrained"] = True
        network = timm.create_model(model, **kwargs)
    config_kwargs: dict = {"pos_weight": pos_weight}
    if image_size:
        config_kwargs["image_size"] = int(image_size)
        network.pretrained_cfg = dict(network.pretrained_cfg, input_size=(network.in_chans, image_size, image_size))
    return DLDFDForImageClassification.from_timm(network, **config_kwargs)


def load_detector(spec: str) -> Any:
    """A timm DLDFD module from a model folder, a Hub id, a training run / checkpoint, or an architecture.

    - a training run folder (``examples/train.py`` output): its ``best/`` model;
    - a model folder or training checkpoint (``config.json`` + ``model.safetensors``);
    - a registered timm architecture name: random weights, with a loud warning (smoke tests only);
    - otherwise a Hub model id, through the HF cache.
    """
    from ..hub import load_model

    path = Path(spec)
    if path.is_dir():
        if (path / "best" / "config.json").is_file() and not (path / "config.json").is_file():
            path = path / "best"
        return load_model(path)
    if timm.is_model(spec):
        _logger.warning("model %r is an architecture name: RANDOM weights, the metrics mean nothing", spec)
        return timm.create_model(spec).eval()
    if spec.count("/") != 1:
        raise FileNotFoundError(
            f"model {spec!r} not found: not a folder, not a registered architecture ({', '.join(timm.list_models('dldfd_*'))}), "
            "and not a Hub id ('org/name')"
        )
    return load_model(spec)
