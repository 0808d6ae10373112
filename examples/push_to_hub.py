#!/usr/bin/env python
"""Push a DLDFD model, the private FF++ corpus, or the demo Space to the Hugging Face Hub.

    # a model folder (train.py's OUTPUT_DIR/best, an export, any save_pretrained folder) + its card
    python examples/push_to_hub.py --model runs/paper_c40/best --repo-id ORG/dldfd_resnet50.ffpp_c40 \
        --results eval_all.json --training runs/paper_c40/results.json

    # the face-crop corpus: always to a PRIVATE dataset repo (FaceForensics++ terms)
    python examples/push_to_hub.py --corpus ffpp_c40_corpus --repo-id ORG/ffpp-c40-faces

    # the Gradio demo as a Space running a model repo
    python examples/push_to_hub.py --space demo --repo-id ORG/dldfd-demo --model-id ORG/dldfd_resnet50.ffpp_c40

Add ``--dry-run --output-dir DIR`` to write the exact folder that would be uploaded and upload
nothing. Log in first (``hf auth login``) or pass ``--token``.
"""

import argparse
import json
import sys

from dldfd_hf.hub import push
from dldfd_hf.hub.cards import training_details
from dldfd_hf.inference.loading import ModelLoadError


def _repo_id(value):
    """A Hub repo id ORG/NAME (argparse type): a path such as ../../x is a usage error, exit 2."""
    try:
        return push.check_repo_id(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a Hub repo id ORG/NAME (not a local path), got {value!r}") from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", metavar="FOLDER", help="model folder or Hub id to export and push")
    what.add_argument("--corpus", metavar="DIR", help="corpus folder written by `dldfd build-ffpp` (pushed private)")
    what.add_argument("--space", metavar="DEMO_DIR", help="demo folder with app.py, analysis.py, requirements.txt, README.md")
    parser.add_argument("--repo-id", required=True, type=_repo_id, help="target repo, ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create a private repo (the corpus always is)")
    parser.add_argument("--results", metavar="EVAL.json",
                        help="model: evaluation JSON of examples/evaluate.py (or train.py's results.json)")
    parser.add_argument("--training", metavar="RESULTS.json",
                        help="model: train.py's results.json, for the card's training details")
    parser.add_argument("--untrained", action="store_true",
                        help="model: mark the weights as untrained (default: inferred from BatchNorm counters)")
    parser.add_argument("--model-id", type=_repo_id, help="space: the model repo the demo runs (a Hub id ORG/NAME)")
    parser.add_argument("--requirement", help="space: the dldfd-hf requirement line (default: the installed version)")
    parser.add_argument("--dry-run", action="store_true", help="write the folder to --output-dir, upload nothing")
    parser.add_argument("--output-dir", help="where a dry run writes the folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output-dir")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")
    args = parser.parse_args(argv)
    if args.dry_run != bool(args.output_dir):
        parser.error("--dry-run and --output-dir go together")
    model_only = [f"--{k.replace('_', '-')}" for k in ("results", "training", "untrained") if getattr(args, k)]
    if model_only and not args.model:
        parser.error(f"{', '.join(model_only)} only apply to --model")
    space_only = [f"--{k.replace('_', '-')}" for k in ("model_id", "requirement") if getattr(args, k)]
    if space_only and not args.space:
        parser.error(f"{', '.join(space_only)} only apply to --space")
    return args


def main(argv=None):
    args = parse_args(argv)
    common = dict(dry_run_dir=args.output_dir, token=args.token)
    try:
        if args.model:
            result = push.push_model(
                args.model, args.repo_id, private=args.private, results=args.results,
                training=training_details(args.training) if args.training else None,
                trained=False if args.untrained else None, overwrite=args.overwrite, **common,
            )
        elif args.corpus:
            result = push.push_corpus(args.corpus, args.repo_id, **common)
        else:
            result = push.push_space(args.space, args.repo_id, model_id=args.model_id, requirement=args.requirement,
                                     private=args.private, overwrite=args.overwrite, **common)
    # One line, no traceback: the Hub unreachable or refusing, a public corpus repo, a bad --model, an existing
    # --output-dir, a full disk (DiskFullError: the folder being written was removed), --space without gradio.
    except (push.PushError, ModelLoadError, OSError, ValueError, ModuleNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    summary = {
        "repo_id": result.repo_id,
        "repo_type": result.repo_type,
        "private": result.private,
        "dry_run": result.dry_run,
        "folder": str(result.folder) if result.folder else None,
        "url": result.url,
        "files": result.files,
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
