"""Test-wide setup: offline Hub, a throw-away HF_HOME, tiny models, and the shared real data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

# Must happen before huggingface_hub / transformers / timm are imported: they read these at import.
_HF_HOME = tempfile.mkdtemp(prefix="dldfd-test-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

from dldfd_hf import DLDFDForImageClassification  # noqa: E402
from tests.hf_cache import LocalHubCache  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


# Two instances of one network (a model and its saved-and-reloaded copy) hold bit-identical weights,
# which tests compare bitwise, but need not give bit-identical outputs: weights memory-mapped from a
# safetensors file sit at other memory alignments, and on some CPUs (AVX2 EPYCs) the BLAS / oneDNN
# kernels then take other vectorised paths, changing the last float bits. Outputs of two instances
# are compared within this tolerance: far below any difference between two different networks.
SAME_NETWORK_TOLERANCE = dict(atol=1e-6, rtol=1e-5)


def assert_same_network_outputs(actual: torch.Tensor, expected: torch.Tensor, msg: Optional[str] = None) -> None:
    """Outputs of two instances of one network (same weights) agree up to the CPU's float rounding."""
    torch.testing.assert_close(actual, expected, **SAME_NETWORK_TOLERANCE, msg=msg)


# What export_model writes: the model folder, transformers' remote-code files and the card.
EXPORTED_FILES = {"model.safetensors", "config.json", "preprocessor_config.json", "configuration_dldfd.py",
                  "modeling_dldfd.py", "README.md"}


def train_a_little(model: torch.nn.Module, steps: int = 2) -> torch.nn.Module:
    """A few real optimisation steps, so BatchNorm statistics, counters and weights all move."""
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        x = torch.randn(4, 3, 64, 64)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, -1], torch.tensor([0., 1., 1., 0.]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_tiny() -> torch.nn.Module:
    """dldfd_tiny (timm, seed 0) after :func:`train_a_little`: the "trained" model that export, cards
    and push tests share for the whole session; they never change it."""
    torch.manual_seed(0)
    return train_a_little(timm.create_model("dldfd_tiny"))


@pytest.fixture(scope="session")
def hf_home() -> Path:
    return Path(_HF_HOME)


@pytest.fixture(scope="session")
def hub_cache(hf_home: Path) -> LocalHubCache:
    """A hand-built HF cache under the test HF_HOME: Hub ids resolve to it offline."""
    return LocalHubCache(hf_home / "hub")


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """A saved dldfd_tiny model folder (save_pretrained, random weights, seed 0), shared by the whole
    session: tests read it or copy it, never change it."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-model") / "dldfd_tiny"
    DLDFDForImageClassification.from_timm(timm.create_model("dldfd_tiny")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``).

    MTCNN and tiny-model training run thousands of small ops: on the shared 2-core CI machine a
    second intra-op thread mostly waits for the first. Results do not depend on it, only the time.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real faces and talking-face videos); tests needing it skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (only present in the project checkout / CI)")
    return SHARED_DATA


# --- FaceForensics++-layout fixtures made from real clips (issue 4) --------------------------------
# Three GRID clips (different speakers), each cut into 2 segments of 6 frames: 6 originals, 3 pairs
# (one per split), fakes for the 4 FF++ method folders; c23. Built once per session.
SYNTH_FFPP_CLIPS = 3
SYNTH_FFPP_COMPRESSION = "c23"
SYNTH_FFPP_MAX_FRAMES = 6
SYNTH_FFPP_FRAMES_PER_VIDEO = 3


@pytest.fixture(scope="session")
def synth_ffpp_tree(shared_data: Path, tmp_path_factory) -> Path:
    """An FF++ tree made by ``dldfd synth-ffpp`` (splits in ``<tree>/splits``, compression c23)."""
    from dldfd_hf.cli import main as dldfd

    clips = tmp_path_factory.mktemp("synth-clips")
    for clip in sorted((shared_data / "videos" / "LipNet_GRID").glob("*.mpg"))[:SYNTH_FFPP_CLIPS]:
        (clips / clip.name).symlink_to(clip)
    tree = tmp_path_factory.mktemp("synth-ffpp") / "ffpp"
    argv = ["synth-ffpp", str(clips), str(tree), "--compression", SYNTH_FFPP_COMPRESSION,
            "--max-frames", str(SYNTH_FFPP_MAX_FRAMES), "--quiet"]
    assert dldfd(argv) == 0
    return tree


@pytest.fixture(scope="session")
def synth_ffpp_corpus(synth_ffpp_tree: Path, tmp_path_factory) -> Path:
    """A corpus built by ``dldfd build-ffpp`` from ``synth_ffpp_tree``: ``datasets.load_from_disk(path)``
    gives train/validation/test, each with 2 real and 2 x 4 fake videos, 3 face crops (224 px) per video."""
    from dldfd_hf.cli import main as dldfd

    corpus = tmp_path_factory.mktemp("synth-ffpp-corpus") / "corpus"
    argv = ["build-ffpp", str(synth_ffpp_tree), str(corpus), "--compression", SYNTH_FFPP_COMPRESSION,
            "--splits-dir", str(synth_ffpp_tree / "splits"),
            "--frames-per-video", str(SYNTH_FFPP_FRAMES_PER_VIDEO), "--quiet"]
    assert dldfd(argv) == 0
    return corpus


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint (save_checkpoint -> accelerator.save_state) of a dldfd_tiny run, shared by the
    session: tests copy it before damaging it."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from transformers import get_scheduler

    from dldfd_hf.training.checkpoint import TrainState, save_checkpoint

    torch.manual_seed(0)
    model = DLDFDForImageClassification.from_timm(timm.create_model("dldfd_tiny"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = get_scheduler("constant", optimizer=optimizer)
    accelerator = Accelerator(cpu=True)
    try:
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        return save_checkpoint(accelerator, model, TrainState(global_step=1), tmp_path_factory.mktemp("run"))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
