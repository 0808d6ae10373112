"""The model folder format: one folder (or Hub repo) that timm, transformers and the pipelines all load.

An exported folder holds exactly one set of weights and one config::

    model.safetensors          timm-format state dict (no prefix); transformers adds its ``dldfd.`` prefix
    config.json                timm keys (architecture, num_classes, pretrained_cfg, label_names[, model_args])
                               + transformers keys (model_type, architectures, id2label/label2id, auto_map)
    preprocessor_config.json   resize + ImageNet normalisation, for pipeline("image-classification")
    configuration_dldfd.py     remote-code shims: AutoModelForImageClassification.from_pretrained(
    modeling_dldfd.py              repo, trust_remote_code=True) works without importing dldfd_hf first
    README.md                  the model card (written by :func:`dldfd_hf.hub.export.export_model`)

The weights are stored in the timm layout because that is the one layout every door reads without a
conversion step: timm (``hf-hub:``, a registered name, ``local-dir:``, ``checkpoint_path``, a plain
``load_state_dict``) and transformers (which adds its base-model prefix on load).

This module sits below :mod:`dldfd_hf.modeling_dldfd` (whose ``save_pretrained`` writes these files),
so it knows the transformers model only by its two attributes, ``dldfd`` and ``config``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

import timm
import torch
import transformers
from safetensors.torch import save_file
from timm.models import filter_pretrained_cfg
from torch import nn
from transformers import ViTImageProcessor

from ._io import PathLike
from .configuration_dldfd import DLDFDConfig
from .models.dldfd import DLDFD
from .templates import template_text

if TYPE_CHECKING:  # for the annotations only: the modeling module imports this one
    from .modeling_dldfd import DLDFDForImageClassification

__all__ = [
    "AUTO_MAP",
    "MODEL_FILES",
    "REMOTE_CODE_FILES",
    "ModelFolderError",
    "check_model_folder",
    "hub_config",
    "image_processor_for",
    "is_trained",
    "network_and_config",
    "save_model_folder",
    "write_model_files",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
PREPROCESSOR_NAME = "preprocessor_config.json"
CARD_NAME = "README.md"
# Exported file name -> template shipped in dldfd_hf/templates/.
REMOTE_CODE_FILES = {
    "configuration_dldfd.py": "remote_configuration_dldfd.py",
    "modeling_dldfd.py": "remote_modeling_dldfd.py",
}
# What each file of a model folder is for: used in the error naming a missing file.
MODEL_FILES = {
    WEIGHTS_NAME: "the weights",
    CONFIG_NAME: "the timm + transformers config",
    PREPROCESSOR_NAME: "the image preprocessing used by pipeline('image-classification')",
    "configuration_dldfd.py": "the remote-code config shim (trust_remote_code=True)",
    "modeling_dldfd.py": "the remote-code model shim (trust_remote_code=True)",
}
AUTO_MAP = {
    "AutoConfig": "configuration_dldfd.DLDFDConfig",
    "AutoModel": "modeling_dldfd.DLDFDModel",
    "AutoModelForImageClassification": "modeling_dldfd.DLDFDForImageClassification",
}
# Registered timm entry point used to rebuild a model whose own architecture name is not registered
# (``create_dldfd`` around another backbone): every differing constructor argument goes to model_args.
FALLBACK_ARCHITECTURE = "dldfd_resnet50"
# Beyond timm's source keys: the pretrained tag names the weights an export replaces.
_SOURCE_ONLY_KEYS = ("state_dict", "tag")

ModelLike = Union[DLDFD, "DLDFDForImageClassification"]


class ModelFolderError(FileNotFoundError):
    """A model folder or Hub repo lacks a file it needs (the message names the file)."""


# --------------------------------------------------------------------------------------------------
# config.json: the timm half and the transformers half
# --------------------------------------------------------------------------------------------------
def image_processor_for(config: DLDFDConfig) -> ViTImageProcessor:
    """The image processor that matches a config: resize to the input size, ImageNet normalisation.

    Face crops are already square and tight, so there is no centre crop.
    """
    return ViTImageProcessor(
        do_resize=True,
        size={"height": config.image_size, "width": config.image_size},
        do_rescale=True,
        do_normalize=True,
        image_mean=list(config.image_mean),
        image_std=list(config.image_std),
    )


def network_and_config(model: ModelLike) -> Tuple[DLDFD, DLDFDConfig]:
    """The timm module and a config describing it, for either front door's model."""
    if isinstance(model, DLDFD):
        return model, DLDFDConfig.from_timm(model)
    network, config = getattr(model, "dldfd", None), getattr(model, "config", None)
    if isinstance(network, DLDFD) and isinstance(config, DLDFDConfig):  # a DLDFDForImageClassification
        return network, config
    raise TypeError(
        f"expected a timm DLDFD module or a DLDFDForImageClassification, got {type(model).__name__}"
    )


def _jsonable(value: Any) -> Any:
    """JSON round trip: tuples become lists, so saved and rebuilt arguments compare equal."""
    return json.loads(json.dumps(value))


def _timm_architecture(config: DLDFDConfig) -> str:
    arch = config.timm_architecture
    return arch if arch and timm.is_model(arch) and arch.startswith("dldfd_") else FALLBACK_ARCHITECTURE


def _entry_point_kwargs(architecture: str) -> Dict[str, Any]:
    """Constructor arguments a registered entry point uses by default (built on the meta device: free)."""
    with torch.device("meta"):
        return dict(timm.create_model(architecture).init_kwargs)


