"""``headswap.deliver_callback``: one attempt to POST a job's record to its callback_url.

The one argument is the job id (no URL, no secret in a message). A failed attempt that
may succeed later is retried with Celery's own retry (``countdown`` from the backoff
policy in ``worker.callbacks.delivery``); the attempts are counted on the job record, so a
redelivered message does not reset them.
"""

from __future__ import annotations

from celery import Task

from worker.app import app, get_runtime
from worker.callbacks import delivery
from worker.store import StoreError


@app.task(
    name=delivery.TASK_NAME,
    bind=True,
    max_retries=None,  # bounded by HEADSWAP_CALLBACK_MAX_ATTEMPTS, counted on the job
    autoretry_for=(StoreError,),
    retry_backoff=True,
    retry_backoff_max=60,
)
def deliver_callback(self: Task, job_id: str) -> str:
    outcome = delivery.deliver(get_runtime(), job_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.status
