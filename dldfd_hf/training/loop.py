"""The training loop of ``examples/train.py``: an epoch of updates, validation, the final test.

The functions take one :class:`TrainingRun`: the objects ``accelerator.prepare`` returned, the
config, ``results.json`` and where the run stands, a :class:`~.checkpoint.TrainState` updated in
place, so a checkpoint taken at any step resumes exactly. Every process calls every function (they
gather, reduce and wait for each other); only the main process writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .._io import atomic_folder, atomic_write_json
from ..model_folder import save_model_folder
from .checkpoint import TrainState, save_checkpoint
from .config import TrainingConfig, metric_direction
from .evaluation import evaluation_entry, flatten_metrics, predict, split_metrics, write_predictions

__all__ = [
    "ResultsFile",
    "TrainingRun",
    "final_test",
    "finish_epoch",
    "save_model",
    "train_one_epoch",
    "validate",
    "validate_baseline",
]

logger = get_logger(__name__)


@dataclass
class ResultsFile:
    """``OUTPUT_DIR/results.json``: what is fixed when the run starts, rewritten as the state moves on."""

    path: Path
    config: TrainingConfig
    protocol: str
    class_counts: Dict[str, Dict[str, int]]
    pos_weight: Optional[float]
    num_processes: int

    def write(self, state: TrainState, test: Optional[Dict[str, Any]] = None) -> None:
        """Write the file atomically (from the main process only).

        Schema (``format`` "dldfd-train-results/1")::

            format, data, protocol, model: str
            config: every TrainingConfig key
            pos_weight: float | null            BCE weight of the fake class used
            num_processes: int
            class_counts: {train|validation|test: {real: int, fake: int}}   frames used
            best: {metric: str, value: float, epoch: int, path: "best"} | null
            validation_history: [{epoch, step, train_loss,
                                  validation: {frame, video, per_method, loss}}]
            test: an evaluation entry as in examples/evaluate.py's "results" list (protocol, split,
                  num_frames, class_counts, methods, metrics {frame, video, per_method, loss}, table2),
                  computed with the best model; null until training has finished
        """
        config = self.config
        results = {
            "format": "dldfd-train-results/1",
            "data": config.data,
            "protocol": self.protocol,
            "model": config.init_from or config.model,
            "config": config.to_dict(),
            "pos_weight": self.pos_weight,
            "num_processes": self.num_processes,
            "class_counts": self.class_counts,
            "best": None if state.best_epoch is None else {
                "metric": config.metric_for_best_model, "value": state.best_metric, "epoch": state.best_epoch,
                "path": "best",
            },
            "validation_history": state.history,
            "test": test,
        }
        atomic_write_json(self.path, results, indent=2)


@dataclass
class TrainingRun:
    """One run: what ``examples/train.py`` creates once and every step of the loop shares."""

    accelerator: Accelerator
    config: TrainingConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    train_loader: DataLoader
    val_loader: DataLoader
    val_split: Any
    """The validation rows (a ``datasets.Dataset``), in ``val_loader``'s order."""
    test_loader: DataLoader
    test_split: Any
    state: TrainState
    results: ResultsFile

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    def save_checkpoint(self) -> None:
        save_checkpoint(self.accelerator, self.model, self.state, self.output_dir, self.config.checkpoints_total_limit)


def save_model(accelerator: Accelerator, model: torch.nn.Module, folder: Union[str, Path]) -> None:
    """Write a complete model folder (every door loads it: timm, transformers, pipelines), atomically."""
    if accelerator.is_main_process:
        with atomic_folder(folder, overwrite=True) as staging:
            save_model_folder(accelerator.unwrap_model(model), staging)
    accelerator.wait_for_everyone()


def train_one_epoch(run: TrainingRun, epoch: int, progress: Optional[tqdm] = None) -> None:
    """Train through epoch ``epoch`` (0-based), or its remaining batches when resumed inside it.

    Logs the running loss every ``logging_steps`` optimizer steps and saves a checkpoint every
    ``save_steps`` (with ``save_strategy: steps``); ``progress`` advances once per optimizer step.
    """
    accelerator, model, state, config = run.accelerator, run.model, run.state, run.config
    model.train()
    # Resuming inside an epoch: same order (same sampler epoch), minus the batches already seen.
    epoch_loader = (accelerator.skip_first_batches(run.train_loader, state.batches_in_epoch)
                    if state.batches_in_epoch else run.train_loader)
    # Through the prepared loader: it would otherwise reset the sampler to its own iteration count.
    epoch_loader.set_epoch(epoch)
    for batch in epoch_loader:
        with accelerator.accumulate(model):
            outputs = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
            accelerator.backward(outputs.loss)
            if accelerator.sync_gradients and config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            run.optimizer.step()
            run.lr_scheduler.step()
            run.optimizer.zero_grad()
        state.batches_in_epoch += 1
        state.loss_sum += outputs.loss.detach().float().item()
        if not accelerator.sync_gradients:
            continue
        state.global_step += 1
        if progress is not None:
            progress.update(1)
        if state.global_step % config.logging_steps == 0:
            train_loss = state.loss_sum / state.batches_in_epoch
            if progress is not None:
                progress.set_postfix(loss=f"{train_loss:.4f}")
            accelerator.log({"train/loss": train_loss, "train/lr": run.lr_scheduler.get_last_lr()[0]},
                            step=state.global_step)
        if config.save_strategy == "steps" and state.global_step % config.save_steps == 0:
            run.save_checkpoint()


