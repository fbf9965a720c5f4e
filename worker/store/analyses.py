"""The store's part for person analyses of source videos (one record per URL)."""

from __future__ import annotations

import json
from typing import Any, cast

import redis
from headswap_client.codec import clean_text
from headswap_client.keys import ANALYSIS_MEMBER_PREFIX, Keys

from worker.store.scripts import Scripts

PENDING = "pending"
COMPLETED = "completed"
FAILED = "failed"


class AnalysisStore:
    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts

    def get(self, video_url: str) -> dict[str, str]:
        return cast(dict[str, str], self._redis.hgetall(self._keys.analysis(video_url)))

    def get_by_member(self, member: str) -> dict[str, str]:
        digest = member[len(ANALYSIS_MEMBER_PREFIX) :]
        return cast(dict[str, str], self._redis.hgetall(self._keys.analysis_by_hash(digest)))

    def claim(self, video_url: str, *, ttl: int, stale_after: float) -> dict[str, str] | None:
        """Take the right to start this URL's analysis (one atomic step). None when taken;
        otherwise the stored analysis. A pending claim older than ``stale_after`` without
        an Akool id (its worker died) is taken over."""
        current = self.get(video_url)
        if current and (current.get("status") != "pending" or current.get("analysis_id")):
            return current  # settled, or followed by the poller: nothing to take over
        reply = self._scripts(
            "analysis_claim",
            [self._keys.analysis(video_url)],
            [video_url, int(ttl), repr(float(stale_after))],
        )
        if reply[0] == "claimed":
            return None
        flat = [str(x) for x in reply[1:]]
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def _write(self, video_url: str, fields: dict[str, str], ttl: int, status: str = "") -> bool:
        pairs = [x for kv in fields.items() for x in (kv[0], clean_text(kv[1]))]
        body = json.dumps({"fields": pairs, "ttl": int(ttl), "status": status})
        return bool(self._scripts("analysis_update", [self._keys.analysis(video_url)], [body]))

    def started(self, video_url: str, analysis_id: str) -> bool:
        """Akool accepted the analysis: remember its id while our claim still stands."""
        member = self._keys.analysis_member(video_url)
        return self._write(video_url, {"analysis_id": analysis_id, "member": member}, 0, PENDING)

    def complete(self, video_url: str, obj_ids: list[int], ttl: int) -> bool:
        fields = {"status": COMPLETED, "obj_ids": json.dumps(sorted(obj_ids))}
        return self._write(video_url, fields, ttl)

    def fail(self, video_url: str, error: dict[str, Any], ttl: int) -> bool:
        return self._write(video_url, {"status": FAILED, "error": json.dumps(error)}, ttl)

    def abandon(self, video_url: str) -> None:
        """Drop our claim (the analysis never started): the next job starts it again."""
        self._redis.delete(self._keys.analysis(video_url))

    # --- jobs waiting for an analysis ---------------------------------------------------
    def add_waiter(self, video_url: str, job_id: str) -> None:
        key = self._keys.analysis_waiters(video_url)
        pipe = self._redis.pipeline(transaction=True)
        pipe.sadd(key, job_id)
        pipe.expire(key, 24 * 3600)
        pipe.execute()

    def remove_waiter(self, video_url: str, job_id: str) -> None:
        self._redis.srem(self._keys.analysis_waiters(video_url), job_id)

    def take_waiters(self, video_url: str) -> list[str]:
        """Every job waiting for this analysis, removed from the set in the same step.
        (A job whose re-send then fails is still queued: its wake-up re-sends it.)"""
        key = self._keys.analysis_waiters(video_url)
        pipe = self._redis.pipeline(transaction=True)
        pipe.smembers(key)
        pipe.delete(key)
        members, _ = pipe.execute()
        return sorted(str(m) for m in members)
