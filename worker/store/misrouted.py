"""Our task messages waiting in a queue no headswap worker consumes (Celery's default).

A backend that sends ``headswap.submit`` with its own Celery app and no ``queue=`` puts
the message in the list ``celery`` (Celery's ``task_default_queue``), where it waits
forever. This part finds such entries (a Lua prefilter, so only candidates travel) and
moves one at a time onto its own queue in one script (``LREM`` + ``LPUSH``: never lost,
never doubled)::

    {p}:misrouted   hash: moved (count), last_at (Redis server time), last_task

The client must not decode responses: the lists may hold a backend's own bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
from headswap_client.keys import Keys

from worker.store.scripts import Scripts

#: Entries of each list looked at per scan: the newest (producers push on the left). The
#: sweep scans every 5 s, so a message is seen unless more than this many others were sent
#: to the same list in between; a scan of 500 entries of 2.8 KB takes Redis ~5-10 ms, and
#: an empty or missing list costs one round trip.
SCAN_LIMIT = 500


@dataclass(frozen=True)
class Waiting:
    """One candidate entry: the list it is in and its bytes, as read."""

    source: str
    raw: bytes


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


class MisroutedMessages:
    """Scan and move entries on one (non-decoding) client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._scripts = Scripts(client)

    def scan(self, lists: list[str], limit: int = SCAN_LIMIT) -> list[Waiting]:
        """Entries of ``lists`` whose text names a ``headswap.*`` task (to be parsed)."""
        flat = cast(list[Any], self._scripts("misrouted_scan", lists, [limit]))
        return [Waiting(lists[int(flat[i]) - 1], bytes(flat[i + 1]))
                for i in range(0, len(flat), 2)]  # fmt: skip

    def move(self, entry: Waiting, target: str, new_raw: bytes, task: str) -> bool:
        """Take ``entry`` out of its list and push ``new_raw`` on ``target``, at once;
        False when the entry was no longer there."""
        keys = [entry.source, target, self._keys.misrouted]
        return bool(self._scripts("misrouted_move", keys, [entry.raw, new_raw, task]))

    def tally(self) -> dict[str, Any]:
        """What has been moved so far: ``moved``, ``last_at`` (None before the first),
        ``last_task``."""
        row = cast(dict[bytes, bytes], self._client.hgetall(self._keys.misrouted))
        fields = {_text(k): _text(v) for k, v in row.items()}
        return {
            "moved": int(fields.get("moved") or 0),
            "last_at": float(fields["last_at"]) if fields.get("last_at") else None,
            "last_task": fields.get("last_task") or None,
        }

    def close(self) -> None:
        self._client.close()
