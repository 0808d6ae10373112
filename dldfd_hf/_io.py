"""Atomic writes of files and folders: readers (and interrupted runs) never see half of one.

Also the package's one ``PathLike`` alias."""

from __future__ import annotations

import contextlib
import errno
import glob
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
    "DISK_FULL_ERRNOS", "DiskFullError", "PathLike", "TEMPORARY_PATTERN", "atomic_folder", "atomic_path", "atomic_write_bytes", "atomic_write_json",
    "atomic_write_text", "is_stale_temporary", "process_alive", "remove_path", "remove_stale_temporaries", "temporary_name",
    "unwritable_reason",
]


def temporary_name(path: PathLike) -> Path:
    """A unique sibling of ``path`` (same folder, so the final rename is atomic).

    The name is ``<name>.tmp-<host>-<pid>-<random>`` (see :data:`TEMPORARY_PATTERN`), so leftovers of
    a killed run can be recognised, and attributed to a host and process.
    """
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this host (signal 0 checks without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError as error:
        return error.errno != errno.ESRCH
    # A killed worker whose parent has not reaped it yet (a zombie) has stopped writing for good.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): assume it runs
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def is_stale_temporary(path: PathLike, this_host_only: bool = True) -> bool:
    """Whether ``path`` is a temporary (:func:`temporary_name`) that no running process will finish.

    Its process is gone, or it bears this process's own pid (call this before writing any: a
    restarted container reuses pids). A live process keeps its temporaries; so does another host's
    with ``this_host_only`` (a shared disk: its processes cannot be checked from here).
    """
    match = TEMPORARY_PATTERN.match(Path(path).name)
    if match is None:
        return False
    if match["host"] != socket.gethostname():
        return not this_host_only
    pid = int(match["pid"])
    return pid == os.getpid() or not process_alive(pid)


def remove_path(path: Path) -> None:
    """Delete a file, link or folder tree (what is already gone is no error)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(path: PathLike) -> int:
    """Delete what killed runs left beside ``path`` (its stale temporaries: :func:`is_stale_temporary`);
    returns how many. A ``kill -9`` runs no cleanup, so the next writer of ``path`` does it."""
    path = Path(path)
    if not path.parent.is_dir():
        return 0
    stale = [
        p for p in path.parent.glob(f"{glob.escape(path.name)}.tmp-*")
        if TEMPORARY_PATTERN.match(p.name)["name"] == path.name and is_stale_temporary(p)
    ]
    for leftover in stale:
        remove_path(leftover)
    return len(stale)


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(OSError):
    """Writing ``filename`` ran out of disk space (or quota); the atomic writer removed what it had
    written, so nothing half-written is left. ``OSError(errno, strerror, filename)`` arguments, so
    it pickles (from a worker process) like any OSError."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}; nothing half-written was left"


@contextlib.contextmanager
def _disk_full_names(path: Path) -> Iterator[None]:
    """Turn a full disk while writing ``path`` into a :class:`DiskFullError` naming ``path``
    (the OSError of a ``write`` names no file)."""
    try:
        yield
    except DiskFullError:
        raise  # an inner atomic write already named its file
    except OSError as error:
        if error.errno not in DISK_FULL_ERRNOS:
            raise
        raise DiskFullError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from error


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed.

    For writers that need a file name (video encoders, Parquet writers, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with _disk_full_names(path):
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
    remove_stale_temporaries(path)  # a killed run's staging folder (or the old folder it was replacing)
    staging = Path(staging) if staging is not None else temporary_name(path)
    shutil.rmtree(staging, ignore_errors=True)  # a named staging folder may hold a killed run's leftovers
    staging.mkdir(parents=True)
    try:
        with _disk_full_names(path):
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
