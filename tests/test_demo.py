"""The Gradio demo (demo/app.py): served on 127.0.0.1 and driven with gradio_client, its verdicts and
per-frame records are those of `dldfd detect`; bad uploads get a message and the app keeps serving.
The helpers behind it (demo/analysis.py) are checked directly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dldfd_hf.cli import main as dldfd
from dldfd_hf.inference.loading import DEFAULT_MODEL, load_pipeline_with_notice
from dldfd_hf.inference.voting import VotingRule
from dldfd_hf.models import SHIPPED_MODEL_DIR
from tests.demo_app import DEMO_DIR, GRID_CLIP, TWO_PEOPLE, free_port, load_app

from analysis import (  # noqa: E402  (demo/analysis.py: tests.demo_app puts demo/ on the path)
    FAKE_COLOUR,
    MODEL_ENV,
    REAL_COLOUR,
    DemoLimits,
    InputRejected,
    analyse_image,
    analyse_video,
    check_num_frames,
    check_upload,
    draw_faces,
    faces_table,
    probability_plot_data,
    resolve_model_spec,
    verdict_details,
    verdict_text,
    voting_rule,
    write_records_json,
)

gradio_client = pytest.importorskip("gradio_client")

# gradio's own queue code trips pandas 3 deprecations; nothing the demo can change.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

LONG_CLIP = "videos/video-retalking/examples_face_5.mp4"  # 4.88 s: over the test's 4 s limit
MAX_VIDEO_SECONDS = 4
MAX_UPLOAD_MB = 2
NUM_FRAMES = 6


# --- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pipeline(tiny_model_folder):
    return load_pipeline_with_notice(str(tiny_model_folder), device="cpu")


@pytest.fixture(scope="module")
def gradio_cache(tmp_path_factory):
    """Gradio's cache (uploads, outputs) in a folder of this module's own while the app runs."""
    folder = tmp_path_factory.mktemp("gradio-cache")
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("GRADIO_TEMP_DIR")
    else:
        os.environ["GRADIO_TEMP_DIR"] = previous


@pytest.fixture(scope="module")
def served(tiny_model_folder, gradio_cache):
    """The demo served once for this module, with the model given the Space way ($DLDFD_MODEL):
    ``(Blocks, gradio_client.Client)``."""
    app = load_app()
    port = free_port()
    previous = os.environ.get(MODEL_ENV)
    os.environ[MODEL_ENV] = str(tiny_model_folder)
    try:
        demo = app.main(["--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                         "--max-video-seconds", str(MAX_VIDEO_SECONDS), "--max-upload-mb", str(MAX_UPLOAD_MB),
                         "--max-frames", "16", "--queue-size", "5"], block=False)
    finally:
        if previous is None:
            os.environ.pop(MODEL_ENV)
        else:
            os.environ[MODEL_ENV] = previous
    try:
        yield demo, gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def _detect_rows(model_dir: Path, path: Path, tmp_path: Path, *extra: str):
    out = tmp_path / "detect.json"
    code = dldfd(["detect", str(path), "--model", str(model_dir), "--format", "json", "--output", str(out),
                  "--device", "cpu", "--no-progress", *extra])
    rows = json.loads(out.read_text())
    assert len(rows) == 1
    return code, rows[0]


def _video(client, path, num_frames=NUM_FRAMES, strategy="majority", threshold=0.5, explain=False):
    return client.predict(gradio_client.handle_file(str(path)), num_frames, strategy, threshold, explain,
                          api_name="/analyse_video")


def _image(client, path, threshold=0.5, explain=False):
    return client.predict(gradio_client.handle_file(str(path)), threshold, explain, api_name="/analyse_image")


def _same_as_detect(demo_json: str, detect_row: dict, name: str) -> None:
    demo_rows = json.loads(Path(demo_json).read_text())
    assert len(demo_rows) == 1
    demo_row = demo_rows[0]
    assert demo_row["path"] == name  # the uploaded file's name, not the server's temp path
    assert set(demo_row) == set(detect_row)
    assert {k: v for k, v in demo_row.items() if k != "path"} == {k: v for k, v in detect_row.items() if k != "path"}


# --- the served app -------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy, threshold", [("majority", 0.5), ("mean", 0.3)])
def test_video_endpoint_gives_the_verdict_and_records_of_dldfd_detect(
    client, tiny_model_folder, shared_data, tmp_path, strategy, threshold
):
    clip = shared_data / GRID_CLIP
    verdict, plot, gallery, heatmaps, records_json = _video(client, clip, strategy=strategy, threshold=threshold)
    code, row = _detect_rows(tiny_model_folder, clip, tmp_path, "--frames", str(NUM_FRAMES),
                             "--strategy", strategy, "--threshold", str(threshold))
    assert code == 0 and row["frames_used"] == NUM_FRAMES and row["error"] is None

    _same_as_detect(records_json, row, clip.name)
    expected = (f"{row['label'].upper()}: {row['votes']['fake']} of {NUM_FRAMES} frames voted fake, "
                f"mean {row['mean_prob']:.2f}")
    assert expected in verdict
    if threshold < row["mean_prob"]:  # the low threshold makes every frame vote fake
        assert expected.startswith(f"FAKE: {NUM_FRAMES} of {NUM_FRAMES}")

    # The plot: P(fake) at each frame's time, and the threshold line over the same span.
    times = [r["time"] for r in row["frames"]]
    points = [(t, p) for t, p, series in plot["data"] if series == "P(fake)"]
    line = [(t, p) for t, p, series in plot["data"] if series == "threshold"]
    assert [t for t, _ in points] == pytest.approx(times)
    assert [p for _, p in points] == pytest.approx([r["fake_prob"] for r in row["frames"]])
    assert line == [(times[0], threshold), (times[-1], threshold)]

    # One crop per scored frame, captioned with its frame, time and score; no heatmaps unless asked.
    assert len(gallery) == NUM_FRAMES and heatmaps == []
    for item, record in zip(gallery, row["frames"]):
        assert item["caption"] == f"{record['fake_prob']:.2f} · frame {record['index']} · {record['time']:.1f} s"
        assert Image.open(item["image"]).size == (64, 64)  # dldfd_tiny's input size


def test_video_explanation_is_a_heatmap_per_face_crop(client, shared_data):
    _, _, gallery, heatmaps, _ = _video(client, shared_data / GRID_CLIP, num_frames=3, explain=True)
    assert len(heatmaps) == len(gallery) == 3
    for crop_item, heat_item in zip(gallery, heatmaps):
        crop = np.asarray(Image.open(crop_item["image"]).convert("RGB"), dtype=np.int16)
        heat = np.asarray(Image.open(heat_item["image"]).convert("RGB"), dtype=np.int16)
        assert heat.shape == crop.shape
        assert np.abs(heat - crop).mean() > 5  # the colour map is blended over the crop
        assert heat_item["caption"] == crop_item["caption"]


def test_image_endpoint_boxes_every_face_with_the_scores_of_dldfd_detect(client, tiny_model_folder, shared_data, tmp_path):
    photo = shared_data / TWO_PEOPLE
    verdict, boxed, table, heatmaps, records_json = _image(client, photo, explain=True)
    code, row = _detect_rows(tiny_model_folder, photo, tmp_path)
    assert code == 0 and row["kind"] == "image" and row["frames_used"] == 2

    _same_as_detect(records_json, row, photo.name)
    expected = f"{row['label'].upper()}: {row['votes']['fake']} of 2 faces scored fake, mean {row['mean_prob']:.2f}"
    assert expected in verdict
    assert table["headers"][:3] == ["face", "P(fake)", "looks"]
    assert [r[0] for r in table["data"]] == [1, 2]
    assert [r[1] for r in table["data"]] == pytest.approx([f["fake_prob"] for f in row["frames"]], abs=1e-4)
    assert Image.open(boxed).size == Image.open(photo).size
    assert len(heatmaps) == 2


def test_bad_uploads_get_a_message_and_the_app_keeps_serving(client, shared_data, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes((shared_data / LONG_CLIP).read_bytes()[:3000])  # header cut off
    faceless = tmp_path / "sky.png"
    gradient = np.linspace(90, 200, 256, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(gradient, (192, 1))] * 3, axis=-1)).save(faceless)

    cases = [
        (_video, text, "Cannot read notes.txt: not a video"),
        (_video, corrupt, "Cannot read broken.mp4: not a video, or a truncated/corrupt one"),
        (_video, shared_data / LONG_CLIP, f"accepts videos up to {MAX_VIDEO_SECONDS:.1f} s"),
        (_video, shared_data / TWO_PEOPLE, "is a photo; use the Image tab"),
        (_image, faceless, "No face found in the image"),
        (_image, text, "Cannot read notes.txt: not an image"),
        (_image, shared_data / GRID_CLIP, "is a video; use the Video tab"),
    ]
    for endpoint, path, message in cases:
        verdict, *others = endpoint(client, path)
        assert message in verdict, (path.name, verdict)
        assert verdict.startswith("### ⚠ ")
        if endpoint is _image and path == faceless:  # no face is a result: the photo and its JSON still come back
            assert json.loads(Path(others[-1]).read_text())[0]["error"] == "no face found in the image"
        else:
            assert others[-1] is None  # no records file for an upload that was not processed

    # Out-of-range settings sent through the API: the slider's bounds (--max-frames) hold there too.
    with pytest.raises(gradio_client.exceptions.AppError, match="greater than maximum value 16"):
        _video(client, shared_data / GRID_CLIP, num_frames=500)
    # Too big for the server's upload limit: refused before the handler runs.
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom((MAX_UPLOAD_MB + 1) * 1024 * 1024))
    with pytest.raises(Exception, match="(?i)size"):
        _video(client, big)

    # Still serving: a good upload after all of that gets a verdict.
    verdict, *_ = _video(client, shared_data / GRID_CLIP, num_frames=2)
    assert "of 2 frames voted fake" in verdict


def test_both_tabs_share_one_bounded_queue(served):
    demo, _ = served
    events = {fn.api_name: fn for fn in demo.fns.values()}
    assert set(events) == {"analyse_video", "analyse_image"}
    # One model, one analysis at a time across both tabs (--concurrency 1); 5 may wait (--queue-size).
    assert {(fn.concurrency_limit, fn.concurrency_id) for fn in events.values()} == {(1, "detector")}
    assert demo._queue.max_size == 5


def test_records_files_stay_in_gradios_cache_and_go_with_it(served, gradio_cache, shared_data):
    demo, client = served
    system_temp = Path(tempfile.gettempdir())
    temp_before = {p.name for p in system_temp.iterdir() if p.name.startswith("dldfd-demo-")}
    before = set(gradio_cache.rglob("*.dldfd.json"))
    returned = [_image(client, shared_data / TWO_PEOPLE)[-1] for _ in range(3)]
    created = set(gradio_cache.rglob("*.dldfd.json")) - before
    # One file per request, written where gradio serves it from (no copy, no folder per request),
    # and nothing left in the system temp folder.
    assert len(created) == 3 and {p.parent.name for p in created} == {"dldfd-records"}
    assert len({Path(r).name for r in returned}) == 3
    assert {p.name for p in system_temp.iterdir() if p.name.startswith("dldfd-demo-")} == temp_before
    # Gradio counts them as files the app created: its delete_cache sweep (here: everything) removes them.
    from gradio.route_utils import delete_files_created_by_app

    delete_files_created_by_app(demo, None)
    assert not any(path.exists() for path in created)


def test_app_analytics_are_off_without_the_test_environment(monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    app = load_app()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")  # even a stray opt-in does not reach the page
    assert app.build_demo(None, "dldfd_tiny", DemoLimits()).analytics_enabled is False


@pytest.mark.skipif(not (SHIPPED_MODEL_DIR / "model.safetensors").is_file(), reason="no bundled weights")
def test_app_without_a_model_serves_the_shipped_detector(monkeypatch, tmp_path):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    app = load_app()
    monkeypatch.setattr(app, "APP_DIR", tmp_path)  # no Space card beside the app
    demo = app.main(["--port", str(free_port())], block=False)
    try:
        page = json.dumps(demo.config)
        # The page names the model that answers and what it was trained on.
        assert f"Model: `{DEFAULT_MODEL}`" in page and "self-blended pseudo-fakes" in page
    finally:
        demo.close()


def test_app_with_a_corrupt_model_exits_with_a_message(tiny_model_folder, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for path in tiny_model_folder.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(SystemExit, match=f"demo/app.py: cannot load model folder .*{weights} is corrupt or truncated"):
        load_app().main(["--model", str(broken), "--port", str(free_port())])


def test_analyses_leave_the_batch_size_to_the_pipeline(tiny_pipeline, shared_data):
    detector, _ = tiny_pipeline
    batch_sizes = []

    def spy(inputs, **kwargs):
        batch_sizes.append(kwargs["batch_size"])
        return detector(inputs, **kwargs)

    analyse_image(spy, shared_data / TWO_PEOPLE)
    analyse_video(spy, shared_data / GRID_CLIP, num_frames=2)
    analyse_image(spy, shared_data / TWO_PEOPLE, batch_size=3)
    # None: the pipeline picks its own (8 crops per pass on CPU, the faster choice there).
    assert batch_sizes == [None, None, 3]


def test_video_progress_is_reported_stage_by_stage(tiny_pipeline, shared_data):
    detector, notice = tiny_pipeline
    assert notice is None  # a saved model folder: no random-weights warning on the page
    steps = []
    analysis = analyse_video(detector, shared_data / GRID_CLIP, num_frames=3,
                             progress=lambda fraction, text: steps.append((fraction, text)))
    fractions = [fraction for fraction, _ in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and len(steps) >= 3
    assert "Finding and scoring faces in 3 frames" in [text for _, text in steps]
    assert analysis.row["frames_used"] == len(analysis.crops) == 3
    assert load_pipeline_with_notice("dldfd_tiny", device="cpu")[1].startswith("dldfd_tiny was built with RANDOM weights")


# --- helpers, without a server --------------------------------------------------------------------
def _row(label, fake, used, mean, kind="video", without_face=0, error=None, score=None):
    return {"path": "x", "kind": kind, "label": label, "score": score, "mean_prob": mean,
            "votes": None if label is None else {"fake": fake, "real": used - fake},
            "frames_used": used, "frames_without_face": without_face, "frames": [], "error": error}


def test_verdict_text():
    assert verdict_text(_row("fake", 23, 32, 0.8134)) == "FAKE: 23 of 32 frames voted fake, mean 0.81"
    assert verdict_text(_row("real", 1, 2, 0.25, kind="image")) == "REAL: 1 of 2 faces scored fake, mean 0.25"
    no_face = _row(None, 0, 0, None, without_face=8, error="no face found in any of the 8 sampled frames")
    assert verdict_text(no_face) == "No face found in any of the 8 sampled frames"


def test_verdict_details_give_the_confidence_of_the_label():
    real = _row("real", 1, 4, 0.3, score=0.75)
    majority, mean = VotingRule(), VotingRule("mean")
    assert "Score 0.75 (share of the frames that agree)." in verdict_details(real, majority)
    assert "Score 0.75 (share of the faces that agree)." in verdict_details({**real, "kind": "image"}, majority)
    assert "Score 0.70 (1 − mean P(fake))." in verdict_details({**real, "score": 0.7}, mean)
    fake = _row("fake", 3, 4, 0.8, score=0.8, without_face=2)
    details = verdict_details(fake, mean)
    assert "Score 0.80 (mean P(fake))." in details and "2 sampled frame(s) had no face" in details
    sbi = verdict_details(fake, VotingRule("max_mean", 0.4))
    assert "each frame's most fake face" in sbi and "threshold 0.40" in sbi and "Score 0.80 (mean P(fake))." in sbi
    assert verdict_details(_row(None, 0, 0, None), majority) == ""


def test_bad_voting_settings_are_rejected_for_the_user():
    assert voting_rule("mean", 0.3) == VotingRule("mean", 0.3)
    with pytest.raises(InputRejected, match="Unknown voting strategy 'median'; choose one of majority, mean, max_mean"):
        voting_rule("median", 0.5)
    with pytest.raises(InputRejected, match="The threshold must be a number between 0 and 1, got 1.5"):
        voting_rule(threshold=1.5)


def test_plot_data_skips_frames_without_a_face():
    row = _row("fake", 1, 2, 0.6)
    row["frames"] = [
        {"index": 0, "time": 0.0, "box": [0, 0, 1, 1], "fake_prob": 0.9, "face_score": 1.0},
        {"index": 5, "time": 0.2, "box": None, "fake_prob": None, "face_score": None},
        {"index": 9, "time": 0.4, "box": [0, 0, 1, 1], "fake_prob": 0.3, "face_score": 1.0},
    ]
    data = probability_plot_data(row, 0.7)
    assert data.values.tolist() == [[0.0, 0.9, "P(fake)"], [0.4, 0.3, "P(fake)"],
                                     [0.0, 0.7, "threshold"], [0.4, 0.7, "threshold"]]
    assert probability_plot_data(_row(None, 0, 0, None), 0.5).empty


def test_faces_are_boxed_in_the_colour_of_their_verdict_and_tabulated():
    image = Image.new("RGB", (200, 120), "black")
    records = [
        {"index": 0, "time": None, "box": [10.0, 40.0, 60.0, 100.0], "fake_prob": 0.9, "face_score": 0.99},
        {"index": 0, "time": None, "box": [120.0, 40.0, 180.0, 110.0], "fake_prob": 0.2, "face_score": 0.95},
    ]
    boxed = draw_faces(image, records, threshold=0.5)
    assert boxed.size == image.size and image.getpixel((10, 70)) == (0, 0, 0)  # the input is untouched
    hex_of = lambda rgb: "#%02x%02x%02x" % rgb  # noqa: E731
    assert hex_of(boxed.getpixel((10, 70))) == FAKE_COLOUR  # left edge of face 1
    assert hex_of(boxed.getpixel((180, 80))) == REAL_COLOUR  # right edge of face 2
    assert boxed.getpixel((35, 70)) == (0, 0, 0)  # inside the box: the photo, not paint
    table = faces_table(records, threshold=0.5)
    assert table.values.tolist() == [[1, 0.9, "fake", 0.99, "10, 40, 60, 100"],
                                     [2, 0.2, "real", 0.95, "120, 40, 180, 110"]]


def test_limits(tmp_path):
    limits = DemoLimits(max_upload_mb=0.001, max_frames=16)
    small, large, empty = tmp_path / "small.mp4", tmp_path / "large.mp4", tmp_path / "empty.mp4"
    small.write_bytes(b"x" * 1000)
    large.write_bytes(b"x" * 2000)
    empty.write_bytes(b"")
    assert check_upload(small, limits) == small
    with pytest.raises(InputRejected, match="large.mp4 is 0.0 MB; this demo accepts files up to 0.001 MB"):
        check_upload(large, limits)
    with pytest.raises(InputRejected, match="empty"):
        check_upload(empty, limits)
    with pytest.raises(InputRejected, match="upload a video first"):
        check_upload(None, limits, "video")
    assert check_num_frames(16.0, limits) == 16
    for bad in (0, 17, "many"):
        with pytest.raises(InputRejected):
            check_num_frames(bad, limits)


def test_records_file_is_the_detect_json_format(tmp_path):
    row = _row("fake", 1, 1, 0.9, score=1.0)
    folder = tmp_path / "records"
    path = write_records_json(row, folder)
    assert path.parent == folder and re.fullmatch(r"x\.[0-9a-f]{8}\.dldfd\.json", path.name)
    assert json.loads(path.read_text()) == [row]
    again = write_records_json(row, folder)
    assert again != path and again.parent == folder  # concurrent users never share a file
    assert sorted(folder.iterdir()) == sorted([path, again])  # no folder per call, no temporaries


def test_model_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    # Nothing named: the detector shipped inside the package (nothing is fetched implicitly).
    assert resolve_model_spec(None, tmp_path) == DEFAULT_MODEL == "dldfd_efficientnet_lite0.ffpp_sbi"
    (tmp_path / "README.md").write_text("---\nsdk: gradio\n---\n# Space without a model\n")
    assert resolve_model_spec(None, tmp_path) == DEFAULT_MODEL
    (tmp_path / "README.md").write_text("---\nsdk: gradio\nmodels:\n- org/from-card\n---\n# Space\n")
    assert resolve_model_spec(None, tmp_path) == "org/from-card"
    monkeypatch.setenv(MODEL_ENV, "org/from-env")
    assert resolve_model_spec(None, tmp_path) == "org/from-env"
    assert resolve_model_spec("org/from-cli", tmp_path) == "org/from-cli"


def test_demo_folder_assembles_into_a_space(tmp_path, monkeypatch):
    from huggingface_hub import SpaceCard

    from dldfd_hf.hub.push import SPACE_FILES, prepare_space_folder

    folder = prepare_space_folder(DEMO_DIR, tmp_path / "space", model_id="org/dldfd_resnet50.ffpp_c40",
                                  requirement="dldfd-hf==0.1.0")
    assert sorted(p.name for p in folder.iterdir()) == sorted(SPACE_FILES)
    assert (folder / "app.py").read_bytes() == (DEMO_DIR / "app.py").read_bytes()
    card = SpaceCard.load(folder / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.models == ["org/dldfd_resnet50.ffpp_c40"]
    # Without a $DLDFD_MODEL variable the Space's app runs the model its card names.
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert resolve_model_spec(None, folder) == "org/dldfd_resnet50.ffpp_c40"
    requirements = (folder / "requirements.txt").read_text().splitlines()
    assert [line for line in requirements if line.lower().startswith("dldfd")] == ["dldfd-hf==0.1.0"]
    assert any(line.startswith("pandas") for line in requirements)  # demo/analysis.py's; gradio: the card
    # The Space runs app.py in its folder: it imports its sibling analysis.py from there.
    code = "import app, analysis; print(analysis.__file__, app.analyse_video is analysis.analyse_video)"
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == [str(folder / "analysis.py"), "True"]


# --- issue 15: the cache stays bounded while the app runs, and is cleaned on SIGTERM as on Ctrl-C ----
def test_trim_cache_deletes_the_oldest_files_first_and_never_the_current_request(tmp_path):
    from analysis import trim_cache

    files = []
    for i in range(5):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + i, 1000 + i))  # f0 oldest
        files.append(path)
    removed = trim_cache([*files, tmp_path / "already-gone.bin"], max_bytes=2500, keep=[files[0]])
    assert removed == [files[1], files[2], files[3]]  # oldest first until under the bound; f0 is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.bin", "f4.bin"]
    assert trim_cache(files, max_bytes=10_000) == []


def _wait_until(condition, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_cleans_the_cache_as_ctrl_c_does(tiny_model_folder, tmp_path, monkeypatch):
    """main(block=True) waits in Blocks.block_thread, which closes the server on Ctrl-C (and Gradio's
    shutdown then deletes what the app put in its cache); SIGTERM must end that wait the same way."""
    import io
    import signal
    import threading

    import httpx

    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    app = load_app()
    port = free_port()
    demo = app.main(["--model", str(tiny_model_folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                    block=False)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        png = io.BytesIO()
        Image.new("RGB", (16, 16), (90, 90, 90)).save(png, format="PNG")
        response = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload",
                              files=[("files", ("upload.png", png.getvalue(), "image/png"))], timeout=120)
        (uploaded,) = [Path(name) for name in response.json()]
        _wait_until(uploaded.is_file)
        assert str(uploaded).startswith(str(cache))
        app.exit_on_sigterm()  # what main() does before it serves with block=True
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        demo.block_thread()  # main()'s wait with block=True: SIGTERM ends it
        _wait_until(lambda: not uploaded.exists())
    finally:
        signal.signal(signal.SIGTERM, previous)
        demo.close()
