"""Test-wide setup: offline Hub, a throw-away HF_HOME, tiny models, and the shared real data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
import torch  # noqa: E402

from tests.hf_cache import LocalHubCache  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def hf_home() -> Path:
    return Path(_HF_HOME)


@pytest.fixture(scope="session")
def hub_cache(hf_home: Path) -> LocalHubCache:
    """A hand-built HF cache under the test HF_HOME: Hub ids resolve to it offline."""
    return LocalHubCache(hf_home / "hub")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real faces and talking-face videos); tests needing it skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (only present in the project checkout / CI)")
    return SHARED_DATA
