#!/usr/bin/env python
"""Evaluate a DLDFD model on a face-crop corpus under the paper's protocols, frame and video level.

    python examples/evaluate.py --model runs/paper_c40 --data CORPUS --protocol combined --output eval.json
    python examples/evaluate.py --model org/dldfd-model --data CORPUS --all-protocols --output table2.json

``--model``: a model folder, a training run (its ``best/``), a training checkpoint
(``OUTPUT_DIR/checkpoints/step_*``), a Hub id, or an architecture name (random weights: smoke tests).
``--data``: a corpus folder (``dldfd build-ffpp``) or a Hub dataset id. Runs under ``accelerate launch``
too (predictions gathered across processes).

``--all-protocols`` scores the combined, four single and four cross protocols of Table 2 (those the
corpus has the methods for) from ONE pass over the split, and prints Table 2 with the paper's
numbers beside ours.

``--compare MODEL ...`` scores more models on the same rows and prints them in the same table, one
row per protocol and model (e.g. a model trained on self-blended pseudo-fakes beside a supervised
one: the cross-manipulation gain in one table)::

    python examples/evaluate.py --model runs/sbi --compare runs/paper_c40 --data CORPUS --all-protocols

Output JSON (``format`` "dldfd-eval/1"; ``examples/train.py`` writes one entry of ``results`` as
``results.json["test"]``)::

    {
      "format": "dldfd-eval/1",
      "model": str, "data": str, "split": "test" | "validation",
      "strategy": "majority" | "mean", "threshold": float,
      "skipped_protocols": {protocol: reason},          # --all-protocols: methods the corpus lacks
      "results": [                                      # one entry per protocol
        {
          "protocol": "combined" | "single:<Method>" | "cross:<Method>",
          "split": str,
          "num_frames": int,
          "class_counts": {"real": int, "fake": int},   # frames
          "methods": [str],                             # corpus methods present ("original" = real)
          "metrics": {
            "frame": {"tcr", "balanced_accuracy", "auc", "ap", "eer": float | null,   # fractions
                      "num_frames", "num_real", "num_fake": int, "threshold": float},
            "video": {"tcr", "balanced_accuracy", "auc", "mean_prob_tcr": float | null,
                      "num_videos", "num_real", "num_fake": int, "strategy": str, "threshold": float},
            "per_method": {method: {"num_frames", "num_videos": int,
                                    "frame_accuracy", "video_accuracy", "mean_fake_prob": float,
                                    "frame_auc", "video_auc": float | null   # manipulations only, vs real
                                    }},
            "loss": float | null                          # mean BCE (null when scored from a shared pass)
          },
          "table2": {"protocol", "section" ("combined" | "single" | "cross"), "column": str,
                     "paper_tcr": float | null,            # the paper's TCR %, null outside Table 2
                     "frame_tcr", "video_tcr", "frame_balanced_accuracy", "video_balanced_accuracy",
                     "frame_auc", "video_auc": float | null}   # ours, percent
        }
      ],
      "compare": [{"model": str, "results": [...]}]   # --compare only: the same, per extra model
    }

Video metrics group frames by (method, video_id); TCR is accuracy at the threshold, the video label
is the majority vote of its frames (``--strategy mean``: the mean probability; ``max_mean``: SBI's rule).
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from accelerate import Accelerator
from torch.utils.data import DataLoader

from dldfd_hf._hardware import accelerate_on_cpu
from dldfd_hf._io import atomic_write_json
from dldfd_hf.data.protocols import corpus_methods, parse_protocol, protocol_view
from dldfd_hf.inference.loading import ModelLoadError
from dldfd_hf.inference.voting import STRATEGIES, VotingRule
from dldfd_hf.metrics.paper import TABLE2_PROTOCOLS, format_table2
from dldfd_hf.training.data import (
    CorpusError,
    FrameDataset,
    FrameTransform,
    collate_frames,
    load_corpus,
    read_column,
)
from dldfd_hf.training.evaluation import (
    Predictions,
    evaluation_entry,
    predict,
    write_predictions,
)
from dldfd_hf.training.modeling import load_detector

logger = logging.getLogger("evaluate")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model", required=True, help="model folder, training run/checkpoint, Hub id or architecture")
    parser.add_argument("--compare", nargs="+", default=[], metavar="MODEL",
                        help="more models scored on the same rows, printed beside --model in one table")
    parser.add_argument("--data", required=True, help="corpus folder or Hub dataset id")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--protocol", default="combined", help="combined, single:<Method> or cross:<Method>")
    which.add_argument("--all-protocols", action="store_true", help="every Table 2 protocol the corpus supports")
    parser.add_argument("--split", default="test", choices=("test", "validation", "train"),
                        help="train: e.g. for a model trained on pseudo-fakes, which never saw these fakes")
    parser.add_argument("--output", type=Path, help="write the metrics JSON here")
    parser.add_argument("--predictions", type=Path, help="also write per-frame predictions (CSV) of the whole split")
    parser.add_argument("--strategy", default="majority", choices=STRATEGIES, help="video vote")
    parser.add_argument("--threshold", type=float, default=0.5, help="P(fake) at or above it means fake")
    parser.add_argument("--batch_size", type=int, default=64, help="per device")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--max_samples", type=int, default=None, help="score a fixed random subset of frames")
    parser.add_argument("--mixed_precision", default="no", choices=("no", "fp16", "bf16"))
    parser.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is available")
    args = parser.parse_args(argv)
    try:
        args.rule = VotingRule(args.strategy, args.threshold)
    except ValueError as err:
        parser.error(f"--strategy/--threshold: {err}")
    if args.max_samples is not None and args.max_samples < 1:
        parser.error(f"--max_samples must be >= 1, got {args.max_samples}")
    return args


def select_protocols(args, corpus):
    """The protocols to score and, for --all-protocols, the ones skipped with the reason."""
    available = corpus_methods(corpus)
    if not args.all_protocols:
        parse_protocol(args.protocol, available)  # unknown kind or method -> ValueError naming it
        return [args.protocol], {}
    chosen, skipped = [], {}
    for name in TABLE2_PROTOCOLS:
        try:
            parse_protocol(name, available)
            chosen.append(name)
        except ValueError as error:
            skipped[name] = str(error)
    return chosen, skipped


def frame_keys(dataset):
    """(method, video_id, frame_index) per row: how rows of different protocol views are matched."""
    return list(zip(read_column(dataset, "method"), read_column(dataset, "video_id"), read_column(dataset, "frame_index")))


def model_labels(specs):
    """Short names for the table: a folder's name (``runs/sbi`` -> ``sbi``), else the id as given."""
    short = [Path(spec).name if Path(spec).exists() else spec for spec in specs]
    return short if len(set(short)) == len(short) else list(specs)


