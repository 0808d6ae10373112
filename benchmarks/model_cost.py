"""What the augmented layers cost: a backbone vs DLDFD on it (reference and fused stem), in one run.

Prints ONE JSON line: per model the parameters, forward GFLOPs per image (torch.utils.flop_counter),
inference img/s and peak memory, training-step img/s and peak memory; then the DLDFD / ResNet-50
ratios and the issue's targets. The models run in interleaved rounds (each round times every model
once), so that load from other processes hits them alike and the ratios stay meaningful; the
reported speed is the median round.

Peak memory is the most memory that tensors allocated during one inference batch / one training
step hold at once, on top of the weights and the input batch (CUDA: ``max_memory_allocated``;
CPU: the allocator events recorded by ``torch.profiler``).

    python benchmarks/model_cost.py                                   # CPU, fp32, ResNet-50
    python benchmarks/model_cost.py --pair lite0                      # EfficientNet-Lite0 (the shipped detector's)
    python benchmarks/model_cost.py --device cuda --dtype bf16 --channels-last
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import timm
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

import dldfd_hf  # noqa: F401  (registers dldfd_resnet50)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# --pair: (plain backbone with one logit, DLDFD on it)
PAIRS = {
    "resnet50": ("resnet50", "dldfd_resnet50"),
    "lite0": ("tf_efficientnet_lite0", "dldfd_efficientnet_lite0"),
}
# Issue 9's targets: DLDFD / ResNet-50 ratios (speed: at least, memory: at most).
TARGETS = {
    "cpu": {"infer_speed": 0.85, "train_speed": 0.8, "train_memory": 1.2},
    "cuda": {"infer_speed": 0.9, "train_speed": 0.85, "train_memory": 1.2},
}


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--pair", choices=sorted(PAIRS), default="resnet50", help="backbone and its DLDFD (resnet50)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="inference: weights and inputs in this dtype; training: autocast to it")
    parser.add_argument("--channels-last", action="store_true", help="channels_last weights and inputs")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16, help="inference batch size")
    parser.add_argument("--train-batch", type=int, default=16, help="training batch size")
    parser.add_argument("--rounds", type=int, default=5, help="timed inference rounds (after 1 warm-up)")
    parser.add_argument("--train-rounds", type=int, default=3, help="timed training rounds (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} logical CPUs"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(step: Callable[[], None], device: torch.device) -> float:
    """Largest amount of tensor memory allocated by ``step`` and alive at one time, in MiB."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # Kineto's raw events keep every allocation and free in order (FunctionEvents fold them into ops).
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak / 2**20


def forward_gflops(model: nn.Module, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:1])
    return counter.get_total_flops() / 1e9


class Candidate:
    """One model under test with its inference and training steps."""

    def __init__(self, name: str, model: nn.Module, args: argparse.Namespace, device: torch.device,
                 fused: bool | None = None) -> None:
        self.name, self.model, self.fused = name, model, fused
        self.device, self.dtype = device, DTYPES[args.dtype]
        self.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.times: Dict[str, List[float]] = {"infer": [], "train": []}
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

    @contextlib.contextmanager
    def active(self):
        # The reference and fused DLDFD share one module (same weights): select the stem path.
        if self.fused is not None:
            self.model.stem.fused = self.fused
        yield self.model

    def infer(self, x: torch.Tensor) -> None:
        with self.active() as model, torch.inference_mode():
            model.eval()
            model(x)

    def train_step(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        autocast = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype != torch.float32 \
            else contextlib.nullcontext()
        with self.active() as model:
            model.train()
            self.optimizer.zero_grad(set_to_none=True)
            with autocast:
                logits = model(x)
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float().squeeze(1), labels)
            loss.backward()
            self.optimizer.step()

    def timed(self, kind: str, step: Callable[[], None]) -> None:
        synchronize(self.device)
        start = time.perf_counter()
        step()
        synchronize(self.device)
        self.times[kind].append(time.perf_counter() - start)


