"""``dldfd build-faces``: a real-faces corpus from any folder of videos and photos (rows, landmarks,
group-preserving splits, failures listed, resume)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import DatasetDict, load_from_disk
from PIL import Image

from dldfd_hf.cli import main as dldfd
from dldfd_hf.data.build import BuildError, WorkDir, corpus_features
from dldfd_hf.data.faces_corpus import FacesInputError, assign_splits, build_faces, group_of, index_media
from dldfd_hf.data.report import read_report
from dldfd_hf.media.video import evenly_spaced_indices
from dldfd_hf.media.video_reader import probe

FRAMES = 3
CROP = 96


@pytest.fixture(scope="module")
def media_dir(shared_data, tmp_path_factory) -> Path:
    """People's photos in one folder each, two talking-head clips at the top, and bad files."""
    root = tmp_path_factory.mktemp("faces-input") / "media"
    photos = sorted((shared_data / "faces" / "stargan-v2_celebahq").glob("*.jpg"))[:6]
    for person, pair in zip(("alice", "bob", "carol"), (photos[0:2], photos[2:4], photos[4:6])):
        (root / person).mkdir(parents=True)
        for photo in pair:
            (root / person / photo.name).symlink_to(photo)
    clips = sorted((shared_data / "videos" / "LipNet_GRID").glob("*.mpg"))[3:5]
    for i, clip in enumerate(clips):
        (root / f"talk{i}.mpg").symlink_to(clip)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    Image.new("RGB", (160, 120), (90, 140, 200)).save(root / "sky.png")  # a photo without a face
    (root / "notes.txt").write_text("not media\n")
    (root / ".hidden.jpg").write_bytes(b"skipped: hidden")
    return root


