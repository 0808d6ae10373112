"""DLDFDConfig: the single source of truth for the transformers front door."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers import PretrainedConfig

from ._checks import check_positive_int
from .labels import ID2LABEL, LABEL2ID

# Config field -> DLDFD constructor argument.
_DLDFD_ARGS = {
    "backbone": "backbone",
    "backbone_kwargs": "backbone_kwargs",
    "head_num_classes": "num_classes",
    "num_channels": "in_chans",
    "stem_out_chans": "stem_out_chans",
    "stem_branch_chans": "stem_branch_chans",
    "stem_branches": "stem_branches",
    "stem_norm": "stem_norm",
    "stem_act": "stem_act",
    "stem_fused": "stem_fused",
    "drop_rate": "drop_rate",
    "global_pool": "global_pool",
}


class DLDFDConfig(PretrainedConfig):
    r"""Configuration of a DLDFD deepfake detector.

    Args:
        timm_architecture: registered timm name of the network (``dldfd_resnet50``, ...).
        backbone: timm backbone name, optionally with its weights tag (``resnet50.tv_in1k``).
        backbone_kwargs: extra arguments for the timm backbone.
        head_num_classes: outputs of the timm head: 1 (fake logit, BCE) or 2 (real/fake, CE), both with
            the two labels real / fake; or one logit per label for more classes (CE), e.g. 5 with
            ``id2label={0: "real", 1: "Deepfakes", 2: "Face2Face", 3: "FaceSwap", 4: "NeuralTextures"}``.
            Default: one logit per label when ``id2label`` / ``num_labels`` give more than two, else 1.
        num_channels: image channels.
        stem_out_chans, stem_branch_chans, stem_branches, stem_norm, stem_act: the augmented layers.
        stem_fused: run the augmented layers with the fused, memory-saving kernels (same results).
        drop_rate: dropout before the classifier.
        global_pool: timm pooling type.
        image_size, image_mean, image_std: preprocessing that travels with the weights.
        pos_weight: BCE weight of the fake class (``#real / #fake`` of the training set), or None.
    """

    model_type = "dldfd"

    def __init__(
        self,
        timm_architecture: str = "dldfd_resnet50",
        backbone: str = "resnet50.tv_in1k",
        backbone_kwargs: Optional[Dict[str, Any]] = None,
        head_num_classes: Optional[int] = None,
        num_channels: int = 3,
        stem_out_chans: int = 3,
        stem_branch_chans: int = 64,
        stem_branches: int = 3,
        stem_norm: Optional[str] = "batchnorm",
        stem_act: Optional[str] = "relu",
        stem_fused: bool = True,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        image_size: int = 224,
        image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
        pos_weight: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        counts = dict(head_num_classes=head_num_classes) if head_num_classes is not None else {}
        counts.update(num_channels=num_channels, stem_out_chans=stem_out_chans, stem_branch_chans=stem_branch_chans,
                      stem_branches=stem_branches, image_size=image_size)
        for name, value in counts.items():
            check_positive_int("DLDFDConfig", name, value)
        if kwargs.get("id2label") is not None:
            kwargs.setdefault("label2id", {label: int(i) for i, label in kwargs["id2label"].items()})
        elif kwargs.get("num_labels") is None:
            if head_num_classes is not None and head_num_classes > 2:
                kwargs["num_labels"] = head_num_classes  # transformers' LABEL_0, LABEL_1, ...
            else:
                kwargs["id2label"], kwargs["label2id"] = dict(ID2LABEL), dict(LABEL2ID)
        super().__init__(**kwargs)
        if head_num_classes is None:
            head_num_classes = self.num_labels if self.num_labels > 2 else 1
        if head_num_classes <= 2 and self.num_labels != 2:
            raise ValueError(
                f"DLDFDConfig: a head of {head_num_classes} logit(s) is a detector with exactly two labels "
                f"(real, fake); got id2label={self.id2label} (for one logit per label: head_num_classes={self.num_labels})"
            )
        if head_num_classes > 2 and self.num_labels != head_num_classes:
            raise ValueError(
                f"DLDFDConfig: head_num_classes={head_num_classes} needs as many labels, got id2label={self.id2label}"
            )
        if len(image_mean) != num_channels or len(image_std) != num_channels:
            raise ValueError(
                f"DLDFDConfig: image_mean and image_std need {num_channels} values (num_channels), "
                f"got {list(image_mean)} and {list(image_std)}"
            )
        if pos_weight is not None and not pos_weight > 0:
            raise ValueError(f"DLDFDConfig: pos_weight must be positive or None, got {pos_weight!r}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"DLDFDConfig: drop_rate must be in [0, 1), got {drop_rate!r}")
        self.timm_architecture = timm_architecture
        self.backbone = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.head_num_classes = head_num_classes
        self.num_channels = num_channels
        self.stem_out_chans = stem_out_chans
        self.stem_branch_chans = stem_branch_chans
        self.stem_branches = stem_branches
        self.stem_norm = stem_norm
        self.stem_act = stem_act
        self.stem_fused = bool(stem_fused)
        self.drop_rate = drop_rate
        self.global_pool = global_pool
        self.image_size = image_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.pos_weight = pos_weight

    def class_names(self) -> List[str]:
        """The labels in class-id order (``["real", "fake"]`` for the one- and two-logit heads). Not
        ``label_names``: that key of a saved config.json would shadow a method of that name."""
        return [self.id2label[i] for i in range(self.num_labels)]

    def dldfd_kwargs(self) -> Dict[str, Any]:
        """Constructor arguments of the timm :class:`~dldfd_hf.models.DLDFD` module."""
        kwargs = {arg: getattr(self, field) for field, arg in _DLDFD_ARGS.items()}
        # JSON turns tuples into lists; timm backbones accept either.
        kwargs["backbone_kwargs"] = dict(self.backbone_kwargs)
        return kwargs

    @classmethod
    def from_timm(cls, model: Any, **kwargs: Any) -> "DLDFDConfig":
        """Config describing an existing timm DLDFD module (its constructor args + pretrained_cfg)."""
        args = dict(model.init_kwargs)
        fields = {field: args[arg] for field, arg in _DLDFD_ARGS.items() if arg in args}
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if cfg:
            fields.setdefault("image_size", int(cfg.get("input_size", (3, 224, 224))[-1]))
            fields.setdefault("image_mean", tuple(cfg.get("mean", IMAGENET_DEFAULT_MEAN)))
            fields.setdefault("image_std", tuple(cfg.get("std", IMAGENET_DEFAULT_STD)))
            if cfg.get("architecture"):
                fields.setdefault("timm_architecture", cfg["architecture"])
        num_classes = fields.get("head_num_classes", 1)
        label_names = list(cfg.get("label_names") or [])
        if num_classes > 2 and len(label_names) == num_classes and "id2label" not in kwargs:
            fields["id2label"] = dict(enumerate(label_names))  # a multi-class network's own labels
        fields.update(kwargs)
        return cls(**fields)
