"""The ``dldfd`` command: one sub-command per function in :mod:`dldfd_hf.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, Optional, Sequence

# Sub-command -> ("module:function" that adds its arguments, one-line help). Only the module of the
# command being run is imported: ``dldfd --help`` lists them all without loading datasets, the
# card renderer or the corpus builder (the package itself loads torch, timm and transformers).
COMMANDS = {
    "info": ("dldfd_hf.commands.info:configure", "show versions, registered models and devices"),
    "detect": ("dldfd_hf.commands.detect:configure", "detect deepfakes in videos and photos"),
    "index-ffpp": ("dldfd_hf.commands.index_ffpp:configure",
                   "check an FF++ tree and print its videos per split and method (the paper's Table 1)"),
    "build-ffpp": ("dldfd_hf.commands.build_ffpp:configure_build",
                   "build the FF++ face-crop corpus (a datasets DatasetDict) from an FF++ tree"),
    "merge-ffpp": ("dldfd_hf.commands.build_ffpp:configure_merge",
                   "join the shard folders of a multi-machine build-ffpp into one corpus"),
    "synth-ffpp": ("dldfd_hf.commands.synth_ffpp:configure",
                   "make an FF++-layout tree (originals + face-swap / self-blend fakes + splits) from real face videos"),
    "build-faces": ("dldfd_hf.commands.build_faces:configure",
                    "crop the faces of any folder of real videos/photos into a corpus (label real, with landmarks)"),
}


def _configurer(target: str) -> Callable[[argparse.ArgumentParser], None]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The full parser; with ``argv``, only the sub-command it names gets its arguments (the rest
    are listed by name and help)."""
    parser = argparse.ArgumentParser(prog="dldfd", description="DLDFD deepfake detection tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None if argv is None else next((arg for arg in argv if not arg.startswith("-")), "")
    for name, (target, help_text) in COMMANDS.items():
        command = subparsers.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        if chosen is None or chosen == name:
            _configurer(target)(command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _version() -> str:
    try:
        return version("dldfd-hf")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
