"""One model folder (or Hub repo) that timm, transformers and the pipelines all load.

An exported folder holds exactly one set of weights and one config::

    model.safetensors          timm-format state dict (no prefix); transformers adds its ``dldfd.`` prefix
    config.json                timm keys (architecture, num_classes, pretrained_cfg, label_names[, model_args])
                               + transformers keys (model_type, architectures, id2label/label2id, auto_map)
    preprocessor_config.json   resize + ImageNet normalisation, for pipeline("image-classification")
    configuration_dldfd.py     remote-code shims: AutoModelForImageClassification.from_pretrained(
    modeling_dldfd.py              repo, trust_remote_code=True) works without importing dldfd_hf first
    README.md                  the model card (:mod:`dldfd_hf.cards`)

The weights are stored in the timm layout because that is the one layout every door reads without a
conversion step: timm (``hf-hub:``, a registered name, ``local-dir:``, ``checkpoint_path``, a plain
``load_state_dict``) and transformers (which adds its base-model prefix on load).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch
from safetensors.torch import save_file
from torch import nn

import timm
import transformers

from .cards import template_text
from .configuration_dldfd import DLDFDConfig
from .modeling_dldfd import DLDFDForImageClassification, image_processor_for
from .models.dldfd import DLDFD

__all__ = [
    "AUTO_MAP",
    "MODEL_FILES",
    "REMOTE_CODE_FILES",
    "ModelFolderError",
    "check_model_folder",
    "export_model",
    "hub_config",
    "is_trained",
    "save_model_folder",
    "write_folder",
    "write_model_files",
]

_logger = logging.getLogger(__name__)

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
# pretrained_cfg entries that describe where weights came from, not what they are.
_SOURCE_KEYS = {"url", "file", "hf_hub_id", "hf_hub_filename", "source", "state_dict", "tag"}

ModelLike = Union[DLDFD, DLDFDForImageClassification]
PathLike = Union[str, os.PathLike]


class ModelFolderError(FileNotFoundError):
    """A model folder or Hub repo lacks a file it needs (the message names the file)."""


# --------------------------------------------------------------------------------------------------
# config.json: the timm half and the transformers half
# --------------------------------------------------------------------------------------------------
def _split(model: ModelLike) -> Tuple[DLDFD, DLDFDConfig]:
    """The timm module and a config describing it, for either front door's model."""
    if isinstance(model, DLDFDForImageClassification):
        return model.dldfd, model.config
    if isinstance(model, DLDFD):
        return model, DLDFDConfig.from_timm(model)
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
    cfg = {k: v for k, v in cfg.items() if k not in _SOURCE_KEYS and (v is not None or k in ("pool_size",))}
    size = config.image_size
    cfg.update(
        architecture=architecture,
        input_size=[config.num_channels, size, size],
        mean=list(config.image_mean),
        std=list(config.image_std),
        num_classes=config.head_num_classes,
        label_names=config.class_names(),
        first_conv="stem.conv",
        classifier=model.pretrained_cfg_classifier(),
    )
    return _jsonable(cfg)


def hub_config(model: ModelLike) -> Dict[str, Any]:
    """The ``config.json`` of an exported folder: transformers' config plus timm's keys."""
    network, config = _split(model)
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
# Export
# --------------------------------------------------------------------------------------------------
def is_trained(model: ModelLike) -> Optional[bool]:
    """Has this network ever seen a training batch? ``None`` when it cannot be told.

    BatchNorm layers count the batches they normalised in training mode (``num_batches_tracked``).
    Freshly built networks, and ones whose only weights are an ImageNet backbone, have zero in every
    BN layer of the stem (a new layer) and usually everywhere else.
    """
    network, _ = _split(model)
    counters = [m.num_batches_tracked for m in network.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.num_batches_tracked is not None]
    if not counters:
        return None
    stem_counters = [m.num_batches_tracked for m in network.stem.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if stem_counters:  # the stem never comes from ImageNet: it is trained here or not at all
        return bool(any(int(c) > 0 for c in stem_counters))
    return bool(any(int(c) > 0 for c in counters))


def write_folder(output_dir: PathLike, fill: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Create ``output_dir`` by calling ``fill`` on a temporary sibling folder, then renaming it into place.

    A failure leaves no half-written folder behind, and an existing folder (``overwrite=True``) is
    only replaced once the new one is complete.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} is not empty (pass overwrite=True / --overwrite to replace it)")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        fill(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if output_dir.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
        output_dir.rename(previous / "folder")
        staging.rename(output_dir)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        staging.rename(output_dir)
    return output_dir


def write_model_files(model: ModelLike, folder: PathLike, *, weights: bool = True) -> Dict[str, Any]:
    """Write config, preprocessor config, remote-code shims and (``weights=True``) the weights.

    ``DLDFDForImageClassification.save_pretrained`` calls this with ``weights=False`` after
    transformers wrote the weights, so every saved or exported folder has the same files.
    Returns the written ``config.json`` content.
    """
    network, config = _split(model)
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
        results: evaluation JSON (path, dict or :class:`~dldfd_hf.cards.EvaluationReport`) whose
            metrics fill the card's ``model-index`` and results table; None = a card without results.
        training: training details for the card (see :func:`dldfd_hf.cards.render_model_card`).
        trained: whether the weights are trained; None = infer from the BatchNorm batch counters
            (:func:`is_trained`). An untrained export gets a warning at the top of its card.
        overwrite: replace an existing non-empty ``output_dir``.
    """
    from .cards import load_evaluation, render_model_card

    output_dir = Path(output_dir)
    report = load_evaluation(results) if results is not None else None
    if trained is None:
        trained = is_trained(model)
    if trained is False:
        _logger.warning("exporting an untrained DLDFD model: its card says so")

    def fill(folder: Path) -> None:
        hf_config = save_model_folder(model, folder)
        card = render_model_card(hf_config, repo_id=repo_id, results=report, training=training, trained=trained)
        card.save(folder / CARD_NAME)

    write_folder(output_dir, fill, overwrite=overwrite)
    return output_dir


# --------------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------------
def _missing(names, where: str) -> ModelFolderError:
    described = "; ".join(f"{name} ({MODEL_FILES.get(name, 'required')})" for name in names)
    return ModelFolderError(f"{where} is missing {described}. Re-export it with dldfd_hf.hub.export_model.")


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
