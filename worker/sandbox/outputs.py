"""The finished videos the sandbox serves at ``/_sandbox/output/<task>.mp4``: real bytes.

Every output is ``assets/sample.mp4`` — a real 2 s, 160x90 H.264/AAC MP4 made once with
ffmpeg (the command is in docs/SANDBOX.md) and shipped in the package, so nothing is
rendered at start-up — followed by a top-level ``free`` box that names the task (each
task's file, and so its SHA-256, is its own) and, with ``output_size``, pads the file to
that many bytes. Players skip ``free`` boxes: the file stays a valid MP4 at any size.

The body is generated as it is sent (never held whole), with the download knobs applied:
``output_latency`` before the first byte, ``output_rate`` bytes per second, a connection
cut after ``output_cut_after`` bytes for the next ``output_cuts`` downloads, ``output_5xx``
downloads answered 503, and ``output_expiry`` seconds after completion the URL answers
``output_expired_status`` (403, as an expired CDN signature does, or 410).
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources

PIECE = 64 * 1024
#: The largest ``output_size`` (a 32-bit box size).
MAX_SIZE = 1 << 31


@functools.cache
def sample_mp4() -> bytes:
    return resources.files("worker.sandbox").joinpath("assets/sample.mp4").read_bytes()


def label(task_id: str) -> bytes:
    return f"akool-sandbox output {task_id}".encode("ascii", "replace")


def output_size(task_id: str, size: int = 0) -> int:
    """The length of a task's file: the sample, its ``free`` box, padding up to ``size``."""
    natural = len(sample_mp4()) + 8 + len(label(task_id))
    return max(natural, min(size, MAX_SIZE))


def output_bytes(task_id: str, size: int = 0) -> Iterator[bytes]:
    """The file of ``task_id``, in pieces of at most :data:`PIECE` bytes."""
    sample = sample_mp4()
    total = output_size(task_id, size)
    box = total - len(sample)
    yield sample
    yield struct.pack(">I", box) + b"free" + label(task_id)
    left = box - 8 - len(label(task_id))
    zeros = bytes(PIECE)
    while left > 0:
        yield zeros[: min(left, PIECE)]
        left -= PIECE


class CutConnection(Exception):
    """Raised inside the response body: the server drops the connection mid-file."""


@dataclass(frozen=True)
class Delivery:
    """How one download is answered (decided under the engine's lock)."""

    status: int  # 200, 404, 403/410 (expired), 503
    latency: float = 0.0
    rate: float = 0.0  # bytes per second, 0 = as fast as possible
    cut_after: int | None = None  # drop the connection after this many bytes
    size: int = 0


def body(task_id: str, delivery: Delivery,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[bytes]:
    """The response body with throughput and cut applied."""
    sent = 0
    for piece in output_bytes(task_id, delivery.size):
        for start in range(0, len(piece), PIECE // 4 if delivery.rate else PIECE):
            part = piece[start : start + (PIECE // 4 if delivery.rate else PIECE)]
            if delivery.cut_after is not None and sent + len(part) > delivery.cut_after:
                yield part[: max(0, delivery.cut_after - sent)]
                raise CutConnection(f"cut after {delivery.cut_after} bytes")
            if delivery.rate:
                sleep(len(part) / delivery.rate)
            sent += len(part)
            yield part
