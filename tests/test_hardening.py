"""Issue 15: bad inputs and faults get one clear line and the right exit status; no code from a model
folder runs; finished work is not lost to an unwritable output. One regression test per item (each
fails without its fix); README's "Reliability" table is made from these tests."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import runpy
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dldfd_hf import DLDFDForImageClassification
from dldfd_hf.cli import main as dldfd
from dldfd_hf.data.video_writer import write_video
from dldfd_hf.inference.loading import ModelLoadError, RandomWeightsWarning, load_pipeline_with_notice, load_model, load_video_pipeline
from dldfd_hf.inference.records import format_rows
from dldfd_hf.media.image import ImageReadError, load_image
from dldfd_hf.media.video_reader import VideoReader, iter_sampled_frames, probe
from dldfd_hf.training.config import ConfigError, load_config

from tests.conftest import REPO_ROOT
from tests.example_scripts import load_example, run_example

GRID_CLIP = "videos/LipNet_GRID/evaluation_samples_GRID_sbwe5n.mpg"  # 75 frames, MPEG-PS
QUICKSTART = REPO_ROOT / "examples" / "configs" / "quickstart.yaml"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _detect(capsys, *args):
    """``dldfd detect ARGS --no-progress``: (exit status, stdout, stderr); never a traceback."""
    code = dldfd(["detect", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def _errors(err: str) -> list:
    return [line for line in err.splitlines() if line.startswith("dldfd detect: error:")]


# --- defect 1: a model folder never runs its own code ------------------------------------------------

def _folder_with_code(source: Path, target: Path, model_type: str, marker: Path) -> Path:
    """A copy of ``source`` whose config declares ``model_type`` and remote code (``auto_map``), and
    whose ``configuration_dldfd.py`` / ``modeling_dldfd.py`` create ``marker`` when imported."""
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "configuration_dldfd.DLDFDConfig",
                          "AutoModelForImageClassification": "modeling_dldfd.DLDFDForImageClassification"}
    (target / "config.json").write_text(json.dumps(config))
    payload = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('the folder ran its code')\n"
    (target / "configuration_dldfd.py").write_text(payload + "from dldfd_hf.configuration_dldfd import DLDFDConfig\n")
    (target / "modeling_dldfd.py").write_text(
        payload + "from dldfd_hf.modeling_dldfd import DLDFDForImageClassification\n")
    return target


def test_a_model_folder_never_runs_its_own_code(tiny_model_folder, hub_cache, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "code-ran"
    evil = _folder_with_code(tiny_model_folder, tmp_path / "evil", "evilx", marker)
    prompts = []
    # A user at a terminal who answers "y" to transformers' "run the custom code? [y/N]".
    monkeypatch.setattr("builtins.input", lambda *args: prompts.append(args) or "y")
    refused = r"not a DLDFD model folder: model_type 'evilx'"
    with pytest.raises(ModelLoadError, match=refused):
        load_model(evil)
    with pytest.raises(ModelLoadError, match=refused):
        load_video_pipeline(evil)
    with pytest.raises(ModelLoadError, match=refused):
        load_pipeline_with_notice(str(evil), device="cpu")
    image = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (120, 120, 120)).save(image)
    code, out, err = _detect(capsys, image, "--model", evil)
    assert code == 2 and out == "" and re.search(refused, err) and len(_errors(err)) == 1
    hub_cache.add_folder("dldfd-test/folder-with-code", evil)  # the same as a Hub repo
    with pytest.raises(ModelLoadError, match=r"not a DLDFD model repo: model_type 'evilx'"):
        load_model("dldfd-test/folder-with-code")
    assert prompts == [] and not marker.exists()
    # Our own exported layout (model_type dldfd + remote-code shims) loads; its shims do not run either.
    ours = _folder_with_code(tiny_model_folder, tmp_path / "ours", "dldfd", marker)
    model, _ = load_model(ours)
    assert isinstance(model, DLDFDForImageClassification) and prompts == [] and not marker.exists()


def test_a_model_folder_never_runs_its_own_code_with_yes_on_stdin(tiny_model_folder, tmp_path):
    """The issue's repro as it was found: `yes | dldfd detect IMG --model FOLDER`."""
    marker = tmp_path / "code-ran"
    evil = _folder_with_code(tiny_model_folder, tmp_path / "evil", "evilx", marker)
    image = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (120, 120, 120)).save(image)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from dldfd_hf.cli import main; sys.exit(main(sys.argv[1:]))",
         "detect", str(image), "--model", str(evil), "--no-progress"],
        input="y\n" * 100, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=1800,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "not a DLDFD model folder: model_type 'evilx'" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()


