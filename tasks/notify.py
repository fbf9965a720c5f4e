"""``headswap.notify``: fire the completion signals of one terminal job."""

from __future__ import annotations

from worker import notify as notifier
from worker.app import app, get_runtime
from worker.store import StoreError


@app.task(name="headswap.notify", autoretry_for=(StoreError,), retry_backoff=True)
def notify(job_id: str) -> None:
    notifier.notify(get_runtime(), job_id)
