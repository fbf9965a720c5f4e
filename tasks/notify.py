"""``headswap.notify``: fire the completion signals of one terminal job."""

from __future__ import annotations

from redis.exceptions import RedisError

from worker import notify as notifier
from worker.app import app
from worker.runtime import get_runtime


@app.task(name="headswap.notify", autoretry_for=(RedisError,), retry_backoff=True)
def notify(job_id: str) -> None:
    notifier.notify(get_runtime(), job_id)
