"""``dldfd info``: versions, registered models and the compute device."""

from __future__ import annotations

import argparse
import json

import timm
import torch
import transformers

import dldfd_hf


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``dldfd info``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = {
        "dldfd_hf": dldfd_hf.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.is_available(),
        "models": timm.list_models("dldfd_*"),
        "pretrained": timm.list_pretrained("dldfd_*"),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>13}: {', '.join(value) if isinstance(value, list) else value}")
    return 0
