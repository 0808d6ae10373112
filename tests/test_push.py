"""Pushing to the Hub with HfApi replaced by a recorder (the only stand-in: the network)."""

from __future__ import annotations

import importlib.metadata
import io
import json
import runpy
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from types import SimpleNamespace

import gradio
import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from huggingface_hub import ModelCard, SpaceCard
from PIL import Image
from safetensors.torch import load as load_safetensors

from dldfd_hf import DLDFDForImageClassification, __version__
from dldfd_hf.data.build import BuildConfig, corpus_features
from dldfd_hf.hub import push
from dldfd_hf.hub.push import SPACE_FILES, push_corpus, push_model, push_space

from tests.conftest import EXPORTED_FILES, REPO_ROOT

SCRIPT = REPO_ROOT / "examples" / "push_to_hub.py"


class HubRecorder:
    """Records what would reach the Hub. ``repos`` holds the visibility of repos that exist."""

    repos: dict = {}
    calls: list = []

    def __init__(self, token=None, **kwargs) -> None:
        self.token = token

    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False, **kwargs):
        key = (repo_type or "model", repo_id)
        self.calls.append(("create_repo", dict(repo_id=repo_id, repo_type=repo_type, private=private,
                                               exist_ok=exist_ok, **kwargs)))
        self.repos.setdefault(key, bool(private))  # an existing repo keeps its visibility, like the Hub
        return f"https://huggingface.co/{repo_id}"

    def repo_info(self, repo_id, *, repo_type=None, **kwargs):
        self.calls.append(("repo_info", dict(repo_id=repo_id, repo_type=repo_type)))
        return SimpleNamespace(private=self.repos[(repo_type or "model", repo_id)])

    def upload_folder(self, *, folder_path, repo_id, repo_type=None, commit_message=None, **kwargs):
        folder = Path(folder_path)  # a temporary folder: keep what was in it
        files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        self.calls.append(("upload_folder", dict(repo_id=repo_id, repo_type=repo_type, files=files,
                                                 commit_message=commit_message)))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0123abc")


@pytest.fixture()
def hub(monkeypatch):
    recorder = type("Recorder", (HubRecorder,), {"repos": {}, "calls": []})
    monkeypatch.setattr(push, "HfApi", recorder)  # where dldfd_hf looks it up
    return recorder


def calls(hub, name):
    return [kwargs for call, kwargs in hub.calls if call == name]


@pytest.fixture(scope="module")
def best_folder(trained_tiny, tmp_path_factory):
    """A model folder as examples/train.py leaves it in OUTPUT_DIR/best: save_pretrained."""
    folder = tmp_path_factory.mktemp("run") / "best"
    DLDFDForImageClassification.from_timm(trained_tiny).save_pretrained(folder)
    return folder


