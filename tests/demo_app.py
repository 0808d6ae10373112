"""The demo as the tests run it: ``demo/`` on the import path (app.py imports analysis.py beside it,
as ``python demo/app.py`` does), a fresh app module per call, a free port, and the real inputs."""

from __future__ import annotations

import importlib.util
import socket
import sys
from types import ModuleType

from tests.conftest import REPO_ROOT

DEMO_DIR = REPO_ROOT / "demo"
if str(DEMO_DIR) not in sys.path:
    sys.path.insert(0, str(DEMO_DIR))

GRID_CLIP = "videos/LipNet_GRID/evaluation_samples_GRID_bbaf2n.mpg"  # 2.98 s, 360x288
TWO_PEOPLE = "faces/face_recognition/examples_two_people.jpg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_app() -> ModuleType:
    """``demo/app.py`` as a fresh module (its settings are read again)."""
    spec = importlib.util.spec_from_file_location("dldfd_demo_app", DEMO_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module
