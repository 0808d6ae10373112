"""Issue 21: no user's file lost, phone videos upright, clean interrupts, every odd input gets its
row. One regression test per item (each fails without its fix); rows of README's "Reliability"."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import av
import numpy as np
import pytest
from PIL import Image

from dldfd_hf.cli import main as dldfd
from dldfd_hf.commands import detect
from dldfd_hf.data.video_writer import write_video
from dldfd_hf.inference.records import format_rows, result_row
from dldfd_hf.media.faces import FaceCropper
from dldfd_hf.media.video import frame_rotation
from dldfd_hf.media.video_reader import probe, sample_frames
from dldfd_hf.media.video_stream import iter_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FACE = "faces/debruine_webmorphR.stim/inst/neutral_front/001_03.jpg"  # CC BY 4.0, 800x800, frontal


class StubDetector:
    """Stands in for the pipeline: a fixed 'real' verdict for every file, its calls recorded."""

    def __init__(self) -> None:
        self.calls: List[str] = []

    def __call__(self, path: str, **kwargs: Any) -> Dict[str, Any]:
        self.calls.append(path)
        return {"kind": "image", "label": "real", "score": 1.0, "fake_score": 0.0, "votes": {"fake": 0, "real": 1},
                "mean_prob": 0.1, "frames_used": 1, "frames_without_face": 0, "frames": []}


@pytest.fixture()
def stub_model(monkeypatch) -> StubDetector:
    """``dldfd detect`` with :class:`StubDetector` as its model (no network, no MTCNN: fast)."""
    stub = StubDetector()
    monkeypatch.setattr(detect, "load_pipeline_with_notice", lambda *args, **kwargs: (stub, None))
    return stub


def _detect(capsys, *args):
    """``dldfd detect ARGS --no-progress``: (exit status, stdout, stderr); never a traceback."""
    try:
        code = dldfd(["detect", *map(str, args), "--no-progress"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped dldfd detect")
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def _photo(path: Path, value: int = 128) -> Path:
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(path)
    return path


# --- an --output that is one of the inputs ---------------------------------------------------------

def _same_name(tmp_path, a, b):
    return [a, b], a


def _link_to_input(tmp_path, a, b):
    link = tmp_path / "results.csv"
    link.symlink_to(a)
    return [a, b], link


def _file_in_scanned_folder(tmp_path, a, b):
    return [tmp_path], tmp_path / "." / "b.jpg"


def _hard_link(tmp_path, a, b):
    other = tmp_path / "elsewhere"
    other.mkdir()
    os.link(b, other / "results.csv")
    return [a, b], other / "results.csv"


@pytest.mark.parametrize("case", [_same_name, _link_to_input, _file_in_scanned_folder, _hard_link])
def test_output_that_is_an_input_is_refused_before_any_work(tmp_path, capsys, monkeypatch, case):
    a, b = _photo(tmp_path / "a.jpg", 10), _photo(tmp_path / "b.jpg", 20)
    before = {p: p.read_bytes() for p in (a, b)}
    inputs, output = case(tmp_path, a, b)
    monkeypatch.setattr(detect, "load_pipeline_with_notice", lambda *a, **k: pytest.fail("the model was loaded"))
    code, out, err = _detect(capsys, *inputs, "--output", output)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"dldfd detect: error: --output {output} is the input file ")
    assert line.endswith("refusing to overwrite it (name another file)")
    assert {p: p.read_bytes() for p in (a, b)} == before


# --- phone videos: a display matrix turns the frames ----------------------------------------------

@pytest.fixture(scope="module")
def portrait_face(shared_data) -> np.ndarray:
    """A real frontal face as a 360x480 portrait frame."""
    image = Image.open(shared_data / FACE).convert("RGB").resize((480, 480))
    return np.asarray(image)[:, 60:420].copy()


def test_rotation_metadata_turns_frames_upright(portrait_face, tmp_path, capsys):
    """Stored landscape (turned 90 degrees clockwise) with a display matrix that turns it back."""
    clip = tmp_path / "phone.mp4"
    stored = np.ascontiguousarray(np.rot90(portrait_face, k=-1))  # 360 x 480 -> 480 wide, 360 high
    write_video(clip, [stored] * 8, fps=25, crf=18, rotation=90)
    with av.open(str(clip)) as container:  # the file really is stored landscape
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (480, 360)
    for frames in (sample_frames(clip, 4), list(iter_frames(clip, step=2))):
        for frame in frames:
            assert frame.image.shape == portrait_face.shape  # upright, as players show it
            assert np.abs(frame.image.astype(int) - portrait_face).mean() < 8
    info = probe(clip)
    assert (info.width, info.height, info.rotation) == (360, 480, 90)
    faces = FaceCropper(crop_size=None).detect([frame.image for frame in sample_frames(clip, 4)])
    assert all(faces), "a face in every upright frame"
    code, out, _ = _detect(capsys, clip, "--model", "dldfd_tiny", "--frames", 4, "--format", "json")
    (row,) = json.loads(out)
    assert code == 0 and row["error"] is None and row["frames_without_face"] == 0 and row["frames_used"] == 4


@pytest.mark.parametrize("matrix, tag, turn", [(0, None, 0), (90, None, 90), (-90, None, 270), (180, "90", 180),
                                               (0, "90", 270), (0, "270", 90), (0, "x", 0)])
def test_frame_rotation_from_the_display_matrix_or_the_rotate_tag(matrix, tag, turn):
    """The matrix wins; an old ``rotate`` tag (clockwise degrees) is used when there is none."""
    stream = SimpleNamespace(metadata={"rotate": tag} if tag else {})
    assert frame_rotation(SimpleNamespace(rotation=matrix), stream) == turn


# --- timestamps that are all 0 ----------------------------------------------------------------------

def _write_zero_timestamps(path: Path, images: List[np.ndarray], muxer: str, codec: str) -> None:
    """Every packet with pts = dts = 0, as some recorders write (FFmpeg's muxer accepts it)."""
    with av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = images[0].shape[1], images[0].shape[0]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for image in [*images, None]:
            frame = None if image is None else av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                packet.pts = packet.dts = 0
                container.mux(packet)


@pytest.mark.parametrize("muxer, codec, name", [("mp4", "libx264", "zero.mp4"), ("matroska", "mjpeg", "zero.mkv")])
def test_video_with_all_timestamps_zero_is_read_by_frame_index(tmp_path, capsys, stub_model, muxer, codec, name):
    levels = [10 * i + 20 for i in range(10)]  # each frame its own grey: frames can be told apart
    clip = tmp_path / name
    _write_zero_timestamps(clip, [np.full((48, 64, 3), level, np.uint8) for level in levels], muxer, codec)
    with av.open(str(clip)) as container:
        assert {packet.pts for packet in container.demux(container.streams.video[0]) if packet.size} == {0}
    assert probe(clip).frame_count == 10
    frames = sample_frames(clip, 4)
    assert [frame.index for frame in frames] == [1, 3, 6, 8]
    means = [float(frame.image.mean()) for frame in frames]
    assert means == pytest.approx([levels[i] for i in (1, 3, 6, 8)], abs=3)  # the very frames at those positions
    assert len(list(iter_frames(clip))) == 10
    code, out, _ = _detect(capsys, clip, "--format", "json")
    assert code == 0 and json.loads(out)[0]["error"] is None


# --- Ctrl-C during detect -------------------------------------------------------------------------

@pytest.mark.parametrize("to_file", [False, True])
def test_interrupt_keeps_the_rows_already_scored(tmp_path, capsys, monkeypatch, stub_model, to_file):
    photos = [_photo(tmp_path / f"{i}.jpg") for i in range(5)]
    score = detect.detect_file

    def interrupted_at_the_third(detector, path, **kwargs):
        if path.name == "2.jpg":
            raise KeyboardInterrupt
        return score(detector, path, **kwargs)

    monkeypatch.setattr(detect, "detect_file", interrupted_at_the_third)
    output = tmp_path / "results.csv"
    code, out, err = _detect(capsys, *photos, "--format", "csv", *(["--output", output] if to_file else []))
    assert code == 130
    rows = list(csv.DictReader(io.StringIO(output.read_text() if to_file else out)))
    assert [Path(row["path"]).name for row in rows] == ["0.jpg", "1.jpg"]
    assert "dldfd detect: interrupted: 2 of 5 file(s) scored" in err


def test_interrupt_before_any_row_leaves_the_output_alone(tmp_path, capsys, monkeypatch, stub_model):
    output = tmp_path / "results.csv"
    output.write_text("previous results\n")
    monkeypatch.setattr(detect, "detect_file", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    code, out, err = _detect(capsys, _photo(tmp_path / "a.jpg"), "--output", output)
    assert code == 130 and out == "" and "nothing written" in err
    assert output.read_text() == "previous results\n"


# --- symlink loops, dangling links and FIFOs inside a folder ------------------------------------------

def test_odd_entries_inside_a_folder_get_a_row(tmp_path, capsys, stub_model):
    folder = tmp_path / "media"
    folder.mkdir()
    _photo(folder / "good.jpg")
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "dangling.mp4").symlink_to("gone.mp4")
    os.mkfifo(folder / "pipe.mp4")  # opened, it would block: only stat may look at it
    (folder / "notes.txt").symlink_to("nowhere")  # not named like media: not scanned, as for files
    code, out, _ = _detect(capsys, folder, "--format", "json")
    errors = {Path(row["path"]).name: row["error"] for row in json.loads(out)}
    assert code == 1
    assert errors == {
        "dangling.mp4": "dangling symlink (to gone.mp4, which does not exist)",
        "good.jpg": None,
        "loop.jpg": "symlink loop",
        "pipe.mp4": "not a regular file (a named pipe (FIFO))",
    }
    assert [Path(p).name for p in stub_model.calls] == ["good.jpg"]


# --- file names that would break a table row or run in a spreadsheet -----------------------------------

ODD_NAMES = ["two\nlines.jpg", "=HYPERLINK(1).jpg", "+1.jpg", "-2.jpg", "@SUM(1).jpg", "\tTAB.jpg", "\rCR.jpg",
             "esc\x1b[31m.jpg"]


def _row(name: str) -> Dict[str, Any]:
    result = {"kind": "image", "label": "real", "score": 1.0, "fake_score": 0.0, "votes": {"fake": 0, "real": 1},
              "mean_prob": 0.1, "frames_used": 1, "frames_without_face": 0, "frames": []}
    return result_row(name, result)


def test_table_rows_stay_one_line_whatever_the_name():
    table = format_rows([_row(name) for name in ODD_NAMES], "table")
    lines = table.splitlines()
    assert len(lines) == 1 + len(ODD_NAMES)
    assert lines[1].startswith("two\\nlines.jpg ") and lines[7].startswith("\\rCR.jpg ")
    assert "\x1b" not in table and "esc\\x1b[31m.jpg" in table


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    rows = list(csv.DictReader(io.StringIO(format_rows([_row(name) for name in ODD_NAMES], "csv"))))
    paths = [row["path"] for row in rows]
    assert paths == ["two\nlines.jpg", "'=HYPERLINK(1).jpg", "'+1.jpg", "'-2.jpg", "'@SUM(1).jpg", "'\tTAB.jpg",
                     "'\rCR.jpg", "esc\x1b[31m.jpg"]
    assert rows[0]["score"] == "1.0000"  # numbers are left alone


def test_odd_names_through_detect(tmp_path, capsys, monkeypatch, stub_model):
    for name in ("two\nlines.jpg", "=cmd.jpg"):
        _photo(tmp_path / name)
    monkeypatch.chdir(tmp_path)  # paths as the user typed them: relative, starting with the name
    code, out, _ = _detect(capsys, ".")
    assert code == 0 and len(out.splitlines()) == 3
    code, out, _ = _detect(capsys, ".", "--format", "csv")
    assert [row["path"] for row in csv.DictReader(io.StringIO(out))] == ["'=cmd.jpg", "two\nlines.jpg"]
