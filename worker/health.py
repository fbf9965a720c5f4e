"""Liveness for Kubernetes without ``celery inspect ping``: a heartbeat file.

The worker touches ``HEADSWAP_HEARTBEAT_FILE`` on every Celery event heartbeat (sent by
the consumer's own loop every few seconds, so a wedged worker stops touching it) and
removes it when shutting down. ``headswap healthcheck --max-age 60`` exits 0 while the file
is fresh: an exec probe.

A Redis outage stops Celery's heartbeats too, and every worker pod restarting during a
Redis incident helps nobody: a watchdog thread (:class:`worker.lifecycle.Hooks`) keeps the
file fresh while the heartbeats are late *because Redis does not answer*, writing the
status ``waiting-for-redis`` into it. Liveness (the file is fresh) passes; readiness
(``--ready``: fresh and ``ok``) fails. A worker whose heartbeats stop while Redis answers
is stuck: nothing touches the file, and liveness fails.
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


OK = "ok"
WAITING_FOR_REDIS = "waiting-for-redis"
STORE_LOST = "store-lost"
#: A standing condition that makes the worker alive but not ready (``store-lost``):
#: Celery's heartbeats write it instead of ``ok`` while it holds.
_condition: str | None = None


def set_condition(condition: str | None) -> None:
    global _condition
    _condition = condition


def touch(min_interval: float = 2.0, status: str = OK) -> None:
    """A Celery heartbeat (``ok``) or the watchdog's word that the worker is alive but
    waiting for Redis."""
    global _last_touch
    if _stopping:  # the last heartbeats of a stopping worker must not revive the file
        return
    now = time.monotonic()
    if status == OK and now - _last_touch < min_interval:
        return
    if status == OK:
        _last_touch = now
        status = _condition or OK
    path = heartbeat_path()
    # A name of this process's own: two workers sharing one file (a pod running two, the
    # bench) must not rename each other's half-written heartbeat away.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{time.time():.3f} {status}\n")
    tmp.replace(path)


def since_heartbeat() -> float:
    """Seconds since this process's last ``ok`` touch (monotonic)."""
    return time.monotonic() - _last_touch


def watchdog_should_touch(since_heartbeat: float, redis_answers: bool,
                          late_after: float) -> bool:  # fmt: skip
    """The watchdog's rule: keep the file fresh only while heartbeats are late and Redis
    does not answer. Late heartbeats with Redis answering mean a stuck worker."""
    return since_heartbeat >= late_after and not redis_answers


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


def status(path: Path | None = None) -> str:
    """What the file says: ``ok`` or ``waiting-for-redis`` (``ok`` for an older file
    that holds only a time)."""
    try:
        parts = (path or heartbeat_path()).read_text().split()
    except (FileNotFoundError, UnicodeDecodeError):
        return ""
    return parts[1] if len(parts) > 1 else OK


def check(max_age: float, path: Path | None = None, *,
          ready: bool = False) -> tuple[bool, str]:  # fmt: skip
    """Liveness (fresh) or, with ``ready``, readiness (fresh and not waiting for Redis)."""
    seconds = age(path)
    if seconds is None:
        return False, "no heartbeat file"
    if seconds > max_age:
        return False, f"heartbeat is {seconds:.0f}s old (max {max_age:.0f}s)"
    said = status(path)
    if ready and said != OK:
        return False, f"alive, not ready: {said} (heartbeat {seconds:.1f}s old)"
    return True, f"heartbeat {seconds:.1f}s old ({said})"
