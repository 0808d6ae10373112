"""The deepfake-video-detection pipeline and `dldfd detect`: inputs, outputs, agreement, bad files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import dldfd_hf
from dldfd_hf.cli import main
from dldfd_hf.data.video_writer import write_video
from dldfd_hf.inference.loading import ModelLoadError, RandomWeightsWarning, load_model, looks_like_hub_id, resolve_model_source
from dldfd_hf.inference.pipelines import VIDEO_DETECT_SIZE, VIDEO_MIN_FACE_SIZE, DeepfakeVideoDetectionPipeline
from dldfd_hf.inference.records import format_rows
from dldfd_hf.inference.voting import VotingRule
from dldfd_hf.media.faces import FaceCropper
from dldfd_hf.media.video import evenly_spaced_indices
from dldfd_hf.media.video_reader import sample_frames
from dldfd_hf.models import SHIPPED_MODEL_DIR

GRID_CLIP = "videos/LipNet_GRID/evaluation_samples_GRID_sbwe5n.mpg"  # 75 frames, 25 fps
PHOTO = "faces/scikit-image_pkg/astronaut.png"
MULTIFACE = "faces/facenet-pytorch/data_multiface.jpg"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MTCNN: see conftest


@pytest.fixture(scope="module")
def model_dir(tiny_model_folder, tmp_path_factory) -> Path:
    """The session's tiny model folder with a 40x head, which spreads P(fake) around 0.5."""
    model = dldfd_hf.DLDFDForImageClassification.from_pretrained(tiny_model_folder)
    with torch.no_grad():
        model.dldfd.get_classifier().weight.mul_(40.0)  # random weights give P(fake) ~ 0.5 everywhere
    folder = tmp_path_factory.mktemp("model") / "dldfd-tiny"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def detector(model_dir) -> DeepfakeVideoDetectionPipeline:
    return pipeline("deepfake-video-detection", model=str(model_dir), device="cpu")


def test_registered_task_loads_a_saved_model_folder(detector, model_dir):
    assert isinstance(detector, DeepfakeVideoDetectionPipeline)
    assert isinstance(detector.model, dldfd_hf.DLDFDForImageClassification)
    # The model's own preprocessing, from preprocessor_config.json: 64x64 crops, ImageNet mean/std.
    saved = json.loads((model_dir / "preprocessor_config.json").read_text())
    assert detector.crop_size == saved["size"]["height"] == 64
    assert list(detector.image_processor.image_mean) == pytest.approx(saved["image_mean"])


