"""The fused augmented stem: same outputs, gradients and BN statistics as the layer-by-layer reference,
without ever holding the wide (hidden_chans x full resolution) tensor."""

from __future__ import annotations

import copy
import functools

import pytest
import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import dldfd_hf  # noqa: F401  (registers the models)
from dldfd_hf._hardware import cpu_supports_bf16_conv
from dldfd_hf.configuration_dldfd import DLDFDConfig
from dldfd_hf.models import AugmentedStem
from dldfd_hf.models import fused_stem

# The error oneDNN raises for a bf16 convolution on a CPU without AVX-512 / AVX-NE-CONVERT (AVX2 EPYCs).
NO_BF16_CONV = "mkldnn_convolution: bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq"

VARIANTS = {
    "bn_relu": dict(norm_layer="batchnorm", act_layer="relu"),  # the default DLDFD stem
    "relu_only": dict(norm_layer=None, act_layer="relu"),
    "bn_only": dict(norm_layer="batchnorm", act_layer=None),
    "linear": dict(norm_layer=None, act_layer=None),  # paper-literal: collapses into one 3x3 conv
    "bn_gelu": dict(norm_layer="batchnorm", act_layer="gelu"),
}


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op produces (forward and, on CPU, backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.numel = max(self.numel, leaf.numel())
        return out


def make_stem(variant: str, branch_chans: int = 8, **kwargs) -> AugmentedStem:
    stem = AugmentedStem(in_chans=3, out_chans=3, branch_chans=branch_chans, num_branches=3,
                         **{**VARIANTS[variant], **kwargs})
    with torch.no_grad():  # non-trivial affine parameters and running statistics
        for module in stem.modules():
            if isinstance(module, nn.BatchNorm2d):
                if module.affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
                if module.track_running_stats:
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
        if stem.conv.bias is not None:
            stem.conv.bias.uniform_(-0.3, 0.3)
    return stem


def reference_copy(stem: AugmentedStem) -> AugmentedStem:
    reference = copy.deepcopy(stem)
    reference.fused = False
    return reference


@pytest.fixture(params=["row_bands", "image_groups"])
def small_tiles(request, monkeypatch):
    """Tiles much smaller than the batch, so the tests cover tile borders and image grouping."""
    hidden_bytes_per_pixel = 24 * 4  # make_stem's 3 x 8 hidden channels, fp32
    pixels = 5 * 24 if request.param == "row_bands" else 2 * 20 * 24
    monkeypatch.setattr(fused_stem, "_CPU_TILE_BYTES", pixels * hidden_bytes_per_pixel)
    return request.param


def assert_grads_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    # Gradients are sums over every pixel: compare relative to their scale.
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()) + 1e-7)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_eval_path_equals_reference_without_wide_tensor(variant, channels_last, small_tiles):
    torch.manual_seed(0)
    stem = make_stem(variant).eval()
    x = torch.randn(5, 3, 20, 24)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = stem.forward_reference(x)
        with LargestTensor() as largest:
            actual = stem(x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert actual.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    wide = x.shape[0] * stem.hidden_chans * x.shape[2] * x.shape[3]
    assert largest.numel < wide // 2, "the fused eval path materialised the wide hidden tensor"


def test_default_stem_at_224_equals_reference_and_three_branches():
    torch.manual_seed(0)
    stem = make_stem("bn_relu", branch_chans=64).eval()  # the paper's 3 x 64 branches, default tiles
    x = torch.randn(2, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        separate = torch.cat([nn.functional.conv2d(x, w, padding=1) for w in stem.branch_weights()], 1)
        expected = stem.proj(stem.act(stem.norm(separate)))
        with LargestTensor() as largest:
            actual = stem(x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert largest.numel < x.shape[0] * 192 * 224 * 224 // 4


def test_eval_fold_follows_parameter_and_statistic_changes():
    torch.manual_seed(0)
    stem = make_stem("bn_relu").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = stem(x)
        stem.conv.weight.mul_(1.5)
        stem.norm.running_var.mul_(2.0)
        stem.norm.bias.add_(0.25)
        stem.proj.bias.sub_(0.1)
        after = stem(x)
        expected = stem.forward_reference(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)


def test_flop_counter_sees_the_same_work():
    stem = make_stem("bn_relu", branch_chans=64).eval()
    x = torch.randn(1, 3, 32, 32)
    counts = []
    for fused in (True, False):
        stem.fused = fused
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            stem(x)
        counts.append(counter.get_total_flops())
    # 3x3 conv (27 MACs per hidden channel and pixel) + 1x1 projection, 2 FLOPs per MAC.
    assert counts[0] == counts[1] == 2 * 32 * 32 * (192 * 27 + 3 * 192)


BN_KINDS = {
    "default": "batchnorm",
    "cumulative_average": functools.partial(nn.BatchNorm2d, momentum=None),
    "no_affine": functools.partial(nn.BatchNorm2d, affine=False),
    "no_running_stats": functools.partial(nn.BatchNorm2d, track_running_stats=False),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("input_grad", [False, True])
def test_training_matches_reference_outputs_gradients_and_running_stats(variant, input_grad, small_tiles):
    torch.manual_seed(1)
    stem = make_stem(variant).train()
    reference = reference_copy(stem)
    # An offset input: the batch statistics must not suffer from cancellation.
    x = torch.randn(4, 3, 20, 24) * 2 + 3
    x_ref = x.clone().requires_grad_(input_grad)
    x = x.requires_grad_(input_grad)
    for step in range(2):  # the second step uses the running stats updated by the first
        out, expected = stem(x), reference(x_ref)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
        grad = torch.randn_like(out)
        out.backward(grad)
        expected.backward(grad)
    for (name, param), ref_param in zip(stem.named_parameters(), reference.parameters()):
        assert_grads_close(param.grad, ref_param.grad)
    if input_grad:
        assert_grads_close(x.grad, x_ref.grad)
    for (name, buffer), ref_buffer in zip(stem.named_buffers(), reference.buffers()):
        torch.testing.assert_close(buffer, ref_buffer, rtol=1e-5, atol=1e-6, msg=name)
    if isinstance(stem.norm, nn.BatchNorm2d):
        assert int(stem.norm.num_batches_tracked) == 2  # updated once per forward, never in backward


@pytest.mark.parametrize("kind", BN_KINDS)
def test_batchnorm_options(kind):
    torch.manual_seed(2)
    stem = make_stem("bn_relu", norm_layer=BN_KINDS[kind])
    reference = reference_copy(stem)
    x = torch.randn(3, 3, 12, 12)
    for mode in ("train", "train", "eval"):
        for module in (stem, reference):
            module.train(mode == "train")
        out, expected = stem(x), reference(x)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
        if mode == "train":
            out.square().sum().backward()
            expected.square().sum().backward()
    for param, ref_param in zip(stem.parameters(), reference.parameters()):
        assert_grads_close(param.grad, ref_param.grad)
    for buffer, ref_buffer in zip(stem.buffers(), reference.buffers()):
        torch.testing.assert_close(buffer, ref_buffer, rtol=1e-5, atol=1e-6)


def test_training_keeps_no_wide_tensor_for_backward(monkeypatch):
    torch.manual_seed(3)
    stem = make_stem("bn_relu", branch_chans=64).train()
    monkeypatch.setattr(fused_stem, "_CPU_TILE_BYTES", 16 * 32 * stem.hidden_chans * 4)  # half an image
    x = torch.randn(4, 3, 32, 32)
    wide_bytes = x.shape[0] * stem.hidden_chans * 32 * 32 * 4

    def saved_bytes(module: nn.Module) -> int:
        sizes = []

        def pack(t):
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x).sum().backward()
        return sum(sizes)

    assert saved_bytes(reference_copy(stem)) >= 2 * wide_bytes  # conv, BN and ReLU outputs
    assert saved_bytes(stem) < wide_bytes // 4
    with LargestTensor() as largest:  # forward and the recomputing backward work tile by tile
        stem(x).sum().backward()
    assert largest.numel < x.shape[0] * stem.hidden_chans * 32 * 32 // 4


def test_layers_the_fusion_cannot_express_use_the_reference_path():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 16, 16)
    layer_norm = AugmentedStem(branch_chans=8, norm_layer="layernorm2d").eval()
    prelu = AugmentedStem(branch_chans=8, act_layer="prelu").eval()
    for stem in (layer_norm, prelu):
        assert not stem.can_fuse()
        with torch.no_grad():
            assert torch.equal(stem(x), stem.forward_reference(x))
    hooked = AugmentedStem(branch_chans=8).eval()
    assert hooked.can_fuse()
    seen = []
    hooked.conv.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    assert not hooked.can_fuse()
    with torch.no_grad():
        hooked(x)
    assert seen == [torch.Size([2, 24, 16, 16])]  # hooks (Grad-CAM, feature taps) still fire


@pytest.mark.parametrize("onednn_bf16", [
    pytest.param(True, marks=pytest.mark.skipif(not cpu_supports_bf16_conv(), reason=NO_BF16_CONV)),
    False,  # what AVX2-only CPUs run: F.conv2d's bf16 kernel instead of oneDNN's fused conv + ReLU
])
def test_bfloat16_and_autocast(onednn_bf16, monkeypatch):
    monkeypatch.setattr(fused_stem, "cpu_supports_bf16_conv", lambda: onednn_bf16)
    torch.manual_seed(5)
    stem = make_stem("bn_relu").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = stem.forward_reference(x)
        low = copy.deepcopy(stem).to(torch.bfloat16)(x.to(torch.bfloat16))
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), expected, rtol=5e-2, atol=5e-2)

    stem.train()
    reference = reference_copy(stem)
    reference(x).square().sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = stem(x)
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    for param, ref_param in zip(stem.parameters(), reference.parameters()):
        assert param.grad.dtype == torch.float32
        torch.testing.assert_close(param.grad, ref_param.grad, rtol=0.1, atol=0.05 * float(ref_param.grad.abs().max()))


