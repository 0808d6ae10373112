"""The folder checks every data command makes, with one wording: input folders that must exist,
output folders that may be created or resumed but must not be a file."""

from __future__ import annotations

from pathlib import Path

from .._io import PathLike

__all__ = ["check_output_folder", "require_folder"]


def require_folder(path: PathLike, what: str, error: type[Exception] = ValueError, hint: str = "") -> Path:
    """``path`` as a :class:`Path`; raises ``error`` naming ``what`` and ``path`` when it is missing
    or not a folder (``hint``, e.g. what the folder should hold, is appended)."""
    path = Path(path)
    if not path.exists():
        problem = "does not exist"
    elif not path.is_dir():
        problem = "is a file, not a folder"
    else:
        return path
    raise error(f"{what} {path} {problem}" + (f" ({hint})" if hint else ""))


def check_output_folder(path: PathLike, what: str = "OUTPUT", error: type[Exception] = ValueError) -> Path:
    """``path`` as a :class:`Path`; raises ``error`` when it exists but is not a folder, before any
    work is done (a missing folder is fine: it gets created)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"{what} {path} exists and is a file, not a folder: choose a new folder (or an unfinished one to resume)")
    return path
