"""The timm side: architecture, model API, registration, pretrained loading through a local HF cache."""

from __future__ import annotations

import copy
import json

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import dldfd_hf  # noqa: F401  (registers the models)
from dldfd_hf.models import DLDFD, AugmentedStem, create_dldfd

from tests.conftest import assert_same_network_outputs


def _flops(model: nn.Module, size: int = 224) -> int:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def test_registered_entry_points():
    assert {"dldfd_resnet50", "dldfd_resnet18", "dldfd_tiny"} <= set(timm.list_models("dldfd_*"))
    assert "dldfd_resnet50.ffpp_c40" in timm.list_pretrained("dldfd_*")


@pytest.mark.parametrize("name,size", [("dldfd_tiny", 64), ("dldfd_resnet18", 64)])
def test_output_shapes_and_model_api(name, size):
    model = timm.create_model(name).eval()
    x = torch.randn(2, 3, size, size)
    assert model(x).shape == (2, 1)
    features = model.forward_features(x)
    assert features.ndim == 4 and features.shape[:2] == (2, model.num_features)
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    assert isinstance(model.get_classifier(), nn.Linear)
    head = model.get_classifier(name_only=True)  # timm's spelling: the classifier's state-dict name
    assert head == model.pretrained_cfg["classifier"]
    assert model.state_dict()[f"{head}.weight"].data_ptr() == model.get_classifier().weight.data_ptr()
    model.reset_classifier(2)
    assert model(x).shape == (2, 2) and model.get_classifier().out_features == 2
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)


def test_pretrained_cfg_carries_preprocessing():
    cfg = timm.create_model("dldfd_resnet50").pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224)
    assert cfg["mean"] == pytest.approx((0.485, 0.456, 0.406)) and cfg["std"] == pytest.approx((0.229, 0.224, 0.225))
    assert cfg["first_conv"] == "stem.conv" and cfg["classifier"] == "backbone.fc"
    assert list(cfg["label_names"]) == ["real", "fake"] and cfg["num_classes"] == 1
    assert cfg["hf_hub_id"] == "dldfd-hf/dldfd_resnet50.ffpp_c40"
    # The named modules exist, so timm's in_chans / num_classes adaptation can find them.
    model = timm.create_model("dldfd_tiny")
    assert isinstance(model.get_submodule(cfg["first_conv"]), nn.Conv2d)
    assert isinstance(model.get_submodule(cfg["classifier"]), nn.Linear)


@pytest.mark.parametrize("name", sorted(timm.list_pretrained("dldfd_*")))
def test_pretrained_cfg_names_the_real_classifier(name):
    # timm's num_classes / in_chans adaptation and our exports find the head by this name.
    with torch.device("meta"):
        model = timm.create_model(name)
    assert model.pretrained_cfg["classifier"] == model.get_classifier(name_only=True)
    assert model.get_submodule(model.pretrained_cfg["classifier"]) is model.get_classifier()


def test_create_dldfd_names_its_backbones_classifier():
    with torch.device("meta"):
        model = create_dldfd("efficientnet_b0", stem_out_chans=3)
    assert model.pretrained_cfg["classifier"] == "backbone.classifier"
    assert model.get_submodule(model.pretrained_cfg["classifier"]) is model.get_classifier()


def test_param_count_is_resnet50_plus_stem():
    dldfd = timm.create_model("dldfd_resnet50")
    resnet = timm.create_model("resnet50", num_classes=1)
    stem = sum(p.numel() for p in dldfd.stem.parameters())
    # 3x3: 3*192*9 weights; BN: 2*192; 1x1: 192*3 + 3.
    assert stem == 3 * 192 * 9 + 2 * 192 + 192 * 3 + 3
    total = sum(p.numel() for p in dldfd.parameters())
    expected = sum(p.numel() for p in resnet.parameters()) + stem
    assert abs(total - expected) / expected < 0.01


def test_flops_ratio_to_resnet50():
    ratio = _flops(timm.create_model("dldfd_resnet50")) / _flops(timm.create_model("resnet50", num_classes=1))
    assert 1.0 < ratio <= 1.10


def test_fused_stem_equals_three_separate_branches():
    torch.manual_seed(0)
    stem = AugmentedStem(in_chans=3, out_chans=3, branch_chans=64, num_branches=3).eval()
    with torch.no_grad():  # non-trivial BN statistics
        stem.norm.running_mean.uniform_(-1, 1)
        stem.norm.running_var.uniform_(0.5, 2)
        stem.norm.weight.uniform_(0.5, 1.5)
        stem.norm.bias.uniform_(-0.5, 0.5)
    branches = []
    for weight in stem.branch_weights():
        conv = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        conv.weight.data.copy_(weight)
        branches.append(conv)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        separate = torch.cat([branch(x) for branch in branches], dim=1)
        reference = stem.proj(stem.act(stem.norm(separate)))
        assert torch.allclose(stem.conv(x), separate, atol=1e-6)
        assert torch.allclose(stem(x), reference, atol=1e-6)


