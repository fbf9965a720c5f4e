"""Loaded into test workers (``--include``): records every completion signal in Redis,
so a test can see what a receiver connected in the worker process would see."""

from __future__ import annotations

import json
import os
from typing import Any

import redis

from worker import signals

_tls = {"ssl_ca_certs": os.environ["HEADSWAP_REDIS_CA_FILE"]} if os.environ.get(
    "HEADSWAP_REDIS_CA_FILE") else {}
_redis = redis.Redis.from_url(os.environ["HEADSWAP_REDIS_URL"], decode_responses=True, **_tls)


def _recorder(name: str) -> Any:
    def record(sender: Any, job: dict[str, Any] | None = None, **_: Any) -> None:
        job = job or {}
        entry = {"signal": name, "job_id": job.get("job_id"), "state": job.get("state")}
        _redis.rpush("test:signals", json.dumps(entry))
    return record


for _name in ("job_submitted", "job_succeeded", "job_failed", "job_rejected", "job_cancelled"):
    getattr(signals, _name).connect(_recorder(_name), weak=False)
