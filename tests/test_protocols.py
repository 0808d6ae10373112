"""The paper's protocols (combined, single:<M>, cross:<M>) as views of a corpus, with class counts and
the BCE pos_weight."""

from __future__ import annotations

import io

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from PIL import Image

from dldfd_hf.data import DEFAULT_METHODS, METHOD_NAMES
from dldfd_hf.data.build import corpus_features
from dldfd_hf.data.protocols import Protocol, corpus_methods, parse_protocol, protocol_view

# rows per split and method of the hand-made corpus
COUNTS = {
    "train": {"original": 10, "Deepfakes": 3, "Face2Face": 5, "FaceSwap": 2, "NeuralTextures": 6},
    "validation": {"original": 4, "Deepfakes": 1, "Face2Face": 2, "FaceSwap": 3, "NeuralTextures": 1},
    "test": {"original": 5, "Deepfakes": 2, "Face2Face": 1, "FaceSwap": 4, "NeuralTextures": 3},
}


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus() -> DatasetDict:
    splits = {}
    for split, counts in COUNTS.items():
        rows = []
        for method, n in counts.items():
            for i in range(n):
                rows.append({
                    "image": {"bytes": _png(len(rows)), "path": None},
                    "label": int(method != "original"),
                    "method": METHOD_NAMES.index(method),
                    "video_id": f"{i:03d}" if method == "original" else f"{i:03d}_{i + 1:03d}",
                    "frame_index": i,
                    "box": [0.0, 0.0, 4.0, 4.0],
                    "face_score": 0.99,
                    "landmarks": [[1.0, 1.0]] * 5,
                    "compression": "c40",
                })
        splits[split] = Dataset.from_list(rows, features=corpus_features())
    return DatasetDict(splits)


def _methods_of(ds: Dataset) -> set[str]:
    return {METHOD_NAMES[m] for m in ds["method"]}


def test_combined_is_real_versus_every_method(corpus):
    view = protocol_view(corpus, "combined")
    for split, counts in COUNTS.items():
        fake = sum(n for m, n in counts.items() if m != "original")
        assert view.class_counts[split] == {"real": counts["original"], "fake": fake}
        assert view.splits[split].num_rows == counts["original"] + fake
        assert view.methods[split] == DEFAULT_METHODS
    assert view.pos_weight == pytest.approx(10 / 16)
    assert view.train.features == corpus["train"].features


@pytest.mark.parametrize("method", DEFAULT_METHODS)
def test_single_is_real_versus_one_method(corpus, method):
    view = protocol_view(corpus, f"single:{method}")
    assert view.name == f"single:{method}"
    for split, counts in COUNTS.items():
        ds = view.splits[split]
        assert _methods_of(ds) == {"original", method}
        assert view.class_counts[split] == {"real": counts["original"], "fake": counts[method]}
        assert list(ds["label"]).count(1) == counts[method]
    assert view.pos_weight == pytest.approx(COUNTS["train"]["original"] / COUNTS["train"][method])


@pytest.mark.parametrize("held_out", DEFAULT_METHODS)
def test_cross_trains_on_three_methods_and_tests_on_the_held_out_one(corpus, held_out):
    view = protocol_view(corpus, f"cross:{held_out}")
    others = {m for m in DEFAULT_METHODS if m != held_out}
    for split in ("train", "validation"):
        assert _methods_of(view.splits[split]) == {"original"} | others
        assert view.class_counts[split]["fake"] == sum(COUNTS[split][m] for m in others)
    assert _methods_of(view.test) == {"original", held_out}
    assert view.class_counts["test"] == {"real": 5, "fake": COUNTS["test"][held_out]}
    train_fake = sum(COUNTS["train"][m] for m in others)
    assert view.pos_weight == pytest.approx(10 / train_fake)


def test_views_select_the_corpus_rows_without_copying_images(corpus):
    view = protocol_view(corpus, "single:FaceSwap")
    rows = view.test.select_columns(["method", "video_id", "frame_index"]).to_list()
    expected = [r for r in corpus["test"].select_columns(["method", "video_id", "frame_index"]).to_list()
                if METHOD_NAMES[r["method"]] in ("original", "FaceSwap")]
    assert rows == expected
    image = view.test[-1]["image"]  # decodes like the corpus' own rows
    assert np.asarray(image).shape == (4, 4, 3)
    assert "pos_weight 5.0000" in view.summary()


def test_protocol_names_are_checked(corpus):
    available = corpus_methods(corpus)
    assert available == DEFAULT_METHODS
    assert parse_protocol("cross:Face2Face", available) == Protocol("cross", "Face2Face")
    with pytest.raises(ValueError, match="unknown protocol 'leave-one-out'"):
        parse_protocol("leave-one-out")
    with pytest.raises(ValueError, match="needs a method, e.g. 'single:Deepfakes'"):
        parse_protocol("single")
    with pytest.raises(ValueError, match="'combined' takes no method"):
        parse_protocol("combined:Deepfakes")
    with pytest.raises(ValueError, match="the corpus has no method 'FaceShifter'"):
        protocol_view(corpus, "single:FaceShifter")
    with pytest.raises(ValueError, match="corpus lacks split"):
        protocol_view(DatasetDict({"train": corpus["train"]}), "combined")


def test_protocols_on_a_built_corpus_folder(synth_ffpp_corpus):
    """The synth-ffpp corpus: 2 real and 2 fake videos per method in every split."""
    from tests.conftest import SYNTH_FFPP_FRAMES_PER_VIDEO as FRAMES

    combined = protocol_view(str(synth_ffpp_corpus), "combined")
    assert combined.class_counts == {s: {"real": 2 * FRAMES, "fake": 8 * FRAMES} for s in ("train", "validation", "test")}
    assert combined.pos_weight == pytest.approx(0.25)  # FF++'s 1 real : 4 fake
    cross = protocol_view(str(synth_ffpp_corpus), "cross:NeuralTextures")
    assert cross.class_counts["train"] == {"real": 2 * FRAMES, "fake": 6 * FRAMES}
    assert cross.class_counts["test"] == {"real": 2 * FRAMES, "fake": 2 * FRAMES}
    assert {row["video_id"] for row in cross.test.select_columns(["video_id"])} == {"004", "005", "004_005", "005_004"}
