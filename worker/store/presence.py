"""The store's part for worker presence: which workers consume right now.

When a worker starts consuming (Celery's ``worker_ready``) it writes
``{p}:worker:<hostname>`` = ``{"hostname", "pid", "ready_at"}`` with a TTL of
:data:`TTL_SECONDS`, refreshes it from its event heartbeat (at most every
:data:`REFRESH_SECONDS`), and deletes it when it shuts down; a worker that dies without
shutting down drops out when the TTL runs out. This is the readiness probe of the dev stack
(tests, chaos, bench, ``make run`` wait on it) and what an operator reads to see the fleet
(:meth:`Presence.live`); it needs nothing in the logs and works at any log level.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from headswap_client.keys import Keys

#: Seconds a record outlives the worker's last refresh.
TTL_SECONDS = 60
#: Least seconds between two refreshes of one worker's record.
REFRESH_SECONDS = 15.0


class Presence:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def announce(self, hostname: str, pid: int) -> None:
        """Record (or refresh) ``hostname`` as consuming, for :data:`TTL_SECONDS`."""
        record = {"hostname": hostname, "pid": pid, "ready_at": round(time.time(), 3)}
        self._redis.set(self._keys.worker(hostname), json.dumps(record), ex=TTL_SECONDS)

    def withdraw(self, hostname: str) -> None:
        self._redis.delete(self._keys.worker(hostname))

    def record_of(self, hostname: str) -> dict[str, Any] | None:
        raw: Any = self._redis.get(self._keys.worker(hostname))
        return dict(json.loads(raw)) if raw else None

    def live(self) -> dict[str, dict[str, Any]]:
        """hostname -> record of every worker whose record has not expired."""
        out: dict[str, dict[str, Any]] = {}
        for key in self._redis.scan_iter(match=self._keys.worker("*"), count=100):
            raw: Any = self._redis.get(key)
            if raw:
                record = json.loads(raw)
                out[str(record["hostname"])] = dict(record)
        return out


def record_of(client: redis.Redis, prefix: str, hostname: str) -> dict[str, Any] | None:
    """For the dev stack and tests, which hold a plain client."""
    return Presence(client, Keys(prefix)).record_of(hostname)
