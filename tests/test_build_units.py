"""The corpus builder's own machinery, without FF++: OUTPUT checks of every data command, the
temporaries of killed runs (and not those of running ones), videos without a single frame."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from PIL import Image

from dldfd_hf.cli import main as dldfd
from dldfd_hf.data import build
from dldfd_hf.data.build import WorkDir
from dldfd_hf.data.faces_corpus import build_faces


@pytest.mark.parametrize(
    "command",
    [
        ["build-ffpp", "{missing}", "{output}"],
        ["build-faces", "{media}", "{output}"],
        ["merge-ffpp", "{output}"],
        ["merge-ffpp", "{output}", "{missing}"],
        ["synth-ffpp", "{missing}", "{output}"],
    ],
    ids=["build-ffpp", "build-faces", "merge-ffpp", "merge-ffpp-shards", "synth-ffpp"],
)
def test_an_output_that_is_a_file_is_refused_first_and_left_alone(command, tmp_path, capsys):
    output = tmp_path / "corpus.txt"
    output.write_text("my notes\n")
    media = tmp_path / "media"
    media.mkdir()
    Image.new("RGB", (32, 32)).save(media / "photo.png")
    argv = [a.format(output=output, media=media, missing=tmp_path / "missing") for a in command]
    assert dldfd([*argv, "--quiet"] if command[0] != "merge-ffpp" else argv) == 2
    err = capsys.readouterr().err
    # which path, and what is wrong with it; not a traceback, nor a complaint about the other arguments
    assert f"{output} exists and is a file, not a folder" in err and "Traceback" not in err, err
    assert "missing" not in err
    assert output.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "media"]


def _temporary(path: Path, pid: int, host: str | None = None, suffix: str = "0123abcd") -> Path:
    return path.with_name(f"{path.name}.tmp-{host or socket.gethostname()}-{pid}-{suffix}")


def test_remove_temporaries_spares_running_processes_and_other_hosts(tmp_path):
    work = WorkDir(tmp_path / "corpus")
    unit = work.unit_path("train", "original", "000")
    unit.parent.mkdir(parents=True)
    # a parallel build on this host, still running, and a killed one
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    # killed, but not reaped by its parent yet (what a SIGKILLed build's workers are for a moment)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{zombie.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        live = _temporary(unit, running.pid)
        dead = _temporary(unit, finished.pid, suffix="89abcdef")
        dead_folder = _temporary(work.path / "final", finished.pid)  # a finalisation's staging folder
        elsewhere = _temporary(unit, finished.pid, host="other-host.example")
        dead_zombie = _temporary(unit.with_name("002.parquet"), zombie.pid)
        # a killed run whose pid this process now has (pids restart with a container)
        own_pid = _temporary(unit.with_name("003.parquet"), os.getpid())
        for path in (live, dead, elsewhere, dead_zombie, own_pid):
            path.write_bytes(b"PAR1 half a unit")
        (dead_folder / "train").mkdir(parents=True)
        keep = [unit.with_name("001.parquet"), unit.with_name("notes.tmp-readme")]  # not temporaries
        for path in keep:
            path.write_bytes(b"x")

        assert work.remove_temporaries() == 4
        assert not dead.exists() and not dead_folder.exists() and not dead_zombie.exists() and not own_pid.exists()
        assert live.exists() and elsewhere.exists() and all(p.exists() for p in keep)
        # finalising (every shard complete) also clears other hosts' leftovers, never a running process's
        assert work.remove_temporaries(this_host_only=False) == 1
        assert live.exists() and not elsewhere.exists() and all(p.exists() for p in keep)
    finally:
        running.kill()
        running.wait()
        zombie.wait()
    assert work.remove_temporaries() == 1 and not live.exists()


def _zero_frame_video(path: Path) -> Path:
    """A well-formed AVI whose video stream has no frame at all."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    return path


def test_a_video_without_frames_is_a_failure_naming_the_file(tmp_path, monkeypatch):
    media = tmp_path / "media"
    media.mkdir()
    video = _zero_frame_video(media / "empty.avi")
    output = tmp_path / "corpus"
    _, summary = build_faces(media, output, frames_per_video=3, progress=False)
    assert summary.finalized and summary.built == 0
    assert [r.error for r in summary.failed] == [f"{video}: contains no video frames"]
    assert json.loads((output / "failed.json").read_text())[0]["error"] == f"{video}: contains no video frames"

    # A source that yields no frame without raising (the builder's own check).
    monkeypatch.setattr(build.VideoProcessor, "_frames", lambda self, path: iter(()))
    _, retried = build_faces(media, output, frames_per_video=3, retry_failed=True, progress=False)
    assert [r.error for r in retried.failed] == [f"{video}: no frames could be decoded"]
    assert json.loads((output / "failed.json").read_text())[0]["error"] == f"{video}: no frames could be decoded"
    assert not [p for p in output.rglob("*") if ".tmp-" in p.name]
