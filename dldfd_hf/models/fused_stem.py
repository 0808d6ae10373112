"""Fused kernels for the augmented stem: 3x3 conv -> activation -> 1x1 conv, without the wide tensor.

The stem's hidden tensor has ``num_branches * branch_chans`` (192) channels at full input resolution:
~38 MB per 224x224 image in fp32, 64x the input. Written to memory and read back three times
(conv, norm, act) it costs the reference stem as much wall time as the whole ResNet-50 on CPU,
and in training autograd keeps it three times over. Here:

* BatchNorm is folded into the 3x3 conv (:func:`fold_batchnorm`). In training the batch statistics
  come exactly from the mean and covariance of the 3x3 input patches (27x27 for RGB,
  :func:`patch_moments`): ``mean(z) = W mean(p) + b`` and ``var(z) = diag(W cov(p) W^T)``. The
  folded weights are then ordinary differentiable functions of the conv/BN parameters, so autograd
  differentiates through the batch statistics exactly as ``nn.BatchNorm2d`` does.
* ``conv3x3 -> act -> conv1x1`` runs over spatial tiles (:func:`conv_act_proj`) whose hidden
  activations fit in cache; in training its backward recomputes each tile instead of saving it.
* Without an activation the whole stem is linear and collapses into one 3x3 conv to the output
  channels (:func:`compose_linear`).
"""

from __future__ import annotations

import math
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import flop_counter

from .._hardware import cpu_supports_bf16_conv

__all__ = ["conv_act_proj", "compose_linear", "fold_batchnorm", "patch_moments", "tile_pixels_for"]

# Hidden activations per tile. On CPU a tile of ~12 MiB stays in the last-level cache and is small
# enough for the C allocator to recycle (glibc mmaps blocks over 32 MiB and page-faults them afresh
# on every call: whole-image tiles ran 4x slower here); oneDNN's conv runs at full speed on tiles of
# 32+ rows of a 224-wide image (measured on 2 Xeon cores). On accelerators launches are the cost,
# so tiles there only bound memory.
_CPU_TILE_BYTES = 12 * 2**20
_ACCEL_TILE_BYTES = 512 * 2**20
_PATCH_TILE_PIXELS = 2**16


