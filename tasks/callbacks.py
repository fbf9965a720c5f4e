"""``headswap.deliver_callback``: one attempt to POST a job's record to its callback_url.

The one argument is the job id (no URL, no secret in a message). A failed attempt that
may succeed later puts the job on the ``callback`` schedule (Redis clock); beat's poll
tick (``headswap.poll_due``) sends the next attempt. The attempts are counted on the job
record, so a redelivered message does not reset them. A store failure is retried by Celery
(``autoretry_for``): with Redis away there is nowhere else to keep the retry.
"""

from __future__ import annotations

from worker.app import app, get_runtime
from worker.callbacks import delivery
from worker.store import StoreError


@app.task(
    name=delivery.TASK_NAME,
    max_retries=None,  # only store failures: until Redis is back (attempts are counted)
    autoretry_for=(StoreError,),
    retry_backoff=True,
    retry_backoff_max=60,
)
def deliver_callback(job_id: str) -> str:
    return delivery.deliver(get_runtime(), job_id).status
