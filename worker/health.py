"""Liveness for Kubernetes without ``celery inspect ping``: a heartbeat file.

The worker touches ``HEADSWAP_HEARTBEAT_FILE`` on every Celery event heartbeat (sent by
the consumer's own loop every few seconds, so a wedged worker stops touching it) and
removes it when shutting down. ``headswap healthcheck --max-age 60`` exits 0 while the file
is fresh: an exec probe.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

DEFAULT_HEARTBEAT_FILE = "/tmp/headswap-heartbeat"  # noqa: S108 (an emptyDir in the pod)
_last_touch = 0.0
_stopping = False


def heartbeat_path() -> Path:
    return Path(os.environ.get("HEADSWAP_HEARTBEAT_FILE", DEFAULT_HEARTBEAT_FILE))


def touch(min_interval: float = 2.0) -> None:
    global _last_touch
    if _stopping:  # the last heartbeats of a stopping worker must not revive the file
        return
    now = time.monotonic()
    if now - _last_touch < min_interval:
        return
    _last_touch = now
    path = heartbeat_path()
    # A name of this process's own: two workers sharing one file (a pod running two, the
    # bench) must not rename each other's half-written heartbeat away.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{time.time():.3f}\n")
    tmp.replace(path)


def clear() -> None:
    global _stopping
    _stopping = True
    with contextlib.suppress(FileNotFoundError):
        heartbeat_path().unlink()


def age(path: Path | None = None) -> float | None:
    """Seconds since the last heartbeat, or None when there is none."""
    try:
        return time.time() - (path or heartbeat_path()).stat().st_mtime
    except FileNotFoundError:
        return None


def check(max_age: float, path: Path | None = None) -> tuple[bool, str]:
    seconds = age(path)
    if seconds is None:
        return False, "no heartbeat file"
    if seconds > max_age:
        return False, f"heartbeat is {seconds:.0f}s old (max {max_age:.0f}s)"
    return True, f"heartbeat {seconds:.1f}s old"
