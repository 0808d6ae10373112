"""Faults a user meets outside the happy path (issue 21): a killed build's workers, bad counts,
a killed synth-ffpp's staging folder, a full disk, a garbage RNG state, path-like repo ids, remote
code in a model folder. Each test failed before its fix."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_from_disk

from dldfd_hf._io import atomic_folder
from dldfd_hf.cli import main as dldfd
from dldfd_hf.data.faces_corpus import build_faces
from tests.conftest import REPO_ROOT

FRAMES = 4
CROP = 64


def _children(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_9_of_a_build_takes_its_workers_along_and_a_rerun_is_whole(shared_data, tmp_path):
    import psutil

    media = tmp_path / "media"
    media.mkdir()
    clips = sorted((shared_data / "videos" / "LipNet_GRID").glob("*.mpg"))[:3]
    for clip in clips:
        (media / clip.name).symlink_to(clip)
    output = tmp_path / "corpus"
    command = [sys.executable, "-m", "dldfd_hf.cli", "build-faces", str(media), str(output), "--num-proc", "2",
               "--frames-per-video", str(FRAMES), "--crop-size", str(CROP), "--batch-size", "2", "--quiet"]
    build = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Killed once a worker is writing a unit: its temporary (or a finished unit) is on disk.
        _wait_for(lambda: build.poll() is not None or any((output / "_build").glob("videos/**/*.parquet*")),
                  timeout=300, what="a worker to start writing")
        assert build.poll() is None, build.stderr.read().decode()
        workers = _children(build.pid)
        assert len(workers) >= 2
    finally:
        build.kill()  # SIGKILL: nothing of the parent runs
        build.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    for straggler in alive:  # (only our own children: the test's cleanup before it fails)
        straggler.kill()
    assert not alive, f"workers outlived their killed parent: {[p.pid for p in alive]}"

    _, summary = build_faces(media, output, frames_per_video=FRAMES, crop_size=CROP, batch_size=2, progress=False)
    assert summary.finalized and not summary.failed
    rows = [(row["video_id"], row["frame_index"]) for ds in load_from_disk(str(output)).values() for row in ds]
    assert len(rows) == len(set(rows)) == FRAMES * len(clips)  # a GRID speaker's face is in every frame
    assert {video for video, _ in rows} == {clip.name for clip in clips}
    assert not [p for p in output.rglob("*") if ".tmp-" in p.name]


@pytest.mark.parametrize("option", ["--threads", "--num-proc", "--batch-size"])
@pytest.mark.parametrize("command", ["build-faces", "build-ffpp"])
def test_a_zero_count_is_one_line_and_creates_nothing(tmp_path, capsys, command, option):
    inputs = tmp_path / "in"
    inputs.mkdir()
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        dldfd([command, str(inputs), str(output), option, "0", "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a positive integer, got '0'" in err and "Traceback" not in err
    assert not output.exists()


def test_the_library_refuses_zero_threads_before_creating_the_output(tmp_path):
    from dldfd_hf.data.build import BuildConfig, build_units

    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        build_units([], tmp_path, tmp_path / "out", BuildConfig(), methods=(), threads=0, progress=False)
    assert not (tmp_path / "out").exists()


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid names a process that no longer runs
    return finished.pid


def _leftover(target: Path, pid: int) -> Path:
    """What ``kill -9`` of process ``pid`` leaves while it fills ``atomic_folder(target)``."""
    staging = target.with_name(f"{target.name}.tmp-{socket.gethostname()}-{pid}-0123abcd")
    (staging / "original_sequences").mkdir(parents=True)
    (staging / "original_sequences" / "000.mp4").write_bytes(b"half a video")
    return staging


def test_atomic_folder_removes_the_staging_folders_of_dead_processes_only(tmp_path):
    target = tmp_path / "tree"
    dead = _leftover(target, _dead_pid())
    ours = _leftover(target, os.getpid())  # a restarted container reuses pids: not a live writer
    with subprocess.Popen(["sleep", "60"]) as live_writer:
        try:
            kept = _leftover(target, live_writer.pid)
            other = _leftover(tmp_path / "tree2", _dead_pid())  # another folder's: not ours to judge here
            with atomic_folder(target) as staging:
                (staging / "done").write_text("ok")
            assert not dead.exists() and not ours.exists()
            assert kept.is_dir() and other.is_dir() and (target / "done").is_file()
        finally:
            live_writer.kill()


@pytest.mark.slow
def test_synth_ffpp_rerun_clears_a_killed_runs_staging_folder(shared_data, tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    for clip in sorted((shared_data / "videos" / "LipNet_GRID").glob("*.mpg"))[:2]:
        (clips / clip.name).symlink_to(clip)
    tree = tmp_path / "tree"
    killed = _leftover(tree, _dead_pid())
    assert dldfd(["synth-ffpp", str(clips), str(tree), "--max-frames", "6", "--methods", "Deepfakes", "--quiet"]) == 0
    assert not killed.exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    assert (tree / "splits").is_dir()


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _temporaries(folder: Path) -> list:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


def test_disk_full_during_build_faces_is_one_line_and_leaves_nothing_half_written(shared_data, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    media = tmp_path / "media"
    media.mkdir()
    for photo in sorted((shared_data / "faces" / "stargan-v2_celebahq").glob("*.jpg"))[:2]:
        (media / photo.name).symlink_to(photo)
    output = tmp_path / "corpus"
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _disk_full)
    status = dldfd(["build-faces", str(media), str(output), "--crop-size", str(CROP), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: disk full while writing ") and "No space left on device" in line
    assert ".parquet" in line and "run the same command again to resume" in line
    assert not _temporaries(tmp_path) and not (output / "dataset_dict.json").exists()
    assert not list(output.rglob("*.parquet"))

    monkeypatch.undo()  # space again: the same command resumes and completes
    assert dldfd(["build-faces", str(media), str(output), "--crop-size", str(CROP), "--quiet"]) == 0
    assert sum(ds.num_rows for ds in load_from_disk(str(output)).values()) == 2


def test_disk_full_during_a_hub_export_is_one_line_and_leaves_nothing(tiny_model_folder, tmp_path, monkeypatch):
    from huggingface_hub import ModelCard

    from tests.example_scripts import load_example

    monkeypatch.setattr(ModelCard, "save", _disk_full)  # the last file of the export: the rest is written
    output = tmp_path / "export"
    with pytest.raises(SystemExit) as exit_info:
        load_example("push_to_hub").main(["--model", str(tiny_model_folder), "--repo-id", "org/tiny",
                                          "--dry-run", "--output-dir", str(output)])
    message = str(exit_info.value.code)
    assert message == f"error: cannot write {output}: No space left on device; nothing half-written was left"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--repo-id", "--model-id"])
@pytest.mark.parametrize("value", ["../../x", "/abs/model", "runs/best/", "org/../x"])
def test_a_path_as_repo_id_is_one_line_and_exit_2(tmp_path, capsys, option, value):
    from tests.example_scripts import load_example

    argv = ["--space", str(REPO_ROOT / "demo"), "--dry-run", "--output-dir", str(tmp_path / "o")]
    argv += ["--repo-id", value] if option == "--repo-id" else ["--repo-id", "org/space", "--model-id", value]
    with pytest.raises(SystemExit) as exit_info:
        load_example("push_to_hub").main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert f"argument {option}: expected a Hub repo id ORG/NAME (not a local path), got {value!r}" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("model_id", ["../runs/best", "/abs/model", "./model", "org/a/b"])
def test_the_space_card_refuses_a_local_path_as_its_model(tmp_path, model_id):
    from dldfd_hf.hub.push import prepare_space_folder

    with pytest.raises(ValueError, match=r"the Space's model id \(--model-id\) must look like ORG/NAME \(a Hub repo id, not a local path\)"):
        prepare_space_folder(REPO_ROOT / "demo", tmp_path / "space", model_id=model_id)
    assert not (tmp_path / "space").exists()
    demo = tmp_path / "demo"
    demo.mkdir()
    for name in ("app.py", "analysis.py", "requirements.txt"):
        (demo / name).write_text((REPO_ROOT / "demo" / name).read_text())
    (demo / "README.md").write_text(f"---\nmodels:\n- {model_id}\n---\n# demo\n")  # a card naming a path itself
    with pytest.raises(ValueError, match=r"a models: entry of .*README\.md must look like ORG/NAME"):
        prepare_space_folder(demo, tmp_path / "space")
    assert not (tmp_path / "space").exists()


class _RunsCode:
    """Unpickled with pickle.load, this would create a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _rng_file_contents(kind: str, marker: Path) -> bytes:
    import io
    import pickle

    import torch

    if kind == "garbage":
        return b"\x80\x04garbage" * 32
    buffer = io.BytesIO()
    if kind == "code":
        pickle.dump({"random_state": _RunsCode(marker)}, buffer)
    elif kind == "wrong-keys":
        torch.save({"step": 0}, buffer)
    elif kind == "wrong-state":
        torch.save({"random_state": (3, (1, 2), None), "numpy_random_seed": ("MT19937",), "torch_manual_seed": torch.zeros(3)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["garbage", "code", "wrong-keys", "wrong-state", "missing"])
def test_a_bad_rng_state_file_is_refused_naming_it(tiny_checkpoint, tmp_path, kind):
    import shutil

    from dldfd_hf.training.checkpoint import CheckpointError, validate_checkpoint

    assert validate_checkpoint(tiny_checkpoint).global_step == 1  # the real one passes
    damaged = tmp_path / tiny_checkpoint.name
    shutil.copytree(tiny_checkpoint, damaged)
    rng_file = damaged / "random_states_0.pkl"
    marker = tmp_path / "unpickled-code-ran"
    if kind == "missing":
        rng_file.unlink()
    else:
        rng_file.write_bytes(_rng_file_contents(kind, marker))
    expected = "missing (saved with every checkpoint)" if kind == "missing" else "corrupt or not an RNG state ("
    with pytest.raises(CheckpointError) as caught:
        validate_checkpoint(damaged)
    assert str(caught.value).startswith(f"{rng_file}: {expected}") and "\n" not in str(caught.value)
    assert not marker.exists()


def _folder_with_processor_code(source: Path, target: Path, marker: Path, where: str) -> Path:
    """A copy of our own ``source`` folder (model_type dldfd) whose image processor is auto-mapped to
    ``evil_processing.py``, which creates ``marker`` when imported. ``where``: the file transformers
    reads it from: ``preprocessor_config.json``, or ``config.json`` (what it reads for a folder with
    timm keys, as ours have)."""
    import shutil

    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    processor = json.loads((target / "preprocessor_config.json").read_text())
    auto_map = {"AutoImageProcessor": "evil_processing.EvilImageProcessor"}
    processor.pop("image_processor_type", None)
    processor["auto_map"] = auto_map
    config.pop("image_processor_type", None)
    if where == "config.json":
        config["auto_map"] = {**config.get("auto_map", {}), **auto_map}
    else:
        config.pop("pretrained_cfg", None)  # not a timm folder: transformers reads preprocessor_config.json
    (target / "config.json").write_text(json.dumps(config))
    (target / "preprocessor_config.json").write_text(json.dumps(processor))
    (target / "evil_processing.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('the folder ran its code')\n"
        "from transformers import ViTImageProcessor\n\n\nclass EvilImageProcessor(ViTImageProcessor):\n    pass\n"
    )
    return target


@pytest.mark.parametrize("where", ["preprocessor_config.json", "config.json"])
def test_pipeline_never_runs_an_auto_mapped_image_processor(tiny_model_folder, tmp_path, monkeypatch, where):
    from transformers import AutoImageProcessor, ViTImageProcessor, pipeline

    from dldfd_hf.inference.loading import load_video_pipeline
    from dldfd_hf.inference.pipelines import TASK

    marker = tmp_path / "code-ran"
    folder = _folder_with_processor_code(tiny_model_folder, tmp_path / "folder", marker, where)
    prompts = []
    # A user at a terminal who answers "y" to transformers' "run the custom code? [y/N]".
    monkeypatch.setattr("builtins.input", lambda *args: prompts.append(args) or "y")
    detector = pipeline(TASK, model=str(folder))  # trust_remote_code left unset, as the issue ran it
    assert type(detector.image_processor) is ViTImageProcessor
    assert type(AutoImageProcessor.from_pretrained(folder)) is ViTImageProcessor
    assert type(load_video_pipeline(folder).image_processor) is ViTImageProcessor
    assert not marker.exists()
    assert prompts == []  # the stock processor is found locally: transformers does not even ask
    # Our own folders auto-map no processor: loading them never needs the folder's Python.
    assert "auto_map" not in json.loads((tiny_model_folder / "preprocessor_config.json").read_text())
    auto_map = json.loads((tiny_model_folder / "config.json").read_text())["auto_map"]
    assert not {"AutoImageProcessor", "AutoVideoProcessor", "AutoProcessor"} & set(auto_map)
