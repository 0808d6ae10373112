"""The DLDFD "augmented layers": three parallel 3x3x64 convolutions, concatenated, then a 1x1 conv."""

from __future__ import annotations

import contextlib
from typing import Callable, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from timm.layers import create_act_layer, get_act_layer, get_norm_layer
from torch import nn

from .._checks import check_positive_int
from .fused_stem import compose_linear, conv_act_proj, fold_batchnorm

LayerSpec = Optional[Union[str, Type[nn.Module], Callable[..., nn.Module]]]
STEM_INITS = ("identity", "random")


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

    With ``fused=True`` (default) the forward pass never materialises the wide hidden tensor
    (``hidden_chans`` channels at full resolution): BatchNorm is folded into the 3x3 conv (running
    statistics in eval, exact batch statistics in training), ``conv -> act -> proj`` runs in
    cache-sized tiles, and in training the tiles are recomputed in backward instead of stored.
    Without an activation the stem collapses into a single 3x3 conv. Outputs and gradients equal
    :meth:`forward_reference` up to float rounding; BatchNorm running statistics are updated once
    per forward, as with the reference. The reference path is used instead for layers the fusion
    does not cover (norms other than BatchNorm2d, activations with parameters, modified convs,
    forward hooks on the sub-modules), under TorchScript and ``torch.fx`` symbolic tracing, and, in
    training, under ``torch.compile`` / export tracing.
    """

    def __init__(
        self,
        in_chans: int = 3,
        out_chans: int = 3,
        branch_chans: int = 64,
        num_branches: int = 3,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        fused: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("in_chans", in_chans), ("out_chans", out_chans),
                            ("branch_chans", branch_chans), ("num_branches", num_branches)):
            check_positive_int("AugmentedStem", name, value)
        norm = resolve_layer("norm", norm_layer)
        act = resolve_layer("act", act_layer)
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.branch_chans = branch_chans
        self.num_branches = num_branches
        self.hidden_chans = branch_chans * num_branches
        self.fused = bool(fused)
        # A bias before BN is redundant; without a norm the conv keeps its bias (paper-literal variant).
        self.conv = nn.Conv2d(in_chans, self.hidden_chans, 3, padding=1, bias=norm is None)
        self.norm = norm(self.hidden_chans) if norm is not None else nn.Identity()
        self.act = create_act_layer(act, inplace=True) if act is not None else nn.Identity()
        self.proj = nn.Conv2d(self.hidden_chans, out_chans, 1, bias=True)

    @torch.no_grad()
    def init_identity(self) -> None:
        """Start as a pass-through: in eval mode (BatchNorm at its initial statistics) the stem outputs
        the image, so a pretrained backbone behind it starts on the image it was trained on.

        Filter ``c`` of the 3x3 conv passes input channel ``c`` through, filter ``in_chans + c`` its
        negative; the 1x1 projection recombines them (``relu(x) - relu(-x) = x``) into every output
        channel ``k`` from input channel ``k % in_chans`` (the channel repetition timm's ``in_chans``
        adaptation assumes for a wider stem). The other filters keep their random initialisation
        and start at zero weight in the projection, so they join in as training moves it.
        """
        conv, proj, c = self.conv, self.proj, self.in_chans
        if self.hidden_chans < 2 * c:
            raise ValueError(f"AugmentedStem: identity init needs >= {2 * c} hidden channels, has {self.hidden_chans}")
        for i in range(2 * c):
            conv.weight[i].zero_()
            conv.weight[i, i % c, 1, 1] = 1.0 if i < c else -1.0
        if conv.bias is not None:
            conv.bias[: 2 * c].zero_()
        if isinstance(self.norm, nn.BatchNorm2d):
            self.norm.reset_parameters()  # weight 1, bias 0, running mean 0, var 1: a pass-through in eval
        linear = isinstance(self.act, nn.Identity)  # then both filters carry the image: x - (-x) = 2x
        proj.weight.zero_()
        if proj.bias is not None:
            proj.bias.zero_()
        for k in range(self.out_chans):
            proj.weight[k, k % c] = 0.5 if linear else 1.0
            proj.weight[k, c + k % c] = -0.5 if linear else -1.0

    def branch_weights(self) -> list[torch.Tensor]:
        """The weights of the individual 3x3 branches (views into the fused conv)."""
        return list(self.conv.weight.split(self.branch_chans, dim=0))

    def extra_repr(self) -> str:
        return f"fused={self.fused}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            # TorchScript compiles the layers as they are; the fusion is Python (tiles, autograd.Function).
            return self.forward_reference(x)
        return self._forward_eager(x)

    @torch.jit.unused
    def _forward_eager(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.fx.Proxy):
            # torch.fx symbolic tracing: record conv / norm / act / proj as the graph's modules
            # (feature extraction and quantization work on them; the fused path branches on values).
            return self.forward_reference(x)
        if not (self.fused and self.can_fuse()):
            return self.forward_reference(x)
        if _capturing_graph():
            # Compilers and exporters get plain ops (no Python tile loop); in eval the BN fold
            # still applies, in training nn.BatchNorm2d's own kernel keeps the graph simple.
            return self.forward_reference(x) if self._uses_batch_stats() else self._forward_folded(x)
        return self._forward_fused(x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The unfused definition: conv3x3 -> norm -> act -> conv1x1, layer by layer (also what
        TorchScript and torch.fx get)."""
        return self.proj(self.act(self.norm(self.conv(x))))

    def can_fuse(self) -> bool:
        """Whether the fused path computes exactly what :meth:`forward_reference` does."""
        conv, proj, norm, act = self.conv, self.proj, self.norm, self.act
        plain_convs = (
            type(conv) is nn.Conv2d and type(proj) is nn.Conv2d
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and proj.kernel_size == (1, 1) and proj.stride == (1, 1) and proj.padding == (0, 0)
            and proj.groups == 1
        )
        # Subclasses that override forward (timm's BatchNormAct2d, ...) compute something else.
        foldable_norm = type(norm) is nn.Identity or (
            isinstance(norm, nn.BatchNorm2d) and type(norm).forward is nn.BatchNorm2d.forward
        )
        stateless_act = next(act.parameters(), None) is None and next(act.buffers(), None) is None
        hooked = any(m._forward_hooks or m._forward_pre_hooks for m in (conv, norm, act, proj))
        return plain_convs and foldable_norm and stateless_act and not hooked

    def _uses_batch_stats(self) -> bool:
        norm = self.norm
        return isinstance(norm, nn.BatchNorm2d) and (
            norm.training or (norm.running_mean is None and norm.running_var is None)
        )

    def _folded_conv(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Weight and bias of the 3x3 conv with the norm folded in (recomputed on every call, so it
        always reflects the current parameters and statistics)."""
        if isinstance(self.norm, nn.BatchNorm2d):
            return fold_batchnorm(self.conv.weight, self.conv.bias, self.norm, x)
        return self.conv.weight, self.conv.bias

    def _forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self._folded_conv(x)
        weight = weight.to(x.dtype)
        bias = bias.to(x.dtype) if bias is not None else None
        if isinstance(self.act, nn.Identity):
            weight, bias = compose_linear(weight, bias, self.proj.weight, self.proj.bias)
            return F.conv2d(x, weight, bias, padding=1)
        return self.proj(self.act(F.conv2d(x, weight, bias, padding=1)))

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        device_type = x.device.type
        dtype = x.dtype
        autocast = device_type in ("cpu", "cuda", "xpu", "mps") and torch.is_autocast_enabled(device_type)
        if autocast and x.is_floating_point():
            dtype = torch.get_autocast_dtype(device_type)
        # Under autocast we choose the compute dtype ourselves; the casts below are differentiable.
        context = torch.autocast(device_type, enabled=False) if autocast else contextlib.nullcontext()
        with context:
            weight, bias = self._folded_conv(x)
            proj_weight, proj_bias = self.proj.weight, self.proj.bias
            if proj_bias is None:
                proj_bias = proj_weight.new_zeros(self.out_chans)
            if isinstance(self.act, nn.Identity):
                weight, bias = compose_linear(weight.float(), None if bias is None else bias.float(),
                                              proj_weight.float(), proj_bias.float())
                return F.conv2d(x.to(dtype), weight.to(dtype), bias.to(dtype), padding=1)
            if bias is None:
                bias = weight.new_zeros(self.hidden_chans)
            return conv_act_proj(
                x.to(dtype), weight.to(dtype), bias.to(dtype), proj_weight.to(dtype), proj_bias.to(dtype), self.act
            )


def _capturing_graph() -> bool:
    """True while torch.compile / torch.export / TorchScript / the ONNX exporter trace the model."""
    return (
        torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )
