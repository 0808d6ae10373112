"""What kind of file a user's media file is, and why it cannot be read.

Every reader error raised for a user's file derives from :class:`MediaError`, whose message
starts with the file's path and then says what was wrong with it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Literal, Optional

from .._io import PathLike

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "MediaError", "media_kind", "file_problem"]

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm",
})
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mts",
    ".3gp", ".ogv",
})


class MediaError(Exception):
    """A file that cannot be used as an image or video. ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def media_kind(path: PathLike) -> Optional[Literal["image", "video"]]:
    """``"image"`` or ``"video"`` from the file extension, None for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


# What a file that is not a regular one is, for its error (``stat`` file-type tests).
_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
)


def file_problem(path: PathLike) -> Optional[str]:
    """Why ``path`` is not a file to read ("no such file", "symlink loop", "dangling symlink (...)",
    "not a regular file (a named pipe (FIFO))", "empty file (0 bytes)", ...), None when it is a
    non-empty regular file. Only ``stat`` is used: a FIFO is never opened (that would block)."""
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop"
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return _dangling(path) or "no such file"
        return (err.strerror or type(err).__name__).lower()
    except ValueError as err:  # e.g. a NUL byte in the name
        return f"invalid file name ({err})"
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for is_kind, name in _FILE_TYPES if is_kind(info.st_mode)), None)
        return f"not a regular file ({kind})" if kind else "not a regular file"
    return None if info.st_size else "empty file (0 bytes)"


def _dangling(path: PathLike) -> Optional[str]:
    """"dangling symlink (to TARGET, which does not exist)" when ``path`` is a link to nothing."""
    try:
        target = os.readlink(path)
    except (OSError, ValueError):  # not a link (or gone meanwhile)
        return None
    return f"dangling symlink (to {target}, which does not exist)"
