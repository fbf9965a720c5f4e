"""``headswap.submit`` and ``headswap.analyze``: thin wrappers over worker.submission."""

from __future__ import annotations

from typing import Any

from worker import analysis
from worker.app import app, get_runtime
from worker.store import StoreError
from worker.submission import reject
from worker.submission import submit as submit_job


@app.task(
    name="headswap.submit",
    max_retries=None,  # attempts are counted on the job (HEADSWAP_SUBMIT_MAX_RETRIES)
    autoretry_for=(StoreError,),
    retry_backoff=True,
    retry_backoff_max=60,
)
def submit(*args: Any, **kwargs: Any) -> None:
    """Validate a job message and create its Akool task exactly once.

    The message is the JSON object of the contract, as keyword arguments (or as one
    positional object). A store failure is retried by Celery (``autoretry_for``), the one
    retry layer of this task; a job that must wait is data in Redis, re-sent when due.
    """
    rt = get_runtime()
    if (args and kwargs) or len(args) > 1:
        reject(rt, kwargs, {"_schema": ["Send the job as keyword arguments or one JSON object."]})
        return
    message: Any = args[0] if args else kwargs
    submit_job(rt, message)  # a job that must wait is on the wake-up schedule (Redis clock)


@app.task(name="headswap.analyze", autoretry_for=(StoreError,), retry_backoff=True)
def analyze(video_url: str) -> None:
    """Start (once) the analysis of a source video; the poller follows it to its end."""
    analysis.start(get_runtime(), video_url)