def tile_pixels_for(device: torch.device, hidden_chans: int, dtype: torch.dtype) -> int:
    """Pixels per tile so that the hidden activations of one tile take a cache-sized block."""
    budget = _CPU_TILE_BYTES if device.type == "cpu" else _ACCEL_TILE_BYTES
    return max(1, budget // (hidden_chans * dtype.itemsize))


def _tiles(batch: int, height: int, width: int, tile_pixels: int) -> Iterator[Tuple[int, int, int, int]]:
    """``(n0, n1, r0, r1)`` blocks covering the output: groups of whole images, or balanced row bands."""
    if height * width <= tile_pixels:
        step = max(1, tile_pixels // (height * width))
        for n0 in range(0, batch, step):
            yield n0, min(batch, n0 + step), 0, height
        return
    bands = math.ceil(height / max(1, tile_pixels // width))
    rows = math.ceil(height / bands)
    for n0 in range(batch):
        for r0 in range(0, height, rows):
            yield n0, n0 + 1, r0, min(height, r0 + rows)


def _pad(x: torch.Tensor) -> torch.Tensor:
    # Pad once so that every tile is a plain valid conv over rows [r0, r1 + 2) of the padded input.
    return F.pad(x, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)


def _channel_matrix(t: torch.Tensor) -> torch.Tensor:
    """``(n, c, h, w)`` -> ``(c, n*h*w)``; a view for channels_last tensors."""
    return t.transpose(0, 1).reshape(t.shape[1], -1)


def _has_onednn_conv_relu() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


_ONEDNN_CONV_RELU = _has_onednn_conv_relu()


def _register_conv_relu_flops() -> None:
    """Let ``torch.utils.flop_counter`` count the fused oneDNN conv like any other conv."""
    op = torch.ops.mkldnn._convolution_pointwise
    if op.default in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _conv_relu_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.conv_flop_count(x_shape, w_shape, out_shape, transposed=False)

    # The formula fits only the overload used here (others take extra tensors first).
    for name in op.overloads():
        if name != "default":
            flop_counter.flop_registry.pop(getattr(op, name), None)


if _ONEDNN_CONV_RELU:
    _register_conv_relu_flops()


def _conv_act(x_tile: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, act: nn.Module) -> torch.Tensor:
    """``act(conv3x3(x_tile))`` without padding; never records autograd history."""
    if type(act) is nn.ReLU:
        if _ONEDNN_CONV_RELU and x_tile.device.type == "cpu" and (
            x_tile.dtype == torch.float32 or (x_tile.dtype == torch.bfloat16 and cpu_supports_bf16_conv())
        ):
            # oneDNN applies the ReLU while the conv output is still in registers: one pass less.
            # In bf16 only where oneDNN has bf16 convs (AVX-512/AMX): it raises on AVX2-only CPUs.
            return torch.ops.mkldnn._convolution_pointwise(
                x_tile, weight, bias, [0, 0], [1, 1], [1, 1], 1, "relu", [], ""
            )
        return F.conv2d(x_tile, weight, bias).relu_()
    hidden = act(F.conv2d(x_tile, weight, bias))
    return hidden


def _forward_tiles(x, weight, bias, proj_weight, proj_bias, act, tile_pixels) -> torch.Tensor:
    batch, _, height, width = x.shape
    out_chans = proj_weight.shape[0]
    proj_matrix = proj_weight.reshape(out_chans, -1)
    proj_bias = proj_bias.reshape(out_chans, 1)
    padded = _pad(x)
    out = torch.empty((batch, out_chans, height, width), dtype=x.dtype, device=x.device,
                      memory_format=_memory_format(x))
    for n0, n1, r0, r1 in _tiles(batch, height, width, tile_pixels):
        hidden = _conv_act(padded[n0:n1, :, r0:r1 + 2], weight, bias, act)
        tile = torch.addmm(proj_bias, proj_matrix, _channel_matrix(hidden))
        out[n0:n1, :, r0:r1].copy_(tile.view(out_chans, n1 - n0, r1 - r0, width).transpose(0, 1))
    return out


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format


def _pixel_matrix(t: torch.Tensor) -> torch.Tensor:
    """``(n, c, h, w)`` -> ``(n*h*w, c)``; a view for channels_last tensors."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _patches_with_ones(x_tile: torch.Tensor) -> torch.Tensor:
    """``(K + 1, pixels)``: the 3x3 patches of an unpadded-conv tile, plus a row of ones (for the bias)."""
    patches = F.unfold(x_tile, 3)  # (n, K, pixels per image)
    patches = patches.transpose(0, 1).reshape(patches.shape[1], -1)
    return torch.cat([patches, patches.new_ones(1, patches.shape[1])])


def _add_product(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``acc += a @ b``, accumulating low-precision products in ``acc``'s (fp32) dtype."""
    if a.dtype == acc.dtype:
        acc.addmm_(a, b)
    else:
        acc.add_(torch.mm(a, b))


class _ConvActProj(torch.autograd.Function):
    """Tiled ``conv1x1(act(conv3x3(x)))`` that saves only its inputs and recomputes tiles in backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, proj_weight, proj_bias, act, tile_pixels):
        ctx.act = act
        ctx.tile_pixels = tile_pixels
        ctx.save_for_backward(x, weight, bias, proj_weight, proj_bias)
        return _forward_tiles(x, weight, bias, proj_weight, proj_bias, act, tile_pixels)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight, bias, proj_weight, proj_bias = ctx.saved_tensors
        act, tile_pixels = ctx.act, ctx.tile_pixels
        need_x = ctx.needs_input_grad[0]
        batch, _, height, width = x.shape
        hidden_chans, out_chans = weight.shape[0], proj_weight.shape[0]
        proj_matrix = proj_weight.reshape(out_chans, hidden_chans)
        padded = _pad(x)
        acc = torch.float32 if weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype
        # Rows 0..K-1: d weight (transposed, flattened like the conv weight); row K: d bias.
        grad_weight_bias = torch.zeros((weight[0].numel() + 1, hidden_chans), dtype=acc, device=weight.device)
        grad_proj = torch.zeros((out_chans, hidden_chans), dtype=acc, device=weight.device)
        grad_padded = torch.zeros_like(padded, dtype=acc) if need_x else None
        relu = type(act) is nn.ReLU
        for n0, n1, r0, r1 in _tiles(batch, height, width, tile_pixels):
            x_tile = padded[n0:n1, :, r0:r1 + 2]
            if relu:
                hidden = _conv_act(x_tile, weight, bias, act)
            else:
                with torch.enable_grad():
                    pre = F.conv2d(x_tile, weight, bias).requires_grad_()
                    hidden_graph = act(pre.clone())  # clone: timm activations may work in place
                hidden = hidden_graph.detach()
            hidden_pixels = _pixel_matrix(hidden)  # (pixels, hidden)
            g_tile = _channel_matrix(grad_out[n0:n1, :, r0:r1])  # (out, pixels)
            _add_product(grad_proj, g_tile, hidden_pixels)
            g_hidden = torch.mm(g_tile.t(), proj_matrix)  # (pixels, hidden)
            if relu:
                # In place: one pass less than allocating the masked gradient.
                g_pre = torch.ops.aten.threshold_backward.grad_input(g_hidden, hidden_pixels, 0, grad_input=g_hidden)
            else:
                g_hidden = g_hidden.view(n1 - n0, r1 - r0, width, hidden_chans).permute(0, 3, 1, 2)
                (g_pre,) = torch.autograd.grad(hidden_graph, pre, g_hidden)
                g_pre = _pixel_matrix(g_pre)
            # Weight and bias gradients in one GEMM over the tile's patches (faster than oneDNN's
            # backward-weights kernel for 3 input channels).
            _add_product(grad_weight_bias, _patches_with_ones(x_tile), g_pre)
            if need_x:
                g_pre_map = g_pre.view(n1 - n0, r1 - r0, width, hidden_chans).permute(0, 3, 1, 2)
                g_x = torch.ops.aten.convolution_backward(
                    g_pre_map, x_tile, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                    [True, False, False],
                )[0]
                grad_padded[n0:n1, :, r0:r1 + 2].add_(g_x)
        grad_x = grad_padded[:, :, 1:-1, 1:-1].to(x.dtype, memory_format=_memory_format(x)) if need_x else None
        grad_weight = grad_weight_bias[:-1].t().reshape(weight.shape)
        grad_proj_bias = grad_out.sum((0, 2, 3), dtype=acc)
        return (
            grad_x,
            grad_weight.to(weight.dtype),
            grad_weight_bias[-1].to(bias.dtype),
            grad_proj.to(proj_weight.dtype).view_as(proj_weight),
            grad_proj_bias.to(proj_bias.dtype),
            None,
            None,
        )


def conv_act_proj(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor,
    act: nn.Module,
    tile_pixels: Optional[int] = None,
) -> torch.Tensor:
    """``conv1x1(act(conv3x3(x, weight, bias, padding=1)), proj_weight, proj_bias)``, tile by tile.

    Peak extra memory is one tile of hidden activations. When autograd needs gradients, the backward
    pass recomputes each tile (one extra 3x3 conv) instead of keeping the hidden tensor.
    ``act`` must be parameter-free (it may work in place).
    """
    if tile_pixels is None:
        tile_pixels = tile_pixels_for(x.device, weight.shape[0], x.dtype)
    tensors = (x, weight, bias, proj_weight, proj_bias)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _ConvActProj.apply(*tensors, act, tile_pixels)
    return _forward_tiles(*tensors, act, tile_pixels)


def compose_linear(
    weight: torch.Tensor, bias: Optional[torch.Tensor], proj_weight: torch.Tensor, proj_bias: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One 3x3 conv equal to ``conv1x1(conv3x3(x))`` (no activation between them)."""
    out_chans, hidden_chans = proj_weight.shape[:2]
    proj_matrix = proj_weight.reshape(out_chans, hidden_chans)
    composed = (proj_matrix @ weight.flatten(1)).view(out_chans, *weight.shape[1:])
    composed_bias = proj_bias if bias is None else proj_bias + proj_matrix @ bias
    return composed, composed_bias


def patch_moments(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(K,)`` and biased covariance ``(K, K)`` of the zero-padded 3x3 patches of ``x``.

    ``K = channels * 9``, ordered like a flattened 3x3 conv weight. Computed in fp32; differentiable
    in ``x`` when it requires grad (then via one unfold of the whole batch, 9x the input size),
    otherwise over tiles of images.
    """
    batch, chans, height, width = x.shape
    count = batch * height * width
    x = x.float()
    if torch.is_grad_enabled() and x.requires_grad:
        patches = F.unfold(x, 3, padding=1).transpose(0, 1).reshape(chans * 9, -1)
        mean = patches.mean(1)
        centred = patches - mean[:, None]
        return mean, centred @ centred.t() / count
    padded = F.pad(x, (1, 1, 1, 1))
    # The patch entry (c, i, j) is the padded image shifted by (i, j): its mean is a window sum.
    sums = padded.sum(0, dtype=torch.float64)
    mean = torch.stack([sums[:, i:i + height, j:j + width].sum((1, 2)) for i in range(3) for j in range(3)], 1)
    mean = (mean.reshape(-1) / count).float()
    cov = x.new_zeros((chans * 9, chans * 9), dtype=torch.float64)
    step = max(1, _PATCH_TILE_PIXELS // (height * width))
    for n0 in range(0, batch, step):
        patches = F.unfold(x[n0:n0 + step], 3, padding=1).transpose(0, 1).reshape(chans * 9, -1)
        patches = patches - mean[:, None]  # centred first: no cancellation in the second moment
        cov += (patches @ patches.t()).double()
    return mean, (cov / count).float()


def fold_batchnorm(
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    norm: nn.BatchNorm2d,
    x: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one conv equal to ``norm(conv3x3(x, weight, bias))``, in fp32.

    Uses the running statistics when ``norm`` would (eval mode with tracked stats). Otherwise the
    batch statistics of the conv output on ``x`` (from :func:`patch_moments`), and, like
    ``nn.BatchNorm2d.forward``, updates the running statistics once when training.
    """
    hidden_chans = weight.shape[0]
    weight32 = weight.float()
    bias32 = bias.float() if bias is not None else None
    use_batch_stats = norm.training or (norm.running_mean is None and norm.running_var is None)
    if use_batch_stats:
        if x is None:
            raise ValueError("fold_batchnorm: batch statistics need the input x")
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if norm.training and count <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}"
            )
        patch_mean, patch_cov = patch_moments(x)
        flat = weight32.reshape(hidden_chans, -1)
        mean = flat @ patch_mean
        if bias32 is not None:
            mean = mean + bias32
        var = ((flat @ patch_cov) * flat).sum(1).clamp_min(0)
        if norm.training and norm.track_running_stats and norm.running_mean is not None:
            _update_running_stats(norm, mean.detach(), var.detach() * count / (count - 1))
    else:
        mean = norm.running_mean.float()
        var = norm.running_var.float()
    scale = torch.rsqrt(var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.float()
    shift = -mean * scale if bias32 is None else (bias32 - mean) * scale
    if norm.bias is not None:
        shift = shift + norm.bias.float()
    return weight32 * scale.view(-1, 1, 1, 1), shift


def _update_running_stats(norm: nn.BatchNorm2d, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
    # Mirrors nn.BatchNorm2d.forward: count the batch, then an exponential (or cumulative) average.
    momentum = 0.0 if norm.momentum is None else norm.momentum
    if norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:
            momentum = 1.0 / float(norm.num_batches_tracked)
    with torch.no_grad():
        norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
        norm.running_var.lerp_(unbiased_var.to(norm.running_var.dtype), momentum)
