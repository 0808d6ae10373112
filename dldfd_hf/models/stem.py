"""The DLDFD "augmented layers": three parallel 3x3x64 convolutions, concatenated, then a 1x1 conv."""

from __future__ import annotations

from typing import Callable, Optional, Type, Union

import torch
from torch import nn

from timm.layers import create_act_layer, get_act_layer, get_norm_layer

LayerSpec = Optional[Union[str, Type[nn.Module], Callable[..., nn.Module]]]


def resolve_layer(kind: str, spec: LayerSpec) -> Optional[Callable[..., nn.Module]]:
    """Turn a timm layer name ("batchnorm", "relu", ...) or a class into a constructor.

    None, "" and "none" mean no layer. ``timm.create_model`` drops keyword arguments whose value is
    None, so through timm the linear (paper-literal) stem is spelled ``stem_act="none"``.
    """
    if spec is None or (isinstance(spec, str) and spec.lower() in ("", "none", "identity")):
        return None
    if not isinstance(spec, str):
        return spec
    try:
        layer = get_norm_layer(spec) if kind == "norm" else get_act_layer(spec)
    except (AssertionError, ValueError, KeyError) as err:
        raise ValueError(f"Unknown stem_{kind} {spec!r}: use a timm {kind} layer name or None") from err
    if layer is None:
        raise ValueError(f"Unknown stem_{kind} {spec!r}: use a timm {kind} layer name or None")
    return layer


class AugmentedStem(nn.Module):
    """Parallel 3x3 branches + 1x1 projection, run on the image before the backbone.

    The ``num_branches`` parallel 3x3 convolutions of ``branch_chans`` filters each read the same
    input, so their concatenation is exactly one 3x3 convolution with
    ``num_branches * branch_chans`` outputs; we store and run it as that single conv
    (``branch_weights`` exposes the per-branch view).
    """

    def __init__(
        self,
        in_chans: int = 3,
        out_chans: int = 3,
        branch_chans: int = 64,
        num_branches: int = 3,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
    ) -> None:
        super().__init__()
        for name, value in (("in_chans", in_chans), ("out_chans", out_chans),
                            ("branch_chans", branch_chans), ("num_branches", num_branches)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AugmentedStem: {name} must be a positive integer, got {value!r}")
        norm = resolve_layer("norm", norm_layer)
        act = resolve_layer("act", act_layer)
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.branch_chans = branch_chans
        self.num_branches = num_branches
        self.hidden_chans = branch_chans * num_branches
        # A bias before BN is redundant; without a norm the conv keeps its bias (paper-literal variant).
        self.conv = nn.Conv2d(in_chans, self.hidden_chans, 3, padding=1, bias=norm is None)
        self.norm = norm(self.hidden_chans) if norm is not None else nn.Identity()
        self.act = create_act_layer(act, inplace=True) if act is not None else nn.Identity()
        self.proj = nn.Conv2d(self.hidden_chans, out_chans, 1, bias=True)

    def branch_weights(self) -> list[torch.Tensor]:
        """The weights of the individual 3x3 branches (views into the fused conv)."""
        return list(self.conv.weight.split(self.branch_chans, dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.norm(self.conv(x))))

