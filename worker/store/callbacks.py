"""The store's part for HTTP callbacks: dead letters (the rest lives on the job record)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis

from worker.store.codec import clean_text
from worker.store.keys import Keys
from worker.store.scripts import Scripts


class CallbackStore:
    def __init__(
        self, client: redis.Redis, keys: Keys, scripts: Scripts, retention_seconds: int
    ) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts
        self._retention = int(retention_seconds)

    def write_dead_letter(self, job_id: str, letter: Mapping[str, str], at: float) -> None:
        """Keep a dead letter (as long as the job) and index it by time, in one transaction."""
        key, index = self._keys.dead_letter(job_id), self._keys.dead_letters
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={k: clean_text(v) for k, v in letter.items()})
        pipe.expire(key, self._retention)
        pipe.zadd(index, {job_id: at})
        pipe.zremrangebyscore(index, "-inf", at - self._retention)
        pipe.execute()

    def read_dead_letters(
        self, *, limit: int = 100, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Dead letters, newest first."""
        index = self._keys.dead_letters
        low: float | str = "-inf" if since is None else since
        ids = cast(list[str], self._redis.zrevrangebyscore(index, "+inf", low, start=0, num=limit))
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._keys.dead_letter(job_id))
        out: list[dict[str, Any]] = []
        for raw in cast(list[dict[str, str]], pipe.execute()):
            if not raw:
                continue  # expired
            letter: dict[str, Any] = dict(raw)
            letter["attempts"] = int(raw.get("attempts") or 0)
            letter["last_status"] = int(raw["last_status"]) if raw.get("last_status") else None
            letter["last_error"] = raw.get("last_error") or None
            letter["at"] = float(raw.get("at") or 0)
            out.append(letter)
        return out
