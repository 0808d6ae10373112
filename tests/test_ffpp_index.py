"""FF++ layout validation, the official splits and the video index (no decoding: placeholder files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dldfd_hf.cli import main as cli
from dldfd_hf.data import DEFAULT_METHODS, FFPPLayoutError, SplitFileError, index_ffpp, load_splits
from dldfd_hf.data.ffpp import Splits, method_dir, official_splits_dir, original_dir


def make_placeholder_tree(root: Path, compression: str = "c40", methods=DEFAULT_METHODS, splits: Splits | None = None) -> Path:
    splits = splits or load_splits()
    folder = original_dir(root, compression)
    folder.mkdir(parents=True)
    for vid in splits.originals:
        (folder / f"{vid}.mp4").touch()
    for method in methods:
        folder = method_dir(root, method, compression)
        folder.mkdir(parents=True)
        for vid in splits.fakes:
            (folder / f"{vid}.mp4").touch()
    return root


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory) -> Path:
    """1000 originals + 4 x 1000 fakes, empty files, named as in FF++."""
    return make_placeholder_tree(tmp_path_factory.mktemp("ffpp") / "FaceForensics++")


@pytest.fixture()
def tree_copy(full_tree, tmp_path) -> Path:
    return Path(shutil.copytree(full_tree, tmp_path / "ffpp"))


def test_official_splits_are_packaged_with_their_licence():
    folder = official_splits_dir()
    assert {p.name for p in folder.iterdir()} >= {"train.json", "val.json", "test.json", "LICENSE"}
    notice = (folder / "LICENSE").read_text()  # the FaceForensics repository's MIT notice
    assert "Rössler" in notice and "Permission is hereby granted, free of charge" in notice
    splits = load_splits()
    assert {s: len(p) for s, p in splits.pairs.items()} == {"train": 360, "validation": 70, "test": 70}
    assert sorted(splits.originals) == [f"{i:03d}" for i in range(1000)]
    assert len(splits.fakes) == 1000
    a, b = splits.pairs["validation"][0]
    assert splits.fakes[f"{a}_{b}"] == splits.fakes[f"{b}_{a}"] == splits.originals[a] == "validation"


def test_index_gives_720_140_140_videos_per_class_and_split(full_tree):
    index = index_ffpp(full_tree)
    assert len(index) == 5000 and not index.missing and not index.unlisted
    expected = {"train": 720, "validation": 140, "test": 140}
    for split, counts in index.counts().items():
        assert counts == {m: expected[split] for m in ("original", *DEFAULT_METHODS)}, split
    assert index.class_counts() == {s: {"real": n, "fake": 4 * n} for s, n in expected.items()}
    assert len({(v.method, v.video_id) for v in index.videos}) == 5000  # (method, video_id) identifies a video
    video = index.select(split="test", method="FaceSwap")[0]
    assert video.label == 1 and video.path == method_dir(full_tree, "FaceSwap", "c40") / f"{video.video_id}.mp4"
    assert all(v.label == 0 for v in index.select(method="original"))
    # no identity crosses splits: a fake's target and source are originals of its own split
    split_of = {v.video_id: v.split for v in index.select(method="original")}
    for v in index.select(method="Deepfakes"):
        target, source = v.video_id.split("_")
        assert split_of[target] == split_of[source] == v.split


def test_index_cli_prints_table_1(full_tree, capsys):
    assert cli(["index-ffpp", str(full_tree)]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert ["Phase", "Pristine", "NT", "DF", "FS", "F2F"] in lines
    assert ["Training", "720", "720", "720", "720", "720"] in lines
    assert ["Validation", "140", "140", "140", "140", "140"] in lines
    assert ["Testing", "140", "140", "140", "140", "140"] in lines


def test_index_cli_json_lists_every_video(full_tree, capsys):
    assert cli(["index-ffpp", str(full_tree), "--methods", "Deepfakes", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2000
    assert {(r["method"], r["label"]) for r in rows} == {("original", 0), ("Deepfakes", 1)}


def test_custom_splits_dir_overrides_the_official_splits(tmp_path):
    custom = Splits({"train": (("000", "001"),), "validation": (("002", "003"),), "test": (("004", "005"),)}, "custom")
    custom.to_json_files(tmp_path / "splits")
    root = make_placeholder_tree(tmp_path / "tree", compression="c23", methods=("FaceShifter",), splits=custom)
    index = index_ffpp(root, "c23", ["FaceShifter"], splits_dir=tmp_path / "splits")
    assert index.counts() == {s: {"original": 2, "FaceShifter": 2} for s in ("train", "validation", "test")}
    assert {v.video_id for v in index.select("test", "FaceShifter")} == {"004_005", "005_004"}


def test_wrong_root_is_reported(tmp_path):
    with pytest.raises(FFPPLayoutError, match="does not exist"):
        index_ffpp(tmp_path / "nowhere")
    (tmp_path / "videos").mkdir()
    with pytest.raises(FFPPLayoutError, match=r"not a FaceForensics\+\+ tree: expected original_sequences/.*found.*videos"):
        index_ffpp(tmp_path)


def test_missing_folders_name_what_was_expected_and_found(tree_copy):
    shutil.rmtree(tree_copy / "manipulated_sequences" / "FaceSwap")
    with pytest.raises(FFPPLayoutError) as error:
        index_ffpp(tree_copy)
    message = str(error.value)
    assert "missing folder manipulated_sequences/FaceSwap/c40/videos" in message
    assert "manipulated_sequences/Deepfakes: c40" in message  # what was found
    with pytest.raises(FFPPLayoutError, match="missing folder original_sequences/youtube/c23/videos"):
        index_ffpp(tree_copy, compression="c23")


def test_unexpected_file_names_are_listed(tree_copy):
    folder = method_dir(tree_copy, "Face2Face", "c40")
    (folder / "000-003.mp4").touch()
    (folder / "notes.txt").touch()
    (folder / ".DS_Store").touch()  # hidden files are ignored
    with pytest.raises(FFPPLayoutError) as error:
        index_ffpp(tree_copy)
    message = str(error.value)
    assert "Face2Face/c40/videos: 2 unexpected name(s)" in message
    assert "<target>_<source>.mp4" in message and "000-003.mp4" in message and "notes.txt" in message


def test_missing_videos_fail_unless_allowed(tree_copy):
    (method_dir(tree_copy, "Deepfakes", "c40") / "071_054.mp4").unlink()
    (original_dir(tree_copy, "c40") / "999.mp4").unlink()
    with pytest.raises(FFPPLayoutError, match=r"2 video\(s\) listed in the splits .* missing.*071_054\.mp4.*allow-missing"):
        index_ffpp(tree_copy)
    index = index_ffpp(tree_copy, allow_missing=True)
    assert len(index) == 4998
    assert ("train", "Deepfakes", "071_054") in index.missing
    assert index.counts()["train"]["Deepfakes"] == 719  # like the paper's 719 F2F training videos


def test_missing_and_malformed_split_files(tmp_path, full_tree):
    splits = tmp_path / "splits"
    splits.mkdir()
    shutil.copy(official_splits_dir() / "train.json", splits)
    with pytest.raises(SplitFileError, match=r"val\.json, test\.json missing in .*splits.*found: train\.json"):
        index_ffpp(full_tree, splits_dir=splits)
    with pytest.raises(SplitFileError, match="does not exist"):
        load_splits(tmp_path / "absent")
    shutil.copy(official_splits_dir() / "val.json", splits)
    (splits / "test.json").write_text("[[\"000\", \"001\"")
    with pytest.raises(SplitFileError, match=r"test\.json is not valid JSON"):
        load_splits(splits)
    (splits / "test.json").write_text('[["900", "901", "902"]]')
    with pytest.raises(SplitFileError, match=r"test\.json: entry 0 .* expected a pair"):
        load_splits(splits)
    (splits / "test.json").write_text('[["071", "999"]]')  # 071 is a training video
    with pytest.raises(SplitFileError, match=r"test\.json: video '071' .* already listed in train\.json"):
        load_splits(splits)


def test_cli_reports_layout_errors_without_traceback(tmp_path, capsys):
    assert cli(["index-ffpp", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a FaceForensics++ tree" in err and "Traceback" not in err


def test_deepfakedetection_goes_to_test_with_the_actor_originals(tmp_path):
    root = make_placeholder_tree(tmp_path / "tree", methods=())
    actors = original_dir(root, "c40", source="actors")
    actors.mkdir(parents=True)
    (actors / "01__walking_down_street.mp4").touch()
    fakes = method_dir(root, "DeepFakeDetection", "c40")
    fakes.mkdir(parents=True)
    (fakes / "01_02__walking_down_street__YVGY8LOK.mp4").touch()
    index = index_ffpp(root, methods=["DeepFakeDetection"])
    dfd = index.select(method="DeepFakeDetection")
    assert [(v.split, v.video_id) for v in dfd] == [("test", "01_02__walking_down_street__YVGY8LOK")]
    assert ("test", "original", "01__walking_down_street") in {(v.split, v.method, v.video_id) for v in index.videos}
    assert index.counts()["test"]["original"] == 141


def test_unknown_method_and_compression_are_rejected(full_tree):
    with pytest.raises(ValueError, match="unknown method.*DeepFake\\b"):
        index_ffpp(full_tree, methods=["DeepFake"])
    with pytest.raises(ValueError, match="compression must be one of raw, c23, c40"):
        index_ffpp(full_tree, compression="c35")


def test_the_real_ffpp_c23_subset_indexes_by_the_official_splits(shared_data, capsys):
    """../shared/data/ffpp_c23: real FaceForensics++ c23 videos in the official layout (a subset)."""
    root = shared_data / "ffpp_c23"
    if not root.is_dir():
        pytest.skip(f"the real FF++ c23 subset is not at {root}")
    methods = ("Deepfakes", "Face2Face", "FaceSwap")
    with pytest.raises(FFPPLayoutError, match="missing"):
        index_ffpp(root, compression="c23", methods=methods)  # a subset: the splits list far more
    index = index_ffpp(root, compression="c23", methods=methods, allow_missing=True)
    per_split = {split: {"real": 0, "fake": 0} for split in ("train", "validation", "test")}
    for video in index.videos:
        per_split[video.split]["fake" if video.label else "real"] += 1
        assert video.path.is_file() and video.path.suffix == ".mp4"
    assert per_split == {"train": {"real": 22, "fake": 23}, "validation": {"real": 7, "fake": 7},
                         "test": {"real": 5, "fake": 5}}
    assert cli(["index-ffpp", str(root), "--compression", "c23", "--methods", *methods, "--allow-missing"]) == 0
    assert "Training          22  14   4    5" in capsys.readouterr().out
