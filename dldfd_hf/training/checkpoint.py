"""Training state and checkpoints that resume exactly.

A checkpoint is ``OUTPUT_DIR/checkpoints/step_00000123/`` holding what ``accelerator.save_state``
writes (model, optimizer, scheduler, grad scaler, RNG states), plus:

- ``trainer_state.json``: epoch, batches already consumed in that epoch, optimizer steps, the
  validation history and the best metric so far (JSON: readable, nothing to unpickle);
- ``config.json``: the model's :class:`~dldfd_hf.DLDFDConfig`, so the checkpoint folder is also a
  model folder (``dldfd_hf.inference.loading.load_model`` / ``examples/evaluate.py --model`` read it).

It is written to a temporary sibling and renamed into place, so a run killed while saving leaves
no half-written checkpoint behind. :func:`validate_checkpoint` checks a checkpoint's files (damaged
by a disk, a copy, a hand) before a resumed run creates anything: one error naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from safetensors import safe_open

from .._io import atomic_folder

__all__ = [
    "CheckpointError",
    "TrainState",
    "check_resumable",
    "find_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "read_state",
    "resume_signature",
    "save_checkpoint",
    "validate_checkpoint",
]

STATE_NAME = "trainer_state.json"
_CHECKPOINT = re.compile(r"^step_(\d+)$")
# Settings that fix which batches an epoch is made of: resuming with other values would skip or
# repeat samples, so a checkpoint records them and a resume must match.
RESUME_KEYS = ("data", "sources", "source_weights", "epoch_rows", "protocol", "max_train_samples", "batch_size",
               "gradient_accumulation_steps", "balanced_sampling", "seed")
# What trainer_state.json must hold to resume, and the JSON types of those values.
REQUIRED_STATE = {"epoch": int, "batches_in_epoch": int, "global_step": int, "history": list, "signature": dict}
WEIGHTS_NAME = "model.safetensors"
# Files of accelerator.save_state that resuming reads with torch.load (weights_only): they must load.
TORCH_STATE_FILES = ("optimizer.bin", "scheduler.bin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and what is wrong with it."""


@dataclass
class TrainState:
    """Where training stands: enough to continue exactly where a checkpoint was taken."""

    epoch: int = 0
    """The epoch in progress (0-based)."""
    batches_in_epoch: int = 0
    """Batches of ``epoch`` already consumed (skipped when resuming)."""
    global_step: int = 0
    """Optimizer steps taken."""
    loss_sum: float = 0.0
    """Sum of this process's batch losses in ``epoch`` so far (for the epoch's mean training loss)."""
    best_metric: Optional[float] = None
    best_epoch: Optional[int] = None
    history: List[Dict[str, Any]] = field(default_factory=list)
    """One entry per finished epoch: training loss and validation metrics."""
    signature: Dict[str, Any] = field(default_factory=dict)
    """The :func:`resume_signature` of the run."""

    def validated(self, epoch: int) -> bool:
        return any(entry["epoch"] == epoch + 1 for entry in self.history)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainState":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def list_checkpoints(output_dir: Union[str, Path]) -> List[Path]:
    """Complete checkpoints under ``output_dir/checkpoints``, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name) and (p / STATE_NAME).is_file()]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def find_checkpoint(spec: str, output_dir: Union[str, Path]) -> Path:
    """``latest`` -> the newest checkpoint of ``output_dir``; otherwise ``spec`` must be a checkpoint folder."""
    if spec == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no checkpoint in {Path(output_dir) / 'checkpoints'}")
        return checkpoints[-1]
    path = Path(spec)
    if not (path / STATE_NAME).is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {spec}: not a training checkpoint (no {STATE_NAME}); "
            f"checkpoints are OUTPUT_DIR/checkpoints/step_*"
        )
    return path


def resume_signature(config: Any, num_processes: int) -> Dict[str, Any]:
    """The settings a resumed run must share with the checkpoint (see ``RESUME_KEYS``)."""
    signature = {key: getattr(config, key) for key in RESUME_KEYS}
    if Path(str(config.data)).exists():  # the same folder, however it is spelled
        signature["data"] = str(Path(str(config.data)).resolve())
    signature["num_processes"] = num_processes
    return signature


def check_resumable(state: TrainState, signature: Dict[str, Any], checkpoint: Union[str, Path]) -> None:
    """Raise ``ValueError`` naming every setting that differs from the checkpoint's run."""
    differ = [f"{key}: checkpoint {state.signature[key]!r}, now {value!r}"
              for key, value in signature.items() if key in state.signature and state.signature[key] != value]
    if differ:
        raise ValueError(
            f"cannot resume from {checkpoint} exactly; these settings changed since it was saved: "
            + "; ".join(differ)
        )