def test_video_output_and_scores_match_the_model(detector, shared_data):
    clip = shared_data / GRID_CLIP
    result = detector(str(clip), num_frames=6)
    assert result["kind"] == "video" and result["frames_sampled"] == 6
    records = result["frames"]
    assert [r["index"] for r in records] == evenly_spaced_indices(75, 6)
    assert [r["time"] for r in records] == pytest.approx([r["index"] / 25 for r in records])
    assert all(r["box"] is not None and len(r["box"]) == 4 for r in records)
    # Recompute independently: same frames, same crops, the model's processor, the model itself.
    frames = sample_frames(clip, 6)
    cropper = FaceCropper(crop_size=64, min_face_size=VIDEO_MIN_FACE_SIZE, detect_max_size=VIDEO_DETECT_SIZE)
    crops = [faces[0].crop for faces in cropper([f.image for f in frames])]
    pixels = detector.image_processor(images=crops, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = torch.softmax(detector.model(pixel_values=pixels).logits, dim=-1)[:, 1]
    assert [r["fake_prob"] for r in records] == pytest.approx(expected.tolist(), abs=1e-5)
    verdict = VotingRule().vote(expected.tolist())
    assert result["label"] == verdict.label and result["score"] == pytest.approx(verdict.score)
    assert result["votes"] == verdict.votes and sum(result["votes"].values()) == result["frames_used"] == 6
    assert result["mean_prob"] == pytest.approx(verdict.mean_prob)
    # score: the confidence of the label (the share of votes agreeing with it); fake_score: fake votes.
    agreeing = result["votes"][result["label"]]
    assert result["score"] == pytest.approx(agreeing / 6)
    assert result["fake_score"] == pytest.approx(result["votes"]["fake"] / 6)
    # Parameters reach the voting stage.
    mean = detector(str(clip), num_frames=6, strategy="mean", threshold=0.3, batch_size=2)
    assert mean["strategy"] == "mean" and mean["threshold"] == 0.3
    assert mean["fake_score"] == pytest.approx(verdict.mean_prob, abs=1e-5)
    assert mean["label"] == ("fake" if verdict.mean_prob >= 0.3 else "real")
    confidence = verdict.mean_prob if mean["label"] == "fake" else 1 - verdict.mean_prob
    assert mean["score"] == pytest.approx(confidence, abs=1e-5)
    real_mean = detector(str(clip), num_frames=6, strategy="mean", threshold=0.999)
    assert real_mean["label"] == "real" and real_mean["score"] == pytest.approx(1 - verdict.mean_prob, abs=1e-5)


def test_frames_and_images_as_input(detector, shared_data):
    frames = sample_frames(shared_data / GRID_CLIP, 4)
    from_path = detector(str(shared_data / GRID_CLIP), num_frames=4)
    from_frames = detector(frames)  # Frame objects keep their index and time
    assert [r["index"] for r in from_frames["frames"]] == [r["index"] for r in from_path["frames"]]
    assert [r["fake_prob"] for r in from_frames["frames"]] == pytest.approx([r["fake_prob"] for r in from_path["frames"]])
    from_arrays = detector([f.image for f in frames])  # bare arrays: indices 0..n-1, no time
    assert from_arrays["kind"] == "frames" and [r["index"] for r in from_arrays["frames"]] == [0, 1, 2, 3]
    assert from_arrays["frames"][0]["time"] is None
    assert from_arrays["score"] == pytest.approx(from_path["score"])
    # A photo: every face is scored.
    group = detector(str(shared_data / MULTIFACE))
    assert group["kind"] == "image" and group["frames_used"] >= 3
    assert {r["index"] for r in group["frames"]} == {0}
    assert len({tuple(r["box"]) for r in group["frames"]}) == group["frames_used"]
    # SBI's rule over two frames of the group photo: every face is scored (not only the largest), each
    # frame scores its most fake face, and the verdict thresholds the mean of those.
    group_frames = [np.asarray(Image.open(shared_data / MULTIFACE).convert("RGB"))] * 2
    sbi = detector(group_frames, strategy="max_mean", threshold=0.3)
    faces = [r for r in sbi["frames"] if r["fake_prob"] is not None]
    assert len(faces) == 2 * group["frames_used"] and {r["index"] for r in faces} == {0, 1}
    highest = [max(r["fake_prob"] for r in faces if r["index"] == i) for i in (0, 1)]
    assert sbi["frames_used"] == 2 and sbi["mean_prob"] == pytest.approx(np.mean(highest))
    assert sbi["label"] == ("fake" if np.mean(highest) >= 0.3 else "real")
    largest_only = detector(group_frames, strategy="max_mean", select="largest")
    assert len(largest_only["frames"]) == 2  # an explicit select wins
    single = detector(Image.open(shared_data / PHOTO))
    assert single["frames_used"] == 1 and single["label"] in ("real", "fake")
    # Several paths: one result each.
    both = detector([str(shared_data / PHOTO), str(shared_data / GRID_CLIP)], num_frames=2)
    assert [r["kind"] for r in both] == ["image", "video"]


def test_faceless_input_gives_no_label(detector):
    noise = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    result = detector(noise)
    assert result["label"] is None and result["score"] is None and result["fake_score"] is None
    assert result["frames_without_face"] == 1 and result["frames"][0]["box"] is None


def test_model_resolution(model_dir, hub_cache, tmp_path, monkeypatch):
    assert resolve_model_source(model_dir) == "folder"
    assert resolve_model_source("dldfd_tiny") == "architecture"
    assert resolve_model_source("dldfd_resnet50.ffpp_c40") == "pretrained-tag"
    assert resolve_model_source("someone/some-detector") == "hub"
    with pytest.raises(ModelLoadError, match="not a DLDFD architecture"):
        resolve_model_source("resnet18")
    with pytest.raises(ModelLoadError, match="neither"):
        resolve_model_source("no_such_model")
    with pytest.warns(RandomWeightsWarning, match="RANDOM weights"):
        model, processor = load_model("dldfd_tiny")
    assert processor.size["height"] == 64 and not model.training
    # A Hub id resolves offline through the HF cache, like after a download.
    hub_cache.add_folder("dldfd-test/tiny-video", model_dir)
    from_hub, _ = load_model("dldfd-test/tiny-video")
    from_folder, _ = load_model(model_dir)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(from_hub(pixel_values=x).logits, from_folder(pixel_values=x).logits)
    # A string that is not a folder and not on the Hub (or cache): both were tried, and the error says so.
    with pytest.raises(ModelLoadError, match="'dldfd-test/not-cached' is neither an existing local folder "
                                             ".* nor a loadable Hub id"):
        load_model("dldfd-test/not-cached")
    monkeypatch.chdir(tmp_path)  # no runs/best here
    with pytest.raises(ModelLoadError, match="'runs/best' is neither an existing local folder"):
        load_model("runs/best")
    # A registered tag without weights, and a tag that does not exist.
    with pytest.raises(ModelLoadError, match="'dldfd_tiny.untrained' has no pretrained weights; "
                                             "use the architecture name 'dldfd_tiny' for random weights"):
        load_model("dldfd_tiny.untrained")
    with pytest.raises(ModelLoadError, match="dldfd_tiny has no tag 'nope'"):
        load_model("dldfd_tiny.nope")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_weights_are_a_model_load_error_naming_the_file(model_dir, tmp_path, damage):
    folder = tmp_path / "damaged"
    folder.mkdir()
    for path in model_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) * 2 // 3], "garbage": b"\x00" * 64 + data[64:],
                         "empty": b""}[damage])
    with pytest.raises(ModelLoadError) as caught:
        load_model(folder)
    message = str(caught.value)
    assert f"cannot load model folder {str(folder)!r}: {weights} is corrupt or truncated" in message


