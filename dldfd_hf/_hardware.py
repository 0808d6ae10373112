"""The machine: the default torch device, and what its CPU can run (checked by trying, not by reading flags)."""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["accelerate_on_cpu", "cpu_supports_bf16_conv", "default_device"]


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``: where inference runs unless told otherwise."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def accelerate_on_cpu(requested: bool = False) -> bool:
    """Accelerate's ``cpu`` flag: when asked, and for a multi-process launch (``WORLD_SIZE`` > 1) on a
    machine without GPUs: Accelerate only starts gloo DDP on CPUs when told to use the CPU, and would
    otherwise run N unrelated copies."""
    launched_distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return requested or (launched_distributed and not torch.cuda.is_available())


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16_conv() -> bool:
    """Whether oneDNN runs bfloat16 convolutions natively on this CPU.

    oneDNN's bf16 convolution needs AVX-512 (BW, VL, DQ), AVX-NE-CONVERT or AMX: on an AVX2-only CPU
    ``torch.ops.mkldnn`` raises "mkldnn_convolution: bf16 path needs the cpu support ...". ``F.conv2d``
    then silently falls back to a reference kernel many times slower than fp32, so bf16 training
    or inference on such a CPU only makes sense in fp32. The probe calls the oneDNN convolution
    directly (which ``F.conv2d`` would hide) on a tiny input; the answer is cached for the process.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    x = torch.zeros(1, 1, 4, 4, dtype=torch.bfloat16)
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.bfloat16)
    try:
        torch.ops.aten.mkldnn_convolution(x, weight, None, [0, 0], [1, 1], [1, 1], 1)
    except (AttributeError, NotImplementedError, RuntimeError):
        return False
    return True
