"""Which workers consume right now, as Redis records them.

When a worker starts consuming (Celery's ``worker_ready``) it writes
``{prefix}:worker:<hostname>`` = ``{"hostname", "pid", "ready_at"}`` with a TTL of
:data:`TTL_SECONDS`, refreshes it from its event heartbeat (at most every
:data:`REFRESH_SECONDS`), and deletes it when it shuts down; a worker that dies without
shutting down drops out when the TTL runs out. This is the readiness probe of the dev stack
(tests, chaos, bench, ``make run`` wait on it) and what an operator reads to see the fleet
(``live_workers``); it needs nothing in the logs and works at any log level.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

#: Seconds a record outlives the worker's last refresh.
TTL_SECONDS = 60
#: Least seconds between two refreshes of one worker's record.
REFRESH_SECONDS = 15.0


def worker_key(prefix: str, hostname: str) -> str:
    return f"{{{prefix}}}:worker:{hostname}"


def announce(client: redis.Redis, prefix: str, hostname: str, pid: int) -> None:
    """Record (or refresh) ``hostname`` as consuming, for :data:`TTL_SECONDS`."""
    record = {"hostname": hostname, "pid": pid, "ready_at": round(time.time(), 3)}
    client.set(worker_key(prefix, hostname), json.dumps(record), ex=TTL_SECONDS)


def withdraw(client: redis.Redis, prefix: str, hostname: str) -> None:
    client.delete(worker_key(prefix, hostname))


def record_of(client: redis.Redis, prefix: str, hostname: str) -> dict[str, Any] | None:
    raw: Any = client.get(worker_key(prefix, hostname))
    return dict(json.loads(raw)) if raw else None


def live_workers(client: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    """hostname -> record of every worker whose record has not expired."""
    out: dict[str, dict[str, Any]] = {}
    for key in client.scan_iter(match=worker_key(prefix, "*"), count=100):
        raw: Any = client.get(key)
        if raw:
            record = json.loads(raw)
            out[str(record["hostname"])] = dict(record)
    return out
