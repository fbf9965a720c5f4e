"""Dead messages: queue entries no worker could take, kept byte for byte (issue 11).

::

    {p}:dead-message:<id>   hash: reason, queue, at (Redis server time), size (of the whole
                            entry), truncated (1: raw is only its first RAW_CAP bytes),
                            raw (the entry's bytes), detail (short, safe to show)
    {p}:dead-messages       zset: ids by the time they were kept

Writers are the broker's channel (:mod:`worker.broker`), with its own Redis client;
readers are the operator commands. The client must not decode responses: ``raw`` is
bytes, possibly not UTF-8. Entries do not expire: an operator requeues or deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
from headswap_client.keys import Keys

from worker.errors import DeadMessageRefused
from worker.store.scripts import Scripts

#: The most bytes of one entry that are kept (the rest is counted in ``size``).
RAW_CAP = 64 * 1024


@dataclass(frozen=True)
class DeadMessage:
    id: str
    reason: str
    queue: str
    at: float
    size: int
    truncated: bool
    raw: bytes
    detail: str


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _entry(entry_id: str, raw: dict[bytes, bytes]) -> DeadMessage:
    fields = {_text(k): v for k, v in raw.items()}
    return DeadMessage(
        id=entry_id,
        reason=_text(fields.get("reason")),
        queue=_text(fields.get("queue")),
        at=float(_text(fields.get("at")) or 0),
        size=int(_text(fields.get("size")) or 0),
        truncated=_text(fields.get("truncated")) == "1",
        raw=bytes(fields.get("raw") or b""),
        detail=_text(fields.get("detail")),
    )


class DeadMessages:
    """The dead-message list on one (non-decoding) client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._scripts = Scripts(client)

    def keep(self, entry_id: str, reason: str, queue: str, raw: bytes, detail: str = "") -> bool:
        """Keep an entry (its first :data:`RAW_CAP` bytes); False when ``entry_id`` is kept
        already (the same message delivered again)."""
        args = [entry_id, reason, queue, len(raw), int(len(raw) > RAW_CAP), raw[:RAW_CAP],
                detail]  # fmt: skip
        keys = [self._keys.dead_message(entry_id), self._keys.dead_messages]
        return bool(self._scripts("dead_write", keys, args))

    def count(self) -> int:
        return int(cast(int, self._client.zcard(self._keys.dead_messages)))

    def list(self, limit: int = 100) -> list[DeadMessage]:
        """The oldest ``limit`` entries, oldest first."""
        ids = [_text(i) for i in cast(list[bytes], self._client.zrange(
            self._keys.dead_messages, 0, limit - 1))]  # fmt: skip
        pipe = self._client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hgetall(self._keys.dead_message(entry_id))
        rows = cast(list[dict[bytes, bytes]], pipe.execute()) if ids else []
        return [_entry(i, row) for i, row in zip(ids, rows, strict=True) if row]

    def get(self, entry_id: str) -> DeadMessage | None:
        row = cast(dict[bytes, bytes], self._client.hgetall(self._keys.dead_message(entry_id)))
        return _entry(entry_id, row) if row else None

    def requeue(self, entry_id: str) -> DeadMessage:
        """LPUSH the entry's bytes back on its queue and drop it from the list, in one
        script; returns the entry as it was."""
        entry = self.get(entry_id)
        if entry is None:
            raise DeadMessageRefused(f"no dead message {entry_id}")
        keys = [self._keys.dead_message(entry_id), self._keys.dead_messages, entry.queue]
        done, why = self._scripts("dead_requeue", keys, [entry_id])
        if not done:
            raise DeadMessageRefused(f"dead message {entry_id}: {_text(why)}")
        return entry

    def delete(self, entry_id: str) -> bool:
        """Forget one entry (hash and index, one transaction); False when there was none."""
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._keys.dead_message(entry_id))
        pipe.zrem(self._keys.dead_messages, entry_id)
        deleted, _ = pipe.execute()
        return bool(deleted)