@pytest.mark.parametrize("build", [
    lambda: timm.create_model("dldfd_tiny", stem_norm="none", stem_act="none"),  # timm drops None kwargs
    lambda: DLDFD(backbone="resnet18", stem_branch_chans=8, stem_norm=None, stem_act=None),
])
def test_paper_literal_linear_stem(build):
    model = build()
    assert isinstance(model.stem.norm, nn.Identity) and isinstance(model.stem.act, nn.Identity)
    assert model.stem.conv.bias is not None
    # Without a non-linearity the stem is one linear map: stem(a x) - stem(0) = a (stem(x) - stem(0)).
    x = torch.randn(1, 3, 16, 16)
    zero = model.stem(torch.zeros_like(x))
    assert torch.allclose(model.stem(3 * x) - zero, 3 * (model.stem(x) - zero), atol=1e-4)


def test_192_channel_stem_variant_builds_and_runs():
    model = timm.create_model("dldfd_tiny", stem_out_chans=192).eval()
    assert model.stem.proj.out_channels == 192
    assert model.backbone.conv1[0].in_channels == 192 if isinstance(model.backbone.conv1, nn.Sequential) \
        else model.backbone.conv1.in_channels == 192
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1)


def test_create_dldfd_around_other_backbone():
    model = create_dldfd("test_efficientnet", stem_branch_chans=4).eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1)
    assert model.pretrained_cfg["first_conv"] == "stem.conv"
    assert list(model.pretrained_cfg["label_names"]) == ["real", "fake"]


def test_bad_input_and_config_errors():
    model = timm.create_model("dldfd_tiny").eval()
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\).*\(1, 4, 64, 64\)"):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 0"):
        timm.create_model("dldfd_tiny", num_classes=-1)
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet_does_not_exist'"):
        DLDFD(backbone="resnet_does_not_exist")
    with pytest.raises(ValueError, match="stem_out_chans|out_chans must be a positive integer"):
        timm.create_model("dldfd_tiny", stem_out_chans=0)
    with pytest.raises(ValueError, match="Unknown stem_act 'swishy'"):
        timm.create_model("dldfd_tiny", stem_act="swishy")


def _save_timm_repo(model: DLDFD, folder, architecture: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), folder / "model.safetensors")
    config = {"architecture": architecture, "num_classes": 1, "label_names": ["real", "fake"],
              "pretrained_cfg": {k: v for k, v in model.pretrained_cfg.items() if k not in ("hf_hub_id", "url")}}
    (folder / "config.json").write_text(json.dumps(config, default=list))


def test_pretrained_true_and_hf_hub_id_load_from_local_cache(tmp_path, hub_cache):
    torch.manual_seed(0)
    trained = timm.create_model("dldfd_resnet50").eval()
    with torch.no_grad():
        trained.get_classifier().bias.fill_(0.25)  # differs from any fresh init
    _save_timm_repo(trained, tmp_path / "repo", "dldfd_resnet50")
    hub_cache.add_folder("dldfd-hf/dldfd_resnet50.ffpp_c40", tmp_path / "repo")

    x = torch.randn(2, 3, 64, 64)
    expected = trained(x)
    by_name = timm.create_model("dldfd_resnet50", pretrained=True).eval()
    by_hub_id = timm.create_model("hf-hub:dldfd-hf/dldfd_resnet50.ffpp_c40", pretrained=True).eval()
    for model in (by_name, by_hub_id):
        assert all(torch.equal(v, trained.state_dict()[k]) for k, v in model.state_dict().items())
        assert_same_network_outputs(model(x), expected)
    assert by_hub_id.pretrained_cfg["label_names"] == ["real", "fake"]


def test_backbone_imagenet_weights_through_timm_pretrained_path(tmp_path, hub_cache):
    torch.manual_seed(1)
    stand_in = timm.create_model("resnet18")  # the ImageNet checkpoint (1000 classes)
    folder = tmp_path / "resnet18"
    folder.mkdir()
    save_file(stand_in.state_dict(), folder / "model.safetensors")
    hub_cache.add_folder("timm/resnet18.tv_in1k", folder)

    model = timm.create_model("dldfd_resnet18", backbone_pretrained=True)
    loaded = model.backbone.state_dict()
    assert torch.equal(loaded["layer4.1.conv2.weight"], stand_in.state_dict()["layer4.1.conv2.weight"])
    assert torch.equal(loaded["conv1.weight"], stand_in.state_dict()["conv1.weight"])
    assert model.get_classifier().out_features == 1  # the 1000-class head was not kept

    wide = timm.create_model("dldfd_resnet18", backbone_pretrained=True, stem_out_chans=192)
    # timm's in_chans adaptation: the RGB filters are repeated over 192 channels and rescaled.
    assert wide.backbone.conv1.weight.shape[1] == 192
    assert torch.allclose(wide.backbone.conv1.weight.sum(dim=1), stand_in.conv1.weight.sum(dim=1), atol=1e-4)


