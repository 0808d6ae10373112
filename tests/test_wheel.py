"""The built wheel carries what an installed package needs: the card templates, the remote-code
shims, the shipped detector, and every subpackage (a card renders from the wheel alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this environment")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True, capture_output=True, text=True,
    )
    (found,) = out.glob("dldfd_hf-*.whl")
    return found


def test_the_wheel_holds_every_subpackage_template_and_the_shipped_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "dldfd_hf").rglob("__init__.py")}
    assert {f"{package}/__init__.py" for package in packages} <= names
    templates = {f"dldfd_hf/templates/{p.name}" for p in (REPO_ROOT / "dldfd_hf" / "templates").iterdir() if p.is_file()}
    assert "dldfd_hf/templates/model_card.md" in templates and templates <= names
    for tag in ("ffpp_sbi", "sbi_faces"):  # the shipped detector and the previous one
        assert f"dldfd_hf/models/weights/dldfd_efficientnet_lite0.{tag}/model.safetensors" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "hub_card/", "demo/"))]


def test_a_model_card_renders_from_the_wheel_alone(wheel, tmp_path):
    script = (
        "import json, dldfd_hf\n"
        "from importlib import resources\n"
        "from dldfd_hf.hub.cards import render_model_card\n"
        "folder = resources.files('dldfd_hf') / 'models' / 'weights' / 'dldfd_efficientnet_lite0.ffpp_sbi'\n"
        "card = render_model_card(json.loads((folder / 'config.json').read_text()), repo_id='org/name')\n"
        "print(json.dumps({'file': dldfd_hf.__file__, 'card': str(card)}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(wheel))  # the wheel first on the path: a zip import of the package
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                            check=True)
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["file"].startswith(str(wheel))
    assert "# name" in printed["card"] and "tf_efficientnet_lite0" in printed["card"]
