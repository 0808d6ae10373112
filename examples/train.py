#!/usr/bin/env python
"""Train DLDFD on a FaceForensics++-style face-crop corpus with Accelerate.

    accelerate launch examples/train.py --config examples/configs/paper_c40.yaml \
        --data ./ffpp_c40_corpus --output_dir runs/paper_c40

Any config key can be overridden on the command line (``--protocol cross:FaceSwap --epochs 5``);
``--help`` lists them. The same command runs on one CPU process or many GPUs / nodes.

Writes into OUTPUT_DIR:
    results.json            validation history, the best epoch and the final test metrics
                            (schema: the docstring of ``write_results`` below)
    best/                   the best model by ``metric_for_best_model``: a model folder
                            (``dldfd_hf.hub.save_model_folder``) that timm, transformers and the
                            pipelines load
    last/                   the weights after the last epoch
    checkpoints/step_*/     full training state, for ``--resume_from_checkpoint PATH|latest``
    predictions_test.csv    per-frame test predictions (``save_predictions``)
"""

import logging
import sys
import math
import os
from pathlib import Path

import accelerate.utils
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.tracking import LOGGER_TYPE_TO_CLASS
from accelerate.utils import set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from dldfd_hf._io import atomic_write_json
from dldfd_hf.data.protocols import class_counts, protocol_view
from dldfd_hf.hub import save_model_folder, write_folder
from dldfd_hf.loading import ModelLoadError
from dldfd_hf.training.checkpoint import (
    TrainState,
    check_resumable,
    find_checkpoint,
    load_checkpoint,
    resume_signature,
    save_checkpoint,
    validate_checkpoint,
)
from dldfd_hf.training.config import ConfigError, build_arg_parser, load_config, metric_direction
from dldfd_hf._hardware import cpu_supports_bf16_conv
from dldfd_hf.training.augment import FaceAugment
from dldfd_hf.training.data import CorpusError, EpochSampler, FrameDataset, FrameTransform, collate_frames, load_corpus
from dldfd_hf.training.evaluation import (
    evaluation_entry,
    flatten_metrics,
    predict,
    split_metrics,
    write_predictions,
)
from dldfd_hf.training.modeling import build_model
from dldfd_hf.training.pseudo_fakes import (
    PseudoFakePairs,
    expected_class_counts,
    make_self_blender,
    rows_used,
    with_pseudo_fakes,
)

logger = get_logger(__name__)


def parse_args(argv=None):
    parser = build_arg_parser(description=__doc__)
    try:
        config = load_config(argv, parser)
        config.require_run_settings()
    except ConfigError as error:
        parser.error(str(error))  # exits with status 2 before anything is loaded
    return config


def subsample(dataset, limit, seed):
    """A fixed random subset of ``limit`` rows (kept in corpus order), or the whole split."""
    if limit is None or limit >= len(dataset):
        return dataset
    rows = np.random.default_rng(seed).choice(len(dataset), size=limit, replace=False)
    return dataset.select(np.sort(rows))


