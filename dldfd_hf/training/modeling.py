"""Building the model to train, and resolving the model to evaluate, from a name or a path."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import timm

from ..inference.loading import load_model
from ..modeling_dldfd import DLDFDForImageClassification

__all__ = ["build_model", "load_detector"]


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
        wrapper = load_detector(init_from)
        wrapper.config.pos_weight = pos_weight
        if image_size:
            wrapper.config.image_size = int(image_size)
        return wrapper.train()
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
    return DLDFDForImageClassification.from_timm(network, **config_kwargs)


def load_detector(spec: Union[str, Path]) -> DLDFDForImageClassification:
    """The model ``--model`` names, as a transformers model in eval mode.

    Everything :func:`dldfd_hf.inference.loading.load_model` resolves (a model folder, a training
    checkpoint -- it holds ``config.json`` + ``model.safetensors`` --, an architecture name with
    random weights, a pretrained tag, a Hub id), plus a training run folder
    (``examples/train.py``'s ``OUTPUT_DIR``), which means its ``best/`` model.
    """
    path = Path(spec)
    if path.is_dir() and not (path / "config.json").is_file() and (path / "best" / "config.json").is_file():
        spec = path / "best"
    model, _ = load_model(spec)
    return model
