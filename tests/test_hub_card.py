"""hub_card/README.md is the card the package's files render today (never edited by hand)."""

from __future__ import annotations

import importlib.util

import pytest

from dldfd_hf.models import SHIPPED_MODEL_DIR
from tests.conftest import REPO_ROOT

HUB_CARD = REPO_ROOT / "hub_card"


def _render_module():
    spec = importlib.util.spec_from_file_location("hub_card_render", HUB_CARD / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (SHIPPED_MODEL_DIR / "model.safetensors").is_file(), reason="no bundled weights")
def test_hub_card_is_not_stale():
    rendered = _render_module().render()
    assert (HUB_CARD / "README.md").read_text(encoding="utf-8") == rendered, (
        "hub_card/README.md is stale: run python hub_card/render.py")


@pytest.mark.skipif(not (SHIPPED_MODEL_DIR / "model.safetensors").is_file(), reason="no bundled weights")
def test_architecture_figure_is_a_current_png():
    from PIL import Image

    module = _render_module()
    path = HUB_CARD / "assets" / "architecture.png"
    assert module.FIGURE == path and path.is_file(), "no architecture figure: run python hub_card/render.py"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()  # a whole, uncorrupted PNG
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert 800 <= image.width <= 2400 and 400 <= image.height <= 1600, image.size  # legible on the Hub
        saved = image.text.get(module.FIGURE_KEY)
    # Staleness as for README.md: the figure's boxes (every number, read from the model) as drawn now.
    fresh = module.draw_architecture(module.shipped_model())
    assert saved == fresh.info[module.FIGURE_KEY], (
        "hub_card/assets/architecture.png is stale: run python hub_card/render.py")
    for shown in ("conv 3x3: 3 -> 64", "192 x 224 x 224", "conv 1x1: 192 -> 3", "tf_efficientnet_lite0",
                  "features 1280 x 7 x 7", "Linear: 1280 -> 1", "32 frames sampled"):
        assert shown in saved
    assert "](assets/architecture.png)" in (HUB_CARD / "README.md").read_text(encoding="utf-8")


def test_hub_card_numbers_come_from_the_results_files():
    text = (HUB_CARD / "README.md").read_text(encoding="utf-8")
    module = _render_module()
    import json

    dev = json.loads((HUB_CARD / "results" / "dev_fakes.json").read_text())
    shipped = dev["models"]["dldfd_efficientnet_lite0.ffpp_sbi"]
    assert f"| {shipped['dfdc_crops']['auc']:.3f} |" in text
    assert "license: other" in text and "FaceForensics++" in text
    assert (HUB_CARD / "assets" / "dev_fakes.png").is_file()
    assert module.CARD == HUB_CARD / "README.md"
