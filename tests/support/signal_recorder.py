"""Loaded into test workers (``--include``): records every completion signal in Redis,
so a test can see what a receiver connected in the worker process would see."""

from __future__ import annotations

import json
from typing import Any

from config.settings import get_settings
from worker import signals
from worker.store import redis_client

# The store's own client: redis://, rediss:// (with its CA) and sentinel:// alike.
_redis = redis_client(get_settings())


def _recorder(name: str) -> Any:
    def record(sender: Any, job: dict[str, Any] | None = None, **_: Any) -> None:
        job = job or {}
        entry = {"signal": name, "job_id": job.get("job_id"), "state": job.get("state"),
                 "stored_url": job.get("stored_url"), "stored_sha256": job.get("stored_sha256")}
        _redis.rpush("test:signals", json.dumps(entry))
    return record


for _name in ("job_submitted", "job_succeeded", "job_failed", "job_rejected", "job_cancelled"):
    getattr(signals, _name).connect(_recorder(_name), weak=False)