# --- CLI ------------------------------------------------------------------------------------------
def _detect(capsys, *args):
    code = main(["detect", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def test_cli_agrees_with_the_pipeline(detector, model_dir, shared_data, tmp_path, capsys):
    clip = shared_data / GRID_CLIP
    expected = detector(str(clip), num_frames=5, strategy="mean")
    out_file = tmp_path / "out" / "result.json"
    code, _, _ = _detect(capsys, clip, "--model", model_dir, "--frames", 5, "--strategy", "mean",
                         "--format", "json", "--output", out_file, "--device", "cpu", "--batch-size", 2)
    assert code == 0
    (row,) = json.loads(out_file.read_text())
    assert list(out_file.parent.iterdir()) == [out_file]  # no temporary file left behind
    assert row["path"] == str(clip) and row["error"] is None
    assert row["label"] == expected["label"] and row["score"] == pytest.approx(expected["score"])
    assert row["fake_score"] == pytest.approx(expected["fake_score"]) and row["votes"] == expected["votes"]
    assert [(f["index"], f["time"]) for f in row["frames"]] == [(f["index"], f["time"]) for f in expected["frames"]]
    assert [f["box"] for f in row["frames"]] == [pytest.approx(f["box"]) for f in expected["frames"]]
    assert [f["fake_prob"] for f in row["frames"]] == pytest.approx([f["fake_prob"] for f in expected["frames"]])


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, shared_data) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "nested").mkdir()
    photo = Image.open(shared_data / PHOTO).convert("RGB")
    photo.save(folder / "good_photo.jpg")
    frames = [f.image for f in sample_frames(shared_data / GRID_CLIP, 12)]
    write_video(folder / "nested" / "good_video.mp4", frames, fps=25, gop=4)
    (folder / "notes.mp4").write_text("not a video at all\n")
    complete = (folder / "nested" / "good_video.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(complete[: len(complete) // 3])
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "fake_image.jpg").write_text("not an image either\n")
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "no_face.png")
    big = Image.new("RGB", (4000, 3000), (90, 90, 90))
    big.paste(photo.resize((3000, 3000)), (500, 0))
    big.save(folder / "big_4000x3000.jpg", quality=85)
    photo.convert("L").save(folder / "gray.png")
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(folder / "rgba.png")
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.gif")
    (folder / "readme.txt").write_text("ignored: not an image or video extension\n")
    return folder


