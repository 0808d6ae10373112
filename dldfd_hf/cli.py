"""The ``dldfd`` command: one sub-command per module in :mod:`dldfd_hf.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# Each module defines ``register(subparsers)``, adding a parser whose ``func`` default runs it.
# Commands import av/datasets when run, but the package loads torch/timm/transformers: ``dldfd --help`` takes ~6 s.
COMMAND_MODULES = (
    "dldfd_hf.commands.info",
    "dldfd_hf.commands.detect",
    "dldfd_hf.commands.index_ffpp",
    "dldfd_hf.commands.build_ffpp",
    "dldfd_hf.commands.synth_ffpp",
    "dldfd_hf.commands.build_faces",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dldfd", description="DLDFD deepfake detection tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dldfd-hf")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