def run(args: argparse.Namespace) -> Dict[str, object]:
    """Measure the backbone of ``--pair`` and its DLDFD (fused and reference stem); the JSON report."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_infer, x_train, labels = make_inputs(args, device)

    base_name, dldfd_name = PAIRS[args.pair]
    reference_name = f"{dldfd_name}_reference"
    resnet = timm.create_model(base_name, num_classes=1)
    dldfd = timm.create_model(dldfd_name)
    results = static_costs({base_name: resnet, dldfd_name: dldfd}, args.image_size)
    results[reference_name] = dict(results[dldfd_name])

    candidates = make_candidates(args, device, (base_name, reference_name, dldfd_name), resnet, dldfd)
    measure_inference(candidates, x_infer, args.rounds, device, results)
    switch_to_training(candidates, resnet, dldfd, args.dtype)
    measure_training(candidates, x_train, labels, args.train_rounds, device, results)
    for name, candidate in candidates.items():
        results[name]["infer_img_s"] = round(args.batch / statistics.median(candidate.times["infer"]), 2)
        results[name]["train_img_s"] = round(args.train_batch / statistics.median(candidate.times["train"]), 2)
    return report(args, device, results, base_name, dldfd_name, reference_name)


def memory_format_of(args: argparse.Namespace) -> torch.memory_format:
    return torch.channels_last if args.channels_last else torch.contiguous_format


def make_inputs(args: argparse.Namespace, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random inference batch (in --dtype), training batch (fp32: autocast casts it) and labels."""
    memory_format = memory_format_of(args)
    size = args.image_size
    x_infer = torch.randn(args.batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    x_infer = x_infer.to(DTYPES[args.dtype])
    x_train = torch.randn(args.train_batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 2, (args.train_batch,), device=device).float()
    return x_infer, x_train, labels


def static_costs(models: Dict[str, nn.Module], size: int) -> Dict[str, Dict[str, float]]:
    """Per model: parameters and forward GFLOPs of one ``size`` x ``size`` image (on the CPU, fp32)."""
    return {
        name: {"params": sum(p.numel() for p in model.parameters()),
               "gflops": round(forward_gflops(model, torch.zeros(1, 3, size, size)), 3)}
        for name, model in models.items()
    }


def make_candidates(args: argparse.Namespace, device: torch.device, names: Tuple[str, str, str],
                    base: nn.Module, dldfd: nn.Module) -> Dict[str, Candidate]:
    """The backbone, the reference-stem DLDFD and the fused-stem DLDFD (``names`` in that order),
    ready for inference: on ``device``, in --dtype."""
    base_name, reference_name, dldfd_name = names

    # Inference and training need separate copies: inference weights are cast to --dtype,
    # training keeps fp32 weights under autocast.
    def prepared(model: nn.Module) -> nn.Module:
        model = model.to(device=device, memory_format=memory_format_of(args))
        return model if args.dtype == "fp32" else model.to(DTYPES[args.dtype])

    infer_base, infer_dldfd = prepared(base), prepared(dldfd)
    return {
        base_name: Candidate(base_name, infer_base, args, device),
        reference_name: Candidate(reference_name, infer_dldfd, args, device, False),
        dldfd_name: Candidate(dldfd_name, infer_dldfd, args, device, True),
    }


def measure_inference(candidates: Dict[str, Candidate], x: torch.Tensor, rounds: int, device: torch.device,
                      results: Dict[str, Dict[str, float]]) -> None:
    """Peak memory into ``results``, then ``rounds`` interleaved timings into each candidate's times."""
    for name, candidate in tqdm(candidates.items(), desc="inference", file=sys.stderr):
        candidate.infer(x)  # warm-up (oneDNN / cuDNN kernel selection)
        results[name]["infer_peak_mib"] = round(peak_memory_mib(lambda: candidate.infer(x), device), 1)
    for _ in tqdm(range(rounds), desc="inference rounds", file=sys.stderr):
        for candidate in candidates.values():
            candidate.timed("infer", lambda: candidate.infer(x))


def switch_to_training(candidates: Dict[str, Candidate], base: nn.Module, dldfd: nn.Module, dtype: str) -> None:
    """Give the candidates fp32 models (same weights) and fresh optimizers."""
    if dtype != "fp32":  # training: fresh fp32 copies with the same weights
        base.float()
        dldfd.float()
    for candidate, model in zip(candidates.values(), (base, dldfd, dldfd)):
        candidate.model = model
        candidate.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)


def measure_training(candidates: Dict[str, Candidate], x: torch.Tensor, labels: torch.Tensor, rounds: int,
                     device: torch.device, results: Dict[str, Dict[str, float]]) -> None:
    """Peak memory of one step into ``results``, then ``rounds`` interleaved timings into each candidate's times."""
    for name, candidate in tqdm(candidates.items(), desc="training", file=sys.stderr):
        candidate.train_step(x, labels)  # warm-up
        candidate.optimizer.zero_grad(set_to_none=True)  # gradients count in the measured step
        results[name]["train_peak_mib"] = round(
            peak_memory_mib(lambda: candidate.train_step(x, labels), device), 1)
    for _ in tqdm(range(rounds), desc="training rounds", file=sys.stderr):
        for candidate in candidates.values():
            candidate.timed("train", lambda: candidate.train_step(x, labels))


def ratios(results: Dict[str, Dict[str, float]], base_name: str, name: str) -> Dict[str, float]:
    """Model ``name`` over the backbone ``base_name``, per measure."""
    base, other = results[base_name], results[name]
    return {
        "infer_speed": round(other["infer_img_s"] / base["infer_img_s"], 3),
        "infer_memory": round(other["infer_peak_mib"] / base["infer_peak_mib"], 3),
        "train_speed": round(other["train_img_s"] / base["train_img_s"], 3),
        "train_memory": round(other["train_peak_mib"] / base["train_peak_mib"], 3),
        "gflops": round(other["gflops"] / base["gflops"], 3),
    }


def report(args: argparse.Namespace, device: torch.device, results: Dict[str, Dict[str, float]],
           base_name: str, dldfd_name: str, reference_name: str) -> Dict[str, object]:
    """The JSON line: the setup, every model's numbers, the ratios and which targets the fused DLDFD meets."""
    fused_ratios = ratios(results, base_name, dldfd_name)
    targets = TARGETS["cuda" if device.type == "cuda" else "cpu"]
    return {
        "benchmark": "model_cost",
        "machine": machine_name(device),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "channels_last": args.channels_last,
        "image_size": args.image_size,
        "batch": args.batch,
        "train_batch": args.train_batch,
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "models": results,
        "pair": args.pair,
        f"ratio_vs_{base_name}": {dldfd_name: fused_ratios, reference_name: ratios(results, base_name, reference_name)},
        "targets_met": {
            key: (fused_ratios[key] <= limit if key.endswith("memory") else fused_ratios[key] >= limit)
            for key, limit in targets.items()
        },
    }


def main(argv: List[str] | None = None) -> None:
    print(json.dumps(run(parse_args(argv))))


if __name__ == "__main__":
    main()
