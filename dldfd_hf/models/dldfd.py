"""DLDFD: augmented Inception-style layers + a timm backbone (ResNet-50 in the paper).

Singh & Ramachandra, "DLDFD: Recurrence Free 2D Convolution Approach for Deep Fake Detection".
Output: one logit per image, the "fake" score (label 0 = real, 1 = fake).
"""

# No `from __future__ import annotations`: torch.fx copies forward()'s annotations into the code
# it generates, and TorchScript cannot resolve them there as strings.
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .._checks import is_integer
from ..labels import LABEL_NAMES
from .imagenet import LOCAL_IMAGENET_WEIGHTS
from .stem import STEM_INITS, AugmentedStem, LayerSpec

__all__ = ["DLDFD", "SHIPPED_MODEL", "SHIPPED_MODEL_DIR", "SHIPPED_MODEL_SUMMARY", "create_dldfd", "fake_logit",
           "fake_probabilities"]

HUB_ORG = "dldfd-hf"
# The detector that ships inside the package, as a model folder (config.json, fp16 model.safetensors,
# preprocessor_config.json) that timm, transformers and the pipelines all load offline.
SHIPPED_MODEL = "dldfd_efficientnet_lite0.ffpp_sbi"
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "weights" / SHIPPED_MODEL
SHIPPED_MODEL_SUMMARY = (
    "DLDFD-Lite0 (augmented layers + ImageNet EfficientNet-Lite0) trained with self-blended pseudo-fakes of "
    "~1,400 real people, the real FaceForensics++ c23 originals among them, compressed alike (H.264); research use only"
)
# The detector shipped before it: real faces and self-blended pseudo-fakes only, no FaceForensics++.
PREVIOUS_SHIPPED_MODEL = "dldfd_efficientnet_lite0.sbi_faces"
PREVIOUS_SHIPPED_MODEL_SUMMARY = (
    "DLDFD-Lite0 (augmented layers + ImageNet EfficientNet-Lite0) trained on real faces only, with "
    "self-blended pseudo-fakes (no FaceForensics++); catches blending-based face swaps and composites"
)