def load_inputs(args):
    """The protocols' views of ``--split`` (by protocol name) and the models; input errors exit cleanly."""
    try:
        corpus = load_corpus(args.data)
        protocols, skipped = select_protocols(args, corpus)
        views = {name: protocol_view(corpus, name).splits[args.split] for name in protocols}
        models = [load_detector(spec) for spec in (args.model, *args.compare)]
    except (CorpusError, ModelLoadError, ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    for name, reason in skipped.items():
        logger.warning(f"skipping {name}: {reason}")
    return corpus, views, skipped, models


def rows_to_score(args, corpus, views):
    """The rows every model scores, and the position of each (method, video_id, frame_index) among them."""
    # One pass over the union of the protocols' rows: every Table 2 protocol's rows lie in the
    # combined view (real + every method), so score that once and look each protocol's rows up.
    union = next(iter(views.values())) if len(views) == 1 else protocol_view(corpus, "combined").splits[args.split]
    if args.max_samples and args.max_samples < len(union):
        rows = np.random.default_rng(0).choice(len(union), size=args.max_samples, replace=False)
        union = union.select(np.sort(rows))
    union_keys = frame_keys(union)
    position = {key: i for i, key in enumerate(union_keys)}
    if len(position) != len(union_keys):
        raise SystemExit("error: the corpus has several rows for one (method, video_id, frame_index)")
    return union, position


def protocol_predictions(predictions, position, view, union):
    """The predictions of ``view``'s rows that were scored (all of them unless ``--max_samples``)."""
    rows = [position.get(key) for key in frame_keys(view)]
    present = np.array([i for i, r in enumerate(rows) if r is not None], dtype=np.int64)
    picked = np.array([r for r in rows if r is not None], dtype=np.int64)
    # The mean loss is the union's: it holds for a view only when the view is the union.
    return Predictions(index=present, labels=predictions.labels[picked], fake_probs=predictions.fake_probs[picked],
                       loss=predictions.loss if view is union else None)


def score_model(accelerator, args, spec, model, union, position, views):
    """Predict ``union`` once with ``model``; return its evaluation entry per protocol, and the predictions."""
    loader = DataLoader(FrameDataset(union, FrameTransform.for_config(model.config)), batch_size=args.batch_size,
                        shuffle=False, num_workers=args.num_workers, collate_fn=collate_frames)
    model, loader = accelerator.prepare(model, loader)
    predictions = predict(model, loader, accelerator, desc=f"{spec}: {args.split} ({len(union)} frames)",
                          expected_rows=len(union))
    results = [evaluation_entry(name, args.split, view, protocol_predictions(predictions, position, view, union),
                                args.rule)
               for name, view in views.items()]
    accelerator.free_memory()
    return results, predictions


def build_report(args, skipped, scored):
    """The output JSON ("dldfd-eval/1", schema above) from ``(results, predictions)`` per model."""
    report = {
        "format": "dldfd-eval/1",
        "model": str(args.model),
        "data": str(args.data),
        "split": args.split,
        "strategy": args.strategy,
        "threshold": args.threshold,
        "skipped_protocols": skipped,
        "results": scored[0][0],
    }
    if args.compare:
        report["compare"] = [{"model": str(spec), "results": model_results}
                             for spec, (model_results, _) in zip(args.compare, scored[1:])]
    return report


def print_table(args, scored):
    """Table 2 on stdout; with ``--compare``, one row per protocol and model."""
    if not args.compare:
        print(format_table2(entry["table2"] for entry in scored[0][0]), end="")
        return
    labels = model_labels([args.model, *args.compare])
    rows = []
    for i in range(len(scored[0][0])):
        for label, (model_results, _) in zip(labels, scored):
            row = model_results[i]["table2"]
            rows.append(dict(row, column=f"{row['column']} | {label}"))
    print(format_table2(rows), end="")


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    accelerator = Accelerator(cpu=accelerate_on_cpu(args.cpu), mixed_precision=args.mixed_precision)
    corpus, views, skipped, models = load_inputs(args)
    union, position = rows_to_score(args, corpus, views)
    # (results, predictions) per model, --model first
    scored = [score_model(accelerator, args, spec, model, union, position, views)
              for spec, model in zip((args.model, *args.compare), models)]

    if accelerator.is_main_process:
        if args.output:
            atomic_write_json(args.output, build_report(args, skipped, scored), indent=2)
        if args.predictions:
            write_predictions(args.predictions, union, scored[0][1])
        print_table(args, scored)
        if args.output:
            print(f"metrics written to {args.output}", file=sys.stderr)
    accelerator.end_training()


if __name__ == "__main__":
    main()
