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
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

from celery import Celery

from config.celery import SUBMIT_QUEUE, celery_config
from config.settings import Settings, get_settings
from worker import states
from worker.errors import JobNotFound, TransitionRefused
from worker.runtime import redis_client
from worker.schemas import validate_job
from worker.store import JobStore
from worker.submission import new_job_id, record_fields


class Producer:
    """Enqueue jobs and follow them. Thread-safe; make one per process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.redis = redis_client(self.settings)
        self.store = JobStore(
            self.redis,
            self.settings.key_prefix,
            retention_seconds=self.settings.job_retention_seconds,
            idempotency_ttl=self.settings.idempotency_ttl_seconds,
            resend_after=self.settings.resend_after_seconds,
        )
        self.celery = Celery("headswap-producer", set_as_current=False)
        self.celery.config_from_object(celery_config(self.settings))

    def submit(self, **message: Any) -> str:
        """Validate and enqueue one job; return its job id.

        Keyword arguments are the contract's fields (``video_url``, ``mappings``,
        ``resolution``, ``model_name``, ``template_id``, ``keep_original_sound``,
        ``webhookUrl``, ``job_id``, ``idempotency_key``, ``callback_task``,
        ``callback_url``, ``metadata``). With a known ``idempotency_key`` the existing
        job's id comes back and nothing new is enqueued.
        """
        message = {k: v for k, v in message.items() if v is not None}
        job = validate_job(message, self.settings.allowed_models)
        job_id = job["job_id"] or new_job_id()
        message["job_id"] = job_id
        created, existing = self.store.create(
            job_id,
            record_fields(job),
            idempotency_key=job.get("idempotency_key"),
            wakeup_at=time.time() + self.settings.resend_after_seconds,
        )
        if created:
            self.celery.send_task("headswap.submit", kwargs=message, queue=SUBMIT_QUEUE)
        return existing

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
            entries = self.redis.xread({self.store.events_key: last_id}, count=100, block=block_ms)
            for _stream, items in cast(list[tuple[str, list[tuple[str, Any]]]], entries or []):
                if items:
                    last_id = items[-1][0]

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not been submitted to Akool yet. False when too late."""
        try:
            self.store.transition(job_id, states.CANCELLED, event={"reason": "cancelled"})
        except TransitionRefused:
            return False
        except JobNotFound:
            return False
        self.celery.send_task("headswap.notify", kwargs={"job_id": job_id}, queue="headswap.notify")
        return True

    def analyze(self, video_url: str) -> None:
        """Ask the workers to analyse a source video ahead of the jobs that will use it."""
        self.celery.send_task("headswap.analyze", args=(video_url,), queue=SUBMIT_QUEUE)

    # --- the event stream ---------------------------------------------------------------

    def ensure_group(self, group: str, start: str = "0") -> None:
        """Create a consumer group on the event stream (no error if it exists)."""
        try:
            self.redis.xgroup_create(self.store.events_key, group, id=start, mkstream=True)
        except Exception as exc:  # redis.ResponseError BUSYGROUP
            if "BUSYGROUP" not in str(exc):
                raise

    def read_events(
        self, group: str, consumer: str, *, count: int = 100, block_ms: int | None = 1000
    ) -> list[tuple[str, dict[str, str]]]:
        """New events for this consumer of ``group``; ack them with :meth:`ack_events`."""
        reply = self.redis.xreadgroup(
            group, consumer, {self.store.events_key: ">"}, count=count, block=block_ms
        )
        out: list[tuple[str, dict[str, str]]] = []
        for _stream, items in cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply or []):
            out.extend(items)
        return out

    def ack_events(self, group: str, ids: Iterable[str]) -> int:
        ids = list(ids)
        return cast(int, self.redis.xack(self.store.events_key, group, *ids)) if ids else 0

    # --- HTTP callbacks ------------------------------------------------------------------

    def dead_letters(self, limit: int = 100, since: float | None = None) -> list[dict[str, Any]]:
        """HTTP callbacks given up on (``callback_url`` jobs), newest first.

        Each: ``job_id``, ``event_id``, ``state``, ``url``, ``reason`` (``blocked_address``,
        ``no_callback_secret``, ``invalid_url``, ``http_status``, ``attempts_exhausted``),
        ``attempts``, ``last_status`` (HTTP status or None), ``last_error``, ``at`` (unix
        time). ``since`` keeps only letters written at or after that time. Letters expire
        with their job (``HEADSWAP_JOB_RETENTION_SECONDS``).
        """
        from worker.callbacks import read_dead_letters

        return read_dead_letters(self.redis, self.store.p, limit=limit, since=since)

    def close(self) -> None:
        self.redis.close()


def job_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a person wants to see about a job (CLI, demo)."""
    keys = ("job_id", "state", "reason", "remote_id", "output_url", "attempts", "field_errors")
    return {k: record.get(k) for k in keys if record.get(k) not in (None, "")}