# --- defect 2: an unwritable --output is refused before the work, and never loses the results --------

def _chattr(flag: str, path: Path) -> bool:
    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.parametrize("target", ["directory", "proc", "immutable"])
def test_unwritable_output_is_refused_before_any_work(tmp_path, capsys, target):
    missing = tmp_path / "missing.mp4"  # scoring it would take no time: the point is the order
    if target == "directory":
        output = tmp_path / "results"
        output.mkdir()
    elif target == "proc":
        output = Path("/proc/dldfd-results.csv")
    else:
        output = tmp_path / "results.csv"
        output.write_text("previous results\n")
        if not _chattr("+i", output):
            pytest.skip("chattr +i is not available here (needs root on a filesystem with attributes)")
    try:
        code, out, err = _detect(capsys, missing, "--model", "dldfd_tiny", "--format", "csv", "--output", output)
    finally:
        if target == "immutable":
            _chattr("-i", output)
    assert code == 2 and out == ""
    (line,) = _errors(err)
    assert line.startswith(f"dldfd detect: error: cannot write --output {output}: ")
    assert "model:" not in err  # refused before the model was even loaded
    left = {"directory": ["results"], "proc": [], "immutable": ["results.csv"]}[target]
    assert sorted(p.name for p in tmp_path.iterdir()) == left  # nothing created, no probe left


def test_output_that_fails_at_the_end_keeps_the_results_on_stdout(tmp_path, capsys, monkeypatch):
    """The output is writable when checked, then becomes immutable while the files are scored."""
    from dldfd_hf.commands import detect

    output = tmp_path / "results.csv"
    output.write_text("previous results\n")
    if not _chattr("+i", output):
        pytest.skip("chattr +i is not available here (needs root on a filesystem with attributes)")
    _chattr("-i", output)
    score = detect.detect_file

    def score_then_lock(*args, **kwargs):
        row = score(*args, **kwargs)
        _chattr("+i", output)
        return row

    monkeypatch.setattr(detect, "detect_file", score_then_lock)
    try:
        code, out, err = _detect(capsys, tmp_path / "missing.mp4", "--model", "dldfd_tiny", "--format", "csv",
                                 "--output", output)
    finally:
        _chattr("-i", output)
    assert code == 3
    (row,) = list(csv.DictReader(io.StringIO(out)))  # the results, on stdout
    assert row["path"] == str(tmp_path / "missing.mp4") and row["error"] == "no such file"
    assert f"could not write the results to {output} (Operation not permitted); they were printed on stdout" in err
    assert output.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temporary left


# --- defect 4: file names that are not UTF-8 ---------------------------------------------------------

