"""The client backend services import to run head swaps.

::

    from headswap_client import Producer

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
as :class:`~headswap_client.errors.JobValidationError` (``.errors`` maps field ->
messages); the worker validates the message again and never trusts it.

What ``submit`` does, and why it is enough for idempotency: it creates the job's record
itself, in one atomic step of the shared ``create.lua`` (the same script, key layout and
fingerprint as the workers' own), *then* sends ``headswap.submit``. The record holds the
idempotency key -> job id mapping, so a second submit with the same key gets the same
job id back and sends nothing; the record also puts the job on the workers' wake-up
schedule, so a message lost between the two steps is re-sent by the workers after
``HEADSWAP_RESEND_AFTER_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from headswap_client import states, tracing
from headswap_client.connection import broker_connection, redis_client
from headswap_client.errors import JobValidationError
from headswap_client.publisher import TaskPublisher
from headswap_client.records import job_fingerprint, new_job_id, record_fields
from headswap_client.schemas import ContractPolicy
from headswap_client.settings import ClientSettings
from headswap_client.store import ClientStore


class Producer:
    """Enqueue jobs and follow them. Thread-safe; make one per process.

    ``settings`` (default: :meth:`ClientSettings.from_env`); keyword arguments named like
    its fields override single values: ``Producer(redis_url="redis://redis:6379/0")``.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        store: ClientStore | None = None,
        publisher: TaskPublisher | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = ClientSettings.from_env(**overrides)
        elif overrides:
            settings = dataclasses.replace(settings, **overrides)
        self.settings = settings
        self.store = store or ClientStore(
            redis_client(settings),
            settings.key_prefix,
            retention_seconds=settings.job_retention_seconds,
            idempotency_ttl=settings.idempotency_ttl_seconds,
        )
        self.policy = ContractPolicy.from_settings(settings)
        self.publisher = publisher or TaskPublisher(broker_connection(settings))

    def submit(self, **message: Any) -> str:
        """Validate and enqueue one job; return its job id.

        Keyword arguments are the contract's fields (``video_url``, ``mappings``,
        ``resolution``, ``model_name``, ``template_id``, ``keep_original_sound``,
        ``webhookUrl``, ``job_id``, ``idempotency_key``, ``callback_task``,
        ``callback_url``, ``metadata``). With a known ``idempotency_key`` the existing
        job's id comes back and nothing new is enqueued. Raises
        :class:`~headswap_client.errors.JobValidationError` for everything the worker
        would refuse — including an ``idempotency_key`` or ``job_id`` already used for a
        job with other parameters.
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
        fields = record_fields(job)
        fp = job_fingerprint(fields)  # what the job asks for: the trace is not part of it
        if context := tracing.traceparent():
            fields[tracing.RECORD_FIELD] = context
        created = self.store.create(
            job_id,
            fields,
            fingerprint=fp,
            idempotency_key=job.get("idempotency_key"),
            delays={"wakeup": self.settings.resend_after_seconds},
        )
        if created.status == "conflict":
            raise JobValidationError({"idempotency_key": [
                f"Key {job.get('idempotency_key')!r} was used for job {created.job_id} "
                "with different parameters."]})  # fmt: skip
        if created.status == "taken":
            raise JobValidationError({"job_id": [
                f"Job {job_id} exists with different parameters."]})  # fmt: skip
        if created.status == "created":
            self.publisher.send("headswap.submit", kwargs=message,
                                queue=self.settings.submit_queue)  # fmt: skip
        return created.job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job record, or None for an unknown (or expired) job. A queued job waiting
        for fair admission has ``queue``: its ``position`` in its producer's line (1 =
        next), ``ahead`` (jobs of every producer admitted before it), the
        ``admission_rate`` (jobs/s, last minute) and ``eta_seconds`` (None when nothing
        was admitted lately)."""
        record = self.store.get(job_id)
        if record is not None and record.get("line") and record.get("state") == states.QUEUED:
            queue = self.store.admission.position(record)
            if queue is not None:
                record["queue"] = queue
        return record

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
        if not self.store.cancel_queued(job_id):
            return False
        self.publisher.send("headswap.notify", kwargs={"job_id": job_id},
                            queue=self.settings.notify_queue)  # fmt: skip
        return True

    def analyze(self, video_url: str) -> None:
        """Ask the workers to analyse a source video ahead of the jobs that will use it."""
        self.publisher.send("headswap.analyze", args=(video_url,), queue=self.settings.submit_queue)

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
        return self.store.read_dead_letters(limit=limit, since=since)

    def close(self) -> None:
        self.store.close()
        self.publisher.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

