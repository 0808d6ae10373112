"""The transformers side: config, PreTrainedModel round trips, Auto classes, pipeline, loss wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, pipeline

from dldfd_hf import DLDFDConfig, DLDFDForImageClassification, DLDFDModel, image_processor_for

from tests.conftest import assert_same_network_outputs


@pytest.fixture()
def timm_tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("dldfd_tiny").eval()
    with torch.no_grad():  # move BN statistics away from their defaults so a lost buffer shows
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.8, 1.2)
    return model


@pytest.fixture()
def tiny_folder(tmp_path, timm_tiny):
    folder = tmp_path / "tiny"
    DLDFDForImageClassification.from_timm(timm_tiny).save_pretrained(folder)
    return folder


def test_config_defaults_are_the_paper():
    config = DLDFDConfig()
    assert config.model_type == "dldfd"
    assert config.id2label == {0: "real", 1: "fake"} and config.label2id == {"real": 0, "fake": 1}
    assert config.backbone == "resnet50.tv_in1k" and config.stem_out_chans == 3
    assert config.stem_branches * config.stem_branch_chans == 192
    assert config.image_size == 224 and config.head_num_classes == 1


@pytest.mark.parametrize("kwargs,message", [
    (dict(head_num_classes=0), "head_num_classes must be a positive integer"),
    (dict(head_num_classes=3, id2label={0: "real", 1: "fake"}), "head_num_classes=3 needs as many labels"),
    (dict(stem_out_chans=0), "stem_out_chans must be a positive integer"),
    (dict(image_mean=(0.5, 0.5)), "image_mean and image_std need 3 values"),
    (dict(pos_weight=-1.0), "pos_weight must be positive"),
    (dict(head_num_classes=1, id2label={0: "real", 1: "fake", 2: "other"}), "exactly two labels"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DLDFDConfig(**kwargs)


def test_wrapper_holds_the_timm_module_not_a_copy(timm_tiny):
    model = DLDFDForImageClassification.from_timm(timm_tiny)
    assert model.timm_model is model.dldfd is timm_tiny
    assert not model.training and all(p.device.type == "cpu" for p in model.parameters())
    timm_params = sum(p.numel() for p in timm_tiny.parameters())
    assert sum(p.numel() for p in model.parameters()) == timm_params


def test_two_logits_match_timm_sigmoid(timm_tiny):
    model = DLDFDForImageClassification.from_timm(timm_tiny).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logits = model(pixel_values=x).logits
        z = timm_tiny(x)[:, 0]
    assert logits.shape == (3, 2)
    assert torch.equal(logits[:, 0], torch.zeros(3))
    probs = logits.softmax(-1)
    assert torch.allclose(probs[:, 1], torch.sigmoid(z), atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(3))


def test_hidden_states_are_the_feature_levels_and_change_no_output(timm_tiny):
    # As transformers' ResNet: output_hidden_states (or config.output_hidden_states) adds the feature
    # maps of the backbone's stem and of each stage, shallowest first (timm's forward_intermediates).
    levels = [(8, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4), (64, 2, 2)]  # dldfd_tiny at 64 px
    assert [(info["num_chs"], 64 // info["reduction"]) for info in timm_tiny.feature_info] == [
        (channels, side) for channels, side, _ in levels
    ]
    model = DLDFDForImageClassification.from_timm(timm_tiny).eval()
    base = DLDFDModel(DLDFDConfig.from_timm(timm_tiny)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(pixel_values=x)
        out = model(pixel_values=x, output_hidden_states=True)
        as_tuple = model(pixel_values=x, output_hidden_states=True, return_dict=False)
        base_plain = base(pixel_values=x)
        base_out = base(pixel_values=x, output_hidden_states=True)
        model.config.output_hidden_states = True
        from_config = model(pixel_values=x)
        overridden = model(pixel_values=x, output_hidden_states=False)
    assert plain.hidden_states is None and base_plain.hidden_states is None and overridden.hidden_states is None
    for hidden_states in (out.hidden_states, as_tuple[1], from_config.hidden_states, base_out.hidden_states):
        assert isinstance(hidden_states, tuple)
        assert [tuple(h.shape) for h in hidden_states] == [(2, *shape) for shape in levels]
    assert len(as_tuple) == 2
    for logits in (out.logits, as_tuple[0], from_config.logits, overridden.logits):
        assert torch.equal(logits, plain.logits)
    assert torch.equal(base_out.last_hidden_state, base_plain.last_hidden_state)
    assert torch.equal(base_out.hidden_states[-1], base_out.last_hidden_state)  # a ResNet's last stage
    assert torch.equal(base_out.pooler_output, base_plain.pooler_output)


def test_save_and_load_round_trip_exactly(tiny_folder, timm_tiny):
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in tiny_folder.iterdir()}
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["model_type"] == "dldfd" and config["architectures"] == ["DLDFDForImageClassification"]
    assert config["timm_architecture"] == "dldfd_tiny" and config["image_size"] == 64

    loaded = AutoModelForImageClassification.from_pretrained(tiny_folder).eval()
    assert isinstance(loaded, DLDFDForImageClassification)
    original = DLDFDForImageClassification.from_timm(timm_tiny).eval()
    assert original.state_dict().keys() == loaded.state_dict().keys()
    for name, value in original.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_same_network_outputs(loaded(pixel_values=x).logits, original(pixel_values=x).logits)


def test_auto_classes_resolve_dldfd(tiny_folder):
    assert isinstance(AutoConfig.from_pretrained(tiny_folder), DLDFDConfig)
    base = AutoModel.from_pretrained(tiny_folder).eval()
    assert isinstance(base, DLDFDModel)
    out = base(pixel_values=torch.randn(2, 3, 64, 64))
    assert out.pooler_output.shape == (2, base.dldfd.num_features)
    assert out.last_hidden_state.ndim == 4


def test_timm_loads_the_folder_transformers_saved(tiny_folder, timm_tiny, hub_cache):
    # save_pretrained writes the one folder layout every door reads (timm keys in config.json too).
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["architecture"] == "dldfd_tiny" and config["pretrained_cfg"]["input_size"] == [3, 64, 64]
    hub_cache.add_folder("dldfd-test/saved-tiny", tiny_folder)
    x = torch.randn(2, 3, 64, 64)
    for name in (f"local-dir:{tiny_folder}", "hf-hub:dldfd-test/saved-tiny"):
        reloaded = timm.create_model(name, pretrained=True).eval()
        assert_same_network_outputs(reloaded(x), timm_tiny(x), msg=name)


def test_image_classification_pipeline_scores_real_and_fake(tiny_folder, timm_tiny):
    classifier = pipeline("image-classification", model=str(tiny_folder))
    rng = np.random.default_rng(0)
    face = Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8))
    result = classifier(face)
    scores = {r["label"]: r["score"] for r in result}
    assert set(scores) == {"real", "fake"}
    assert scores["real"] + scores["fake"] == pytest.approx(1.0, abs=1e-6)

    # The pipeline's preprocessing is the model's own (saved preprocessor_config.json).
    processor = image_processor_for(DLDFDConfig.from_pretrained(tiny_folder))
    pixel_values = processor(face, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 64, 64)
    with torch.no_grad():
        expected = torch.sigmoid(timm_tiny(pixel_values))[0, 0].item()
    assert scores["fake"] == pytest.approx(expected, abs=1e-6)

    # ... which is: resize to the input size, scale to [0, 1], ImageNet mean/std.
    cfg = timm_tiny.pretrained_cfg
    manual = torch.from_numpy(np.asarray(face.resize((64, 64), Image.BILINEAR), dtype=np.float32) / 255)
    manual = ((manual - torch.tensor(cfg["mean"])) / torch.tensor(cfg["std"])).permute(2, 0, 1)
    assert (pixel_values[0] - manual).abs().mean() < 0.05  # resize kernels differ slightly


def test_loss_uses_pos_weight_and_one_step_lowers_it(timm_tiny):
    torch.manual_seed(0)
    model = DLDFDForImageClassification.from_timm(timm_tiny, pos_weight=0.25).train()
    x = torch.randn(8, 3, 64, 64)
    labels = torch.tensor([0, 1, 1, 1, 1, 0, 1, 1])
    out = model(pixel_values=x, labels=labels)
    z = model.dldfd(x)[:, 0]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        z, labels.float(), pos_weight=torch.tensor(0.25))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-4)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.eval()  # fixed BN statistics: the comparison below sees only the weight update
    before = model(pixel_values=x, labels=labels).loss
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = model(pixel_values=x, labels=labels).loss
    assert after.item() < before.item()


def test_two_logit_head_uses_cross_entropy():
    model = DLDFDForImageClassification(DLDFDConfig.from_timm(timm.create_model("dldfd_tiny"), head_num_classes=2))
    x = torch.randn(4, 3, 64, 64)
    labels = torch.tensor([0, 1, 0, 1])
    out = model(pixel_values=x, labels=labels)
    assert out.logits.shape == (4, 2)
    assert out.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(out.logits, labels).item(), rel=1e-5)


FFPP_CLASSES = {0: "real", 1: "Deepfakes", 2: "Face2Face", 3: "FaceSwap", 4: "NeuralTextures"}


def test_five_class_head_from_id2label(tmp_path):
    """More than real/fake: one logit per label of id2label (here real and the four FF++ methods)."""
    config = DLDFDConfig(id2label=FFPP_CLASSES)
    assert config.head_num_classes == 5 and config.label2id["FaceSwap"] == 3
    assert config.class_names() == list(FFPP_CLASSES.values())
    assert DLDFDConfig(head_num_classes=5).num_labels == 5  # transformers' LABEL_0 ... LABEL_4

    torch.manual_seed(0)
    network = timm.create_model("dldfd_tiny", num_classes=5).eval()
    model = DLDFDForImageClassification.from_timm(network, id2label=FFPP_CLASSES)
    assert model.config.head_num_classes == 5 and model.config.id2label == FFPP_CLASSES
    x = torch.randn(4, 3, 64, 64)
    labels = torch.tensor([0, 1, 3, 4])
    with torch.no_grad():
        out = model(pixel_values=x, labels=labels)
        torch.testing.assert_close(out.logits, network(x), rtol=0, atol=0)  # the logits as they are
    assert out.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(out.logits, labels).item(), rel=1e-5)
    with pytest.raises(ValueError, match="5-logit head needs integer class labels"):
        model(pixel_values=x, labels=labels.float())

    # The labels travel with the weights: transformers, timm and the image-classification pipeline read them.
    folder = tmp_path / "ffpp5"
    model.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["num_classes"] == 5 and saved["label_names"] == list(FFPP_CLASSES.values())
    loaded = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert loaded.config.id2label == FFPP_CLASSES and loaded.config.head_num_classes == 5
    reloaded = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with torch.no_grad():
        assert_same_network_outputs(loaded(pixel_values=x).logits, out.logits)
        assert_same_network_outputs(reloaded(x), out.logits)
    face = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8))
    scores = pipeline("image-classification", model=str(folder))(face)
    assert {r["label"] for r in scores} == set(FFPP_CLASSES.values())
    assert sum(r["score"] for r in scores) == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs_raise_clear_errors(timm_tiny):
    model = DLDFDForImageClassification.from_timm(timm_tiny)
    with pytest.raises(ValueError, match="pixel_values is required"):
        model()
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        model(pixel_values=torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"labels must be shaped \(batch,\)"):
        model(pixel_values=torch.randn(2, 3, 64, 64), labels=torch.tensor([[0, 1], [1, 0]]))