def test_non_utf8_file_names_are_written_losslessly(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    name = os.fsdecode(b"face\xe9.jpg")  # Latin-1 e-acute: not UTF-8
    (folder / name).write_text("not an image\n")
    out_csv = tmp_path / "out.csv"
    code, _, _ = _detect(capsys, folder, "--model", "dldfd_tiny", "--format", "csv", "--output", out_csv)
    assert code == 1  # the file is no image: a row with its error, not a crash
    (row,) = list(csv.DictReader(io.StringIO(out_csv.read_text(encoding="utf-8"))))
    assert row["path"] == str(folder) + os.sep + "face\\xe9.jpg" and "not an image" in row["error"]
    code, out, _ = _detect(capsys, folder, "--model", "dldfd_tiny", "--format", "json")
    (record,) = json.loads(out)
    assert 'face\\udce9.jpg"' in out  # JSON's own escape of the undecodable byte
    assert os.fsencode(record["path"]) == os.fsencode(str(folder / name))  # the bytes come back
    code, out, _ = _detect(capsys, folder, "--model", "dldfd_tiny")
    assert out.splitlines()[1].startswith(str(folder) + os.sep + "face\\xe9.jpg ")
    for fmt in ("table", "csv", "json"):
        format_rows([record], fmt).encode("utf-8")  # always encodable


# --- defect 3 and a rough edge: corrupt checkpoints ---------------------------------------------------

def test_a_real_checkpoint_passes_validation(tiny_checkpoint):
    from dldfd_hf.training.checkpoint import validate_checkpoint

    assert validate_checkpoint(tiny_checkpoint).global_step == 1


@pytest.mark.parametrize("name, content, problem", [
    ("model.safetensors", np.random.default_rng(0).bytes(4096), "corrupt or truncated"),
    ("trainer_state.json", b"{}", "missing key(s) epoch, batches_in_epoch, global_step, history, signature"),
    ("trainer_state.json", b"{\"epoch\": 1,", "not valid JSON"),
    ("optimizer.bin", b"garbage" * 64, "corrupt or not a plain tensor state"),
], ids=["random-weights", "empty-state", "invalid-json", "garbage-optimizer"])
def test_corrupt_checkpoint_is_refused_before_anything_is_created(tiny_checkpoint, tmp_path, name, content, problem):
    damaged = tmp_path / "checkpoints" / tiny_checkpoint.name
    shutil.copytree(tiny_checkpoint, damaged)
    (damaged / name).write_bytes(content)
    output_dir = tmp_path / "run"
    argv = ["--config", str(QUICKSTART), "--data", str(tmp_path / "corpus"), "--output_dir", str(output_dir),
            "--num_workers", "0", "--resume_from_checkpoint", str(damaged)]
    with pytest.raises(SystemExit) as caught:
        run_example("train", argv)
    message = str(caught.value.code)
    assert message.startswith(f"error: {damaged / name}: {problem}"), message
    assert "\n" not in message and not output_dir.exists()


# --- defect 5: non-finite numbers in the training config ----------------------------------------------

@pytest.mark.parametrize("override", [
    ["--learning_rate", "nan"], ["--learning_rate", "inf"], ["--weight_decay=-inf"], ["--max_grad_norm", "nan"],
    ["--pos_weight", "nan"], ["--hflip", "nan"], ["--pseudo_fake_probability", "nan"], ["--betas", "0.9", "nan"],
    ["--model_kwargs", "{drop_rate: .inf}"],
])
def test_config_rejects_non_finite_numbers(override):
    key = override[0][2:].split("=")[0]
    with pytest.raises(ConfigError, match=f"config key '{key}': must be a finite number, got -?(nan|inf)"):
        load_config(["--config", str(QUICKSTART), *override])


def test_train_script_rejects_nan_before_loading_anything(tmp_path, capsys):
    config = tmp_path / "nan.yaml"
    config.write_text("model: dldfd_tiny\nlearning_rate: .nan\n")
    with pytest.raises(ConfigError, match="'learning_rate': must be a finite number, got nan"):
        load_config(["--config", str(config)])
    with pytest.raises(SystemExit) as caught:
        load_example("train").parse_args(["--config", str(QUICKSTART), "--learning_rate", "nan",
                                          "--data", str(tmp_path), "--output_dir", str(tmp_path / "run")])
    assert caught.value.code == 2
    assert "config key 'learning_rate': must be a finite number, got nan" in capsys.readouterr().err


# --- rough edges: detect -------------------------------------------------------------------------------

def test_truncated_mpg_gets_a_warning_in_its_row(shared_data, tmp_path, capsys):
    clip = shared_data / GRID_CLIP
    cut = tmp_path / "cut.mpg"
    data = clip.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.3)])
    with VideoReader(clip) as reader:
        assert reader.warning is None and reader.frame_count == 75
    with VideoReader(cut) as reader:
        assert reader.frame_count == 22 and reader.warning.startswith("possibly truncated: the file ends inside")
    assert "22 frames present" in probe(cut).warning
    frames = iter_sampled_frames(cut, 4)  # the streamed sample carries the same warning
    assert frames.warning == probe(cut).warning and len(list(frames)) == 4
    code, out, _ = _detect(capsys, cut, "--model", "dldfd_tiny", "--frames", 4, "--format", "json")
    (row,) = json.loads(out)
    assert "possibly truncated" in row["warning"]
    assert row["frames_used"] + row["frames_without_face"] >= 1  # the frames present still got a verdict
    (csv_row,) = list(csv.DictReader(io.StringIO(format_rows([row], "csv"))))
    assert csv_row["warning"] == row["warning"]
    assert f"warning: {row['warning']}" in format_rows([row], "table") or row["error"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` (PIL reads the size from the header alone)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_huge_image_and_symlink_loop_are_named(tmp_path, capsys):
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(14000, 14000))
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop.name)  # a link to itself
    limit = 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError, match=re.escape(f"image too large (14000 x 14000, limit {limit} pixels)")):
        load_image(huge)
    with pytest.raises(ImageReadError, match="symlink loop"):
        load_image(loop)
    code, out, _ = _detect(capsys, huge, loop, "--model", "dldfd_tiny", "--format", "json")
    errors = {Path(row["path"]).name: row["error"] for row in json.loads(out)}
    assert code == 1
    assert errors == {"huge.png": f"image too large (14000 x 14000, limit {limit} pixels)", "loop.jpg": "symlink loop"}


class RecordingCropper:
    """Stands in for MTCNN: finds no face, records how many frames each call was given."""

    batch_size = 4

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, images, detect_max_size=None):
        self.calls.append(len(images))
        return [[] for _ in images]


def test_frames_go_through_detection_in_bounded_batches(tmp_path, monkeypatch):
    video = tmp_path / "long.mp4"
    write_video(video, [np.full((32, 32, 3), 4 * i, np.uint8) for i in range(40)], fps=25)
    with pytest.warns(RandomWeightsWarning):
        detector = load_video_pipeline("dldfd_tiny", device="cpu")
    cropper = RecordingCropper()
    monkeypatch.setattr(detector, "face_cropper", lambda *args, **kwargs: cropper)
    result = detector(str(video), num_frames=40)
    # Never more than two MTCNN batches of decoded frames at once, whatever --frames asks for.
    assert cropper.calls == [8] * 5 and detector.frame_batch(cropper) == 8
    assert result["frames_sampled"] == 40 and result["frames_without_face"] == 40 and result["label"] is None


# --- rough edge: corpus builds --------------------------------------------------------------------------

def test_build_faces_fails_with_status_1_and_names_each_failure_once(shared_data, tmp_path, capsys):
    media = tmp_path / "media"
    media.mkdir()
    photo = sorted((shared_data / "faces" / "stargan-v2_celebahq").glob("*.jpg"))[0]
    (media / photo.name).symlink_to(photo)
    (media / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    output = tmp_path / "corpus"
    argv = ["build-faces", str(media), str(output), "--crop-size", "64", "--quiet"]
    assert dldfd(argv) == 1
    out, err = capsys.readouterr()
    assert len([line for line in err.splitlines() if "broken.mp4" in line]) == 1
    assert "1 file(s) could not be read" in out
    assert [f["video_id"] for f in json.loads((output / "failed.json").read_text())] == ["broken.mp4"]
    assert dldfd([*argv, "--allow-failures"]) == 0  # resumed: nothing rebuilt, the failure still listed
    assert "broken.mp4" not in capsys.readouterr().err


def test_build_ffpp_fails_with_status_1_and_names_each_failure_once(tmp_path, monkeypatch, capsys):
    """The CLI's side (the build itself is shared with build-faces, tested above): a shard with a failure."""
    from dldfd_hf.commands import build_ffpp
    from dldfd_hf.data import build

    def one_failure(root, output, config, **kwargs):
        failed = build.VideoResult("train", "Deepfakes", "000_003", ok=False, error="000_003.mp4: truncated")
        return build.BuildSummary(output=Path(output), total=2, skipped=0, built=1, failed=[failed])

    monkeypatch.setattr(build_ffpp, "build_corpus", one_failure)
    argv = ["build-ffpp", str(tmp_path / "ffpp"), str(tmp_path / "corpus"), "--num-shards", "2", "--quiet"]
    assert dldfd(argv) == 1
    assert len([line for line in capsys.readouterr().err.splitlines() if "000_003" in line]) == 1
    assert dldfd([*argv, "--allow-failures"]) == 0


# --- rough edge: pushing while offline -----------------------------------------------------------------

def test_push_while_offline_is_one_line(tmp_path):
    from dldfd_hf.hub.push import PushError, push_space

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "app.py").write_text("import gradio as gr\n")
    (demo / "analysis.py").write_text("")
    (demo / "requirements.txt").write_text("dldfd-hf\n")
    (demo / "README.md").write_text("---\ntitle: demo\n---\n# demo\n")
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: the Hub cannot be reached
    with pytest.raises(PushError, match="cannot push to the space repo org/dldfd-demo: .*offline mode"):
        push_space(demo, "org/dldfd-demo")
    main = runpy.run_path(str(REPO_ROOT / "examples" / "push_to_hub.py"))["main"]
    with pytest.raises(SystemExit) as caught:
        main(["--space", str(demo), "--repo-id", "org/dldfd-demo"])
    message = str(caught.value.code)
    assert message.startswith("error: cannot push to the space repo org/dldfd-demo: ") and "\n" not in message
    assert "HF_HUB_OFFLINE" in message
