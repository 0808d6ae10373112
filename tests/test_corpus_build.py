"""The FF++ corpus builder on a synth-ffpp tree made from real GRID clips: rows, fakes, resume after a
kill, shards + merge, corrupt videos, bad settings, Parquet export with the dataset card."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import DatasetDict, load_dataset, load_from_disk

from dldfd_hf.cli import build_parser
from dldfd_hf.cli import main as dldfd
from dldfd_hf.commands.build_ffpp import resolve_options
from dldfd_hf.data import DEFAULT_METHODS, index_ffpp, load_splits
from dldfd_hf.hub import push
from dldfd_hf.data.build import (
    WORK_DIR,
    BuildConfig,
    BuildError,
    WorkDir,
    build_corpus,
    corpus_features,
    merge_shards,
)
from dldfd_hf.data.ffpp import Splits, method_dir, original_dir
from dldfd_hf.data.report import read_report
from dldfd_hf.hub.push import PushResult
from dldfd_hf.media.video import evenly_spaced_indices
from dldfd_hf.media.video_reader import VideoReader
from tests.conftest import SYNTH_FFPP_COMPRESSION as COMPRESSION
from tests.conftest import SYNTH_FFPP_FRAMES_PER_VIDEO as FRAMES_PER_VIDEO
from tests.conftest import SYNTH_FFPP_MAX_FRAMES as VIDEO_FRAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = BuildConfig(compression=COMPRESSION, frames_per_video=FRAMES_PER_VIDEO)


def corpus_rows(corpus: Path, methods=None, video_ids=None) -> dict[str, list[dict]]:
    """Every row of every split (image bytes included), optionally only those of originals and
    ``methods`` and of ``video_ids``."""
    data = load_from_disk(str(corpus))
    names = data["train"].features["method"].names

    def keep(row: dict) -> bool:
        method_ok = methods is None or names[row["method"]] in {"original", *methods}
        return method_ok and (video_ids is None or row["video_id"] in video_ids)

    return {split: [r for r in ds.with_format("arrow")[:].to_pylist() if keep(r)] for split, ds in data.items()}


def train_pair_only(tree: Path, folder: Path) -> tuple[Path, set[str]]:
    """Split files with only the tree's training pair (validation/test empty), and its video ids."""
    a, b = load_splits(tree / "splits").pairs["train"][0]
    Splits({"train": ((a, b),), "validation": (), "test": ()}, "train pair").to_json_files(folder)
    return folder, {a, b, f"{a}_{b}", f"{b}_{a}"}


def assert_same_rows(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for split in expected:
        key = lambda r: (r["method"], r["video_id"], r["frame_index"])  # noqa: E731
        assert [key(r) for r in actual[split]] == [key(r) for r in expected[split]], split
        for a, e in zip(actual[split], expected[split]):
            assert a["image"] == e["image"] and a["label"] == e["label"] and a["compression"] == e["compression"]
            # MTCNN's float results may differ in the last bits with the torch thread count.
            np.testing.assert_allclose(a["box"], e["box"], rtol=1e-4)
            np.testing.assert_allclose(a["landmarks"], e["landmarks"], rtol=1e-4, atol=1e-3)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name or ".partial" in p.name]


def frame(path: Path, index: int) -> np.ndarray:
    with VideoReader(path) as reader:
        return reader.read([index])[0].image.astype(np.float64)


# --------------------------------------------------------------------------------------------


