"""The store's part for HTTP callbacks: dead letters (the rest lives on the job record)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from headswap_client.codec import clean_text
from headswap_client.keys import Keys
from headswap_client.store import read_dead_letters

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
        """Dead letters, newest first (the reader producers use too)."""
        return read_dead_letters(self._redis, self._keys, limit=limit, since=since)
