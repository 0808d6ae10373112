"""The README's usage snippets run as written (offline, Hub ids served from a local HF cache)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

import dldfd_hf  # noqa: F401  (the stand-in checkpoint is built with a dldfd model)

from tests.conftest import REPO_ROOT, SHARED_DATA

MARKER = "<!-- readme-test -->"


def readme_snippets() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, flags=re.S)


def test_readme_has_set_up_and_test_commands():
    text = (REPO_ROOT / "README.md").read_text()
    assert 'pip install -e ".[dev]"' in text and "python -m venv .venv" in text
    assert "\npytest\n" in text
    assert len(readme_snippets()) >= 2


@pytest.fixture()
def readme_workdir(tmp_path, monkeypatch, hub_cache):
    face = SHARED_DATA / "faces" / "SimSwap_crop224" / "crop_224_2.jpg"
    if face.is_file():
        shutil.copy(face, tmp_path / "face.jpg")
    else:  # a user's machine without the shared data: any RGB image exercises the same code
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(
            tmp_path / "face.jpg")
    # Stand-in for the published checkpoint, so `pretrained=True` resolves offline.
    repo = tmp_path / "published"
    repo.mkdir()
    save_file(timm.create_model("dldfd_resnet50").state_dict(), repo / "model.safetensors")
    hub_cache.add_folder("dldfd-hf/dldfd_resnet50.ffpp_c40", repo)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_snippet_runs(index, readme_workdir, capsys):
    torch.manual_seed(0)
    exec(compile(readme_snippets()[index], f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()  # every snippet prints its result