def run_script(*argv, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_push_model_creates_the_repo_and_uploads_the_export(hub, best_folder, trained_tiny):
    result = push_model(best_folder, "org/dldfd-tiny", private=True)
    assert calls(hub, "create_repo") == [dict(repo_id="org/dldfd-tiny", repo_type="model", private=True,
                                              exist_ok=True)]
    (upload,) = calls(hub, "upload_folder")
    assert upload["repo_id"] == "org/dldfd-tiny" and upload["repo_type"] == "model"
    assert set(upload["files"]) == EXPORTED_FILES
    assert result.url == "https://huggingface.co/org/dldfd-tiny/commit/0123abc" and not result.dry_run
    assert sorted(result.files) == sorted(EXPORTED_FILES)
    # The uploaded weights are the trained network in timm's layout (the folder had transformers' prefix).
    weights = load_safetensors(upload["files"]["model.safetensors"])
    reference = trained_tiny.state_dict()
    assert set(weights) == set(reference) and all(torch.equal(weights[k], reference[k]) for k in reference)
    assert "[!WARNING]" not in upload["files"]["README.md"].decode()


def test_push_script_dry_run_writes_the_folder_and_contacts_nothing(hub, best_folder, tmp_path, capsys):
    out = tmp_path / "staged"
    summary = run_script("--model", best_folder, "--repo-id", "org/dldfd-tiny", "--dry-run", "--output-dir", out,
                         capsys=capsys)
    assert hub.calls == []
    assert summary["dry_run"] and summary["url"] is None and summary["repo_type"] == "model"
    assert {p.name for p in out.iterdir()} == EXPORTED_FILES == set(summary["files"])
    card = ModelCard.load(out / "README.md")
    assert 'timm.create_model("hf-hub:org/dldfd-tiny", pretrained=True)' in card.text
    assert card.data.eval_results is None  # no --results: no numbers


def test_push_script_puts_results_on_the_card(hub, best_folder, tmp_path, capsys):
    entry = {"protocol": "combined", "split": "test", "methods": ["Deepfakes", "original"],
             "metrics": {"frame": {"tcr": 0.75, "balanced_accuracy": 0.7, "auc": 0.8, "num_real": 10, "num_fake": 30},
                         "video": {"tcr": 0.8, "balanced_accuracy": 0.75, "auc": 0.85, "num_real": 2, "num_fake": 8}}}
    results = tmp_path / "eval.json"
    results.write_text(json.dumps({"results": [entry]}))
    summary = run_script("--model", best_folder, "--repo-id", "org/dldfd-tiny", "--private", "--results", results,
                         capsys=capsys)
    assert summary["private"] and not summary["dry_run"]
    (create,) = calls(hub, "create_repo")
    assert create["private"] is True and create["repo_type"] == "model"
    card = ModelCard(calls(hub, "upload_folder")[0]["files"]["README.md"].decode())
    values = {(r.task_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert values[("image-classification", "tcr")] == 0.75 and values[("video-classification", "auc")] == 0.85


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A small corpus folder in the builder's on-disk format (DatasetDict + build_report.json)."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("corpus") / "ffpp_c40"
    splits, images, videos = {}, {}, {}
    for split in ("train", "validation", "test"):
        rows = []
        for method, video_id, label in (("original", "000", 0), ("original", "001", 0),
                                        ("Deepfakes", "000_001", 1), ("Deepfakes", "001_000", 1)):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
            rows.append({"image": {"bytes": buffer.getvalue(), "path": None}, "label": label, "method": method,
                         "video_id": video_id, "frame_index": 0, "box": [1.0, 2.0, 30.0, 31.0], "face_score": 0.99,
                         "landmarks": [[10.0, 10.0]] * 5, "compression": "c40"})
        splits[split] = Dataset.from_list(rows, features=corpus_features())
        images[split] = videos[split] = {"original": 2, "Deepfakes": 2}
    DatasetDict(splits).save_to_disk(str(folder))
    report = {"config": BuildConfig(frames_per_video=1, crop_size=32).to_dict(), "methods": ["Deepfakes"],
              "num_shards": 1, "videos": videos, "images": images,
              "class_images": {s: {"real": 2, "fake": 2} for s in splits}, "frames_decoded": 12,
              "frames_without_face": 0, "videos_without_face": [], "failed": []}
    (folder / "build_report.json").write_text(json.dumps(report))
    return folder


def test_corpus_is_pushed_private_as_parquet_with_its_card(hub, corpus_dir, capsys):
    summary = run_script("--corpus", corpus_dir, "--repo-id", "org/ffpp-c40-faces", capsys=capsys)  # no --private
    assert summary["private"] is True and summary["repo_type"] == "dataset"
    assert calls(hub, "create_repo") == [dict(repo_id="org/ffpp-c40-faces", repo_type="dataset", private=True,
                                              exist_ok=True)]
    (upload,) = calls(hub, "upload_folder")
    assert upload["repo_type"] == "dataset"
    assert set(upload["files"]) == {"README.md", "data/train-00000-of-00001.parquet",
                                    "data/validation-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"}
    assert "Terms of use" in upload["files"]["README.md"].decode()


def test_corpus_can_never_be_pushed_public(hub, corpus_dir):
    with pytest.raises(ValueError, match="only be pushed to a private repo"):
        push_corpus(corpus_dir, "org/ffpp-c40-faces", private=False)
    assert hub.calls == []
    hub.repos[("dataset", "org/already-public")] = False  # exists, and is public
    with pytest.raises(PermissionError, match="PUBLIC"):
        push_corpus(corpus_dir, "org/already-public")
    assert calls(hub, "upload_folder") == []


def _demo(folder: Path, readme: str = "# DLDFD demo\n") -> Path:
    folder.mkdir()
    (folder / "app.py").write_text("import gradio as gr\nimport analysis\n")
    (folder / "analysis.py").write_text("import pandas\n")
    (folder / "requirements.txt").write_text("# the detector\ndldfd-hf>=0.0.1\ngradio>=6,<7\ndldfd_hf\n")
    (folder / "README.md").write_text(readme)
    (folder / "sample.mp4").write_bytes(b"not for the Space")
    return folder


def test_space_push_pins_dldfd_hf_and_writes_spaces_metadata(hub, tmp_path):
    demo = _demo(tmp_path / "demo", readme="---\ntitle: My detector\nmodels:\n- org/old\n---\n# DLDFD demo\n")
    push_space(demo, "org/dldfd-demo", model_id="org/dldfd-tiny")
    (create,) = calls(hub, "create_repo")
    assert create == dict(repo_id="org/dldfd-demo", repo_type="space", private=False, exist_ok=True,
                          space_sdk="gradio")
    (upload,) = calls(hub, "upload_folder")
    assert set(upload["files"]) == {"app.py", "analysis.py", "requirements.txt", "README.md"}  # nothing else
    for name in ("app.py", "analysis.py"):
        assert upload["files"][name] == (demo / name).read_bytes()
    requirements = upload["files"]["requirements.txt"].decode().splitlines()
    assert requirements == ["# the detector", f"dldfd-hf=={__version__}", "gradio>=6,<7"]
    card = SpaceCard(upload["files"]["README.md"].decode())
    assert card.data.title == "My detector"  # the demo's own metadata is kept
    assert card.data.sdk == "gradio" and card.data.sdk_version == gradio.__version__
    assert card.data.app_file == "app.py" and card.data.models == ["org/dldfd-tiny", "org/old"]  # the app runs the first


def test_space_folder_missing_files_fails_naming_them(hub, tmp_path):
    demo = _demo(tmp_path / "demo")
    (demo / "requirements.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"requirements\.txt"):
        push_space(demo, "org/dldfd-demo", dry_run_dir=tmp_path / "out")
    assert hub.calls == [] and not (tmp_path / "out").exists()


def test_a_space_without_gradio_installed_names_the_extra(hub, tmp_path, monkeypatch):
    def version(name):
        if name == "gradio":
            raise PackageNotFoundError(name)
        return importlib.metadata.version(name)

    monkeypatch.setattr(push, "version", version)
    with pytest.raises(ModuleNotFoundError, match=r'needs gradio .*pip install "dldfd-hf\[demo\]"'):
        push_space(_demo(tmp_path / "demo"), "org/dldfd-demo", dry_run_dir=tmp_path / "out")
    with pytest.raises(SystemExit) as caught:  # the script says it in one line
        runpy.run_path(str(SCRIPT))["main"](["--space", str(tmp_path / "demo"), "--repo-id", "org/dldfd-demo"])
    assert str(caught.value.code).startswith("error: preparing the demo Space needs gradio")
    assert hub.calls == [] and not (tmp_path / "out").exists()


def test_the_repository_demo_assembles_when_present(tmp_path):
    demo = REPO_ROOT / "demo"
    absent = [name for name in SPACE_FILES if not (demo / name).is_file()]
    if absent:
        pytest.skip(f"demo/ lacks {', '.join(absent)} in this checkout")
    result = push_space(demo, "org/dldfd-demo", model_id="org/dldfd-tiny", dry_run_dir=tmp_path / "space")
    assert set(result.files) == {"app.py", "analysis.py", "requirements.txt", "README.md"}
    card = SpaceCard.load(tmp_path / "space" / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py" and card.data.models[0] == "org/dldfd-tiny"
    requirements = (tmp_path / "space" / "requirements.txt").read_text().splitlines()
    assert [line for line in requirements if "dldfd" in line and not line.startswith("#")] == [
        f"dldfd-hf=={__version__}"]


@pytest.mark.parametrize("argv,message", [
    (["--corpus", "c", "--repo-id", "org/x", "--results", "r.json"], "--results only apply to --model"),
    (["--model", "m", "--repo-id", "org/x", "--dry-run"], "--dry-run and --output-dir go together"),
    (["--space", "d", "--repo-id", "org/x", "--untrained"], "--untrained only apply to --model"),
])
def test_push_script_rejects_inconsistent_arguments(argv, message, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_bad_repo_id_is_rejected_before_anything_happens(hub, best_folder):
    with pytest.raises(ValueError, match="ORG/NAME"):
        push_model(best_folder, "no-namespace")
    assert hub.calls == []
