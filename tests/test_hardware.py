"""Where things run by default: the inference device and Accelerate's CPU flag."""

from __future__ import annotations

import pytest
import torch

from dldfd_hf._hardware import accelerate_on_cpu, default_device


@pytest.mark.parametrize("has_gpu, expected", [(True, "cuda"), (False, "cpu")])
def test_inference_uses_a_gpu_when_there_is_one(monkeypatch, has_gpu, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    assert default_device() == expected


@pytest.mark.parametrize(
    "requested, world_size, has_gpu, expected",
    [
        (True, None, True, True),  # asked for
        (False, None, False, False),  # one process: Accelerate picks the CPU by itself
        (False, "4", False, True),  # a multi-process launch without GPUs: gloo DDP on CPUs
        (False, "4", True, False),  # a multi-GPU launch
        (False, "1", False, False),
    ],
)
def test_accelerate_is_told_to_use_the_cpu_for_a_launch_without_gpus(
    monkeypatch, requested, world_size, has_gpu, expected
):
    if world_size is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    assert accelerate_on_cpu(requested) is expected
