"""Run the scripts in examples/ in the test process (they are scripts, not an importable package)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.conftest import REPO_ROOT


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO_ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name: str, argv: list[str]) -> None:
    """``main(argv)`` of an example in this process (no re-import cost); Accelerate's process-wide
    state is reset afterwards so the next run starts clean."""
    from accelerate.state import AcceleratorState, GradientState

    try:
        load_example(name).main(argv)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