def load_data(args):
    """The protocol's splits, their class counts and the BCE pos_weight; data errors exit cleanly."""
    try:
        view = protocol_view(load_corpus(args.data), args.protocol)
    except (CorpusError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    # sbi: no manipulation is seen, in training or in choosing the best epoch (validation on real
    # rows against fixed pseudo-fakes, as SBI validates); the test split is scored as it is.
    try:
        train = subsample(rows_used(view.train, args.pseudo_fakes), args.max_train_samples, args.seed)
        validation = subsample(rows_used(view.validation, args.pseudo_fakes), args.max_eval_samples, args.seed)
    except ValueError as error:
        raise SystemExit(f"error: protocol {view.name}: {error}") from None
    test = subsample(view.test, args.max_eval_samples, args.seed)
    if args.pseudo_fakes != "none":
        # Splits of real rows only (a build-faces corpus) are scored against fixed pseudo-fakes.
        validation, test = with_pseudo_fakes(validation), with_pseudo_fakes(test)
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if len(split) == 0:
            raise SystemExit(f"error: protocol {view.name}: the {name} split of {args.data} is empty")

    counts = {"train": class_counts(train), "validation": class_counts(validation), "test": class_counts(test)}
    if args.pos_weight == "auto":
        # The paper's weighted BCE: #real / #fake of the training frames. Balanced sampling already
        # equalises the classes, so it needs no weight.
        # With pseudo-fakes: the classes as the sampler's draws turn out on average.
        seen = expected_class_counts(counts["train"], args.pseudo_fakes, args.pseudo_fake_probability,
                                     args.pseudo_fake_pairs)
        if args.balanced_sampling:
            pos_weight = None
        elif seen["fake"] == 0:
            raise SystemExit(f"error: protocol {view.name}: the training split has no fake frames "
                             "(train on real faces alone with --pseudo_fakes sbi)")
        else:
            pos_weight = seen["real"] / seen["fake"]
    else:
        pos_weight = args.pos_weight
    return view.name, (train, validation, test), counts, pos_weight


def save_model(accelerator, model, folder):
    """Write a complete model folder (every door loads it: timm, transformers, pipelines), atomically."""
    if accelerator.is_main_process:
        write_folder(folder, lambda staging: save_model_folder(accelerator.unwrap_model(model), staging),
                     overwrite=True)
    accelerator.wait_for_everyone()


def write_results(path, args, protocol, counts, pos_weight, state, num_processes, test=None):
    """Write ``results.json`` atomically.

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
    results = {
        "format": "dldfd-train-results/1",
        "data": args.data,
        "protocol": protocol,
        "model": args.init_from or args.model,
        "config": args.to_dict(),
        "pos_weight": pos_weight,
        "num_processes": num_processes,
        "class_counts": counts,
        "best": None if state.best_epoch is None else {
            "metric": args.metric_for_best_model, "value": state.best_metric, "epoch": state.best_epoch,
            "path": "best",
        },
        "validation_history": state.history,
        "test": test,
    }
    atomic_write_json(path, results, indent=2)


def requested_trackers(args):
    """``--report_to`` as Accelerate's ``log_with``; an unknown or uninstalled tracker is an error
    (Accelerate would skip it silently)."""
    if args.report_to == "none":
        return None
    names = [name.strip() for name in args.report_to.split(",") if name.strip()]
    if names == ["all"]:
        return "all"
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:  # built-in and registered trackers
            raise SystemExit(f"error: --report_to: unknown tracker {name!r} (one of {', '.join(LOGGER_TYPE_TO_CLASS)})")
        available = getattr(accelerate.utils, f"is_{name}_available", None)
        if available is not None and not available():
            raise SystemExit(f"error: --report_to {name}: the {name} package is not installed")
    return names


def use_cpu(args):
    """CPU when asked, and for a multi-process launch on a machine without GPUs: Accelerate only
    starts gloo DDP on CPUs when told to use the CPU, and would otherwise run N unrelated copies."""
    launched_distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return args.cpu or (launched_distributed and not torch.cuda.is_available())


def check_mixed_precision(args) -> None:
    """bf16 on a CPU without native bf16 convolutions (AVX2 only) would crawl or fail: fall back to fp32."""
    on_cpu = use_cpu(args) or not torch.cuda.is_available()
    if args.mixed_precision == "bf16" and on_cpu and not cpu_supports_bf16_conv():
        print("notice: this CPU has no bf16 convolutions (needs AVX-512 or AMX): training in fp32 "
              "(mixed_precision: no)", file=sys.stderr)
        args.mixed_precision = "no"


def main(argv=None):
    args = parse_args(argv)
    check_mixed_precision(args)
    accelerator = Accelerator(
        cpu=use_cpu(args),
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=requested_trackers(args),
        project_dir=args.output_dir,
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    set_seed(args.seed)
    output_dir = Path(args.output_dir)

    # Everything that can be wrong with the checkpoint, the corpus or the protocol fails here,
    # before any training and before anything is written. The checkpoint first: checking its files
    # (see validate_checkpoint) is cheaper than reading the corpus.
    signature = resume_signature(args, accelerator.num_processes)
    if args.resume_from_checkpoint:
        try:
            checkpoint = find_checkpoint(args.resume_from_checkpoint, output_dir)
            check_resumable(validate_checkpoint(checkpoint), signature, checkpoint)
        except (FileNotFoundError, ValueError) as error:  # CheckpointError is a ValueError
            raise SystemExit(f"error: {error}") from None
    protocol, (train_split, val_split, test_split), counts, pos_weight = load_data(args)
    logger.info(f"protocol {protocol}: frames {counts}, pos_weight {pos_weight}")

    try:
        model = build_model(
            args.model,
            model_kwargs=args.model_kwargs,
            pretrained_backbone=args.pretrained_backbone,
            init_from=args.init_from,
            image_size=args.image_size,
            pos_weight=pos_weight,
        )
    except (OSError, ValueError, ModelLoadError) as error:
        hint = (" (the ImageNet backbone weights could not be loaded: connect to the Hub once, or set "
                "pretrained_backbone: false)" if args.pretrained_backbone and not args.init_from else "")
        raise SystemExit(f"error: cannot build model {args.init_from or args.model!r}: {error}{hint}") from None
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)

    # Decoding and augmentation run in the DataLoader workers. The sampler fixes each epoch's order
    # and flips from (seed, epoch); the loaders own their generators so iterating them never
    # touches the global RNG (which dropout uses and checkpoints restore).
    train_transform = FrameTransform.for_config(model.config, hflip=args.hflip)
    eval_transform = FrameTransform.for_config(model.config)
    train_labels = train_split.select_columns(["label"])["label"]
    sampler = EpochSampler(train_labels, seed=args.seed, balanced=args.balanced_sampling)
    if args.pseudo_fake_pairs:
        sampler = PseudoFakePairs(sampler, train_labels)  # each real row, then its pseudo-fake
    loader_kwargs = dict(
        collate_fn=collate_frames,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
    # Self-blended pseudo-fakes are made in the workers too, decided by each sample's seed.
    self_blender = make_self_blender(args.pseudo_fakes, args.pseudo_fake_probability)
    augment = FaceAugment() if args.augmentation == "sbi" else None
    train_loader = DataLoader(
        FrameDataset(train_split, train_transform, self_blender, augment), batch_size=args.batch_size, sampler=sampler,
        generator=torch.Generator().manual_seed(args.seed), **loader_kwargs,
    )
    val_loader, test_loader = (
        DataLoader(FrameDataset(split, eval_transform, self_blender, augment), batch_size=args.eval_batch_size, shuffle=False,
                   generator=torch.Generator().manual_seed(args.seed), **loader_kwargs)
        for split in (val_split, test_split)
    )

    optimizer = torch.optim.Adam(
        model.parameters(), lr=args.learning_rate, betas=tuple(args.betas), weight_decay=args.weight_decay
    )
    # Batches per process after sharding; the prepared scheduler steps once per process per update.
    batches_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes)
    steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    max_steps = steps_per_epoch * args.epochs
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.warmup_steps * accelerator.num_processes,
        num_training_steps=max_steps * accelerator.num_processes,
    )
    model, optimizer, train_loader, val_loader, test_loader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, test_loader, lr_scheduler
    )

    state = TrainState(signature=signature)
    if args.resume_from_checkpoint:
        try:
            state = load_checkpoint(accelerator, checkpoint)
        except Exception as error:  # e.g. weights of another architecture: one line, nothing written yet
            reason = (str(error).strip() or type(error).__name__).splitlines()[0]
            raise SystemExit(f"error: cannot resume from {checkpoint}: {reason}") from None
        logger.info(f"resumed from {checkpoint}: epoch {state.epoch + 1}, {state.batches_in_epoch} batches "
                    f"into it, step {state.global_step}")
    # Created only now: a run refused above (bad corpus, checkpoint or model) leaves nothing behind.
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers(
            "dldfd", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                             for k, v in args.to_dict().items()}
        )

    logger.info(
        f"training {len(train_split)} frames, {args.epochs} epochs x {steps_per_epoch} steps, "
        f"batch {args.batch_size} x {accelerator.num_processes} processes x {args.gradient_accumulation_steps} accumulation"
    )
    direction = metric_direction(args.metric_for_best_model)
    if args.validate_before_training and not state.history:
        # Epoch 0: the untrained model's scores, the baseline the training has to beat.
        predictions = predict(model, val_loader, accelerator, desc="validation 0", expected_rows=len(val_split))
        state.history.append({"epoch": 0, "step": 0, "train_loss": None,
                              "validation": split_metrics(val_split, predictions, strategy=args.video_strategy)})
    progress = tqdm(total=max_steps, initial=state.global_step, desc="training",
                    disable=not accelerator.is_local_main_process)
    for epoch in range(state.epoch, args.epochs):
        model.train()
        # Resuming inside an epoch: same order (same sampler epoch), minus the batches already seen.
        epoch_loader = (accelerator.skip_first_batches(train_loader, state.batches_in_epoch)
                        if state.batches_in_epoch else train_loader)
        # Through the prepared loader: it would otherwise reset the sampler to its own iteration count.
        epoch_loader.set_epoch(epoch)
        for batch in epoch_loader:
            with accelerator.accumulate(model):
                outputs = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
                accelerator.backward(outputs.loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            state.loss_sum += outputs.loss.detach().float().item()
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            progress.update(1)
            if state.global_step % args.logging_steps == 0:
                train_loss = state.loss_sum / state.batches_in_epoch
                progress.set_postfix(loss=f"{train_loss:.4f}")
                accelerator.log({"train/loss": train_loss, "train/lr": lr_scheduler.get_last_lr()[0]},
                                step=state.global_step)
            if isinstance(args.checkpointing_steps, int) and state.global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, model, state, output_dir, args.checkpoints_total_limit)

        # End of epoch: validate every validation frame exactly once, across all processes.
        if not state.validated(epoch):
            predictions = predict(model, val_loader, accelerator, desc=f"validation {epoch + 1}",
                                  expected_rows=len(val_split))
            metrics = split_metrics(val_split, predictions, strategy=args.video_strategy)
            train_loss = accelerator.reduce(
                torch.tensor(state.loss_sum / max(state.batches_in_epoch, 1), device=accelerator.device), "mean"
            ).item()
            state.history.append(
                {"epoch": epoch + 1, "step": state.global_step, "train_loss": train_loss, "validation": metrics}
            )
            flat = flatten_metrics(metrics)
            accelerator.log({f"validation/{k}": v for k, v in flat.items()}, step=state.global_step)
            value = flat.get(args.metric_for_best_model)
            best = state.best_metric
            if value is not None and (best is None or (value > best if direction == "max" else value < best)):
                state.best_metric, state.best_epoch = value, epoch + 1
                save_model(accelerator, model, output_dir / "best")
            logger.info(
                f"epoch {epoch + 1}: train loss {train_loss:.4f}, validation "
                + ", ".join(f"{k} {v:.4f}" for k, v in flat.items())
                + (" (best)" if state.best_epoch == epoch + 1 else "")
            )
        state.epoch, state.batches_in_epoch, state.loss_sum = epoch + 1, 0, 0.0
        if accelerator.is_main_process:
            write_results(output_dir / "results.json", args, protocol, counts, pos_weight, state,
                          accelerator.num_processes)
        if args.checkpointing_steps == "epoch":
            save_checkpoint(accelerator, model, state, output_dir, args.checkpoints_total_limit)
    progress.close()

    save_model(accelerator, model, output_dir / "last")
    # Final test with the best model (the last one when no epoch produced the metric).
    best_weights = output_dir / "best" / "model.safetensors"
    if best_weights.is_file():
        # Model folders hold the timm layout: load into the wrapped timm module.
        accelerator.unwrap_model(model).dldfd.load_state_dict(load_file(str(best_weights)))
    elif state.best_epoch is not None:
        logger.warning(f"{best_weights} not found (resumed into another output_dir?): testing the last weights")
    predictions = predict(model, test_loader, accelerator, desc="test", expected_rows=len(test_split))
    test = evaluation_entry(protocol, "test", test_split, predictions, strategy=args.video_strategy)
    if accelerator.is_main_process:
        if args.save_predictions:
            write_predictions(output_dir / "predictions_test.csv", test_split, predictions)
        write_results(output_dir / "results.json", args, protocol, counts, pos_weight, state,
                      accelerator.num_processes, test)
        row = test["table2"]
        logger.info(
            f"test ({protocol}): frame TCR {row['frame_tcr']}%, video TCR {row['video_tcr']}%, "
            f"frame AUC {row['frame_auc']}% (paper TCR {row['paper_tcr']}%) -> {output_dir / 'results.json'}"
        )
    accelerator.end_training()


if __name__ == "__main__":
    main()
