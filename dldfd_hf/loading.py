"""Resolve a user's model argument: a local model folder, a registered timm architecture, or a Hub id.

Used by ``dldfd detect``, the demo and the evaluation scripts, so "--model X" means the same
everywhere:

* an existing folder (``save_pretrained`` / export output) -> the weights in it;
* a registered DLDFD timm name: ``dldfd_tiny`` -> RANDOM weights (with a loud warning; for smoke
  tests), ``dldfd_resnet50.ffpp_c40`` (architecture.tag) -> that tag's pretrained weights via timm;
* anything else -> a Hugging Face Hub id (``hf-hub:`` prefix optional), loaded with transformers.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal, Tuple, Union

import torch

from .models.dldfd import HUB_ORG

__all__ = [
    "DEFAULT_MODEL",
    "ModelLoadError",
    "RandomWeightsWarning",
    "resolve_model_source",
    "load_model",
    "load_video_pipeline",
]

DEFAULT_MODEL = f"{HUB_ORG}/dldfd_resnet50.ffpp_c40"
ModelSource = Literal["folder", "architecture", "pretrained-tag", "hub"]


class ModelLoadError(Exception):
    """The model argument could not be resolved or loaded (the message says which and why)."""


class RandomWeightsWarning(UserWarning):
    """A model was built from an architecture name: its weights are random, its predictions meaningless."""


def resolve_model_source(spec: Union[str, os.PathLike]) -> ModelSource:
    """What ``spec`` names, without loading anything."""
    import timm

    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder"
    if path.exists() or text.startswith(("/", ".", "~")) or text.count("/") > 1 or (os.sep != "/" and os.sep in text):
        reason = "a file, not a folder" if path.exists() else "no such directory"
        raise ModelLoadError(f"{text!r} is not a model folder ({reason})")
    if text.startswith("hf-hub:"):
        return "hub"
    if "/" not in text:
        if text in timm.list_models("dldfd_*"):
            return "architecture"
        if text in timm.list_pretrained("dldfd_*"):
            return "pretrained-tag"
        if timm.is_model(text.split(".", 1)[0]):
            raise ModelLoadError(
                f"{text!r} is a timm model but not a DLDFD architecture; use one of {timm.list_models('dldfd_*')}"
            )
        raise ModelLoadError(
            f"{text!r} is neither a local model folder, a DLDFD architecture ({', '.join(timm.list_models('dldfd_*'))}), "
            "nor a Hub id of the form 'org/name'"
        )
    return "hub"


def load_model(
    spec: Union[str, os.PathLike] = DEFAULT_MODEL,
    device: Union[str, torch.device, None] = None,
) -> Tuple[Any, Any]:
    """``(model, image_processor)`` for ``spec``; the model is a transformers image classifier in eval mode.

    Raises :class:`ModelLoadError` with the reason when ``spec`` cannot be loaded (e.g. a Hub id
    that is not cached while offline). Building from a bare architecture name emits a
    :class:`RandomWeightsWarning`.
    """
    import timm
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from .modeling_dldfd import DLDFDForImageClassification, image_processor_for

    source = resolve_model_source(spec)
    text = str(spec)
    try:
        if source in ("architecture", "pretrained-tag"):
            if source == "architecture":
                message = (
                    f"{text} was built with RANDOM weights: its predictions are meaningless "
                    "(use it for smoke tests; pass a model folder or Hub id for real detection)"
                )
                warnings.warn(message, RandomWeightsWarning, stacklevel=2)
            timm_model = timm.create_model(text, pretrained=source == "pretrained-tag")
            model = DLDFDForImageClassification.from_timm(timm_model)
            processor = image_processor_for(model.config)
        else:
            if source == "folder":
                location = str(Path(text).expanduser())
            else:
                location = text[len("hf-hub:"):] if text.startswith("hf-hub:") else text
            model = AutoModelForImageClassification.from_pretrained(location)
            try:
                processor = AutoImageProcessor.from_pretrained(location)
            except (OSError, ValueError):
                if not hasattr(model.config, "image_size") or model.config.model_type != "dldfd":
                    raise
                processor = image_processor_for(model.config)
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        where = {"folder": "model folder", "hub": "Hub model", "pretrained-tag": "timm pretrained model"}.get(source, "model")
        raise ModelLoadError(f"cannot load {where} {text!r}: {err}") from err
    model.eval()
    if device is not None:
        model.to(device)
    return model, processor


def load_video_pipeline(
    spec: Union[str, os.PathLike] = DEFAULT_MODEL,
    device: Union[str, torch.device, None] = None,
    **pipeline_kwargs: Any,
):
    """A ready :class:`~dldfd_hf.pipelines.DeepfakeVideoDetectionPipeline` for ``spec`` (see :func:`load_model`)."""
    from .pipelines import DeepfakeVideoDetectionPipeline, TASK

    model, processor = load_model(spec, device=device)
    return DeepfakeVideoDetectionPipeline(
        model=model,
        image_processor=processor,
        task=TASK,
        device=torch.device(device) if device is not None else model.device,
        **pipeline_kwargs,
    )