def test_cli_mixed_folder_reports_each_file(model_dir, mixed_folder, capsys):
    code, out, err = _detect(capsys, mixed_folder, "--model", model_dir, "--frames", 4, "--format", "json")
    assert code == 1  # some files failed
    rows = {Path(row["path"]).relative_to(mixed_folder).as_posix(): row for row in json.loads(out)}
    assert sorted(rows) == sorted([
        "big_4000x3000.jpg", "fake_image.jpg", "good_photo.jpg", "gray.png", "nested/good_video.mp4",
        "no_face.png", "notes.mp4", "palette.gif", "rgba.png", "truncated.mp4", "zero.mp4",
    ])
    errors = {name: row["error"] for name, row in rows.items() if row["error"]}
    assert errors.keys() == {"fake_image.jpg", "no_face.png", "notes.mp4", "truncated.mp4", "zero.mp4"}
    assert "not an image" in errors["fake_image.jpg"]
    assert errors["no_face.png"] == "no face found in the image"
    assert "not a video" in errors["notes.mp4"] and "truncated" in errors["truncated.mp4"]
    assert errors["zero.mp4"] == "empty file (0 bytes)"
    for name in ("good_photo.jpg", "big_4000x3000.jpg", "gray.png", "rgba.png", "palette.gif", "nested/good_video.mp4"):
        row = rows[name]
        assert row["label"] in ("real", "fake") and 0.0 <= row["score"] <= 1.0, name
        assert row["frames"] and all(0.0 <= f["fake_prob"] <= 1.0 for f in row["frames"]), name
    assert rows["nested/good_video.mp4"]["kind"] == "video" and rows["nested/good_video.mp4"]["frames_used"] == 4
    assert "5 of 11 file(s) failed" in err


def test_cli_table_and_csv_formats(model_dir, shared_data, tmp_path, capsys):
    photo = shared_data / PHOTO
    missing = tmp_path / "missing.mp4"
    code, out, _ = _detect(capsys, photo, missing, "--model", model_dir)
    lines = out.splitlines()
    assert code == 1 and lines[0].split()[:4] == ["path", "kind", "label", "score"]
    assert lines[1].startswith(str(photo)) and " image " in lines[1]
    assert lines[2].startswith(str(missing)) and lines[2].endswith("no such file")
    code, out, _ = _detect(capsys, photo, "--model", model_dir, "--format", "csv")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and row["path"] == str(photo) and row["label"] in ("real", "fake") and row["error"] == ""
    assert int(row["fake_votes"]) + int(row["real_votes"]) == int(row["frames_used"]) == 1
    # The formatter alone, on a hand-made row.
    assert float(row["fake_score"]) == pytest.approx(int(row["fake_votes"]))  # one face: its vote
    assert float(row["score"]) == 1.0  # the one face agrees with the label
    # The formatter alone, on hand-made rows: score is the label's confidence, fake_score the fakeness.
    text = format_rows([{"path": "x.mp4", "kind": None, "label": None, "score": None, "fake_score": None,
                         "votes": None, "mean_prob": None, "frames_used": 0, "frames_without_face": 0, "frames": [],
                         "error": "no such file"}], "csv")
    assert text.splitlines() == [
        "path,kind,label,score,fake_score,fake_votes,real_votes,mean_prob,frames_used,frames_without_face,error,warning",
        "x.mp4,,,,,,,,0,0,no such file,",
    ]
    real = {"path": "y.mp4", "kind": "video", "label": "real", "score": 0.75, "fake_score": 0.25,
            "votes": {"fake": 1, "real": 3}, "mean_prob": 0.3, "frames_used": 4, "frames_without_face": 0,
            "frames": [], "error": None}
    assert format_rows([real], "csv").splitlines()[1] == "y.mp4,video,real,0.7500,0.2500,1,3,0.3000,4,0,,"
    table = format_rows([real], "table").splitlines()
    assert table[0].split()[:5] == ["path", "kind", "label", "score", "fake"]
    assert table[1].split()[:6] == ["y.mp4", "video", "real", "0.7500", "0.2500", "1/3"]


