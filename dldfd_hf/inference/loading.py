"""Resolve a user's model argument: a local model folder, a registered timm architecture, or a Hub id.

Used by ``dldfd detect``, the demo and the evaluation scripts, so "--model X" means the same
everywhere:

* an existing folder (``save_pretrained`` / export output, a training checkpoint) -> the weights in it;
* a registered DLDFD timm name: ``dldfd_tiny`` -> RANDOM weights (with a loud warning; for smoke
  tests), ``dldfd_resnet50.ffpp_c40`` (architecture.tag) -> that tag's pretrained weights via timm;
* anything else -> a Hugging Face Hub id (``hf-hub:`` prefix optional), loaded with transformers.

The default (:data:`DEFAULT_MODEL`) is the detector that ships inside the package
(``dldfd_efficientnet_lite0.ffpp_sbi``), loaded from the installed files: the Hub is only contacted
for a Hub id (or a pretrained tag without bundled weights) the user named. Every failure -- a missing folder, a corrupt ``model.safetensors``, an unreachable Hub id --
is a :class:`ModelLoadError` whose message names the model and the reason.

No code from a model folder or Hub repo ever runs: every transformers call passes
``trust_remote_code=False``, and a folder or repo whose ``config.json`` declares another
``model_type`` than ``"dldfd"`` is refused before transformers reads it ("not a DLDFD model
folder: model_type 'X'"). The remote-code shims of exported repos serve users of plain
transformers (``trust_remote_code=True``); these loaders never need them.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Literal, Optional, Tuple, Union

import timm
import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import SafetensorError, safe_open
from transformers import AutoImageProcessor, AutoModelForImageClassification

from .._hardware import default_device
from ..configuration_dldfd import DLDFDConfig
from ..modeling_dldfd import DLDFDForImageClassification, image_processor_for
from ..models.dldfd import PREVIOUS_SHIPPED_MODEL, PREVIOUS_SHIPPED_MODEL_SUMMARY, SHIPPED_MODEL, SHIPPED_MODEL_SUMMARY
from .pipelines import TASK, DeepfakeVideoDetectionPipeline

__all__ = [
    "DEFAULT_MODEL",
    "ModelLoadError",
    "describe_model",
    "RandomWeightsWarning",
    "looks_like_hub_id",
    "resolve_model_source",
    "load_pipeline_with_notice",
    "load_model",
    "load_video_pipeline",
]

ModelSource = Literal["folder", "architecture", "pretrained-tag", "hub"]
HUB_PREFIX = "hf-hub:"
DEFAULT_MODEL = SHIPPED_MODEL


def describe_model(spec: Union[str, os.PathLike, None]) -> str:
    """One line on which model answers: its name and, for the shipped detector, what it was trained on."""
    name = str(spec) if spec is not None else DEFAULT_MODEL
    if name == SHIPPED_MODEL:
        return f"{SHIPPED_MODEL} (shipped with dldfd-hf): {SHIPPED_MODEL_SUMMARY}"
    if name == PREVIOUS_SHIPPED_MODEL:
        return f"{PREVIOUS_SHIPPED_MODEL} (shipped with dldfd-hf, the previous default): {PREVIOUS_SHIPPED_MODEL_SUMMARY}"
    return name


class ModelLoadError(Exception):
    """The model argument could not be resolved or loaded (the message says which and why)."""


class RandomWeightsWarning(UserWarning):
    """A model was built from an architecture name: its weights are random, its predictions meaningless."""


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a Hub repo id ('org/name') rather than of a local path.

    Shared by model and corpus arguments, so both tell ids from paths the same way. It says nothing
    about whether the repo exists.
    """
    if text.count("/") != 1 or text.startswith((".", "~", "/")) or "\\" in text:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def resolve_model_source(spec: Union[str, os.PathLike]) -> ModelSource:
    """What ``spec`` names, without loading anything (raises :class:`ModelLoadError` when it can name nothing)."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder"
    if text.startswith(HUB_PREFIX) or (looks_like_hub_id(text) and not path.exists()):
        return "hub"
    if path.exists() or "/" in text or (os.sep != "/" and os.sep in text):
        reason = "a file, not a folder" if path.exists() else "no such directory"
        raise ModelLoadError(f"{text!r} is not a model folder ({reason})")
    architectures = timm.list_models("dldfd_*")
    if text in architectures:
        return "architecture"
    if text in timm.list_pretrained("dldfd_*"):
        return "pretrained-tag"
    name, _, tag = text.partition(".")
    if name in architectures:
        if text in timm.list_models("dldfd_*", include_tags=True):
            raise ModelLoadError(
                f"{text!r} has no pretrained weights; use the architecture name {name!r} for random weights "
                "(smoke tests only), or a model folder / Hub id for real detection"
            )
        raise ModelLoadError(
            f"{text!r}: {name} has no tag {tag!r}; pretrained DLDFD models: "
            f"{', '.join(timm.list_pretrained('dldfd_*')) or 'none'} (or {name!r} alone for random weights)"
        )
    if timm.is_model(name):
        raise ModelLoadError(f"{text!r} is a timm model but not a DLDFD architecture; use one of {architectures}")
    raise ModelLoadError(
        f"{text!r} is neither a local model folder, a DLDFD architecture ({', '.join(architectures)}), "
        "nor a Hub id of the form 'org/name'"
    )


def load_model(spec: Union[str, os.PathLike, None] = None, device: Union[str, torch.device, None] = None) -> Tuple[Any, Any]:
    """``(model, image_processor)`` for ``spec`` (default: the shipped detector); the model is a
    transformers image classifier in eval mode.

    Raises :class:`ModelLoadError` with the reason when ``spec`` cannot be loaded: a Hub id that is
    not cached while offline, a corrupt or truncated weights file (named in the message), a
    config that is not a model's, ... Building from a bare architecture name emits a
    :class:`RandomWeightsWarning`.
    """
    spec = DEFAULT_MODEL if spec is None else spec
    source = resolve_model_source(spec)
    text = str(spec)
    if source == "folder":
        location = str(Path(text).expanduser())
    elif source == "hub":
        location = text[len(HUB_PREFIX):] if text.startswith(HUB_PREFIX) else text
    else:
        location = text
    if source in ("folder", "hub"):
        _check_model_type(source, text, location)  # before transformers sees the folder: see module doc
    if source == "architecture":
        message = (
            f"{text} was built with RANDOM weights: its predictions are meaningless "
            "(use it for smoke tests; pass a model folder or Hub id for real detection)"
        )
        warnings.warn(message, RandomWeightsWarning, stacklevel=2)
    try:
        model, processor = _load(source, location)
    except Exception as err:  # any failure to load is the user's model argument failing: say which and why
        raise ModelLoadError(_failure_message(source, text, location, err)) from err
    model.eval()
    if device is not None:
        model.to(device)
    return model, processor


def load_video_pipeline(
    spec: Union[str, os.PathLike, None] = None,
    device: Union[str, torch.device, None] = None,
    **pipeline_kwargs: Any,
) -> "DeepfakeVideoDetectionPipeline":
    """A ready :class:`~dldfd_hf.inference.pipelines.DeepfakeVideoDetectionPipeline` for ``spec`` (see :func:`load_model`)."""
    model, processor = load_model(spec, device=device)
    return DeepfakeVideoDetectionPipeline(
        model=model,
        image_processor=processor,
        task=TASK,
        device=torch.device(device) if device is not None else model.device,
        **pipeline_kwargs,
    )


def load_pipeline_with_notice(
    spec: Union[str, os.PathLike, None] = None,
    device: Union[str, torch.device, None] = None,
    **pipeline_kwargs: Any,
) -> Tuple["DeepfakeVideoDetectionPipeline", Optional[str]]:
    """``(pipeline, notice)`` for an application: :func:`load_video_pipeline` on ``device``
    (default: a GPU when there is one), and the :class:`RandomWeightsWarning` text as ``notice``
    to show prominently (None when the weights are trained) rather than as a warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        detector = load_video_pipeline(spec, device=device or default_device(), **pipeline_kwargs)
    for warning in caught:
        if not issubclass(warning.category, RandomWeightsWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    notices = [str(w.message) for w in caught if issubclass(w.category, RandomWeightsWarning)]
    return detector, (notices[0] if notices else None)


def _load(source: ModelSource, location: str) -> Tuple[Any, Any]:
    if source in ("architecture", "pretrained-tag"):
        network = timm.create_model(location, pretrained=source == "pretrained-tag")
        model = DLDFDForImageClassification.from_timm(network)
        return model, image_processor_for(model.config)
    # trust_remote_code=False: never import Python files shipped with the folder or repo.
    model = AutoModelForImageClassification.from_pretrained(location, trust_remote_code=False)
    try:
        processor = AutoImageProcessor.from_pretrained(location, trust_remote_code=False)
    except (OSError, ValueError):
        # Exported and save_pretrained folders carry preprocessor_config.json; a training checkpoint
        # (config.json + weights) does not, and its DLDFD config holds the size / mean / std.
        if not isinstance(model.config, DLDFDConfig):
            raise
        processor = image_processor_for(model.config)
    return model, processor


def _check_model_type(source: ModelSource, text: str, location: str) -> None:
    """Refuse a folder or Hub repo whose ``config.json`` declares a model type other than DLDFD's.

    Such a config makes transformers look for the model's code in the folder itself (``auto_map``),
    and ask on a terminal whether to run it. A config.json that cannot be read (missing, not JSON,
    a Hub repo that cannot be reached) is left to the loader, which reports it.
    """
    if source == "folder":
        config_file: Optional[Path] = Path(location) / "config.json"
    else:
        config_file = _hub_config_file(location)
    if config_file is None or not config_file.is_file():
        return
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(config, dict):
        return
    model_type = config.get("model_type")
    if model_type == DLDFDConfig.model_type:
        return
    what = "model folder" if source == "folder" else "model repo"
    declared = f"model_type {model_type!r}" if model_type is not None else "its config.json has no model_type"
    raise ModelLoadError(f"cannot load {text!r}: not a DLDFD {what}: {declared}")


def _hub_config_file(repo_id: str) -> Optional[Path]:
    """The repo's config.json (downloaded, or from the cache when offline); None when unavailable."""
    try:
        return Path(hf_hub_download(repo_id, "config.json"))
    except Exception:  # offline and not cached, no such repo, ...: the loader reports it
        return None


def _failure_message(source: ModelSource, text: str, location: str, err: Exception) -> str:
    reason = _first_line(err)
    if source == "folder":
        bad_file, file_error = _unreadable_weights(Path(location))
        if bad_file is not None:
            return (f"cannot load model folder {text!r}: {bad_file} is corrupt or truncated "
                    f"({_first_line(file_error)})")
        return f"cannot load model folder {text!r}: {reason}"
    if _is_safetensors_error(err):
        return f"cannot load {text!r}: its weights file (model.safetensors) is corrupt or truncated ({reason})"
    if source == "hub":
        if isinstance(err, OSError) and not text.startswith(HUB_PREFIX):
            # "runs/best" may be a folder the user mistyped or a Hub id: say that both were tried.
            folder = Path(text).expanduser().absolute()
            return f"{text!r} is neither an existing local folder (no directory {folder}) nor a loadable Hub id ({reason})"
        return f"cannot load Hub model {location!r}: {reason}"
    return f"cannot load timm pretrained model {text!r}: {reason}"


def _unreadable_weights(folder: Path) -> Tuple[Optional[Path], Optional[Exception]]:
    """The first ``*.safetensors`` file in ``folder`` whose header cannot be read (a cheap check:
    the header lists every tensor's byte range, so a truncated file fails it), and the error."""
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as err:  # SafetensorError, OSError, ...: the file is unusable either way
            return path, err
    return None, None


def _is_safetensors_error(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, SafetensorError):
            return True
        err = err.__cause__ or err.__context__
    return False


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
