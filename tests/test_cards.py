"""Model cards: metadata and model-index from the real evaluation JSON, honest when results are absent."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import timm
from datasets import ClassLabel, Dataset, Features, Value
from huggingface_hub import ModelCard

from dldfd_hf.hub.cards import METRICS, render_model_card, training_details
from dldfd_hf.data.build import BuildConfig
from dldfd_hf.data.ffpp import METHOD_NAMES
from dldfd_hf.hub.export import export_model
from dldfd_hf.model_folder import hub_config
from dldfd_hf.metrics.paper import PAPER_TCR
from dldfd_hf.metrics.results import EvaluationEntry, load_evaluation
from dldfd_hf.training.config import TrainingConfig
from dldfd_hf.training.evaluation import Predictions, evaluation_entry


PROTOCOLS = {  # protocol -> the fake methods of its test split
    "combined": ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"),
    "single:Deepfakes": ("Deepfakes",),
    "cross:FaceSwap": ("FaceSwap",),
}


def _test_split(methods, seed: int, videos_per_method: int = 3, frames: int = 4):
    """A test split (method / video_id / label columns) and predictions that are right more often than not."""
    rng = np.random.default_rng(seed)
    rows = {"method": [], "video_id": [], "label": []}
    for method in ("original", *methods):
        for v in range(videos_per_method):
            video_id = f"{v:03d}" if method == "original" else f"{v:03d}_{v + 1:03d}"  # fake ids repeat per method
            for _ in range(frames):
                rows["method"].append(method)
                rows["video_id"].append(video_id)
                rows["label"].append(int(method != "original"))
    features = Features({"method": ClassLabel(names=list(METHOD_NAMES)), "video_id": Value("string"),
                         "label": ClassLabel(names=["real", "fake"])})
    dataset = Dataset.from_dict(rows, features=features)
    labels = np.asarray(rows["label"])
    probs = np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.25, labels.size), 0, 1)
    return dataset, Predictions(index=np.arange(labels.size), labels=labels, fake_probs=probs)


@pytest.fixture(scope="module")
def eval_json(tmp_path_factory):
    """The evaluation JSON as examples/evaluate.py writes it ("dldfd-eval/1"), entries made by its own code."""
    results = []
    for seed, (protocol, methods) in enumerate(PROTOCOLS.items()):
        dataset, predictions = _test_split(methods, seed)
        results.append(evaluation_entry(protocol, "test", dataset, predictions))
    path = tmp_path_factory.mktemp("eval") / "eval_all.json"
    report = {"format": "dldfd-eval/1", "model": "runs/x/best", "data": "org/corpus", "split": "test",
              "strategy": "majority", "threshold": 0.5, "skipped_protocols": {}, "results": results}
    path.write_text(json.dumps(report, indent=2))
    return path


def _expected_metrics(path) -> dict:
    expected = {}
    for entry in json.loads(path.read_text())["results"]:
        for level in ("frame", "video"):
            for name, value in entry["metrics"][level].items():
                if name in METRICS and value is not None:
                    expected[(entry["protocol"], level, name)] = value
    return expected


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_card_metadata_and_model_index_match_the_evaluation_json(eval_json, trained_tiny, tmp_path):
    folder = export_model(trained_tiny, tmp_path / "m", repo_id="org/dldfd-tiny", results=eval_json)
    card = ModelCard.load(folder / "README.md")
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "timm"
    assert data.pipeline_tag == "image-classification"
    assert {"deepfake-detection", "dldfd", "timm", "transformers"} <= set(data.tags)
    assert data.datasets == ["FaceForensics++"]
    assert data.base_model is None  # dldfd_tiny's backbone has no ImageNet weights
    got = {}
    for result in data.eval_results:
        level = {"image-classification": "frame", "video-classification": "video"}[result.task_type]
        assert result.dataset_split == "test"
        got[(result.dataset_args["protocol"], level, result.metric_config)] = result.metric_value
    expected = _expected_metrics(eval_json)
    assert len(expected) >= 20  # frame: 5 metrics, video: 4, per protocol
    assert got == expected
    # each protocol and level is its own model-index group, so nothing is merged on the Hub
    assert len({(r.task_type, r.dataset_config) for r in data.eval_results}) == 2 * len(PROTOCOLS)


def test_card_results_table_puts_ours_beside_the_paper(eval_json, trained_tiny, tmp_path):
    folder = export_model(trained_tiny, tmp_path / "m", results=eval_json)
    evaluation = _section((folder / "README.md").read_text(), "Evaluation")
    results = {e["protocol"]: e["metrics"] for e in json.loads(eval_json.read_text())["results"]}
    lines = {name: next(line for line in evaluation.splitlines() if line.startswith(prefix))
             for name, prefix in (("combined", "| DF, F2F, FS, NT | DF, F2F, FS, NT |"),
                                  ("single:Deepfakes", "| DF | DF |"), ("cross:FaceSwap", "| DF, F2F, NT | FS |"))}
    for protocol, line in lines.items():
        cells = [c.strip() for c in line.strip("|").split("|")]
        metrics = results[protocol]
        assert cells[2] == f"{PAPER_TCR[protocol]:.2f}"
        assert cells[3] == f"{100 * metrics['frame']['tcr']:.2f}"
        assert cells[6] == f"{100 * metrics['video']['tcr']:.2f}"
        assert cells[8] == f"{100 * metrics['video']['auc']:.2f}"
    assert "**Combined evaluation**" in evaluation and "**Cross evaluation**" in evaluation
    assert "The test split of FaceForensics++ (from `eval_all.json`)" in evaluation
    assert "takes the majority vote of a video's frames" in evaluation
    combined = next(e for e in json.loads(eval_json.read_text())["results"] if e["protocol"] == "combined")
    video = combined["metrics"]["video"]
    share = 100 * video["num_fake"] / video["num_videos"]  # always answering "fake" scores this TCR
    assert f"{share:.2f}% of the videos in the `combined` test split are fake" in evaluation


def test_card_without_results_says_so_and_contains_no_numbers(trained_tiny, tmp_path):
    folder = export_model(trained_tiny, tmp_path / "m", repo_id="org/dldfd-tiny")
    text = (folder / "README.md").read_text()
    card = ModelCard.load(folder / "README.md")
    assert card.data.eval_results is None and "model-index" not in text
    evaluation = _section(text, "Evaluation")
    assert "No evaluation results are recorded" in evaluation
    assert not re.search(r"\d", evaluation)
    # no metric value, ours or the paper's, anywhere in the card: no percentages, no "96.07" / "0.93"
    assert "%" not in card.text
    assert not re.findall(r"\b\d{1,3}\.\d{1,2}\b", card.text)


def test_untrained_export_warns_at_the_top_of_its_card(trained_tiny, tmp_path):
    untrained = export_model(timm.create_model("dldfd_tiny"), tmp_path / "untrained")
    head = ModelCard.load(untrained / "README.md").text.split("## Model")[0]
    assert "[!WARNING]" in head and "not a trained detector" in head
    trained = export_model(trained_tiny, tmp_path / "trained")
    assert "[!WARNING]" not in (trained / "README.md").read_text()
    marked = export_model(trained_tiny, tmp_path / "marked", trained=False)  # the caller knows better
    assert "not a trained detector" in (marked / "README.md").read_text()


def test_training_details_come_from_the_training_run(eval_json, trained_tiny, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "build_report.json").write_text(json.dumps({"config": BuildConfig(frames_per_video=8).to_dict()}))
    config = TrainingConfig(data=str(corpus), model="dldfd_tiny", epochs=3, output_dir=str(tmp_path / "run"))
    entry = json.loads(eval_json.read_text())["results"][0]
    run = {"format": "dldfd-train-results/1", "data": str(corpus), "protocol": "combined", "model": "dldfd_tiny",
           "config": config.to_dict(), "pos_weight": 0.25, "num_processes": 2,
           "best": {"metric": "frame/balanced_accuracy", "value": 0.9, "epoch": 2, "path": "best"},
           "validation_history": [], "test": entry}
    run_path = tmp_path / "results.json"
    run_path.write_text(json.dumps(run))

    details = training_details(run_path)
    assert details["frames_per_video"] == 8 and details["compression"] == "c40" and details["scale"] == 1.3
    assert details["epochs"] == 3 and details["pos_weight"] == 0.25 and details["best_epoch"] == 2
    assert "data" not in details and "output_dir" not in details

    # train.py's results.json is also accepted as the results: its "test" entry
    report = load_evaluation(run_path)
    assert [r.protocol for r in report.results] == ["combined"] and report.compression == "c40"

    folder = export_model(trained_tiny, tmp_path / "m", results=run_path, training=details)
    training = _section((folder / "README.md").read_text(), "Training")
    assert "| frames per video | 8 |" in training
    assert "| learning rate (Adam) | 0.001 |" in training
    assert "| BCE pos_weight (fake class) | 0.25 |" in training
    assert str(tmp_path) not in (folder / "README.md").read_text()  # no local paths on a public card


def test_base_model_names_the_imagenet_checkpoint():
    config = hub_config(timm.create_model("dldfd_tiny"))
    config.update(backbone="resnet50.tv_in1k", architecture="dldfd_resnet50")
    assert render_model_card(config, training={"pretrained_backbone": True}).data.base_model == "timm/resnet50.tv_in1k"
    assert render_model_card(config, training={"pretrained_backbone": False}).data.base_model is None
    assert render_model_card(config).data.base_model is None  # unknown: not claimed


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ('{"results": []}', "the results list is empty"),
    ('{"results": [{"protocol": "sideways", "metrics": {"frame": {"tcr": 0.5}}}]}', "unknown protocol 'sideways'"),
    ('{"results": [{"protocol": "combined", "metrics": {"frame": {"tcr": 97.1}}}]}', r"tcr = 97\.1.*fractions"),
    ('{"results": [{"protocol": "combined", "metrics": {}}]}', "no frame-level or video-level metrics"),
    ('{"test": null, "config": {}}', "no test metrics yet"),
    ('{"accuracy": 0.9}', "no evaluation results found"),
])
def test_bad_results_files_are_rejected_naming_the_file(tmp_path, content, message):
    path = tmp_path / "eval.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        load_evaluation(path)
    assert str(path) in str(error.value)


def test_evaluation_entry_round_trips_what_the_writer_wrote(eval_json):
    written = json.loads(eval_json.read_text())["results"]
    entries = [EvaluationEntry.from_dict(entry) for entry in written]
    assert [entry.to_dict() for entry in entries] == written  # same keys, same order, same values
    assert [list(entry.to_dict()) for entry in entries] == [list(entry) for entry in written]
    combined = entries[0]
    assert combined.kind == "combined" and combined.method is None and entries[2].method == "FaceSwap"
    assert combined.scores("frame") == {k: v for k, v in written[0]["metrics"]["frame"].items()
                                        if k in ("tcr", "balanced_accuracy", "auc", "ap", "eer")}
    video = written[0]["metrics"]["video"]
    assert combined.video_counts() == (video["num_real"], video["num_fake"])


def test_a_bad_entry_names_its_field():
    with pytest.raises(ValueError, match=r"^run\.json: results\[0\]\.metrics\.video\.auc: expected a number"):
        EvaluationEntry.from_dict({"protocol": "combined", "metrics": {"video": {"auc": "high"}}}, "run.json: results[0]")
    with pytest.raises(ValueError, match=r"^x\.methods: expected a list of method names"):
        EvaluationEntry.from_dict({"protocol": "combined", "methods": "Deepfakes", "frame": {"tcr": 0.5}}, "x")
    loose = EvaluationEntry.from_dict({"protocol": "single:Deepfakes", "frame": {"tcr": 1, "auc": None}})
    assert loose.split == "test" and loose.scores("frame") == {"tcr": 1.0} and loose.scores("video") == {}


