"""Atomic writes of files and folders: readers (and interrupted runs) never see half of one.

Also the package's one ``PathLike`` alias."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional, Union

PathLike = Union[str, os.PathLike]

# <name>.tmp-<host>-<pid>-<random>: groups name, host, pid.
TEMPORARY_PATTERN = re.compile(r"^(?P<name>.+)\.tmp-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}$")

__all__ = [
    "PathLike", "TEMPORARY_PATTERN", "atomic_folder", "atomic_path", "atomic_write_bytes", "atomic_write_json",
    "atomic_write_text", "temporary_name", "unwritable_reason",
]


def temporary_name(path: PathLike) -> Path:
    """A unique sibling of ``path`` (same folder, so the final rename is atomic).

    The name is ``<name>.tmp-<host>-<pid>-<random>`` (see :data:`TEMPORARY_PATTERN`), so leftovers of
    a killed run can be recognised, and attributed to a host and process.
    """
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed.

    For writers that need a file name (video encoders, Parquet writers, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: PathLike, *, overwrite: bool = False, staging: Optional[PathLike] = None) -> Iterator[Path]:
    """Yield an empty temporary sibling folder to fill; on success it replaces ``path``, on failure
    it is removed, so ``path`` appears complete or not at all.

    ``path`` may exist as an empty folder; a non-empty one is replaced only with ``overwrite=True``,
    and only once the new folder is complete. ``staging`` names the temporary folder when several
    processes must agree on it (a distributed checkpoint); by default it is :func:`temporary_name`.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} already exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(staging) if staging is not None else temporary_name(path)
    shutil.rmtree(staging, ignore_errors=True)  # a named staging folder may hold a killed run's leftovers
    staging.mkdir(parents=True)
    try:
        yield staging
        if path.exists():
            previous = temporary_name(path)
            path.rename(previous)
            staging.rename(path)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, data: Any, **dump_kwargs: Any) -> None:
    dump_kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(data, **dump_kwargs) + "\n")


def unwritable_reason(path: PathLike) -> Optional[str]:
    """Why :func:`atomic_write_bytes` could not write ``path`` (None when it can), found before any
    work is done: by creating and removing a temporary beside it (in the nearest existing folder
    when its folder does not exist yet: :func:`atomic_path` creates the rest), and, when ``path``
    exists, by opening it for appending (an immutable or read-only file).

    Nothing is left behind and nothing existing is changed. The write can still fail later (a
    full disk, permissions changed meanwhile): callers keep their results then.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return "it is a directory"
        if path.exists() and not path.is_file():
            return "it exists and is not a regular file"
        folder = path.absolute().parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            return f"{folder} is not a folder"
        probe = temporary_name(folder / path.name)
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            return f"cannot create a file in {folder} ({err.strerror or err})"
        os.close(fd)
        probe.unlink()
        if path.exists():
            try:
                with open(path, "ab"):
                    pass
            except OSError as err:
                return f"cannot replace it ({err.strerror or err})"
    except OSError as err:  # e.g. a symlink loop on the way, a name too long
        return err.strerror or str(err)
    return None
