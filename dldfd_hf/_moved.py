"""Import paths of modules that moved into subpackages keep working, with a FutureWarning.

``import dldfd_hf.video`` gives the very module object of :mod:`dldfd_hf.inference.video` (one
module, so classes and monkeypatches are shared), the way timm keeps ``timm.models.layers``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Optional, Sequence

# old name (under dldfd_hf) -> new name; one table for the finder, the package __getattr__ and the tests
MOVED = {
    "loading": "inference.loading",
    "pipelines": "inference.pipelines",
    "video": "inference.video",
    "faces": "inference.faces",
    "media": "inference.media",
    "voting": "inference.voting",
    "explain": "inference.explain",
    "demo_utils": "inference.analysis",
    "cards": "hub.cards",
    "push": "hub.push",
    "shipped_card": "hub.shipped_card",
}
PACKAGE = __name__.rpartition(".")[0]


def import_moved(old: str) -> ModuleType:
    """The module that ``dldfd_hf.<old>`` now is, after a FutureWarning naming its new path."""
    new = f"{PACKAGE}.{MOVED[old]}"
    warnings.warn(f"{PACKAGE}.{old} moved to {new}; import it from there", FutureWarning, stacklevel=3)
    return importlib.import_module(new)


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, old: str) -> None:
        self.old = old

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return import_moved(self.old)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its new name."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves ``dldfd_hf.<old>`` to its new module (see :data:`MOVED`)."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        package, _, old = fullname.rpartition(".")
        if package != PACKAGE or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(old))


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
