"""Placeholder bytes served for outputs and previews (the sandbox renders nothing)."""

from __future__ import annotations

import struct
import zlib


def fake_mp4(task_id: str) -> bytes:
    """A tiny ISO-BMFF-shaped file: an ``ftyp`` box and a ``free`` box naming the task."""
    ftyp = b"ftypisom" + struct.pack(">I", 0x200) + b"isomiso2mp41"
    free = b"free" + f"akool-sandbox output {task_id}".encode("ascii")
    return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", len(free) + 4) + free


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def tiny_png(shade: int) -> bytes:
    """A valid 1x1 grey PNG (the shade tells obj_ids apart)."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(bytes([0, shade & 0xFF]))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )
