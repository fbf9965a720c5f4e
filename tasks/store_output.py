"""``headswap.store_output``: one attempt to copy a finished job's video to storage.

The one argument is the job id. A failure that may pass is retried by Celery
(``self.retry`` with the countdown :mod:`worker.storing` computed: backoff with jitter);
a store failure (Redis away) likewise (``autoretry_for``). The ``store`` schedule re-sends
a copy whose message was lost or whose worker died.
"""

from __future__ import annotations

from typing import Any

from worker import storing
from worker.app import app, get_runtime
from worker.store import StoreError


@app.task(
    name=storing.TASK_NAME,
    bind=True,
    max_retries=None,  # bounded by HEADSWAP_STORAGE_RETRY_WINDOW_SECONDS, on the record
    autoretry_for=(StoreError,),
    retry_backoff=True,
    retry_backoff_max=60,
)
def store_output(self: Any, job_id: str) -> str:
    outcome = storing.copy_output(get_runtime(), job_id, attempt=self.request.retries)
    if outcome.status == "retry":
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status