def _validation_metrics(run: TrainingRun, number: int) -> Dict[str, Any]:
    predictions = predict(run.model, run.val_loader, run.accelerator, desc=f"validation {number}",
                          expected_rows=len(run.val_split))
    return split_metrics(run.val_split, predictions, run.config.voting_rule)


def validate_baseline(run: TrainingRun) -> None:
    """Record epoch 0: the untrained model's scores, the baseline the training has to beat."""
    metrics = _validation_metrics(run, 0)
    run.state.history.append({"epoch": 0, "step": 0, "train_loss": None, "validation": metrics})


def _improves(value: Optional[float], best: Optional[float], direction: str) -> bool:
    if value is None:
        return False
    return best is None or (value > best if direction == "max" else value < best)


def validate(run: TrainingRun, epoch: int) -> Dict[str, Any]:
    """Score every validation frame once after epoch ``epoch`` and record it in ``state.history``.

    A new best by ``metric_for_best_model`` is saved to ``OUTPUT_DIR/best``. Returns the metrics
    (``split_metrics``).
    """
    accelerator, state, config = run.accelerator, run.state, run.config
    metrics = _validation_metrics(run, epoch + 1)
    # Each process has the mean of its own shard's batches; the run's is their mean.
    train_loss = accelerator.reduce(
        torch.tensor(state.loss_sum / max(state.batches_in_epoch, 1), device=accelerator.device), "mean"
    ).item()
    state.history.append(
        {"epoch": epoch + 1, "step": state.global_step, "train_loss": train_loss, "validation": metrics}
    )
    flat = flatten_metrics(metrics)
    accelerator.log({f"validation/{k}": v for k, v in flat.items()}, step=state.global_step)
    value = flat.get(config.metric_for_best_model)
    if _improves(value, state.best_metric, metric_direction(config.metric_for_best_model)):
        state.best_metric, state.best_epoch = value, epoch + 1
        save_model(accelerator, run.model, run.output_dir / "best")
    logger.info(
        f"epoch {epoch + 1}: train loss {train_loss:.4f}, validation "
        + ", ".join(f"{k} {v:.4f}" for k, v in flat.items())
        + (" (best)" if state.best_epoch == epoch + 1 else "")
    )
    return metrics


def finish_epoch(run: TrainingRun, epoch: int) -> None:
    """Move the run's state past epoch ``epoch``, rewrite ``results.json`` and save the epoch's
    checkpoint (with ``save_strategy: epoch``)."""
    state = run.state
    state.epoch, state.batches_in_epoch, state.loss_sum = epoch + 1, 0, 0.0
    if run.accelerator.is_main_process:
        run.results.write(state)
    if run.config.save_strategy == "epoch":
        run.save_checkpoint()


def final_test(run: TrainingRun) -> Dict[str, Any]:
    """Score the test split with the best model (the current weights when no epoch was best).

    Loads ``OUTPUT_DIR/best`` into the model, writes the test entry into ``results.json`` and, with
    ``save_predictions``, ``predictions_test.csv``. Returns the entry (``evaluation_entry``).
    """
    accelerator, results = run.accelerator, run.results
    best_weights = run.output_dir / "best" / "model.safetensors"
    if best_weights.is_file():
        # Model folders hold the timm layout: load into the wrapped timm module.
        accelerator.unwrap_model(run.model).dldfd.load_state_dict(load_file(str(best_weights)))
    elif run.state.best_epoch is not None:
        logger.warning(f"{best_weights} not found (resumed into another output_dir?): testing the last weights")
    predictions = predict(run.model, run.test_loader, accelerator, desc="test", expected_rows=len(run.test_split))
    test = evaluation_entry(results.protocol, "test", run.test_split, predictions, run.config.voting_rule)
    if accelerator.is_main_process:
        if run.config.save_predictions:
            write_predictions(run.output_dir / "predictions_test.csv", run.test_split, predictions)
        results.write(run.state, test)
        row = test["table2"]
        logger.info(
            f"test ({results.protocol}): frame TCR {row['frame_tcr']}%, video TCR {row['video_tcr']}%, "
            f"frame AUC {row['frame_auc']}% (paper TCR {row['paper_tcr']}%) -> {results.path}"
        )
    return test
