"""Several corpora in one training run (dldfd_hf.training.sources): merged splits, each source's
share of an epoch, per-source metrics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from dldfd_hf.training.evaluation import Predictions, split_metrics
from dldfd_hf.training.pseudo_fakes import expected_class_counts
from dldfd_hf.training.sources import SourceMixSampler, merge_splits, source_quotas


def _split(methods: list[str], rows: list[tuple[int, str, str]]) -> Dataset:
    features = Features({"label": ClassLabel(names=["real", "fake"]), "method": ClassLabel(names=methods),
                        "video_id": Value("string")})
    return Dataset.from_dict({"label": [r[0] for r in rows], "method": [methods.index(r[1]) for r in rows],
                              "video_id": [r[2] for r in rows]}, features=features)


def test_merge_keeps_every_method_name_and_never_joins_videos_of_two_sources():
    ffpp = _split(["original", "Deepfakes"], [(0, "original", "000"), (1, "Deepfakes", "000_003")])
    faces = _split(["original", "SelfBlended"], [(0, "original", "000"), (1, "SelfBlended", "000")])
    merged = merge_splits({"ffpp": ffpp, "faces": faces})
    assert merged.features["method"].names == ["original", "Deepfakes", "SelfBlended"]
    assert merged.features["method"].int2str(merged["method"]) == ["original", "Deepfakes", "original", "SelfBlended"]
    assert merged["video_id"] == ["ffpp/000", "ffpp/000_003", "faces/000", "faces/000"]
    assert merged["source"] == ["ffpp", "ffpp", "faces", "faces"]
    assert merged["label"] == [0, 1, 0, 1]


def test_each_source_gets_its_share_of_an_epoch_whatever_its_size():
    sources = ["small"] * 10 + ["large"] * 990
    sampler = SourceMixSampler(sources, {"small": 1.0, "large": 1.0}, seed=0, epoch_rows=200)
    assert len(sampler) == 200
    drawn = [row for row, _ in sampler]
    by_source = Counter(sources[row] for row in drawn)
    assert by_source == {"small": 100, "large": 100}
    # The small source repeats its rows evenly (a fresh permutation each pass), 10 times each.
    assert set(Counter(r for r in drawn if r < 10).values()) == {10}
    # The large one takes other rows next epoch: no row of it twice in two epochs.
    sampler.set_epoch(1)
    next_epoch = [row for row, _ in sampler]
    large = [r for r in drawn + next_epoch if r >= 10]
    assert len(large) == len(set(large)) == 200


def test_an_epoch_is_a_pure_function_of_seed_and_epoch():
    sources = ["a"] * 30 + ["b"] * 70
    first, second = (SourceMixSampler(sources, {"a": 2.0, "b": 1.0}, seed=5) for _ in range(2))
    first.set_epoch(3)
    second.set_epoch(3)
    assert list(first) == list(second)
    assert Counter(sources[r] for r, _ in first) == {"a": 67, "b": 33}
    second.set_epoch(4)
    assert list(first) != list(second)
    with pytest.raises(ValueError, match="no weight for source"):
        SourceMixSampler(sources, {"a": 1.0}, seed=0)


def test_an_epochs_classes_follow_the_quotas_and_the_pairs():
    labels = [0] * 20 + [1] * 80 + [0] * 100   # ffpp: 20% real; faces: all real
    sources = ["ffpp"] * 100 + ["faces"] * 100
    quotas = source_quotas({"ffpp": 100, "faces": 100}, {"ffpp": 1.0, "faces": 1.0}, 100)
    assert quotas == {"ffpp": 50, "faces": 50}
    drawn = SourceMixSampler(sources, {"ffpp": 1.0, "faces": 1.0}, seed=0, epoch_rows=100, labels=labels).drawn_per_label()
    counts = {"real": drawn[0], "fake": drawn[1]}
    assert expected_class_counts(counts, "none", 0.5) == {"real": 60.0, "fake": 40.0}
    # Pairs: every real drawn also comes as its pseudo-fake.
    assert expected_class_counts(counts, "sbi+ffpp", 0.5, pairs=True) == {"real": 60.0, "fake": 100.0}


def test_split_metrics_report_each_source_alone():
    ffpp = _split(["original", "Deepfakes"], [(0, "original", "000"), (1, "Deepfakes", "000_003")] * 2)
    faces = _split(["original", "SelfBlended"], [(0, "original", "p1"), (1, "SelfBlended", "p1")] * 2)
    merged = merge_splits({"ffpp": ffpp, "faces": faces})
    labels = np.asarray(merged["label"])
    # Perfect on ffpp, inverted on faces.
    probs = np.where((np.asarray(merged["source"]) == "ffpp") == (labels == 1), 0.9, 0.1)
    metrics = split_metrics(merged, Predictions(np.arange(8), labels, probs, loss=0.3))
    assert metrics["per_source"]["ffpp"]["frame"]["auc"] == 1.0
    assert metrics["per_source"]["faces"]["frame"]["auc"] == 0.0
    assert metrics["frame"]["auc"] == pytest.approx(0.5)
    assert "SelfBlended" not in metrics["per_source"]["ffpp"]["per_method"]
    assert "Deepfakes" not in metrics["per_source"]["faces"]["per_method"]


def test_pairs_over_a_mix_yield_exactly_their_length_every_epoch():
    from dldfd_hf.training.pseudo_fakes import PseudoFakePairs

    labels = [0] * 40 + [1] * 60 + [0] * 300
    sources = ["ffpp"] * 100 + ["faces"] * 300
    mix = SourceMixSampler(sources, {"ffpp": 1.0, "faces": 1.0}, seed=1, epoch_rows=150, labels=labels)
    assert mix.drawn_per_label() == {0: 105, 1: 45}  # ffpp's 75 rows shared 30 real / 45 fake
    pairs = PseudoFakePairs(mix, labels)
    for epoch in range(3):
        pairs.set_epoch(epoch)
        items = list(pairs)
        assert len(items) == len(pairs) == 150 + 105
        assert sum(1 for item in items if len(item) == 3 and item[2] == 1) == 105
