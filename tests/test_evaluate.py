"""examples/evaluate.py: Table 2 protocols from one pass, JSON schema, metrics equal to recomputation."""

from __future__ import annotations

import csv
import json

import pytest

from dldfd_hf.metrics import deepfake_metrics
from dldfd_hf.metrics.paper import PAPER_TCR, TABLE2_PROTOCOLS

from tests.example_scripts import run_example

FAKE_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]


@pytest.fixture(scope="module")
def all_protocols(tiny_model_folder, synth_ffpp_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    run_example("evaluate", ["--model", str(tiny_model_folder), "--data", str(synth_ffpp_corpus), "--all-protocols",
                             "--output", str(out / "table2.json"), "--predictions", str(out / "test.csv"),
                             "--num_workers", "0"])
    with (out / "test.csv").open() as handle:
        predictions = list(csv.DictReader(handle))
    return json.loads((out / "table2.json").read_text()), predictions


def test_all_protocols_json(all_protocols, tiny_model_folder, synth_ffpp_corpus):
    report, _ = all_protocols
    assert report["format"] == "dldfd-eval/1" and report["split"] == "test"
    assert report["model"] == str(tiny_model_folder) and report["data"] == str(synth_ffpp_corpus)
    assert report["skipped_protocols"] == {}
    assert [entry["protocol"] for entry in report["results"]] == list(TABLE2_PROTOCOLS)
    by_name = {entry["protocol"]: entry for entry in report["results"]}
    combined = by_name["combined"]
    assert combined["num_frames"] == 30 and combined["class_counts"] == {"real": 6, "fake": 24}
    assert combined["methods"] == sorted(FAKE_METHODS + ["original"])
    assert combined["metrics"]["video"]["num_videos"] == 10
    for method in FAKE_METHODS:
        for kind in ("single", "cross"):  # cross tests on real + the held-out method
            entry = by_name[f"{kind}:{method}"]
            assert entry["methods"] == sorted([method, "original"]) and entry["num_frames"] == 12
            assert entry["table2"]["paper_tcr"] == PAPER_TCR[f"{kind}:{method}"]
            assert entry["table2"]["section"] == kind
    assert by_name["combined"]["table2"]["paper_tcr"] == 96.07
    assert by_name["cross:NeuralTextures"]["table2"]["paper_tcr"] == 49.2


def test_metrics_equal_recomputation_from_the_predictions(all_protocols):
    report, rows = all_protocols
    assert sorted(int(r["row"]) for r in rows) == list(range(30))
    for entry in report["results"]:
        keep = [r for r in rows if r["method"] in entry["methods"]]
        expected = deepfake_metrics(
            [int(r["label"]) for r in keep], [float(r["fake_prob"]) for r in keep],
            [r["method"] for r in keep], [r["video_id"] for r in keep],
        )
        got = entry["metrics"]
        for level in ("frame", "video"):
            assert got[level] == pytest.approx(expected[level], abs=1e-5), (entry["protocol"], level)
        assert got["per_method"].keys() == expected["per_method"].keys()
        row = entry["table2"]
        assert row["frame_tcr"] == pytest.approx(100 * got["frame"]["tcr"], abs=0.006)
        assert row["video_tcr"] == pytest.approx(100 * got["video"]["tcr"], abs=0.006)


def test_one_protocol_equals_its_entry_in_the_shared_pass(all_protocols, tiny_model_folder, synth_ffpp_corpus, tmp_path, capsys):
    report, _ = all_protocols
    output = tmp_path / "fs.json"
    run_example("evaluate", ["--model", str(tiny_model_folder), "--data", str(synth_ffpp_corpus),
                             "--protocol", "single:FaceSwap", "--output", str(output), "--num_workers", "0"])
    (single,) = json.loads(output.read_text())["results"]
    shared = next(e for e in report["results"] if e["protocol"] == "single:FaceSwap")
    for level in ("frame", "video"):
        assert single["metrics"][level] == pytest.approx(shared["metrics"][level], abs=1e-5)
    assert single["metrics"]["per_method"].keys() == shared["metrics"]["per_method"].keys()
    for method, values in single["metrics"]["per_method"].items():
        assert values == pytest.approx(shared["metrics"]["per_method"][method], abs=1e-5)
    assert single["metrics"]["loss"] is not None and shared["metrics"]["loss"] is None
    printed = capsys.readouterr().out
    assert "Single evaluation" in printed and "94.28" in printed


def test_table2_printout(tiny_model_folder, synth_ffpp_corpus, capsys):
    run_example("evaluate", ["--model", str(tiny_model_folder), "--data", str(synth_ffpp_corpus), "--all-protocols",
                             "--split", "validation", "--num_workers", "0"])
    printed = capsys.readouterr().out
    for section, value in (("Combined", "96.07"), ("Single", "81.40"), ("Cross", "49.20")):
        assert f"{section} evaluation" in printed and value in printed
    assert "train FS,DF,F2F -> test NT" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--protocol", "cross:Nope"], "has no method 'Nope'"),
        (["--protocol", "double"], "unknown protocol 'double'"),
        (["--model", "no/such-model-here"], "no/such-model-here"),
        (["--model", "resnet50"], "not a DLDFD architecture"),
    ],
)
def test_bad_input_is_a_clear_error(argv, message, tiny_model_folder, synth_ffpp_corpus, tmp_path):
    args = ["--model", str(tiny_model_folder), "--data", str(synth_ffpp_corpus), "--output", str(tmp_path / "x.json"), *argv]
    with pytest.raises(SystemExit, match=message):
        run_example("evaluate", args)
    assert not (tmp_path / "x.json").exists()


def test_missing_corpus_is_a_clear_error(tiny_model_folder, tmp_path):
    with pytest.raises(SystemExit, match="corpus not found"):
        run_example("evaluate", ["--model", str(tiny_model_folder), "--data", str(tmp_path / "nothing")])
