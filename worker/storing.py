"""Keeping the output: a finished video is copied to durable storage before ``succeeded``.

The decision (docs/OPERATIONS.md *Durable outputs*): ``succeeded`` waits for the copy.
When Akool reports status 3 the job moves to ``storing`` (its ``output_url`` recorded);
``headswap.store_output`` (queue ``headswap.store``) streams the video from Akool's URL to
``HEADSWAP_STORAGE_URL`` and the job moves ``storing -> succeeded`` with ``stored_url``,
``stored_sha256``, ``stored_size`` (and a presigned URL for S3) — so the one terminal
notification (signal, callback task, HTTP callback, ``producer.wait``) already carries the
stored copy, and a producer that waits for ``succeeded`` waits for the copy.

- **Idempotent**: the object key is a function of the record (``worker.storage.keys``);
  an attempt first looks for a complete object under it and reuses it (a worker killed
  after publishing), else writes to a temporary name and publishes only a complete,
  checked object. A lock per job keeps two attempts from copying at once.
- **Retried** (Celery ``self.retry``, backoff with jitter) while the failure may pass —
  a cut or stalled download, a 5xx, storage away — for ``HEADSWAP_STORAGE_RETRY_WINDOW_SECONDS``
  from the move to ``storing``; then ``failed`` with reason ``store_failed``.
- **Never retried**: Akool's URL answers 403/404/410: ``failed`` with reason
  ``output_expired`` (another 4xx: ``output_refused``) and an alert entry in the stream.
- **Never lost**: entering ``storing`` puts the job on the ``store`` schedule one lease
  out; a retry moves it past its countdown. The poll tick re-sends copies whose time came
  (a lost message, a worker killed mid-copy).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from headswap_client import states

from config.celery import NOTIFY_QUEUE, STORE_QUEUE
from worker import admission, tracing
from worker.errors import OutputGone, StorageError, StorageRetryable
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.storage import HashingReader, StoredObject, object_key
from worker.storage import metrics as m
from worker.timing import retry_delay

log = logging.getLogger(__name__)

TASK_NAME = "headswap.store_output"
BATCH = 500


@dataclass(frozen=True)
class Outcome:
    """What one attempt did: ``stored`` | ``reused`` | ``retry`` (in ``retry_in`` s) |
    ``gone`` | ``failed`` (retry window over) | ``busy`` (another attempt holds the job)
    | ``skipped`` (not storing)."""

    status: str
    retry_in: float | None = None


def follow_up(rt: Runtime, job_id: str, *, inline: bool = True) -> None:
    """After a remote status moved a job: send its copy (``storing``) or notify its end
    (in this thread, or as ``headswap.notify`` where producers' receivers are not loaded:
    the webhook receiver)."""
    admission.freed(rt)  # its in-flight slot is free: the next waiting job may go
    record = rt.store.get(job_id)
    if record is not None and record["state"] == states.STORING:
        send_copy(rt, job_id)
    elif inline:
        notify_now(rt, job_id, record)  # the record just read: notify need not read it again
    else:
        rt.send("headswap.notify", {"job_id": job_id}, queue=NOTIFY_QUEUE)


def send_copy(rt: Runtime, job_id: str) -> None:
    rt.send(TASK_NAME, {"job_id": job_id}, queue=STORE_QUEUE)


def resend_due(rt: Runtime) -> int:
    """Copies whose lease ran out (lost message, worker died mid-copy): send them again;
    the claim pushes each one lease further, the job lock makes a duplicate harmless."""
    due = rt.store.claim_due("store", rt.jobs.t.store_lease, BATCH)
    for job_id in due:
        send_copy(rt, job_id)
    return len(due)


def copy_output(rt: Runtime, job_id: str, attempt: int = 0) -> Outcome:
    """One attempt to store the output of a ``storing`` job. ``attempt``: retries so far."""
    record = rt.store.get(job_id)
    if record is None or record["state"] != states.STORING:
        rt.store.unschedule("store", job_id)
        return Outcome("skipped")
    s = rt.settings
    token = rt.store.guards.lock("store", job_id, s.storage_lock_seconds)
    if token is None:
        return Outcome("busy")
    started = time.monotonic()
    try:
        with tracing.job_span("headswap.store_output", record.get(tracing.RECORD_FIELD),
                              job_id=job_id, attempt=attempt) as span:  # fmt: skip
            outcome = _attempt(rt, record, attempt, started)
            tracing.set_attributes(span, outcome=outcome.status)
            return outcome
    finally:
        rt.store.guards.unlock("store", job_id, token)


def _attempt(rt: Runtime, record: dict[str, Any], attempt: int, started: float) -> Outcome:
    job_id = record["job_id"]
    key = object_key(rt.settings.storage_key_template, record)
    try:
        stored = rt.storage.find(key)
        if stored is None:
            stored = _copy(rt, record["output_url"], key, started)
    except OutputGone as exc:
        m.COPY_SECONDS.labels("gone").observe(time.monotonic() - started)
        return _gone(rt, job_id, exc)
    except StorageRetryable as exc:
        m.COPY_SECONDS.labels("retry").observe(time.monotonic() - started)
        return _retry_or_fail(rt, record, attempt, exc)
    m.COPY_SECONDS.labels("stored").observe(time.monotonic() - started)
    m.COPIES.labels("reused" if stored.reused else "copied").inc()
    if rt.jobs.record_stored(job_id, _fields(rt, stored)):
        log.info("output stored", extra={"job_id": job_id, "stored_url": stored.url,
                                         "size": stored.size, "reused": stored.reused})
        notify_now(rt, job_id)
    return Outcome("reused" if stored.reused else "stored")


def _copy(rt: Runtime, url: str, key: str, started: float) -> StoredObject:
    s = rt.settings
    deadline = started + s.storage_attempt_seconds
    with rt.downloader.open(url) as download:
        reader = HashingReader(download.chunks(s.storage_chunk_bytes, deadline), download.size)
        try:
            return rt.storage.put(key, reader, download.content_type)
        finally:
            m.BYTES_COPIED.inc(reader.size)


def _fields(rt: Runtime, stored: StoredObject) -> dict[str, Any]:
    fields = stored.record_fields()
    lifetime = rt.settings.storage_presign_seconds
    presigned = rt.storage.presign(stored.key, lifetime)
    if presigned:
        fields["stored_presigned_url"] = presigned
        fields["stored_presigned_expires_at"] = round(rt.store.clock() + lifetime, 3)
    return fields


def _gone(rt: Runtime, job_id: str, exc: OutputGone) -> Outcome:
    """Akool no longer serves the video: no retry can help. Failed, alerted, notified."""
    m.COPY_FAILURES.labels(exc.reason).inc()
    _end(rt, job_id, exc.reason, exc)
    return Outcome("gone")


def _retry_or_fail(rt: Runtime, record: dict[str, Any], attempt: int,
                   exc: StorageRetryable) -> Outcome:
    s = rt.settings
    job_id = record["job_id"]
    m.COPY_FAILURES.labels(exc.reason).inc()
    since = float(record.get("storing_at") or 0.0)
    if since and rt.store.clock() - since > s.storage_retry_window_seconds:
        m.COPY_FAILURES.labels("store_failed").inc()
        _end(rt, job_id, "store_failed", exc)
        return Outcome("failed")
    delay = retry_delay(attempt + 1, base=s.storage_backoff_base_seconds,
                        cap=s.storage_backoff_max_seconds)  # fmt: skip
    # the safety net waits for this retry (and its attempt) before re-sending
    rt.store.schedule("store", job_id, delay + rt.jobs.t.store_lease, "xx")
    log.warning("output copy failed; retrying", extra={
        "job_id": job_id, "reason": exc.reason, "error": str(exc),
        "attempt": attempt + 1, "retry_in": round(delay, 2)})  # fmt: skip
    return Outcome("retry", retry_in=delay)


def _end(rt: Runtime, job_id: str, reason: str, exc: StorageError) -> None:
    rt.store.events.alert({"alert": reason, "job_id": job_id, "error": str(exc),
                           "http_status": str(exc.http_status or "")})  # fmt: skip
    if rt.jobs.fail(job_id, reason, exc.as_dict()):
        log.error("output not stored: job failed", extra={"job_id": job_id, "reason": reason,
                                                          "error": str(exc)})
        notify_now(rt, job_id)
