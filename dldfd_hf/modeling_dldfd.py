"""transformers front door: PreTrainedModel classes that wrap the timm DLDFD module (one network)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_dldfd import DLDFDConfig
from .model_folder import image_processor_for, write_model_files
from .models.dldfd import DLDFD

__all__ = [
    "DLDFDPreTrainedModel",
    "DLDFDModel",
    "DLDFDForImageClassification",
    "image_processor_for",
]


class DLDFDPreTrainedModel(PreTrainedModel):
    config_class = DLDFDConfig
    config: DLDFDConfig
    base_model_prefix = "dldfd"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["DLDFD"]

    def _build_network(self, config: DLDFDConfig) -> DLDFD:
        network = DLDFD(**config.dldfd_kwargs())
        if next(network.parameters()).device.type != "meta":
            # The timm constructor already initialised every weight (e.g. zero-init of the last BN
            # in each residual block); keep that instead of transformers' generic init.
            for module in network.modules():
                module._is_hf_initialized = True
        return network

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Used only for weights a checkpoint did not provide: timm-ResNet-style init."""
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)

    def save_pretrained(self, save_directory: Union[str, os.PathLike], *args: Any, **kwargs: Any) -> None:
        """Save weights + config, and the matching ``preprocessor_config.json`` for pipelines."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            image_processor_for(self.config).save_pretrained(save_directory)

    @property
    def timm_model(self) -> DLDFD:
        """The underlying timm module (shares its parameters with this model)."""
        return self.dldfd

    def _check_pixel_values(self, pixel_values: Optional[torch.Tensor]) -> torch.Tensor:
        if pixel_values is None:
            raise ValueError("pixel_values is required: a float tensor shaped (batch, channels, height, width)")
        return pixel_values

    def _features(
        self, pixel_values: torch.Tensor, output_hidden_states: Optional[bool]
    ) -> Tuple[torch.Tensor, Optional[Tuple[torch.Tensor, ...]]]:
        """The backbone's last feature map and, with ``output_hidden_states`` (default: the config's),
        every feature level (timm's ``forward_intermediates``: the backbone's stem, then each stage),
        as transformers' ResNet returns its embedding and stage outputs."""
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if not output_hidden_states:
            return self.dldfd.forward_features(pixel_values), None
        features, levels = self.dldfd.forward_intermediates(pixel_values)
        return features, tuple(levels)


class DLDFDModel(DLDFDPreTrainedModel):
    """The DLDFD network without its classifier: pooled features for downstream use."""

    def __init__(self, config: DLDFDConfig) -> None:
        super().__init__(config)
        self.dldfd = self._build_network(config)
        classifier = self.dldfd.get_classifier(name_only=True)
        self.dldfd.reset_classifier(0)
        # Checkpoints of the classification model carry the head: not an error for the base model.
        self._keys_to_ignore_on_load_unexpected = [rf"^dldfd\.{classifier}\."]
        self.post_init()

    def forward(
        self,
        pixel_values: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs: Any,
    ) -> Union[tuple, BaseModelOutputWithPoolingAndNoAttention]:
        pixel_values = self._check_pixel_values(pixel_values)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        features, hidden_states = self._features(pixel_values, output_hidden_states)
        pooled = self.dldfd.forward_head(features, pre_logits=True)
        if not return_dict:
            return (features, pooled) + ((hidden_states,) if hidden_states is not None else ())
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=features, pooler_output=pooled, hidden_states=hidden_states
        )


class DLDFDForImageClassification(DLDFDPreTrainedModel):
    """DLDFD with its fake/real head.

    With the default one-logit head (``head_num_classes=1``) the network outputs the fake logit
    ``z`` and this model returns logits ``[0, z]``: softmax gives ``[P(real), P(fake)]`` with
    ``P(fake) = sigmoid(z)``. The loss is BCE-with-logits on ``z`` weighted by ``config.pos_weight``.
    With ``head_num_classes=2`` the two logits are returned as they are and the loss is cross-entropy;
    likewise with more classes (one logit per label of ``config.id2label``, e.g. real and the four
    FaceForensics++ methods).
    """

    def __init__(self, config: DLDFDConfig) -> None:
        super().__init__(config)
        self.dldfd = self._build_network(config)
        self.post_init()

    @classmethod
    def from_timm(cls, model: DLDFD, **config_kwargs: Any) -> "DLDFDForImageClassification":
        """Wrap a timm DLDFD module: the returned model holds ``model`` itself (no copy)."""
        config = DLDFDConfig.from_timm(model, **config_kwargs)
        with torch.device("meta"):  # the placeholder network is replaced right away: don't build it for real
            wrapper = cls(config)
        wrapper.dldfd = model
        return wrapper.train(model.training)

    def save_pretrained(
        self, save_directory: Union[str, os.PathLike], *args: Any, push_to_hub: bool = False, **kwargs: Any
    ) -> None:
        """Save a model folder that timm, transformers and the pipelines all load.

        The weights are written in the timm layout (no ``dldfd.`` prefix; transformers adds it on
        load) and ``config.json`` carries timm's keys beside transformers', with the image processor
        config and the remote-code shims: the same files as :func:`dldfd_hf.model_folder.save_model_folder`.
        """
        kwargs.setdefault("state_dict", self.dldfd.state_dict())
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            write_model_files(self, save_directory, weights=False)
        if push_to_hub:
            # Upload only now that every file is written; push_to_hub saves through this method again.
            repo_id = kwargs.get("repo_id") or Path(save_directory).name
            push_kwargs = {k: kwargs[k] for k in ("commit_message", "private", "token", "create_pr") if k in kwargs}
            self.push_to_hub(repo_id, **push_kwargs)

    def forward(
        self,
        pixel_values: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs: Any,
    ) -> Union[tuple, ImageClassifierOutputWithNoAttention]:
        pixel_values = self._check_pixel_values(pixel_values)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        features, hidden_states = self._features(pixel_values, output_hidden_states)
        head = self.dldfd.forward_head(features)
        if head.shape[1] == 1:
            logits = torch.cat([torch.zeros_like(head), head], dim=1)
        else:
            logits = head
        loss = self.compute_loss(head, labels) if labels is not None else None
        if not return_dict:
            output = (logits,) + ((hidden_states,) if hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=hidden_states)

    def compute_loss(self, head: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """BCE on the fake logit (1-logit head, ``pos_weight`` honoured) or CE (2 or more logits).

        ``labels``: shape (batch,), class ids of ``config.id2label`` (0 = real, 1 = fake for the
        binary heads); soft float targets in [0, 1] are accepted by the BCE head.
        """
        labels = labels.to(head.device)
        if labels.ndim != 1 or labels.shape[0] != head.shape[0]:
            raise ValueError(
                f"labels must be shaped (batch,) = ({head.shape[0]},) with 0 = real, 1 = fake; got {tuple(labels.shape)}"
            )
        if head.shape[1] > 1:
            if labels.is_floating_point():
                raise ValueError(
                    f"a {head.shape[1]}-logit head needs integer class labels (0 .. {head.shape[1] - 1}, "
                    f"see config.id2label)"
                )
            return nn.functional.cross_entropy(head, labels)
        pos_weight = None
        if self.config.pos_weight is not None:
            pos_weight = torch.tensor(float(self.config.pos_weight), device=head.device, dtype=head.dtype)
        return nn.functional.binary_cross_entropy_with_logits(
            head[:, 0], labels.to(head.dtype), pos_weight=pos_weight
        )