def test_cli_architecture_name_warns_loudly(shared_data, capsys):
    code, out, err = _detect(capsys, shared_data / PHOTO, "--model", "dldfd_tiny", "--format", "json")
    assert code == 0 and "RANDOM weights" in err
    assert json.loads(out)[0]["label"] in ("real", "fake")


@pytest.mark.parametrize(
    "model,message",
    [("/no/such/folder", "not a model folder"), ("resnet18", "not a DLDFD architecture"),
     ("dldfd-test/not-cached", "is neither an existing local folder"),
     ("hf-hub:dldfd-test/not-cached", "cannot load Hub model 'dldfd-test/not-cached'"),
     ("dldfd_tiny.untrained", "has no pretrained weights"),
     ("corrupt-folder", "model.safetensors is corrupt or truncated")],
)
def test_cli_bad_model_exits_2_without_traceback(shared_data, capsys, model_dir, tmp_path, model, message):
    if model == "corrupt-folder":
        model = tmp_path / "corrupt"
        model.mkdir()
        for path in model_dir.iterdir():
            (model / path.name).write_bytes(path.read_bytes()[:100])
    code, out, err = _detect(capsys, shared_data / PHOTO, "--model", model)
    assert code == 2 and out == "" and message in err


@pytest.mark.skipif(not (SHIPPED_MODEL_DIR / "model.safetensors").is_file(), reason="no bundled weights")
def test_cli_and_pipeline_default_to_the_shipped_detector(capsys, shared_data, hf_home):
    code, out, err = _detect(capsys, shared_data / PHOTO, "--format", "json")
    row = json.loads(out)[0]
    assert code == 0 and row["label"] in ("real", "fake") and row["frames_used"] == 1
    # It says which model answered, and nothing came from the Hub.
    assert "model: dldfd_efficientnet_lite0.ffpp_sbi (shipped with dldfd-hf)" in err
    assert not any((hf_home / "hub").glob("models--*lite0*"))
    result = pipeline("deepfake-video-detection")(str(shared_data / PHOTO))
    assert result["frames"][0]["fake_prob"] == pytest.approx(row["frames"][0]["fake_prob"], abs=1e-5)


def test_cli_output_is_written_atomically(model_dir, shared_data, tmp_path, capsys, monkeypatch):
    out_file = tmp_path / "results.csv"
    out_file.write_text("previous results\n")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", failing_replace)
    code, out, err = _detect(capsys, shared_data / PHOTO, "--model", model_dir, "--format", "csv",
                             "--output", out_file)
    # The results are not lost (issue 15): printed on stdout, exit status 3, stderr says where they are not.
    assert code == 3 and out.startswith("path,kind,label") and str(shared_data / PHOTO) in out
    assert f"could not write the results to {out_file} (disk full)" in err
    # The failed write left the previous file intact and no temporary behind.
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
    assert out_file.read_text() == "previous results\n"


def test_cli_bad_arguments(capsys, tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["detect", str(tmp_path), "--frames", "0"])
    assert caught.value.code == 2 and "positive integer" in capsys.readouterr().err
    code, _, err = _detect(capsys, tmp_path, "--model", "dldfd_tiny")  # an empty folder
    assert code == 2 and "no image or video files" in err


@pytest.mark.parametrize(
    "text, expected",
    [("org/name", True), ("org/name-v1.2", True), ("name", False), ("a/b/c", False), ("./org/name", False),
     ("~/models", False), ("/abs/path", False), ("org/", False), ("org/na me", False), ("org\\name", False)],
)
def test_hub_ids_are_told_from_paths_the_same_way_for_models_and_corpora(text, expected):
    from dldfd_hf.training.data import CorpusError, load_corpus

    assert looks_like_hub_id(text) is expected
    if not expected and not Path(text).expanduser().exists():
        # Neither a folder nor an id: the corpus loader does not try the Hub.
        with pytest.raises(CorpusError, match="neither a folder nor a Hub dataset id"):
            load_corpus(text)
