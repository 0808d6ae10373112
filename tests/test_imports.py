"""What importing costs: the package, the CLI and card rendering load only what they use.

Every check reads ``sys.modules`` of ONE fresh interpreter (this one has imported everything already),
stage by stage in the order a user would meet them, each stage's modules recorded before the next.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

STAGES_SCRIPT = r"""
import json, sys

def commands():
    return sorted(m for m in sys.modules if m.startswith("dldfd_hf.commands.") and m != "dldfd_hf.commands._args")

HEAVY = ("evaluate", "datasets", "pyarrow", "pandas", "sklearn", "gradio", "facenet_pytorch")
seen = {}
from dldfd_hf.cli import build_parser
build_parser(["--help"])
seen["dldfd --help: commands"] = commands()
import dldfd_hf, dldfd_hf.metrics
seen["import dldfd_hf, dldfd_hf.metrics"] = [m for m in HEAVY if m in sys.modules]
import timm
from dldfd_hf.model_folder import hub_config
from dldfd_hf.hub.cards import render_model_card
card = render_model_card(hub_config(timm.create_model("dldfd_tiny")), results=json.loads(sys.argv[1]))
assert card.data.eval_results, "no results rendered"
seen["... then rendering a model card"] = [m for m in HEAVY if m in sys.modules]
build_parser(["merge-ffpp", "--help"])
seen["dldfd merge-ffpp --help: commands"] = commands()
print(json.dumps(seen))
"""

RESULTS = [{"protocol": "combined", "split": "test",
            "metrics": {"frame": {"tcr": 0.9, "auc": 0.95}, "video": {"tcr": 0.8, "auc": 0.9}}}]


@pytest.fixture(scope="module")
def imported() -> dict:
    done = subprocess.run([sys.executable, "-c", STAGES_SCRIPT, json.dumps(RESULTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_cli_imports_only_the_command_being_run(imported):
    assert imported["dldfd --help: commands"] == []
    assert imported["dldfd merge-ffpp --help: commands"] == ["dldfd_hf.commands.build_ffpp"]


def test_the_package_and_its_metrics_load_no_data_metric_demo_or_face_stack(imported):
    # evaluate (HF metrics), datasets/pyarrow, pandas, sklearn, gradio and MTCNN load when first used.
    assert imported["import dldfd_hf, dldfd_hf.metrics"] == []


def test_rendering_a_card_imports_no_data_or_face_stack(imported):
    assert imported["... then rendering a model card"] == []
