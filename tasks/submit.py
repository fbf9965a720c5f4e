"""``headswap.submit`` and ``headswap.analyze``: thin wrappers over worker.submission."""

from __future__ import annotations

from typing import Any

from celery import Task

from worker import analysis
from worker.app import app, get_runtime
from worker.store import StoreError
from worker.submission import reject
from worker.submission import submit as submit_job


@app.task(
    name="headswap.submit",
    bind=True,
    max_retries=None,  # attempts are counted on the job (HEADSWAP_SUBMIT_MAX_RETRIES)
    autoretry_for=(StoreError,),
    retry_backoff=True,
    retry_backoff_max=60,
)
def submit(self: Task, *args: Any, **kwargs: Any) -> None:
    """Validate a job message and create its Akool task exactly once.

    The message is the JSON object of the contract, as keyword arguments (or as one
    positional object). A job that must wait is retried with Celery's own retry.
    """
    rt = get_runtime()
    if (args and kwargs) or len(args) > 1:
        reject(rt, kwargs, {"_schema": ["Send the job as keyword arguments or one JSON object."]})
        return
    message: Any = args[0] if args else kwargs
    outcome = submit_job(rt, message)
    if outcome.retry_in is not None:
        retry_kwargs = dict(message) if isinstance(message, dict) else {}
        retry_kwargs["job_id"] = outcome.job_id
        raise self.retry(args=(), kwargs=retry_kwargs, countdown=outcome.retry_in)


@app.task(name="headswap.analyze", autoretry_for=(StoreError,), retry_backoff=True)
def analyze(video_url: str) -> None:
    """Start (once) the analysis of a source video; the poller follows it to its end."""
    analysis.start(get_runtime(), video_url)
