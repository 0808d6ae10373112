#!/usr/bin/env python
"""Train DLDFD on a FaceForensics++-style face-crop corpus with Accelerate.

    accelerate launch examples/train.py --config examples/configs/paper_c40.yaml \
        --data ./ffpp_c40_corpus --output_dir runs/paper_c40

Any config key can be overridden on the command line (``--protocol cross:FaceSwap --epochs 5``);
``--help`` lists them. The same command runs on one CPU process or many GPUs / nodes.

Writes into OUTPUT_DIR:
    results.json            validation history, the best epoch and the final test metrics
                            (schema: ``dldfd_hf.training.loop.ResultsFile.write``)
    best/                   the best model by ``metric_for_best_model``: a model folder
                            (``dldfd_hf.model_folder.save_model_folder``) that timm, transformers and the
                            pipelines load
    last/                   the weights after the last epoch
    checkpoints/step_*/     full training state, for ``--resume_from_checkpoint PATH|latest``
    predictions_test.csv    per-frame test predictions (``save_predictions``)
"""

import logging
import math
import sys
from pathlib import Path

import accelerate.utils
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.tracking import LOGGER_TYPE_TO_CLASS
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from dldfd_hf._hardware import accelerate_on_cpu, cpu_supports_bf16_conv
from dldfd_hf.data.protocols import class_counts, protocol_view
from dldfd_hf.inference.loading import ModelLoadError
from dldfd_hf.training.augment import FaceAugment
from dldfd_hf.training.checkpoint import (
    TrainState,
    check_resumable,
    find_checkpoint,
    load_checkpoint,
    resume_signature,
    validate_checkpoint,
)
from dldfd_hf.training.config import ConfigError, build_arg_parser, load_config
from dldfd_hf.training.data import (
    CorpusError,
    EpochSampler,
    FrameDataset,
    FrameTransform,
    collate_frames,
    load_corpus,
    read_column,
)
from dldfd_hf.training.loop import (
    ResultsFile,
    TrainingRun,
    final_test,
    finish_epoch,
    save_model,
    train_one_epoch,
    validate,
    validate_baseline,
)
from dldfd_hf.training.modeling import build_model
from dldfd_hf.training.pseudo_fakes import (
    PseudoFakePairs,
    expected_class_counts,
    make_self_blender,
    rows_used,
    with_pseudo_fakes,
)
from dldfd_hf.training.sources import SOURCE_COLUMN, SourceMixSampler, merge_splits

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


def corpus_splits(args, data):
    """One corpus's protocol name and (train, validation, test) splits; data errors exit cleanly."""
    try:
        view = protocol_view(load_corpus(data), args.protocol)
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
            raise SystemExit(f"error: protocol {view.name}: the {name} split of {data} is empty")
    return view.name, (train, validation, test)


def mix_sampler(args, train_split):
    """The training sampler of a run over ``sources``: each source's share of an epoch (equal weights
    unless ``source_weights`` says otherwise)."""
    weights = {name: float(args.source_weights.get(name, 1.0)) for name in args.sources}
    return SourceMixSampler(read_column(train_split, SOURCE_COLUMN), weights, args.seed, args.epoch_rows,
                            labels=train_split.select_columns(["label"])["label"])


def load_data(args):
    """The protocol's splits (``sources`` merged), their class counts and the BCE pos_weight."""
    if args.sources:
        loaded = {name: corpus_splits(args, data) for name, data in args.sources.items()}
        protocol = next(iter(loaded.values()))[0]
        splits = tuple(merge_splits({name: parts[i] for name, (_, parts) in loaded.items()}) for i in range(3))
    else:
        protocol, splits = corpus_splits(args, args.data)
    train = splits[0]
    counts = dict(zip(("train", "validation", "test"), (class_counts(split) for split in splits)))
    if args.pos_weight == "auto":
        # The paper's weighted BCE: #real / #fake of the training frames. Balanced sampling already
        # equalises the classes, so it needs no weight.
        # With pseudo-fakes: the classes as the sampler's draws turn out on average.
        # With sources, the rows an epoch draws (each source's share), not the split's.
        drawn = mix_sampler(args, train).drawn_per_label() if args.sources else None
        train_counts = {"real": drawn.get(0, 0), "fake": drawn.get(1, 0)} if drawn else counts["train"]
        seen = expected_class_counts(train_counts, args.pseudo_fakes, args.pseudo_fake_probability,
                                     args.pseudo_fake_pairs)
        if args.balanced_sampling:
            pos_weight = None
        elif seen["fake"] == 0:
            raise SystemExit(f"error: protocol {protocol}: the training split has no fake frames "
                             "(train on real faces alone with --pseudo_fakes sbi)")
        else:
            pos_weight = seen["real"] / seen["fake"]
    else:
        pos_weight = args.pos_weight
    return protocol, splits, counts, pos_weight


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


def check_mixed_precision(args) -> None:
    """bf16 on a CPU without native bf16 convolutions (AVX2 only) would crawl or fail: fall back to fp32."""
    on_cpu = accelerate_on_cpu(args.cpu) or not torch.cuda.is_available()
    if args.mixed_precision == "bf16" and on_cpu and not cpu_supports_bf16_conv():
        print("notice: this CPU has no bf16 convolutions (needs AVX-512 or AMX): training in fp32 "
              "(mixed_precision: no)", file=sys.stderr)
        args.mixed_precision = "no"


def resumable_checkpoint(args, output_dir, signature):
    """The checkpoint ``--resume_from_checkpoint`` names, checked against this run (None: a fresh run)."""
    if not args.resume_from_checkpoint:
        return None
    try:
        checkpoint = find_checkpoint(args.resume_from_checkpoint, output_dir)
        check_resumable(validate_checkpoint(checkpoint), signature, checkpoint)
    except (FileNotFoundError, ValueError) as error:  # CheckpointError is a ValueError
        raise SystemExit(f"error: {error}") from None
    return checkpoint


