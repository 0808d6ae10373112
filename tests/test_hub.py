"""Export: one folder that every way in loads from a (locally built) Hub cache, with the same logits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, pipeline

from dldfd_hf import DLDFDForImageClassification, create_dldfd
from dldfd_hf.hub.export import export_model
from dldfd_hf.model_folder import MODEL_FILES, ModelFolderError, check_model_folder, is_trained

from tests.conftest import EXPORTED_FILES, REPO_ROOT, assert_same_network_outputs, train_a_little

REPO_ID = "dldfd-test/dldfd_tiny.synthetic"


@pytest.fixture(scope="module")
def exported(trained_tiny, tmp_path_factory, hub_cache):
    folder = export_model(trained_tiny, tmp_path_factory.mktemp("export") / "tiny", repo_id=REPO_ID)
    hub_cache.add_folder(REPO_ID, folder)
    return folder


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_export_holds_one_weights_file_and_one_config_for_both_libraries(exported, trained_tiny):
    assert {p.name for p in exported.iterdir()} == EXPORTED_FILES
    config = json.loads((exported / "config.json").read_text())
    # timm's half
    assert config["architecture"] == "dldfd_tiny" and config["num_classes"] == 1
    assert config["label_names"] == ["real", "fake"]
    assert config["pretrained_cfg"]["input_size"] == [3, 64, 64] and config["pretrained_cfg"]["num_classes"] == 1
    assert not {"hf_hub_id", "url", "file", "source"} & set(config["pretrained_cfg"])
    assert "model_args" not in config  # the registered defaults rebuild this network
    # transformers' half
    assert config["model_type"] == "dldfd" and config["architectures"] == ["DLDFDForImageClassification"]
    assert config["id2label"] == {"0": "real", "1": "fake"} and config["label2id"] == {"real": 0, "fake": 1}
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling_dldfd.DLDFDForImageClassification"
    assert config["auto_map"]["AutoConfig"] == "configuration_dldfd.DLDFDConfig"
    # the weights: timm layout, exactly the trained tensors (BN statistics and counters included)
    weights = load_file(str(exported / "model.safetensors"))
    reference = trained_tiny.state_dict()
    assert set(weights) == set(reference)
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    processor = json.loads((exported / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 64, "width": 64}
    assert processor["image_mean"] == pytest.approx(config["pretrained_cfg"]["mean"])


def test_every_way_in_gives_the_same_logits(exported, trained_tiny, pixels):
    with torch.no_grad():
        z = trained_tiny(pixels)
        ways = {
            "timm hf-hub:": timm.create_model(f"hf-hub:{REPO_ID}", pretrained=True),
            "timm name + pretrained=True": timm.create_model(
                "dldfd_tiny", pretrained=True, pretrained_cfg_overlay=dict(hf_hub_id=REPO_ID)),
            "timm local-dir:": timm.create_model(f"local-dir:{exported}", pretrained=True),
        }
        for name, model in ways.items():
            assert_same_network_outputs(model.eval()(pixels), z, msg=name)
        hub_model = timm.create_model(f"hf-hub:{REPO_ID}", pretrained=True)
        assert hub_model.pretrained_cfg["label_names"] == ["real", "fake"]
        assert tuple(hub_model.pretrained_cfg["input_size"]) == (3, 64, 64)

        for source in (REPO_ID, exported):
            model = AutoModelForImageClassification.from_pretrained(source).eval()
            assert isinstance(model, DLDFDForImageClassification)
            logits = model(pixel_values=pixels).logits
            assert torch.equal(logits[:, 0], torch.zeros(3)), source  # a constant column: exact
            assert_same_network_outputs(logits[:, 1], z[:, 0], msg=str(source))


def test_image_classification_pipeline_from_the_hub_id(exported, trained_tiny):
    classifier = pipeline("image-classification", model=REPO_ID)
    face = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 90, 3), dtype=np.uint8))
    scores = {r["label"]: r["score"] for r in classifier(face)}
    pixel_values = classifier.image_processor(face, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = torch.sigmoid(trained_tiny(pixel_values))[0, 0].item()
    assert set(scores) == {"real", "fake"}
    assert scores["fake"] == pytest.approx(expected, abs=1e-6)
    assert scores["real"] == pytest.approx(1 - expected, abs=1e-6)


def test_registered_name_with_pretrained_true_loads_the_export(tmp_path, hub_cache):
    torch.manual_seed(2)
    model = timm.create_model("dldfd_resnet18").eval()
    with torch.no_grad():
        model.get_classifier().bias.fill_(0.4)  # differs from any fresh init
    hub_id = model.pretrained_cfg["hf_hub_id"]
    folder = export_model(model, tmp_path / "r18", repo_id=hub_id, trained=True)
    hub_cache.add_folder(hub_id, folder)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_same_network_outputs(timm.create_model("dldfd_resnet18", pretrained=True).eval()(x), model(x))
    # ... and the card tells users that name
    assert 'timm.create_model("dldfd_resnet18.ffpp_c40", pretrained=True)' in (folder / "README.md").read_text()


@pytest.mark.parametrize("build,expected_args", [
    # the 192-channel and the paper-literal linear stem: arguments the entry point does not default to
    (lambda: timm.create_model("dldfd_tiny", stem_out_chans=192, stem_norm="none", stem_act="none"),
     {"stem_out_chans": 192, "stem_norm": "none", "stem_act": "none"}),
    # a backbone with no registered dldfd_* name: rebuilt from dldfd_resnet50 + model_args
    (lambda: create_dldfd("resnet10t", stem_branch_chans=4),
     {"backbone": "resnet10t", "stem_branch_chans": 4}),
    # a two-logit head: num_classes travels at the top level, never in model_args
    (lambda: timm.create_model("dldfd_tiny", num_classes=2), {}),
])
def test_non_default_networks_round_trip_through_model_args(build, expected_args, tmp_path, hub_cache):
    torch.manual_seed(3)
    model = train_a_little(build())
    folder = export_model(model, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert {k: config.get("model_args", {}).get(k) for k in expected_args} == expected_args
    assert "num_classes" not in config.get("model_args", {})
    assert config["num_classes"] == model.num_classes == config["head_num_classes"]
    repo_id = f"dldfd-test/variant-{abs(hash(str(expected_args))) % 10**6}"
    hub_cache.add_folder(repo_id, folder)
    x = torch.randn(2, 3, 64, 64)
    timm_model = timm.create_model(f"hf-hub:{repo_id}", pretrained=True).eval()
    hf_model = AutoModelForImageClassification.from_pretrained(repo_id).eval()
    reference = model.state_dict()
    for weights in (timm_model.state_dict(), hf_model.dldfd.state_dict()):  # the same network, bit for bit
        assert weights.keys() == reference.keys() and all(torch.equal(weights[k], reference[k]) for k in reference)
    with torch.no_grad():
        z = model(x)
        via_timm = timm_model(x)
        via_transformers = hf_model(pixel_values=x).logits
    assert_same_network_outputs(via_timm, z)
    assert_same_network_outputs(via_transformers[:, 1:] if model.num_classes == 1 else via_transformers, z)


def test_transformers_model_exports_the_same_folder(exported, trained_tiny, tmp_path):
    wrapper = DLDFDForImageClassification.from_pretrained(exported)
    again = export_model(wrapper, tmp_path / "again", repo_id=REPO_ID)
    for name in ("config.json", "preprocessor_config.json", "configuration_dldfd.py", "modeling_dldfd.py"):
        assert (again / name).read_text() == (exported / name).read_text(), name
    first, second = load_file(str(exported / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_video_pipeline_and_detect_command_agree_with_timm(exported, trained_tiny, shared_data, capsys):
    """pipeline("deepfake-video-detection") and `dldfd detect` from the Hub id: timm's logits on their crops."""
    from dldfd_hf.cli import main as dldfd

    clip = shared_data / "videos/LipNet_GRID/evaluation_samples_GRID_bbaf2n.mpg"  # a real talking face
    detector = pipeline("deepfake-video-detection", model=REPO_ID)
    result = detector(str(clip), num_frames=3)
    # The pipeline's own crops and preprocessing, scored by the timm model of the same repo.
    # (preprocess keeps the face crops; their pixel values are made one forward batch at a time)
    crops = detector.preprocess(str(clip), num_frames=3)["crops"]
    pixel_values = detector.image_processor(images=crops, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = torch.sigmoid(trained_tiny(pixel_values))[:, 0].tolist()
    probs = [frame["fake_prob"] for frame in result["frames"] if frame["fake_prob"] is not None]
    assert len(probs) == 3 and probs == pytest.approx(expected, abs=1e-6)

    assert dldfd(["detect", str(clip), "--model", REPO_ID, "--frames", "3", "--format", "json",
                  "--no-progress"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["error"] is None and row["label"] == result["label"]
    assert [f["fake_prob"] for f in row["frames"]] == pytest.approx(probs, abs=1e-6)


REMOTE_CODE_SCRIPT = """
import json, sys
import numpy as np
import torch
from PIL import Image
from transformers import AutoModel, AutoModelForImageClassification, pipeline
assert "dldfd_hf" not in sys.modules
model = AutoModelForImageClassification.from_pretrained({repo!r}, trust_remote_code=True).eval()
pixels = torch.tensor(json.loads(sys.stdin.read()))
with torch.no_grad():
    logits = model(pixel_values=pixels).logits
    pooled = AutoModel.from_pretrained({repo!r}, trust_remote_code=True).eval()(pixel_values=pixels).pooler_output
classifier = pipeline("image-classification", model={repo!r}, trust_remote_code=True)
face = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 90, 3), dtype=np.uint8))
scores = {{r["label"]: r["score"] for r in classifier(face)}}
print(json.dumps({{"class": type(model).__module__, "logits": logits.tolist(), "pooled": list(pooled.shape),
                  "scores": scores}}))
"""

BLOCK_PACKAGE = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "dldfd_hf":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
"""


def _fresh_python(code: str, hf_home, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], input=stdin, capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT.parent, timeout=300)


def test_trust_remote_code_loads_without_importing_dldfd_hf(exported, trained_tiny, pixels, hf_home):
    done = _fresh_python(REMOTE_CODE_SCRIPT.format(repo=REPO_ID), hf_home, json.dumps(pixels.tolist()))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["class"].startswith("transformers_modules.")  # the repo's shim, not a pre-imported class
    with torch.no_grad():
        z = trained_tiny(pixels)[:, 0]
    logits = torch.tensor(out["logits"])
    assert torch.equal(logits[:, 0], torch.zeros(3))
    assert_same_network_outputs(logits[:, 1], z)  # another process, and JSON: float32 values round-trip
    assert out["pooled"] == [3, trained_tiny.num_features]  # AutoModel: the features, no head
    face = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 90, 3), dtype=np.uint8))
    in_process = {r["label"]: r["score"] for r in pipeline("image-classification", model=REPO_ID)(face)}
    assert out["scores"] == pytest.approx(in_process, abs=1e-6)


def test_trust_remote_code_without_the_package_says_pip_install(exported, hf_home):
    code = BLOCK_PACKAGE + textwrap.dedent(f"""
        from transformers import AutoModelForImageClassification
        try:
            AutoModelForImageClassification.from_pretrained({REPO_ID!r}, trust_remote_code=True)
        except ImportError as error:
            print("IMPORT ERROR:", error)
    """)
    done = _fresh_python(code, hf_home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IMPORT ERROR:" in done.stdout and "pip install dldfd-hf" in done.stdout


@pytest.mark.parametrize("missing", sorted(MODEL_FILES))
def test_a_folder_missing_a_file_fails_naming_it(exported, tmp_path, missing):
    folder = tmp_path / "broken"
    shutil.copytree(exported, folder)
    (folder / missing).unlink()
    with pytest.raises(ModelFolderError, match=missing.replace(".", r"\.")):
        check_model_folder(folder)
    if missing == "model.safetensors":
        with pytest.raises(OSError, match=r"model\.safetensors"):
            AutoModelForImageClassification.from_pretrained(folder)
        with pytest.raises(RuntimeError, match=str(folder)):  # timm names the folder, not the file
            timm.create_model(f"local-dir:{folder}", pretrained=True)
    if missing == "config.json":
        with pytest.raises(FileNotFoundError, match=r"config\.json"):
            timm.create_model(f"local-dir:{folder}", pretrained=True)
        with pytest.raises((OSError, ValueError), match=r"config\.json"):
            AutoModelForImageClassification.from_pretrained(folder)


def test_a_hub_repo_missing_its_weights_fails_naming_the_file(exported, tmp_path, hub_cache):
    files = {p.name: p for p in exported.iterdir() if p.name != "model.safetensors"}
    hub_cache.add("dldfd-test/no-weights", files)
    with pytest.raises(OSError, match=r"model\.safetensors"):
        AutoModelForImageClassification.from_pretrained("dldfd-test/no-weights")


def test_export_never_leaves_a_half_written_folder(trained_tiny, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        export_model(trained_tiny, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": [{"protocol": "combined", "metrics": {"frame": {"tcr": 3.5}}}]}')
    with pytest.raises(ValueError, match=r"bad\.json.*fractions in \[0, 1\]"):
        export_model(trained_tiny, tmp_path / "new", results=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "out"]  # no partial or temporary folder
    export_model(trained_tiny, target, overwrite=True)
    assert {p.name for p in target.iterdir()} == EXPORTED_FILES


def test_is_trained_reads_the_batchnorm_counters(trained_tiny):
    assert is_trained(trained_tiny) is True
    assert is_trained(timm.create_model("dldfd_tiny")) is False
    assert is_trained(DLDFDForImageClassification.from_timm(trained_tiny)) is True
    linear = timm.create_model("dldfd_tiny", stem_norm="none", stem_act="none")
    assert is_trained(linear) is False  # falls back to the backbone's BatchNorm layers
    assert is_trained(train_a_little(linear)) is True