@pytest.fixture(scope="module")
def faces_corpus(media_dir, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("faces-corpus") / "corpus"
    index, summary = build_faces(media_dir, output, frames_per_video=FRAMES, crop_size=CROP, progress=False)
    assert summary.finalized and summary.built == 9 and [r.video_id for r in summary.failed] == ["broken.mp4"]
    return output


def test_rows_are_real_faces_with_landmarks_inside_the_crop(media_dir, faces_corpus):
    corpus = load_from_disk(str(faces_corpus))
    assert isinstance(corpus, DatasetDict) and list(corpus) == ["train", "validation", "test"]
    assert all(ds.features == corpus_features() for ds in corpus.values())
    rows = [row for ds in corpus.values() for row in ds]
    frames_of = {}
    for row in rows:
        assert row["label"] == 0 and row["method"] == 0 and row["compression"] == "source"
        assert row["image"].size == (CROP, CROP) and row["image"].mode == "RGB"
        marks = np.asarray(row["landmarks"])
        assert marks.shape == (5, 2) and (marks >= 0).all() and (marks <= CROP).all()
        assert marks[0, 0] < marks[1, 0] and marks[2, 1] < marks[3:, 1].min()  # eyes left->right, nose above mouth
        source = media_dir / row["video_id"]
        width, height = Image.open(source).size if source.suffix == ".jpg" else (probe(source).width, probe(source).height)
        x1, y1, x2, y2 = row["box"]
        assert 0 <= x1 < x2 <= width + 1 and 0 <= y1 < y2 <= height + 1
        assert 0.9 <= row["face_score"] <= 1.0
        frames_of.setdefault(row["video_id"], []).append(row["frame_index"])
    # video_id: the file's path under the input folder; photos are one frame, videos evenly sampled.
    photos = {f"{p}/{f.name}" for p in ("alice", "bob", "carol") for f in (media_dir / p).iterdir()}
    assert {v for v in frames_of if v.endswith(".jpg")} == photos
    assert all(frames_of[p] == [0] for p in photos)
    for clip in ("talk0.mpg", "talk1.mpg"):
        assert frames_of[clip] == evenly_spaced_indices(probe(media_dir / clip).frame_count, FRAMES)
    assert "sky.png" not in frames_of and "notes.txt" not in frames_of and ".hidden.jpg" not in frames_of


def test_splits_keep_each_group_together_and_are_deterministic(media_dir, faces_corpus):
    corpus = load_from_disk(str(faces_corpus))
    split_of = {row["video_id"]: split for split, ds in corpus.items() for row in ds.select_columns(["video_id"])}
    index = index_media(media_dir)
    expected = assign_splits([group_of(Path(item.video_id)) for item in index.files])
    for video_id, split in split_of.items():
        assert split == expected[group_of(Path(video_id))]
    # a person's photos never straddle splits, and validation and test each hold one group (7 groups)
    for person in ("alice", "bob", "carol"):
        assert len({s for v, s in split_of.items() if v.startswith(person + "/")}) == 1
    assert sorted(expected.values()).count("validation") == 1 and sorted(expected.values()).count("test") == 1
    # group_by="file": every file on its own
    assert group_of(Path("alice/x.jpg"), "file") == "alice/x.jpg" and group_of(Path("alice/x.jpg")) == "alice"


def test_assign_splits_is_a_function_of_the_group_names():
    groups = [f"person{i:02d}" for i in range(20)]
    first = assign_splits(groups)
    assert assign_splits(list(reversed(groups))) == first  # not the listing order
    assert sorted(first.values()).count("validation") == 2 and sorted(first.values()).count("test") == 2
    assert assign_splits(groups[:2]) == {"person00": "train", "person01": "train"}  # too few to hold any back
    three = assign_splits(groups[:3])
    assert sorted(three.values()) == ["test", "train", "validation"]
    with pytest.raises(ValueError, match="leave groups for training"):
        assign_splits(groups, 0.5, 0.5)
    with pytest.raises(ValueError, match="validation_fraction"):
        assign_splits(groups, -0.1)


def test_unreadable_files_are_listed_and_faceless_photos_reported(faces_corpus):
    failed = json.loads((faces_corpus / "failed.json").read_text())
    assert [f["video_id"] for f in failed] == ["broken.mp4"]
    assert "broken.mp4" in failed[0]["error"] and failed[0]["path"].endswith("broken.mp4")
    report = read_report(faces_corpus)
    assert report["failed"] == ["original/broken.mp4"]
    assert report["videos_without_face"] == ["original/sky.png"]
    assert report["methods"] == [] and sum(report["class_images"][s]["fake"] for s in report["class_images"]) == 0


def test_an_interrupted_build_resumes_without_duplicates(media_dir, faces_corpus, tmp_path):
    output = tmp_path / "corpus"
    shutil.copytree(faces_corpus, output)
    # What a kill leaves: no dataset_dict.json, a missing unit, a half-written temporary.
    (output / "dataset_dict.json").unlink()
    work = WorkDir(output)
    unit = next((work.path / "videos").rglob("talk0.mpg.parquet"))
    unit.unlink()
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()  # its pid names a process that no longer runs
    unit.with_name(f"{unit.name}.tmp-{socket.gethostname()}-{killed.pid}-0123abcd").write_bytes(b"PAR1 half a file")
    _, summary = build_faces(media_dir, output, frames_per_video=FRAMES, crop_size=CROP, progress=False)
    assert (summary.built, summary.skipped, len(summary.failed)) == (1, 9, 0)  # the failed file is not retried
    assert not [p for p in output.rglob("*") if ".tmp-" in p.name]
    before, after = load_from_disk(str(faces_corpus)), load_from_disk(str(output))
    for split in before:
        key = lambda ds: sorted(zip(ds["video_id"], ds["frame_index"]))  # noqa: E731
        assert key(after[split]) == key(before[split])
        assert [r["bytes"] for r in after[split].with_format("arrow")[:].column("image").to_pylist()] == [
            r["bytes"] for r in before[split].with_format("arrow")[:].column("image").to_pylist()
        ]
    # other settings are refused, naming the difference
    with pytest.raises(BuildError, match="frames_per_video: built with 3, now 4"):
        build_faces(media_dir, output, frames_per_video=FRAMES + 1, crop_size=CROP, progress=False)
    assert (output / "dataset_dict.json").is_file()


def test_cli_builds_reports_and_fails_clearly(media_dir, faces_corpus, tmp_path, capsys):
    only_people = tmp_path / "people"
    shutil.copytree(media_dir / "alice", only_people / "alice", symlinks=True)
    output = tmp_path / "corpus"
    assert dldfd(["build-faces", str(only_people), str(output), "--crop-size", "64", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 file(s) built" in out and f"corpus written to {output}" in out
    assert load_from_disk(str(output))["train"].num_rows == 2  # one group: everything trains

    assert dldfd(["build-faces", str(tmp_path / "missing"), str(tmp_path / "x"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    assert dldfd(["build-faces", str(empty), str(tmp_path / "y"), "--quiet"]) == 2
    assert "no videos or photos found" in capsys.readouterr().err and not (tmp_path / "y").exists()
    with pytest.raises(FacesInputError):
        index_media(empty)
    # a finished corpus resumed with other settings: refused, nothing rebuilt
    assert dldfd(["build-faces", str(media_dir), str(faces_corpus), "--frames-per-video", "3", "--crop-size", "64", "--quiet"]) == 2
    assert "other settings (crop_size: built with 96, now 64)" in capsys.readouterr().err