def read_state(checkpoint: Union[str, Path]) -> TrainState:
    """The :class:`TrainState` of a checkpoint, without loading anything else.

    Raises :class:`CheckpointError` naming ``trainer_state.json`` when it is not valid JSON or lacks
    a key resuming needs (:data:`REQUIRED_STATE`).
    """
    path = Path(checkpoint) / STATE_NAME
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(values).__name__}")
    missing = [key for key in REQUIRED_STATE if key not in values]
    if missing:
        raise CheckpointError(f"{path}: missing key(s) {', '.join(missing)} (not written by examples/train.py?)")
    wrong = [f"{key} is {type(values[key]).__name__}, not {kind.__name__}" for key, kind in REQUIRED_STATE.items()
             if not isinstance(values[key], kind) or (kind is int and isinstance(values[key], bool))]
    if wrong:
        raise CheckpointError(f"{path}: {'; '.join(wrong)}")
    return TrainState.from_dict(values)


def validate_checkpoint(checkpoint: Union[str, Path]) -> TrainState:
    """Check every file resuming reads, without changing anything; return the checkpoint's state.

    ``trainer_state.json`` (see :func:`read_state`), ``model.safetensors`` (its header: a truncated
    or overwritten file fails it), the optimizer / scheduler states (loaded as plain tensors,
    memory-mapped: ``torch.load(weights_only=True)``, so nothing in them can run) and the RNG
    states (``random_states_*.pkl``, see :func:`_check_rng_states`). Raises
    :class:`CheckpointError` naming the first bad file.
    """
    checkpoint = Path(checkpoint)
    state = read_state(checkpoint)
    weights = checkpoint / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing (the model weights of the checkpoint)")
    try:
        with safe_open(str(weights), framework="pt"):
            pass
    except Exception as error:  # SafetensorError, OSError: unusable either way
        raise CheckpointError(f"{weights}: corrupt or truncated ({_first_line(error)})") from None
    for name in TORCH_STATE_FILES:
        path = checkpoint / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (saved with every checkpoint)")
        try:
            try:
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                torch.load(path, map_location="cpu", weights_only=True)  # an old format that cannot be mapped
        except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
            raise CheckpointError(f"{path}: corrupt or not a plain tensor state ({_first_line(error)})") from None
    _check_rng_states(checkpoint)
    return state


# The RNG states accelerator.save_state writes (one file per process), and the keys load_state reads.
RNG_STATES_GLOB = "random_states_*.pkl"
RNG_STATE_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")


def _check_rng_states(checkpoint: Path) -> None:
    """Check the RNG states: accelerate's ``load_state`` skips one it cannot load (logged at INFO
    only) and the run goes on with fresh RNG, no longer the run it resumes.

    Each file is loaded as accelerate loads it (``torch.load(weights_only=True)`` plus numpy arrays:
    nothing in it can run) and its states are set on scratch generators, not the global ones.
    """
    from accelerate.utils.other import load as accelerate_load  # deferred: only resuming needs it

    paths = sorted(checkpoint.glob(RNG_STATES_GLOB))
    if not paths:
        raise CheckpointError(f"{checkpoint / 'random_states_0.pkl'}: missing (saved with every checkpoint)")
    for path in paths:
        try:
            states = accelerate_load(path, map_location="cpu")
            if not isinstance(states, dict):
                raise TypeError(f"a {type(states).__name__}, not a dict of states")
            missing = [key for key in RNG_STATE_KEYS if key not in states]
            if missing:
                raise KeyError(f"missing {', '.join(missing)}")
            random.Random().setstate(states["random_state"])
            np.random.RandomState().set_state(states["numpy_random_seed"])
            torch.Generator().set_state(states["torch_manual_seed"])
        except Exception as error:  # UnpicklingError, TypeError, ValueError, ...: unusable either way
            raise CheckpointError(f"{path}: corrupt or not an RNG state ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def save_checkpoint(accelerator: Any, model: Any, state: TrainState, output_dir: Union[str, Path],
                    total_limit: Optional[int] = None) -> Path:
    """Save the full training state (every process must call this). Returns the checkpoint folder."""
    root = Path(output_dir) / "checkpoints"
    final = root / f"step_{state.global_step:08d}"
    # Every process writes its part into one staging folder, so its name is fixed, not random.
    staging = root / f".{final.name}.tmp"
    writing = atomic_folder(final, overwrite=True, staging=staging) if accelerator.is_main_process else nullcontext()
    with writing:
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging), safe_serialization=True)
        accelerator.wait_for_everyone()  # every part is written before the folder is renamed
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).config.save_pretrained(staging)
            (staging / STATE_NAME).write_text(json.dumps(state.to_dict(), indent=2) + "\n")
    if accelerator.is_main_process:
        if total_limit:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, checkpoint: Union[str, Path]) -> TrainState:
    """Restore model/optimizer/scheduler/RNG states into the prepared objects; return the TrainState."""
    accelerator.load_state(str(checkpoint))
    return read_state(checkpoint)