def _model_args(architecture: str, config: DLDFDConfig) -> Dict[str, Any]:
    """The constructor arguments that differ from ``architecture``'s defaults.

    Derived from the config rather than timm's ``model._model_args``: that records only what was
    passed to ``timm.create_model``, and a module built by the transformers door has none.

    ``num_classes`` is deliberately left out: it travels as the top-level ``num_classes`` key
    (timm feeds it from pretrained_cfg), and a ``model_args.num_classes`` breaks transformers'
    TimmWrapper loading ("got multiple values for num_classes").
    """
    defaults = _jsonable(_entry_point_kwargs(architecture))
    wanted = _jsonable(config.dldfd_kwargs())
    args = {}
    for key, value in wanted.items():
        if key == "num_classes" or defaults.get(key) == value:
            continue
        if key in ("stem_norm", "stem_act") and value is None:
            value = "none"  # timm.create_model drops None-valued kwargs; "none" means no layer
        args[key] = value
    return args


def _pretrained_cfg(model: DLDFD, config: DLDFDConfig, architecture: str) -> Dict[str, Any]:
    """timm's pretrained_cfg for the exported weights: preprocessing and labels, no source."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if not cfg:  # e.g. a module built by DLDFDForImageClassification: start from the entry point's
        cfg = timm.models.get_pretrained_cfg(architecture).to_dict()
    cfg = filter_pretrained_cfg({k: v for k, v in cfg.items() if k not in _SOURCE_ONLY_KEYS}, remove_source=True)
    size = config.image_size
    cfg.update(
        architecture=architecture,
        input_size=[config.num_channels, size, size],
        mean=list(config.image_mean),
        std=list(config.image_std),
        num_classes=config.head_num_classes,
        label_names=config.class_names(),
        first_conv="stem.conv",
        classifier=model.get_classifier(name_only=True),
    )
    return _jsonable(cfg)


def hub_config(model: ModelLike) -> Dict[str, Any]:
    """The ``config.json`` of an exported folder: transformers' config plus timm's keys."""
    network, config = network_and_config(model)
    architecture = _timm_architecture(config)
    config = DLDFDConfig.from_dict({**config.to_dict(), "timm_architecture": architecture})
    hf = config.to_diff_dict()
    for key in ("_name_or_path", "auto_map", "transformers_version"):
        hf.pop(key, None)
    hf.update(
        architectures=["DLDFDForImageClassification"],
        dtype=str(next(network.parameters()).dtype).replace("torch.", ""),  # of the saved weights
        auto_map=dict(AUTO_MAP),
        # transformers treats a local folder whose config.json has timm keys as a timm checkpoint and
        # looks for the image processor type here rather than in preprocessor_config.json.
        image_processor_type=type(image_processor_for(config)).__name__,
        # timm's half (read by timm.create_model("hf-hub:...") and by pretrained=True)
        architecture=architecture,
        num_classes=config.head_num_classes,
        num_features=network.num_features,
        label_names=config.class_names(),
        pretrained_cfg=_pretrained_cfg(network, config, architecture),
    )
    model_args = _model_args(architecture, config)
    if model_args:
        hf["model_args"] = model_args
    else:
        hf.pop("model_args", None)
    hf["transformers_version"] = transformers.__version__
    return _jsonable(hf)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def is_trained(model: ModelLike) -> Optional[bool]:
    """Has this network ever seen a training batch? ``None`` when it cannot be told.

    BatchNorm layers count the batches they normalised in training mode (``num_batches_tracked``).
    Freshly built networks, and ones whose only weights are an ImageNet backbone, have zero in every
    BN layer of the stem (a new layer) and usually everywhere else.
    """
    network, _ = network_and_config(model)
    counters = [m.num_batches_tracked for m in network.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.num_batches_tracked is not None]
    if not counters:
        return None
    stem_counters = [m.num_batches_tracked for m in network.stem.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if stem_counters:  # the stem never comes from ImageNet: it is trained here or not at all
        return bool(any(int(c) > 0 for c in stem_counters))
    return bool(any(int(c) > 0 for c in counters))


def write_model_files(model: ModelLike, folder: PathLike, *, weights: bool = True) -> Dict[str, Any]:
    """Write config, preprocessor config, remote-code shims and (``weights=True``) the weights.

    ``DLDFDForImageClassification.save_pretrained`` calls this with ``weights=False`` after
    transformers wrote the weights, so every saved or exported folder has the same files.
    Returns the written ``config.json`` content.
    """
    network, config = network_and_config(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if weights:
        state_dict = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
        save_file(state_dict, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    hf_config = hub_config(model)
    (folder / CONFIG_NAME).write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    image_processor_for(config).save_pretrained(folder)
    for exported, template in REMOTE_CODE_FILES.items():
        (folder / exported).write_text(template_text(template), encoding="utf-8")
    return hf_config


def save_model_folder(model: ModelLike, folder: PathLike) -> Dict[str, Any]:
    """Write weights, config, preprocessor config and remote-code shims into ``folder``; returns the config."""
    return write_model_files(model, folder, weights=True)


# --------------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------------
def _missing(names, where: str) -> ModelFolderError:
    described = "; ".join(f"{name} ({MODEL_FILES.get(name, 'required')})" for name in names)
    return ModelFolderError(f"{where} is missing {described}. Re-export it with dldfd_hf.hub.export.export_model.")


def check_model_folder(folder: PathLike, *, remote_code: bool = True) -> None:
    """Raise :class:`ModelFolderError` naming each file an exported model folder lacks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist")
    wanted = [WEIGHTS_NAME, CONFIG_NAME, PREPROCESSOR_NAME] + (list(REMOTE_CODE_FILES) if remote_code else [])
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise _missing(missing, f"model folder {folder}")
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    absent = [key for key in ("architecture", "pretrained_cfg", "model_type", "auto_map") if key not in config]
    if absent:
        raise ValueError(f"{folder / CONFIG_NAME} lacks the keys {absent}: it was not written by export_model")
