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


def test_hub_card_numbers_come_from_the_results_files():
    text = (HUB_CARD / "README.md").read_text(encoding="utf-8")
    module = _render_module()
    import json

    dev = json.loads((HUB_CARD / "results" / "dev_fakes.json").read_text())
    shipped = dev["models"]["dldfd_efficientnet_lite0.sbi_faces"]
    assert f"| {shipped['dfdc_crops']['auc']:.3f} |" in text
    assert "license: other" in text and "FaceForensics++" in text
    assert (HUB_CARD / "assets" / "dev_fakes.png").is_file()
    assert module.CARD == HUB_CARD / "README.md"