def test_dldfd_flag_config_and_channels_last_model():
    torch.manual_seed(6)
    model = timm.create_model("dldfd_tiny").eval()
    assert model.stem.fused and model.init_kwargs["stem_fused"] is True
    unfused = timm.create_model("dldfd_tiny", stem_fused=False).eval()
    assert not unfused.stem.fused
    unfused.load_state_dict(model.state_dict())  # same keys: checkpoints are interchangeable
    config = DLDFDConfig.from_timm(unfused)
    assert config.stem_fused is False and config.dldfd_kwargs()["stem_fused"] is False
    assert DLDFDConfig().stem_fused is True

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = unfused(x)
        channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(channels_last(x.contiguous(memory_format=torch.channels_last)), expected,
                                   rtol=1e-5, atol=1e-5)


def test_torch_compile_on_cpu():
    torch.manual_seed(7)
    model = timm.create_model("dldfd_tiny").eval()
    with torch.no_grad():
        model.stem.norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        # Full graph capture of the whole tiny model (inductor's C++ build of every backbone kernel
        # would take minutes on 2 cores), then inductor itself on the stem.
        whole = torch.compile(model, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(whole(x), expected, rtol=1e-5, atol=1e-5)
        stem = torch.compile(model.stem, fullgraph=True)
        torch.testing.assert_close(stem(x), model.stem(x), rtol=1e-5, atol=1e-5)

    model.train()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    compiled(x).sum().backward()
    eager(x).sum().backward()
    for param, ref_param in zip(model.parameters(), eager.parameters()):
        assert_grads_close(param.grad, ref_param.grad)
    assert int(model.stem.norm.num_batches_tracked) == 1


@pytest.mark.parametrize("exporter", ["torch.export", "torchscript"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_onnx_export_matches_onnxruntime(exporter, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if exporter == "torch.export":
        pytest.importorskip("onnxscript")  # torch's default ONNX exporter needs it
    torch.manual_seed(8)
    model = timm.create_model("dldfd_tiny").eval()
    with torch.no_grad():
        model.stem.norm.running_mean.uniform_(-0.5, 0.5)
        model.stem.norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 3, 64, 64)
    path = tmp_path / "dldfd_tiny.onnx"
    names = dict(input_names=["pixel_values"], output_names=["logits"])
    if exporter == "torch.export":
        program = torch.onnx.export(model, (x[:1],), dynamo=True, dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                                    **names)
        program.save(str(path))
    else:
        torch.onnx.export(model, (x[:1],), str(path), dynamo=False, dynamic_axes={"pixel_values": {0: "batch"}},
                          **names)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"pixel_values": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-4, atol=1e-5)
