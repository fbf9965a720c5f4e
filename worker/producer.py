"""The client backend services import to run head swaps.

::

    from worker.producer import Producer

    producer = Producer()                      # settings from HEADSWAP_* (Redis URL...)
    job_id = producer.submit(
        video_url="https://cdn.example.com/in.mp4",
        mappings=[{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
        resolution="720p",
        idempotency_key="order-1234",          # same key -> same job id, one Akool task
        callback_task={"name": "orders.headswap_done", "queue": "orders"},
    )
    job = producer.wait(job_id, timeout=600)   # the final record, or TimeoutError
    job["state"], job.get("output_url")

:meth:`Producer.submit` validates locally first, so field errors reach the caller at once
as :class:`~worker.errors.JobValidationError` (``.errors`` maps field -> messages); the
worker validates the message again and never trusts it.

Producers in other languages send the Celery task ``headswap.submit`` with the JSON object
described in ``worker/contract/submit.schema.json`` as keyword arguments.

A service that receives the HTTP callbacks (``callback_url``) checks them with
:func:`verify_callback_signature` (Standard Webhooks; re-exported here from
:mod:`worker.callbacks.signing`, which a receiver may import alone)::

    from worker.producer import verify_callback_signature

    if not verify_callback_signature(["whsec_..."], request.headers, request.get_data()):
        abort(400)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from config.celery import NOTIFY_QUEUE, SUBMIT_QUEUE
from config.settings import Settings, get_settings
from worker import states, tracing
from worker.callbacks.signing import verify_callback_signature as verify_callback_signature
from worker.dispatch import CeleryDispatcher, sender_app
from worker.errors import JobValidationError
from worker.jobs import Jobs, Timings, new_job_id
from worker.schemas import ContractPolicy
from worker.store import open_store


class Producer:
    """Enqueue jobs and follow them. Thread-safe; make one per process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.store = open_store(self.settings)
        self.jobs = Jobs(self.store, Timings(resend_after=self.settings.resend_after_seconds))
        self.policy = ContractPolicy.from_settings(self.settings)
        self.celery = sender_app(self.settings, "headswap-producer")
        tracing.setup("headswap-producer")  # on by OTEL_* variables, or the host's provider
        self._dispatch = CeleryDispatcher(self.celery)

    def submit(self, **message: Any) -> str:
        """Validate and enqueue one job; return its job id.

        Keyword arguments are the contract's fields (``video_url``, ``mappings``,
        ``resolution``, ``model_name``, ``template_id``, ``keep_original_sound``,
        ``webhookUrl``, ``job_id``, ``idempotency_key``, ``callback_task``,
        ``callback_url``, ``metadata``). With a known ``idempotency_key`` the existing
        job's id comes back and nothing new is enqueued. Raises
        :class:`~worker.errors.JobValidationError` for everything the worker would
        refuse — including an ``idempotency_key`` or ``job_id`` already used for a job
        with other parameters.
        """
        with tracing.span("headswap.producer.submit") as span:
            job_id = self._submit(message)
            tracing.set_attributes(span, job_id=job_id)
            return job_id

    def _submit(self, message: dict[str, Any]) -> str:
        message = {k: v for k, v in message.items() if v is not None}
        job = self.policy.validate(message)
        job_id = job["job_id"] or new_job_id()
        message["job_id"] = job_id
        # The record keeps this span's context: polls, the webhook, notify and the
        # callback, in other processes, continue the job's trace from it.
        created = self.jobs.enqueue(job_id, job, traceparent=tracing.traceparent())
        if created.status == "conflict":
            raise JobValidationError({"idempotency_key": [
                f"Key {job.get('idempotency_key')!r} was used for job {created.job_id} "
                "with different parameters."]})  # fmt: skip
        if created.status == "taken":
            raise JobValidationError({"job_id": [
                f"Job {job_id} exists with different parameters."]})  # fmt: skip
        if created.status == "created":
            self._dispatch.send("headswap.submit", kwargs=message, queue=SUBMIT_QUEUE)
        return created.job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job record, or None for an unknown (or expired) job."""
        return self.store.get(job_id)

    def wait(self, job_id: str, timeout: float, interval: float = 0.25) -> dict[str, Any]:
        """Block until the job is terminal; return its record. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        last_id = "$"
        while True:
            record = self.store.get(job_id)
            if record is not None and record["state"] in states.TERMINAL:
                return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = record["state"] if record else "unknown"
                raise TimeoutError(f"job {job_id} not finished after {timeout}s (state {state})")
            block_ms = max(1, int(min(interval, remaining) * 1000))
            last_id = self.store.events.wait(last_id, block_ms)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not been submitted to Akool yet. False when too late."""
        if not self.jobs.cancel(job_id):
            return False
        self._dispatch.send("headswap.notify", kwargs={"job_id": job_id}, queue=NOTIFY_QUEUE)
        return True

    def analyze(self, video_url: str) -> None:
        """Ask the workers to analyse a source video ahead of the jobs that will use it."""
        self._dispatch.send("headswap.analyze", args=(video_url,), queue=SUBMIT_QUEUE)

    # --- the event stream ---------------------------------------------------------------

    def ensure_group(self, group: str, start: str = "0") -> None:
        """Create a consumer group on the event stream (no error if it exists)."""
        self.store.events.ensure_group(group, start)

    def read_events(
        self, group: str, consumer: str, *, count: int = 100, block_ms: int | None = 1000
    ) -> list[tuple[str, dict[str, str]]]:
        """New events for this consumer of ``group``; ack them with :meth:`ack_events`."""
        return self.store.events.read_group(group, consumer, count=count, block_ms=block_ms)

    def ack_events(self, group: str, ids: Iterable[str]) -> int:
        return self.store.events.ack(group, ids)

    # --- HTTP callbacks ------------------------------------------------------------------

    def dead_letters(self, limit: int = 100, since: float | None = None) -> list[dict[str, Any]]:
        """HTTP callbacks given up on (``callback_url`` jobs), newest first.

        Each: ``job_id``, ``event_id``, ``state``, ``url``, ``reason`` (``blocked_address``,
        ``no_callback_secret``, ``invalid_url``, ``http_status``, ``attempts_exhausted``),
        ``attempts``, ``last_status`` (HTTP status or None), ``last_error``, ``at`` (unix
        time). ``since`` keeps only letters written at or after that time. Letters expire
        with their job (``HEADSWAP_JOB_RETENTION_SECONDS``).
        """
        return self.store.callbacks.read_dead_letters(limit=limit, since=since)

    def close(self) -> None:
        self.store.close()


def job_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a person wants to see about a job (CLI, demo)."""
    keys = ("job_id", "state", "reason", "remote_id", "output_url", "attempts", "field_errors")
    return {k: record.get(k) for k in keys if record.get(k) not in (None, "")}
