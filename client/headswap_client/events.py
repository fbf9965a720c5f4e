"""The store's part for the event stream (``{p}:events``): alerts, reads, consumer groups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import redis
from redis.exceptions import ResponseError

from headswap_client.keys import Keys


class EventStream:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.key = keys.events

    def alert(self, fields: Mapping[str, str]) -> None:
        """An entry that is not a transition (e.g. ``alert=insufficient_credits``)."""
        self._redis.xadd(self.key, {k: v for k, v in fields.items()})  # type: ignore[misc]

    def read(self, start: str = "-", count: int = 1000) -> list[dict[str, str]]:
        entries = cast(
            list[tuple[str, dict[str, str]]], self._redis.xrange(self.key, min=start, count=count)
        )
        return [dict(fields, id=entry_id) for entry_id, fields in entries]

    def recent(self, window: float, limit: int = 50_000) -> list[dict[str, str]]:
        """Entries of the last ``window`` seconds by the server clock."""
        secs, micros = cast(tuple[int, int], self._redis.time())
        since_ms = int((secs + micros / 1_000_000 - window) * 1000)
        return self.read(f"{since_ms}-0", limit)

    def wait(self, last_id: str, block_ms: int) -> str:
        """Block until an entry after ``last_id`` arrives (or ``block_ms`` passes); the
        id to wait after next time."""
        reply = self._redis.xread({self.key: last_id}, count=100, block=block_ms)
        for _stream, items in cast(list[tuple[str, list[tuple[str, Any]]]], reply or []):
            if items:
                last_id = items[-1][0]
        return last_id

    def ensure_group(self, group: str, start: str = "0") -> None:
        try:
            self._redis.xgroup_create(self.key, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_group(
        self, group: str, consumer: str, *, count: int = 100, block_ms: int | None = 1000
    ) -> list[tuple[str, dict[str, str]]]:
        reply = self._redis.xreadgroup(group, consumer, {self.key: ">"}, count=count,
                                       block=block_ms)  # fmt: skip
        out: list[tuple[str, dict[str, str]]] = []
        for _stream, items in cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply or []):
            out.extend(items)
        return out

    def ack(self, group: str, ids: Iterable[str]) -> int:
        ids = list(ids)
        return cast(int, self._redis.xack(self.key, group, *ids)) if ids else 0
