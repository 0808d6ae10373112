"""DLDFD: augmented Inception-style layers + a timm backbone (ResNet-50 in the paper).

Singh & Ramachandra, "DLDFD: Recurrence Free 2D Convolution Approach for Deep Fake Detection".
Output: one logit per image, the "fake" score (label 0 = real, 1 = fake).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from ..labels import LABEL_NAMES
from .stem import AugmentedStem, LayerSpec

__all__ = ["DLDFD", "create_dldfd", "fake_logit", "fake_probabilities"]

HUB_ORG = "dldfd-hf"


class DLDFD(nn.Module):
    """Augmented layers followed by any timm classification backbone.

    Args:
        backbone: timm model name, optionally with a weights tag (``"resnet50.tv_in1k"``).
        num_classes: 1 (a single fake logit, the paper's BCE) or 2 (real/fake logits).
        in_chans: image channels.
        stem_out_chans: width of the 1x1 projection, i.e. the backbone's ``in_chans``.
        stem_branch_chans / stem_branches: filters per 3x3 branch and number of branches.
        stem_norm / stem_act: timm layer names (or None for the paper-literal linear stem).
        stem_fused: run the stem without materialising its wide hidden tensor (BN folded, tiled,
            recomputed in backward); same outputs and gradients. False forces the layer-by-layer path.
        backbone_pretrained: load the backbone's ImageNet weights through timm's pretrained path.
        backbone_kwargs: extra keyword arguments for ``timm.create_model(backbone, ...)``.
    """

    def __init__(
        self,
        backbone: str = "resnet50.tv_in1k",
        num_classes: int = 1,
        in_chans: int = 3,
        stem_out_chans: int = 3,
        stem_branch_chans: int = 64,
        stem_branches: int = 3,
        stem_norm: LayerSpec = "batchnorm",
        stem_act: LayerSpec = "relu",
        stem_fused: bool = True,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        backbone_pretrained: bool = False,
        backbone_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        if num_classes not in (0, 1, 2):
            raise ValueError(
                f"DLDFD: num_classes must be 1 (one fake logit) or 2 (real/fake logits), got {num_classes!r}"
            )
        if not isinstance(backbone, str) or not backbone:
            raise ValueError(f"DLDFD: backbone must be a timm model name, got {backbone!r}")
        arch = backbone.split(".", 1)[0]
        if not timm.is_model(arch):
            raise ValueError(f"DLDFD: unknown timm backbone {backbone!r} (see timm.list_models())")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.stem = AugmentedStem(
            in_chans=in_chans,
            out_chans=stem_out_chans,
            branch_chans=stem_branch_chans,
            num_branches=stem_branches,
            norm_layer=stem_norm,
            act_layer=stem_act,
            fused=stem_fused,
        )
        self.backbone = timm.create_model(
            backbone,
            pretrained=backbone_pretrained,
            num_classes=num_classes,
            in_chans=stem_out_chans,
            drop_rate=drop_rate,
            global_pool=global_pool,
            **(backbone_kwargs or {}),
        )
        self.num_features = self.backbone.num_features
        self.head_hidden_size = getattr(self.backbone, "head_hidden_size", self.num_features)
        self.grad_checkpointing = False
        # The constructor arguments, so configs and exports can rebuild this exact network.
        self.init_kwargs = dict(
            backbone=backbone,
            num_classes=num_classes,
            in_chans=in_chans,
            stem_out_chans=stem_out_chans,
            stem_branch_chans=stem_branch_chans,
            stem_branches=stem_branches,
            stem_norm=stem_norm if stem_norm is None or isinstance(stem_norm, str) else stem_norm.__name__,
            stem_act=stem_act if stem_act is None or isinstance(stem_act, str) else stem_act.__name__,
            stem_fused=stem_fused,
            drop_rate=drop_rate,
            global_pool=global_pool,
            backbone_kwargs=dict(backbone_kwargs or {}),
        )

    # --- timm model API -------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        inner = self.backbone.group_matcher(coarse=coarse)
        # The augmented layers join the backbone's stem group (lowest LR under layer-wise decay).
        return {"stem": r"^stem\.|" + _prefix_matcher(inner["stem"]), "blocks": _prefix_matcher(inner["blocks"])}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        self.backbone.set_grad_checkpointing(enable)

    def pretrained_cfg_classifier(self) -> str:
        """State-dict prefix of the classifier (``backbone.fc`` for ResNets)."""
        inner = (getattr(self.backbone, "pretrained_cfg", None) or {}).get("classifier") or "fc"
        return f"backbone.{inner}"

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.backbone.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is None:
            self.backbone.reset_classifier(num_classes)
        else:
            self.backbone.reset_classifier(num_classes, global_pool)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"DLDFD expects images shaped (batch, {self.in_chans}, height, width), got {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.backbone.forward_features(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def fake_logit(logits: torch.Tensor, fake_index: int = 1) -> torch.Tensor:
    """Log-odds of "fake" per row: the logit of a one-logit head, else fake minus real logit."""
    if logits.shape[-1] == 1:
        return logits[..., 0]
    return logits[..., fake_index] - logits[..., 1 - fake_index]


def fake_probabilities(logits: torch.Tensor, fake_index: int = 1) -> torch.Tensor:
    """P(fake) per row, for the timm head (1 or 2 logits) or the transformers logits ``[0, z]``."""
    return torch.sigmoid(fake_logit(logits.float(), fake_index))


def _prefix_matcher(matcher: Any) -> Any:
    """Prefix a timm group matcher (regex string or list of (regex, ...) tuples) with ``backbone.``."""
    def prefix(pattern: str) -> str:
        # Group the pattern: every alternative of "^conv1|bn1|maxpool" needs the prefix.
        return r"^backbone\.(?:" + pattern.lstrip("^") + ")"

    if isinstance(matcher, str):
        return prefix(matcher)
    return [(prefix(pattern), *rest) for pattern, *rest in matcher]


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: DLDFD) -> Dict[str, torch.Tensor]:
    """Accept checkpoints saved by the transformers wrapper (keys prefixed ``dldfd.``)."""
    prefix = "dldfd."
    if any(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def _create_dldfd(variant: str, pretrained: bool = False, **kwargs: Any) -> DLDFD:
    return build_model_with_cfg(
        DLDFD,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        **kwargs,
    )


def create_dldfd(backbone: str, pretrained_backbone: bool = False, **kwargs: Any) -> DLDFD:
    """Build DLDFD around any timm backbone, with a pretrained_cfg derived from the backbone's.

    >>> model = create_dldfd("efficientnet_b0", stem_out_chans=3)
    """
    model = DLDFD(backbone=backbone, backbone_pretrained=pretrained_backbone, **kwargs)
    cfg = dict(_cfg())
    backbone_cfg = getattr(model.backbone, "pretrained_cfg", None) or {}
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct"):
        if key in backbone_cfg:
            cfg[key] = backbone_cfg[key]
    cfg["input_size"] = (model.in_chans, *cfg["input_size"][1:])
    cfg["architecture"] = "dldfd_custom"
    model.pretrained_cfg = cfg
    model.default_cfg = cfg
    return model


def _cfg(url: str = "", **kwargs: Any) -> Dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 1.0,  # inputs are already face crops: resize, never centre-crop
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv",
        "classifier": "backbone.fc",
        "label_names": list(LABEL_NAMES),
        "license": "apache-2.0",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "dldfd_resnet50.ffpp_c40": _cfg(
        hf_hub_id=f"{HUB_ORG}/dldfd_resnet50.ffpp_c40",
        paper_name="DLDFD: Recurrence Free 2D Convolution Approach for Deep Fake Detection",
        description="DLDFD (augmented layers + ResNet-50) trained on FaceForensics++ c40 face crops",
    ),
    "dldfd_resnet18.ffpp_c40": _cfg(
        hf_hub_id=f"{HUB_ORG}/dldfd_resnet18.ffpp_c40",
        description="DLDFD with a ResNet-18 backbone trained on FaceForensics++ c40 face crops",
    ),
    "dldfd_tiny.untrained": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
})


@register_model
def dldfd_resnet50(pretrained: bool = False, **kwargs: Any) -> DLDFD:
    """DLDFD as in the paper: augmented layers + ResNet-50 (torchvision ImageNet weights)."""
    model_args = dict(backbone="resnet50.tv_in1k")
    return _create_dldfd("dldfd_resnet50", pretrained, **dict(model_args, **kwargs))


@register_model
def dldfd_resnet18(pretrained: bool = False, **kwargs: Any) -> DLDFD:
    """DLDFD with a ResNet-18 backbone: ~3x cheaper, for quick experiments."""
    model_args = dict(backbone="resnet18.tv_in1k")
    return _create_dldfd("dldfd_resnet18", pretrained, **dict(model_args, **kwargs))


@register_model
def dldfd_tiny(pretrained: bool = False, **kwargs: Any) -> DLDFD:
    """A few-thousand-parameter DLDFD for tests and CPU smoke runs (64x64 input)."""
    model_args = dict(
        backbone="resnet18",
        stem_branch_chans=8,
        backbone_kwargs=dict(layers=(1, 1, 1, 1), channels=(8, 16, 32, 64), stem_width=8),
    )
    kwargs.setdefault("backbone_kwargs", model_args.pop("backbone_kwargs"))
    return _create_dldfd("dldfd_tiny", pretrained, **dict(model_args, **kwargs))