class DLDFD(nn.Module):
    """Augmented layers followed by any timm classification backbone.

    Args:
        backbone: timm model name, optionally with a weights tag (``"resnet50.tv_in1k"``).
        num_classes: 1 (a single fake logit, the paper's BCE), 2 (real/fake logits), any other
            number (e.g. 5: real and the four FF++ methods), or 0 (pooled features, no head).
        in_chans: image channels.
        stem_out_chans: width of the 1x1 projection, i.e. the backbone's ``in_chans``.
        stem_branch_chans / stem_branches: filters per 3x3 branch and number of branches.
        stem_norm / stem_act: timm layer names (or None for the paper-literal linear stem).
        stem_fused: run the stem without materialising its wide hidden tensor (BN folded, tiled,
            recomputed in backward); same outputs and gradients. False forces the layer-by-layer path.
        stem_init: ``"identity"`` (default): the augmented layers start by passing the image through
            unchanged (in eval mode), so a pretrained backbone starts on the image it was trained on;
            ``"random"``: timm's default initialisation of every layer.
        backbone_pretrained: load the backbone's ImageNet weights: from a pip package, offline, for
            the backbones of :mod:`dldfd_hf.models.imagenet`, else through timm's pretrained path (Hub).
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
        stem_init: str = "identity",
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        backbone_pretrained: bool = False,
        backbone_kwargs: Optional[Dict[str, Any]] = None,
        device: Any = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        _check_config(backbone, num_classes, stem_init)
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
        self.backbone, pretrained_head = _create_backbone(
            backbone,
            num_classes=num_classes,
            in_chans=stem_out_chans,
            drop_rate=drop_rate,
            global_pool=global_pool,
            pretrained=backbone_pretrained,
            backbone_kwargs=backbone_kwargs,
        )
        if stem_init == "identity":
            self.stem.init_identity()
        if not pretrained_head:
            self._init_head()
        self.num_features = self.backbone.num_features
        self.head_hidden_size = getattr(self.backbone, "head_hidden_size", self.num_features)
        # The backbone's feature levels: the augmented layers keep the image's resolution and channels,
        # so they are no level of their own (they run before level 0).
        self.feature_info = [
            dict(info, module=f"backbone.{info['module']}") for info in getattr(self.backbone, "feature_info", [])
        ]
        self.grad_checkpointing = False
        # The constructor arguments, so configs and exports can rebuild this exact network.
        self.init_kwargs = dict(
            backbone=backbone,
            num_classes=num_classes,
            in_chans=in_chans,
            stem_out_chans=stem_out_chans,
            stem_branch_chans=stem_branch_chans,
            stem_branches=stem_branches,
            stem_norm=_layer_name(stem_norm),
            stem_act=_layer_name(stem_act),
            stem_fused=stem_fused,
            stem_init=stem_init,
            drop_rate=drop_rate,
            global_pool=global_pool,
            backbone_kwargs=dict(backbone_kwargs or {}),
        )
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    @torch.no_grad()
    def _init_head(self) -> None:
        # Start at P(fake) = 0.5 for every image: some backbones (timm's EfficientNets) size their
        # head's init for 1000 classes, which on one logit gives losses of several nats at step 0.
        head = self.backbone.get_classifier()
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, std=0.01)
            if head.bias is not None:
                nn.init.zeros_(head.bias)

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

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        """The classifier module, or with ``name_only`` its name in this model's state dict
        (``backbone.fc`` for ResNets), as timm's ResNet spells it."""
        if name_only:
            inner = (getattr(self.backbone, "pretrained_cfg", None) or {}).get("classifier") or "fc"
            return f"backbone.{inner}"
        return self.backbone.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is None:
            self.backbone.reset_classifier(num_classes)
        else:
            self.backbone.reset_classifier(num_classes, global_pool)

    @torch.jit.unused
    def _check_input(self, x: torch.Tensor) -> None:
        if isinstance(x, torch.fx.Proxy):
            return  # torch.fx symbolic tracing: no shape to check yet
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"DLDFD expects images shaped (batch, {self.in_chans}, height, width), got {tuple(x.shape)}"
            )

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The backbone's ``forward_intermediates`` on the augmented layers' output.

        Args:
            x: Input image tensor.
            indices: Take last n feature levels if int, all if None, select matching indices if sequence.
            norm: Apply norm layer to compatible intermediates.
            stop_early: Stop iterating over blocks when last desired intermediate hit.
            output_fmt: Shape of intermediate feature outputs.
            intermediates_only: Only return intermediate features.

        Returns:
            List of intermediate features or tuple of (final features, intermediates).
        """
        if not torch.jit.is_scripting():
            self._check_input(x)
        return self.backbone.forward_intermediates(
            self.stem(x),
            indices=indices,
            norm=norm,
            stop_early=stop_early,
            output_fmt=output_fmt,
            intermediates_only=intermediates_only,
        )

    def prune_intermediate_layers(
        self,
        indices: Union[int, List[int]] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> List[int]:
        """Prune the backbone's layers after the last of ``indices`` (the augmented layers always stay).

        Returns:
            List of indices that were kept.
        """
        take_indices = self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=prune_head)
        self.num_classes = getattr(self.backbone, "num_classes", 0 if prune_head else self.num_classes)
        self.num_features = self.backbone.num_features
        self.head_hidden_size = getattr(self.backbone, "head_hidden_size", self.num_features)
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
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


def _check_config(backbone: Any, num_classes: Any, stem_init: str) -> None:
    """Raise ValueError for constructor arguments :class:`DLDFD` cannot build a network from."""
    if not is_integer(num_classes) or num_classes < 0:
        raise ValueError(
            f"DLDFD: num_classes must be an integer >= 0 (1: one fake logit, 2: real/fake logits, "
            f"0: pooled features), got {num_classes!r}"
        )
    if stem_init not in STEM_INITS:
        raise ValueError(f"DLDFD: stem_init must be one of {', '.join(STEM_INITS)}, got {stem_init!r}")
    if not isinstance(backbone, str) or not backbone:
        raise ValueError(f"DLDFD: backbone must be a timm model name, got {backbone!r}")
    if not timm.is_model(backbone.split(".", 1)[0]):
        raise ValueError(f"DLDFD: unknown timm backbone {backbone!r} (see timm.list_models())")


def _create_backbone(
    backbone: str,
    num_classes: int,
    in_chans: int,
    drop_rate: float,
    global_pool: str,
    pretrained: bool,
    backbone_kwargs: Optional[Dict[str, Any]],
) -> Tuple[nn.Module, bool]:
    """The timm backbone (with ImageNet weights if ``pretrained``) and whether its head is pretrained."""
    arch = backbone.split(".", 1)[0]
    local_weights = LOCAL_IMAGENET_WEIGHTS.get(arch) if pretrained else None
    model = timm.create_model(
        backbone,
        pretrained=pretrained and local_weights is None,
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        global_pool=global_pool,
        **(backbone_kwargs or {}),
    )
    # A head that did not come with the ImageNet weights (another number of classes) starts fresh.
    pretrained_head = pretrained and num_classes == model.pretrained_cfg.get("num_classes")
    if local_weights is not None:
        pretrained_head = _load_local_weights(model, arch, local_weights)
    return model, pretrained_head


def _load_local_weights(
    model: nn.Module, arch: str, local_weights: Callable[[nn.Module], Dict[str, torch.Tensor]]
) -> bool:
    """Load ImageNet weights from a pip package into ``model``; whether they included its classifier."""
    # Only the classifier may start fresh (another number of classes than ImageNet's).
    head = model.pretrained_cfg.get("classifier", "classifier") + "."
    missing = model.load_state_dict(local_weights(model), strict=False).missing_keys
    pretrained_head = not any(k.startswith(head) for k in missing)
    missing = [k for k in missing if not (k.startswith(head) or k.endswith("num_batches_tracked"))]
    if missing:
        raise ValueError(f"DLDFD: ImageNet weights of {arch} lack {missing[:3]}")
    return pretrained_head


def _layer_name(layer: LayerSpec) -> Optional[str]:
    """A stem layer as configs store it: its timm name, or a class's ``__name__``."""
    return layer if layer is None or isinstance(layer, str) else layer.__name__


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
        # features_only=True: the feature levels live inside the backbone, which the module-walking
        # extractors cannot reach; the getter runs forward_intermediates (and prunes the rest).
        feature_cfg=dict(feature_cls="getter"),
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
    cfg["classifier"] = model.get_classifier(name_only=True)
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
    SHIPPED_MODEL: _cfg(
        file=str(SHIPPED_MODEL_DIR / "model.safetensors"),
        hf_hub_id=f"{HUB_ORG}/{SHIPPED_MODEL}",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        classifier="backbone.classifier",
        license="other",  # FaceForensics++'s terms: research use only
        description=SHIPPED_MODEL_SUMMARY,
    ),
    PREVIOUS_SHIPPED_MODEL: _cfg(
        file=str(SHIPPED_MODEL_DIR.parent / PREVIOUS_SHIPPED_MODEL / "model.safetensors"),
        hf_hub_id=f"{HUB_ORG}/{PREVIOUS_SHIPPED_MODEL}",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        classifier="backbone.classifier",
        description=PREVIOUS_SHIPPED_MODEL_SUMMARY,
    ),
    "dldfd_efficientnet_lite0.in1k": _cfg(
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), classifier="backbone.classifier",
        description="untrained head; build with backbone_pretrained=True for the ImageNet backbone",
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
def dldfd_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> DLDFD:
    """DLDFD-Lite0: augmented layers + EfficientNet-Lite0 (ImageNet weights from a pip package, offline).

    ``pretrained=True`` loads the detector that ships inside ``dldfd_hf`` (``.ffpp_sbi``; the
    previous one, ``.sbi_faces``, ships too).
    """
    model_args = dict(backbone="tf_efficientnet_lite0")
    return _create_dldfd("dldfd_efficientnet_lite0", pretrained, **dict(model_args, **kwargs))


@register_model
def dldfd_tiny(pretrained: bool = False, **kwargs: Any) -> DLDFD:
    """A ~79k-parameter DLDFD for tests and CPU smoke runs (64x64 input)."""
    # timm's ResNet reads stem_width only for a deep stem (its 7x7 stem is always 64 wide, the costliest
    # part of this model): three 3x3 convs, 4, 4 and 8 wide, as timm's own test_resnet.
    model_args = dict(
        backbone="resnet18",
        stem_branch_chans=8,
        backbone_kwargs=dict(layers=(1, 1, 1, 1), channels=(8, 16, 32, 64), stem_width=4, stem_type="deep"),
    )
    kwargs.setdefault("backbone_kwargs", model_args.pop("backbone_kwargs"))
    return _create_dldfd("dldfd_tiny", pretrained, **dict(model_args, **kwargs))