def test_parameter_groups_for_layer_wise_lr_decay():
    from timm.models import group_parameters
    from timm.optim import create_optimizer_v2

    model = timm.create_model("dldfd_tiny")
    groups = list(group_parameters(model, model.group_matcher(), reverse=False).values())
    assert set(groups[0]) == {n for n, _ in model.named_parameters()
                              if n.startswith(("stem.", "backbone.conv1.", "backbone.bn1."))}
    assert groups[-1] == ["backbone.fc.weight", "backbone.fc.bias"]
    assert len(groups) == 6  # stem, four stages, head
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, layer_decay=0.5)
    scales = sorted({group["lr_scale"] for group in optimizer.param_groups})
    assert scales[0] == pytest.approx(0.5 ** 5) and scales[-1] == pytest.approx(1.0)


# --- the model API timm users expect of every registered model (timm's own suite: test_timm_suite.py)
def test_any_number_of_classes_and_device_dtype_at_creation():
    model = timm.create_model("dldfd_tiny", num_classes=5, dtype=torch.float64).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64, dtype=torch.float64)).shape == (2, 5)
    on_meta = timm.create_model("dldfd_tiny", device="meta")
    assert {t.device.type for t in [*on_meta.parameters(), *on_meta.buffers()]} == {"meta"}


def test_features_only_gives_the_backbone_stages():
    torch.manual_seed(0)
    model = timm.create_model("dldfd_tiny").eval()
    torch.manual_seed(0)  # the same initial weights
    features = timm.create_model("dldfd_tiny", features_only=True).eval()
    # The backbone's five levels, named in the DLDFD module (the augmented layers run before level 0).
    assert features.feature_info.channels() == [info["num_chs"] for info in model.backbone.feature_info]
    assert features.feature_info.channels() == [8, 8, 16, 32, 64]  # dldfd_tiny's deep stem ends 8 wide
    assert features.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert all(name.startswith("backbone.") for name in features.feature_info.module_name())
    assert all(isinstance(model.get_submodule(info["module"]), nn.Module) for info in model.feature_info)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outputs = features(x)
        expected = model.backbone.forward_intermediates(model.stem(x), intermediates_only=True)
    assert [tuple(o.shape) for o in outputs] == [(2, c, 64 // r, 64 // r) for c, r in
                                                 zip([8, 8, 16, 32, 64], [2, 4, 8, 16, 32])]
    for output, reference in zip(outputs, expected):
        assert_same_network_outputs(output, reference)
    some = timm.create_model("dldfd_tiny", features_only=True, out_indices=(1, 3)).eval()
    assert some.feature_info.channels() == [8, 32] and len(some(x)) == 2


def test_forward_intermediates_and_prune_intermediate_layers():
    torch.manual_seed(0)
    model = timm.create_model("dldfd_tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=0)
        assert [t.shape[1] for t in intermediates] == [info["num_chs"] for info in model.feature_info]
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [t.shape[1] for t in last_two] == [32, 64]

        pruned = copy.deepcopy(model)
        assert pruned.prune_intermediate_layers([2]) == [2]
        assert pruned.num_classes == 0 and pruned.num_features == pruned.head_hidden_size == 16
        torch.testing.assert_close(pruned.forward_features(x), intermediates[2], rtol=0, atol=0)
        assert pruned(x).shape == (2, 16, 8, 8)  # no pooling, no head left
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        model.forward_intermediates(torch.randn(1, 1, 64, 64))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_and_fx_give_the_eager_outputs():
    torch.manual_seed(0)
    model = timm.create_model("dldfd_tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    scripted = torch.jit.script(model)
    traced = torch.fx.symbolic_trace(model)
    # torch.fx records the augmented layers module by module (the fusion is eager-only Python) ...
    stem_calls = [n.target for n in traced.graph.nodes if n.op == "call_module" and n.target.startswith("stem.")]
    assert stem_calls == ["stem.conv", "stem.norm", "stem.act", "stem.proj"]
    with torch.no_grad():
        expected = model(x)  # ... while eager mode still runs the fused stem
        # the reference path equals the fused one up to float rounding
        torch.testing.assert_close(scripted(x), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(traced(x), expected, rtol=1e-4, atol=1e-5)
    assert model.stem.fused and model.stem.can_fuse()
