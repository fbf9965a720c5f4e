"""A task that ships after its producer (``--include`` it): records each run in Redis."""

from __future__ import annotations

import os

import redis

from worker.app import app

_redis = redis.Redis.from_url(os.environ["HEADSWAP_REDIS_URL"], decode_responses=True)


@app.task(name="tests.late_task")
def late_task(marker: str) -> None:
    _redis.rpush("test:late", marker)