def make_model(args, pos_weight):
    """The model to train; a model that cannot be built exits with one line (and a hint when offline)."""
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
    return model


def make_dataloaders(args, model_config, train_split, val_split, test_split):
    """The train, validation and test DataLoaders (not yet prepared)."""
    # Decoding and augmentation run in the DataLoader workers. The sampler fixes each epoch's order
    # and flips from (seed, epoch); the loaders own their generators so iterating them never
    # touches the global RNG (which dropout uses and checkpoints restore).
    train_transform = FrameTransform.for_config(model_config, hflip=args.hflip)
    eval_transform = FrameTransform.for_config(model_config)
    train_labels = train_split.select_columns(["label"])["label"]
    if args.sources:  # each source's share of an epoch, whatever its size
        sampler = mix_sampler(args, train_split)
    else:
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
    augment = (FaceAugment(h264_probability=args.h264_probability, h264_crf=tuple(args.h264_crf))
               if args.augmentation == "sbi" else None)
    train_loader = DataLoader(
        FrameDataset(train_split, train_transform, self_blender, augment), batch_size=args.batch_size, sampler=sampler,
        generator=torch.Generator().manual_seed(args.seed), **loader_kwargs,
    )
    val_loader, test_loader = (
        DataLoader(FrameDataset(split, eval_transform, self_blender, augment), batch_size=args.eval_batch_size, shuffle=False,
                   generator=torch.Generator().manual_seed(args.seed), **loader_kwargs)
        for split in (val_split, test_split)
    )
    return train_loader, val_loader, test_loader


def updates_per_epoch(args, num_batches, num_processes):
    """Optimizer steps per epoch: the batches per process after sharding, over the accumulation."""
    return math.ceil(math.ceil(num_batches / num_processes) / args.gradient_accumulation_steps)


def make_optimizer(args, model, max_steps, num_processes):
    """Adam and the learning-rate schedule over ``max_steps`` optimizer steps."""
    optimizer = torch.optim.Adam(
        model.parameters(), lr=args.learning_rate, betas=tuple(args.betas), weight_decay=args.weight_decay
    )
    # The prepared scheduler steps once per process per update.
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.warmup_steps * num_processes,
        num_training_steps=max_steps * num_processes,
    )
    return optimizer, lr_scheduler


def restore_state(accelerator, checkpoint, signature):
    """The training state to start from: the checkpoint's (loaded into the prepared objects), or a fresh one."""
    if checkpoint is None:
        return TrainState(signature=signature)
    try:
        state = load_checkpoint(accelerator, checkpoint)
    except Exception as error:  # e.g. weights of another architecture: one line, nothing written yet
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise SystemExit(f"error: cannot resume from {checkpoint}: {reason}") from None
    logger.info(f"resumed from {checkpoint}: epoch {state.epoch + 1}, {state.batches_in_epoch} batches "
                f"into it, step {state.global_step}")
    return state


def init_trackers(accelerator, args):
    """Start the ``--report_to`` trackers with the run's config (trackers take scalars: the rest as strings)."""
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers(
            "dldfd", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                             for k, v in args.to_dict().items()}
        )


def main(argv=None):
    args = parse_args(argv)
    check_mixed_precision(args)
    accelerator = Accelerator(
        cpu=accelerate_on_cpu(args.cpu),
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
    checkpoint = resumable_checkpoint(args, output_dir, signature)
    protocol, (train_split, val_split, test_split), counts, pos_weight = load_data(args)
    logger.info(f"protocol {protocol}: frames {counts}, pos_weight {pos_weight}")
    model = make_model(args, pos_weight)

    train_loader, val_loader, test_loader = make_dataloaders(args, model.config, train_split, val_split, test_split)
    steps_per_epoch = updates_per_epoch(args, len(train_loader), accelerator.num_processes)
    max_steps = steps_per_epoch * args.epochs
    optimizer, lr_scheduler = make_optimizer(args, model, max_steps, accelerator.num_processes)
    model, optimizer, train_loader, val_loader, test_loader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, test_loader, lr_scheduler
    )
    state = restore_state(accelerator, checkpoint, signature)
    # Created only now: a run refused above (bad corpus, checkpoint or model) leaves nothing behind.
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    init_trackers(accelerator, args)
    results = ResultsFile(output_dir / "results.json", args, protocol, counts, pos_weight, accelerator.num_processes)
    run = TrainingRun(
        accelerator=accelerator, config=args, model=model, optimizer=optimizer, lr_scheduler=lr_scheduler,
        train_loader=train_loader, val_loader=val_loader, val_split=val_split, test_loader=test_loader,
        test_split=test_split, state=state, results=results,
    )

    logger.info(
        f"training {len(train_split)} frames, {args.epochs} epochs x {steps_per_epoch} steps, "
        f"batch {args.batch_size} x {accelerator.num_processes} processes x {args.gradient_accumulation_steps} accumulation"
    )
    if args.validate_before_training and not state.history:
        validate_baseline(run)
    progress = tqdm(total=max_steps, initial=state.global_step, desc="training",
                    disable=not accelerator.is_local_main_process)
    for epoch in range(state.epoch, args.epochs):
        train_one_epoch(run, epoch, progress)
        # End of epoch: validate every validation frame exactly once, across all processes.
        if not state.validated(epoch):
            validate(run, epoch)
        finish_epoch(run, epoch)
    progress.close()

    save_model(accelerator, model, output_dir / "last")
    # Final test with the best model (the last one when no epoch produced the metric).
    final_test(run)
    accelerator.end_training()


if __name__ == "__main__":
    main()
