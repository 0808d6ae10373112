"""Telling a cut-short MPEG program stream (``.mpg``, ``.vob``) from a whole one.

Nothing in MPEG-PS counts frames, so FFmpeg reads a truncated file as a complete one. Its packets
say how long they are, so a file that ends inside one was cut: :func:`mpeg_ps_cut` follows the
packets of the file's end to find that out.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

__all__ = ["mpeg_ps_cut"]


def mpeg_ps_cut(path: str, window: int = 1 << 20) -> Optional[Tuple[int, int]]:
    """``(file size, end of the last packet)`` when an MPEG program stream ends inside a packet.

    MPEG-PS counts no frames and its duration is estimated from the timestamps found, so a file cut
    short looks complete to FFmpeg; its last pack or PES packet, whose length is in its header, does
    not. The packets of the file's last ``window`` bytes are followed from the first pack header
    there; None when the file ends on a packet boundary, or when the structure cannot be followed
    (trailing padding, an unusual muxer): no warning rather than a wrong one.
    """
    size = os.path.getsize(path)
    start = max(0, size - window)
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read()
    candidate = data.find(b"\x00\x00\x01\xba")
    for _ in range(8):  # a pack start code inside payload bytes loses the structure at once: try the next
        if candidate < 0:
            return None
        end = _follow_mpeg_ps(data, candidate)
        if end is None:
            candidate = data.find(b"\x00\x00\x01\xba", candidate + 4)
            continue
        return None if end <= len(data) else (size, start + end)
    return None


def _follow_mpeg_ps(data: bytes, pos: int) -> Optional[int]:
    """Follow packs and packets from ``pos``: the end of the last one (past ``len(data)`` when the data
    ends inside it), or None when the bytes stop looking like MPEG-PS before the end."""
    while pos < len(data):
        if len(data) - pos < 4:
            return pos + 4 if data[pos:] == b"\x00\x00\x01"[: len(data) - pos] else None
        if data[pos:pos + 3] != b"\x00\x00\x01":
            return None
        code = data[pos + 3]
        if code == 0xB9:  # program end code
            length = 4
        elif code == 0xBA:  # pack header: MPEG-2 (14 bytes + stuffing) or MPEG-1 (12 bytes)
            if pos + 5 > len(data):
                return pos + 12
            marker = data[pos + 4]
            if marker >> 6 == 0b01:
                if pos + 14 > len(data):
                    return pos + 14
                length = 14 + (data[pos + 13] & 0x07)
            elif marker >> 4 == 0b0010:
                length = 12
            else:
                return None
        elif code >= 0xBB:  # system header and PES packets: 16-bit length after the start code
            if pos + 6 > len(data):
                return pos + 6
            length = 6 + int.from_bytes(data[pos + 4:pos + 6], "big")
        else:
            return None
        pos += length
    return pos
