"""The README's usage snippets run as written, offline, and print what their comments promise."""

from __future__ import annotations

import ast
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

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
def readme_workdir(tmp_path, monkeypatch):
    face = SHARED_DATA / "faces" / "SimSwap_crop224" / "crop_224_2.jpg"
    if face.is_file():
        shutil.copy(face, tmp_path / "face.jpg")
    else:  # a user's machine without the shared data: any RGB image exercises the same code
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(
            tmp_path / "face.jpg")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _probability(out: str) -> None:
    p_fake = float(re.fullmatch(r"P\(fake\) = (\d\.\d{3})", out).group(1))
    assert 0.0 <= p_fake <= 1.0


def _features_and_five_classes(out: str) -> None:
    assert out.splitlines() == ["[256, 512, 1024, 2048] [4, 8, 16, 32]", "torch.Size([1, 5])"]


def _pipeline_scores(out: str) -> None:
    scores = ast.literal_eval(out)
    assert sorted(entry["label"] for entry in scores) == ["fake", "real"]
    assert sum(entry["score"] for entry in scores) == pytest.approx(1.0, abs=1e-4)


def _metric_values(out: str) -> None:
    frame_tcr, video_tcr = map(float, out.split())
    assert frame_tcr == pytest.approx(4 / 6) and video_tcr == 1.0  # the comment's promise


def _blend_changed_pixels(out: str) -> None:
    share = int(re.fullmatch(r"(\d+)% of the pixels changed, all inside the blended face region", out).group(1))
    assert 0 < share < 100


def _exported_files(out: str) -> None:
    assert ast.literal_eval(out) == ["README.md", "config.json", "configuration_dldfd.py", "model.safetensors",
                                     "modeling_dldfd.py", "preprocessor_config.json"]


# What each snippet promises, in README order: a new snippet needs its check here.
PROMISES = [_probability, _features_and_five_classes, _pipeline_scores, _metric_values, _blend_changed_pixels,
            _exported_files]


def test_every_snippet_has_a_promise_checked():
    assert len(readme_snippets()) == len(PROMISES)


@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_snippet_keeps_its_promise(index, readme_workdir, capsys):
    torch.manual_seed(0)
    exec(compile(readme_snippets()[index], f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})
    PROMISES[index](capsys.readouterr().out.strip())