def test_corpus_rows_labels_methods_ids_and_frames(synth_ffpp_tree, synth_ffpp_corpus):
    corpus = load_from_disk(str(synth_ffpp_corpus))
    assert isinstance(corpus, DatasetDict) and list(corpus) == ["train", "validation", "test"]
    features = corpus["train"].features
    assert features == corpus_features()
    names = features["method"].names
    index = index_ffpp(synth_ffpp_tree, COMPRESSION, splits_dir=synth_ffpp_tree / "splits")
    expected_frames = evenly_spaced_indices(VIDEO_FRAMES, FRAMES_PER_VIDEO)
    for split, ds in corpus.items():
        table = ds.with_format("arrow")[:]
        videos = {}
        for row in table.select(["method", "video_id", "frame_index", "label", "compression"]).to_pylist():
            assert row["label"] == (0 if names[row["method"]] == "original" else 1)
            assert row["compression"] == COMPRESSION
            videos.setdefault((names[row["method"]], row["video_id"]), []).append(row["frame_index"])
        # Every video of the split, under its (method, video_id), with the sampled frames (GRID faces are
        # found in every frame).
        assert set(videos) == {(v.method, v.video_id) for v in index.select(split=split)}
        assert all(frames == expected_frames for frames in videos.values()), videos
        assert sum(1 for m, _ in videos if m == "original") == 2
        # image bytes are embedded (no paths), PNG, 224 x 224 RGB
        images = table.column("image").to_pylist()
        assert all(im["path"] is None and im["bytes"][:8] == b"\x89PNG\r\n\x1a\n" for im in images)
        row = ds[0]
        assert row["image"].size == (224, 224) and row["image"].mode == "RGB"
        assert 0.9 <= row["face_score"] <= 1.0
        x1, y1, x2, y2 = row["box"]
        assert 0 <= x1 < x2 <= 360 and 0 <= y1 < y2 <= 288  # GRID frames are 360 x 288
        marks = np.asarray(row["landmarks"])
        assert marks.shape == (5, 2) and (marks > 0).all() and (marks < 224).all()
        assert marks[0, 0] < marks[1, 0] and marks[2, 1] < marks[3, 1]  # eyes left->right, nose above mouth
    report = read_report(synth_ffpp_corpus)
    per_method = 2 * FRAMES_PER_VIDEO
    assert report["images"]["test"] == {"original": per_method, **{m: per_method for m in DEFAULT_METHODS}}
    assert report["failed"] == [] and json.loads((synth_ffpp_corpus / "failed.json").read_text()) == []
    assert not leftovers(synth_ffpp_corpus) and not (synth_ffpp_corpus / WORK_DIR / "cache").exists()


def test_every_fake_differs_from_its_original_in_the_face_only(synth_ffpp_tree, synth_ffpp_corpus):
    corpus = load_from_disk(str(synth_ffpp_corpus))
    names = corpus["train"].features["method"].names
    checked = 0
    for ds in corpus.values():
        for row in ds.select_columns(["method", "video_id", "frame_index", "box"]):
            method = names[row["method"]]
            if method == "original":
                continue
            target = row["video_id"].split("_")[0]
            fake = frame(method_dir(synth_ffpp_tree, method, COMPRESSION) / f"{row['video_id']}.mp4", row["frame_index"])
            real = frame(original_dir(synth_ffpp_tree, COMPRESSION) / f"{target}.mp4", row["frame_index"])
            diff = np.abs(fake - real).mean(axis=2)
            x1, y1, x2, y2 = row["box"]
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            face = diff[int(cy - 0.3 * h) : int(cy + 0.4 * h), int(cx - 0.3 * w) : int(cx + 0.3 * w)]
            yy, xx = np.mgrid[: diff.shape[0], : diff.shape[1]]
            rest = diff[(np.abs(xx - cx) > 0.75 * w) | (np.abs(yy - cy) > 0.75 * h)]  # outside 1.5x the box
            context = f"{method}/{row['video_id']} frame {row['frame_index']}: face {face.mean():.2f}, rest {rest.mean():.2f}"
            assert face.mean() > 2.5 and face.mean() > 3 * rest.mean(), context
            assert rest.mean() < 1.5, context  # only H.264 (c23) noise outside the face
            checked += 1
    assert checked == 3 * 8 * FRAMES_PER_VIDEO


def test_resume_after_killing_the_build_equals_an_uninterrupted_build(synth_ffpp_tree, synth_ffpp_corpus, tmp_path):
    """A 2-process build killed (SIGKILL) after a few videos, then resumed, gives the same rows as the
    uninterrupted fixture build: no video twice, none missing, nothing half-written left."""
    splits, video_ids = train_pair_only(synth_ffpp_tree, tmp_path / "splits")
    methods = ["Deepfakes", "Face2Face"]  # 2 originals + 4 fakes
    output = tmp_path / "corpus"
    args = [sys.executable, "-m", "dldfd_hf.cli", "build-ffpp", str(synth_ffpp_tree), str(output),
            "--compression", COMPRESSION, "--splits-dir", str(splits), "--frames-per-video", str(FRAMES_PER_VIDEO),
            "--methods", *methods, "--num-proc", "2", "--quiet"]
    process = subprocess.Popen(args, cwd=REPO_ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    units = output / WORK_DIR / "videos"
    deadline = time.monotonic() + 300
    try:
        while len(list(units.rglob("*.parquet"))) < 2:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the build recorded no video in 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the CLI process and its workers
        process.wait()
        process.stderr.close()
    done_before = len(list(units.rglob("*.parquet")))
    assert 2 <= done_before < 6 and not (output / "dataset_dict.json").exists()
    with pytest.raises(FileNotFoundError):
        load_from_disk(str(output))
    # what a kill in the middle of writing a unit leaves behind (the killed process's pid is gone)
    unit = WorkDir(output).unit_path("train", "original", "000")
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.with_name(f"{unit.name}.tmp-{socket.gethostname()}-{process.pid}-0123abcd").write_bytes(b"PAR1 half a file")

    summary = build_corpus(synth_ffpp_tree, output, CONFIG, methods=methods, splits_dir=splits, progress=False)
    assert summary.skipped == done_before and summary.built == 6 - done_before and summary.finalized
    assert not leftovers(output)
    assert_same_rows(corpus_rows(output), corpus_rows(synth_ffpp_corpus, methods, video_ids) | {"validation": [], "test": []})
    # resuming a finished build does nothing
    again = build_corpus(synth_ffpp_tree, output, CONFIG, methods=methods, splits_dir=splits, progress=False)
    assert (again.built, again.skipped) == (0, 6)


def test_shards_built_apart_merge_into_the_same_corpus(synth_ffpp_tree, synth_ffpp_corpus, tmp_path, capsys, monkeypatch):
    splits, video_ids = train_pair_only(synth_ffpp_tree, tmp_path / "splits")
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    built = []
    for i, folder in enumerate(shards):
        summary = build_corpus(synth_ffpp_tree, folder, CONFIG, methods=["FaceSwap"], splits_dir=splits,
                               shard_index=i, num_shards=2, progress=False)
        assert not summary.finalized and not (folder / "dataset_dict.json").exists()
        built.append(summary.built)
    assert built == [2, 2]  # the 2 fakes hash to shard 0, the 2 originals to shard 1
    with pytest.raises(BuildError, match=r"shard\(s\) \[1\] of 2 missing"):
        merge_shards(tmp_path / "merged", shards[:1], progress=False)
    assert not (tmp_path / "merged").exists()
    with pytest.raises(BuildError, match=r"shard\(s\) \[0\] of 2 found in more than one folder"):
        merge_shards(tmp_path / "merged", [shards[0], shards[0], shards[1]], progress=False)
    pushed = []
    monkeypatch.setattr(push, "push_corpus", lambda corpus, repo_id: pushed.append((corpus, repo_id)) or PushResult(
        repo_id, "dataset", True, ["README.md"], url="https://huggingface.co/datasets/me/crops"))
    merged = tmp_path / "merged"
    assert dldfd(["merge-ffpp", str(merged), *map(str, shards), "--parquet", str(tmp_path / "parquet"),
                  "--push-to-hub", "me/crops"]) == 0
    out = capsys.readouterr().out
    assert "Training" in out and "private dataset repo me/crops" in out
    assert pushed == [(str(merged), "me/crops")]  # the Hub upload itself is tested in test_push.py
    exported = load_dataset(str(tmp_path / "parquet"))
    assert list(exported) == ["train"] and exported["train"].num_rows == 4 * FRAMES_PER_VIDEO  # empty splits left out
    expected = corpus_rows(synth_ffpp_corpus, ["FaceSwap"], video_ids) | {"validation": [], "test": []}
    assert_same_rows(corpus_rows(tmp_path / "merged"), expected)


def test_corrupt_videos_are_skipped_listed_and_retried(synth_ffpp_tree, tmp_path):
    """One train pair, Deepfakes only, every frame: one fake is garbage, the other truncated."""
    root = tmp_path / "tree"
    for vid in ("000", "001"):
        target = original_dir(root, COMPRESSION) / f"{vid}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(original_dir(synth_ffpp_tree, COMPRESSION) / f"{vid}.mp4", target)
    fakes = method_dir(root, "Deepfakes", COMPRESSION)
    fakes.mkdir(parents=True)
    (fakes / "000_001.mp4").write_bytes(os.urandom(4000))
    good = (method_dir(synth_ffpp_tree, "Deepfakes", COMPRESSION) / "001_000.mp4").read_bytes()
    (fakes / "001_000.mp4").write_bytes(good[: len(good) // 2])
    Splits({"train": (("000", "001"),), "validation": (), "test": ()}, "test").to_json_files(tmp_path / "splits")
    output = tmp_path / "corpus"
    config = BuildConfig(compression=COMPRESSION, frames_per_video=None)  # every frame
    summary = build_corpus(root, output, config, methods=["Deepfakes"], splits_dir=tmp_path / "splits",
                           batch_size=4, progress=False)
    assert summary.built == 2 and sorted(r.video_id for r in summary.failed) == ["000_001", "001_000"]
    failed = json.loads((output / "failed.json").read_text())
    assert {f["video_id"] for f in failed} == {"000_001", "001_000"}
    assert all(f["error"].startswith(str(fakes / f"{f['video_id']}.mp4")) for f in failed)  # names the file
    corpus = load_from_disk(str(output))
    assert corpus["validation"].num_rows == corpus["test"].num_rows == 0
    train = corpus["train"].with_format("arrow")[:].to_pylist()
    # every frame of both originals (--frames-per-video all), streamed in batches of 4 frames
    assert [(r["video_id"], r["frame_index"]) for r in train] == [(v, i) for v in ("000", "001") for i in range(VIDEO_FRAMES)]
    unit = WorkDir(output).unit_path("train", "original", "000")
    assert pq.ParquetFile(unit).metadata.num_row_groups == 2  # 6 frames written as 4 + 2
    assert read_report(output)["failed"] == ["Deepfakes/000_001", "Deepfakes/001_000"]
    assert not leftovers(output) and not leftovers(root)

    # A rerun does not retry known failures; --retry-failed does, and a repaired video is then built.
    rerun = build_corpus(root, output, config, methods=["Deepfakes"], splits_dir=tmp_path / "splits", progress=False)
    assert (rerun.built, rerun.skipped, len(rerun.failed)) == (0, 4, 0)
    (fakes / "001_000.mp4").write_bytes(good)
    retry = build_corpus(root, output, config, methods=["Deepfakes"], splits_dir=tmp_path / "splits",
                         retry_failed=True, progress=False)
    assert retry.built == 1 and [r.video_id for r in retry.failed] == ["000_001"]
    assert [f["video_id"] for f in json.loads((output / "failed.json").read_text())] == ["000_001"]
    assert load_from_disk(str(output))["train"].num_rows == 3 * VIDEO_FRAMES


def test_resuming_with_other_settings_or_into_a_foreign_folder_is_refused(synth_ffpp_tree, synth_ffpp_corpus, tmp_path):
    other = BuildConfig(compression=COMPRESSION, frames_per_video=8)
    with pytest.raises(BuildError, match=f"started with other settings .*frames_per_video: built with {FRAMES_PER_VIDEO}, now 8"):
        build_corpus(synth_ffpp_tree, synth_ffpp_corpus, other, splits_dir=synth_ffpp_tree / "splits", progress=False)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not mine")
    with pytest.raises(BuildError, match="exists and is not a corpus folder .*holiday.jpg"):
        build_corpus(synth_ffpp_tree, foreign, CONFIG, splits_dir=synth_ffpp_tree / "splits", progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["holiday.jpg"]


def test_cli_errors_are_clear_and_write_nothing(synth_ffpp_tree, tmp_path, capsys):
    output = tmp_path / "corpus"
    assert dldfd(["build-ffpp", str(tmp_path / "nowhere"), str(output)]) == 2
    assert "error: FaceForensics++ root" in capsys.readouterr().err
    # the tree is c23: asking for c40 names the missing folders
    assert dldfd(["build-ffpp", str(synth_ffpp_tree), str(output), "--splits-dir", str(synth_ffpp_tree / "splits")]) == 2
    assert "missing folder original_sequences/youtube/c40/videos" in capsys.readouterr().err
    # the official splits list 1000 videos this tree lacks
    assert dldfd(["build-ffpp", str(synth_ffpp_tree), str(output), "--compression", COMPRESSION]) == 2
    assert "missing" in capsys.readouterr().err
    assert dldfd(["build-ffpp", str(synth_ffpp_tree), str(output), "--compression", COMPRESSION,
                  "--splits-dir", str(tmp_path / "no-splits")]) == 2
    assert "splits directory" in capsys.readouterr().err
    assert not output.exists()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["build-ffpp", "a", "b", "--frames-per-video", "some"])
    assert "expected a number of frames (>= 1) or 'all'" in capsys.readouterr().err


def test_paper_preset_and_explicit_options():
    parse = build_parser().parse_args
    config, methods = resolve_options(parse(["build-ffpp", "root", "out", "--preset", "paper"]))
    assert (config.compression, config.frames_per_video, methods) == ("c40", None, DEFAULT_METHODS)
    config, methods = resolve_options(parse(["build-ffpp", "root", "out", "--preset", "paper", "--frames-per-video", "8",
                                             "--methods", "FaceSwap", "--image-format", "jpeg"]))
    assert (config.compression, config.frames_per_video, methods, config.image_format) == ("c40", 8, ("FaceSwap",), "jpeg")
    config, _ = resolve_options(parse(["build-ffpp", "root", "out", "--frames-per-video", "all", "--compression", "c23"]))
    assert (config.compression, config.frames_per_video, config.crop_size) == ("c23", None, 224)
    with pytest.raises(ValueError, match="image_format must be one of png, jpeg"):
        BuildConfig(image_format="webp")


def test_index_cli_adds_the_corpus_images(synth_ffpp_tree, synth_ffpp_corpus, capsys):
    assert dldfd(["index-ffpp", str(synth_ffpp_tree), "--compression", COMPRESSION,
                  "--splits-dir", str(synth_ffpp_tree / "splits"), "--corpus", str(synth_ffpp_corpus)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    images, videos = lines.index(["Images"]), lines.index(["Videos"])
    assert lines[images + 2] == ["Training"] + [str(2 * FRAMES_PER_VIDEO)] * 5
    assert lines[videos + 2] == ["Training", "2", "2", "2", "2", "2"]


def test_parquet_export_loads_as_the_same_dataset_with_a_card(synth_ffpp_corpus, tmp_path):
    from dldfd_hf.data.publish import export_parquet

    dest = export_parquet(synth_ffpp_corpus, tmp_path / "export")
    assert sorted(p.name for p in (dest / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    exported = load_dataset(str(dest))
    original = load_from_disk(str(synth_ffpp_corpus))
    assert list(exported) == list(original)
    for split in original:
        assert exported[split].features == original[split].features
        assert exported[split].with_format("arrow")[:].to_pylist() == original[split].with_format("arrow")[:].to_pylist()
    card = (dest / "README.md").read_text()
    assert "license: other" in card and "private" in card and "faceforensics_tos.pdf" in card
    assert ["Training"] + [str(2 * FRAMES_PER_VIDEO)] * 5 in [line.split() for line in card.splitlines()]
    assert "pos_weight" in card and "0.2500" in card  # 1 real : 4 fake training crops
    with pytest.raises(FileExistsError):
        export_parquet(synth_ffpp_corpus, dest)
