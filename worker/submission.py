"""Submitting a job to Akool exactly once.

The move ``queued -> submitting`` is the lock: only the caller that makes it calls
create. Every outcome of that call is classified (see ``worker/errors.py``) before
anything is retried:

- created: ``submitting -> submitted``, remote id stored, first poll scheduled
- not received (AkoolRetryable): back to ``queued``, retried after a backoff
- out of credits (1104): back to ``queued``; all submissions pause (a circuit in Redis)
- refused (AkoolFatal): ``failed`` with Akool's code and msg
- may have run (AkoolAmbiguous): stays ``submitting``, marked ambiguous; the reaper
  resolves it (webhook binding, or fail/resubmit after a grace period)
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from redis.exceptions import RedisError

from worker import analysis, metrics, signals, states
from worker.akool_types import CreateTaskRequest, Task
from worker.akool_types import Mapping as AkoolMapping
from worker.errors import (
    AkoolAmbiguous,
    AkoolError,
    AkoolFatal,
    AkoolInsufficientCredits,
    AkoolRetryable,
    InFlightCapReached,
    JobValidationError,
    TransitionRefused,
)
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.schemas import validate_job
from worker.store import Op
from worker.timing import first_poll_delay, full_jitter, retry_delay

log = logging.getLogger(__name__)

#: A worker thread sleeps at most this long for a create-rate slot before deferring.
RATE_MAX_BLOCK_SECONDS = 2.0
#: How soon a job held back by the in-flight cap is looked at again.
CAP_RECHECK_SECONDS = 4.0

ENVELOPE_FIELDS = ("job_id", "idempotency_key", "callback_task", "callback_url", "metadata")
REQUEST_FIELDS = (
    "video_url", "mappings", "model_name", "resolution", "template_id",
    "keep_original_sound", "webhook_url",
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What the task wrapper should do next: nothing, or retry after ``retry_in`` seconds."""

    status: str  # submitted | rejected | failed | retry | waiting | ambiguous | skipped
    job_id: str | None
    retry_in: float | None = None


def new_job_id() -> str:
    return uuid.uuid4().hex


def record_fields(job: Mapping[str, Any]) -> dict[str, Any]:
    """What the store keeps of a validated job: only fields with a value (a pending job's
    memory is mostly this hash; absent fields read back as their defaults)."""
    request = {k: job[k] for k in REQUEST_FIELDS if job.get(k) is not None}
    fields = {
        "request": request,
        "idempotency_key": job.get("idempotency_key"),
        "callback_task": job.get("callback_task"),
        "callback_url": job.get("callback_url"),
        "metadata": job.get("metadata") or None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def message_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The original job message, rebuilt from a stored record (for re-sends)."""
    request = dict(record.get("request") or {})
    message = {k: v for k, v in request.items() if k != "webhook_url" and v is not None}
    if request.get("webhook_url"):
        message["webhookUrl"] = request["webhook_url"]
    for key in ENVELOPE_FIELDS:
        if record.get(key) not in (None, "", {}):
            message[key] = record[key]
    return message


def validate_message(rt: Runtime, message: Any) -> dict[str, Any]:
    """The schema plus rules that depend on settings."""
    job = validate_job(message, rt.settings.allowed_models)
    if job.get("webhook_url") and rt.settings.webhook_public_url:
        raise JobValidationError(
            {"webhookUrl": ["This worker receives Akool webhooks itself; use callback_url."]}
        )
    return job


def submit(rt: Runtime, message: Any) -> Outcome:
    """Handle one ``headswap.submit`` message. Safe to call any number of times."""
    try:
        job = validate_message(rt, message)
    except JobValidationError as exc:
        return reject(rt, message, exc.errors)
    job_id = job["job_id"] or new_job_id()
    _, existing = rt.store.create(
        job_id,
        record_fields(job),
        idempotency_key=job.get("idempotency_key"),
        wakeup_at=time.time() + rt.settings.resend_after_seconds,
    )
    if existing != job_id:
        log.info("duplicate by idempotency key", extra={"job_id": existing})
        return Outcome("skipped", existing)
    record = rt.store.require(job_id)
    if record["state"] != states.QUEUED:
        return Outcome("skipped", job_id)  # redelivered, or already past the lock
    return _submit_queued(rt, record)


def _submit_queued(rt: Runtime, record: dict[str, Any]) -> Outcome:
    job_id = record["job_id"]
    paused_until = credits_paused_until(rt)
    if paused_until:
        return _wait_for_credits(rt, record, paused_until)
    try:
        gate = analysis.gate(rt, record)
    except AkoolError as exc:  # analyze not received or unreadable: try again later
        delay = retry_delay(
            int(record.get("attempts", 0)) + 1, cap=rt.settings.retry_backoff_max_seconds
        )
        log.info(
            "analysis could not start; will retry", extra={"job_id": job_id, "error": str(exc)}
        )
        return Outcome("retry", job_id, retry_in=delay)
    if gate.rejected:
        return reject_existing(rt, job_id, gate.field_errors)
    if gate.failed:
        return fail(rt, job_id, reason="analysis_failed", error=gate.error)
    if gate.waiting:
        return Outcome("waiting", job_id)
    wait = rt.create_limiter.wait(max_block=RATE_MAX_BLOCK_SECONDS)
    if wait > 0:  # over the global create rate: come back later, no attempt spent
        metrics.RATE_LIMIT_WAITS.labels("create").inc()
        return Outcome("retry", job_id, retry_in=wait + full_jitter(0.2))
    try:
        rt.store.transition(
            job_id,
            states.SUBMITTING,
            fields={"attempts": int(record.get("attempts", 0)) + 1},
            ops=[Op("zrem", rt.store.wakeup_key, job_id)],
            cap=rt.settings.max_in_flight,
        )
    except TransitionRefused:
        return Outcome("skipped", job_id)  # another worker holds the lock
    except InFlightCapReached:
        metrics.RATE_LIMIT_WAITS.labels("in_flight").inc()
        # Wait in queued without spending a retry; the sweeper re-sends it.
        rt.store.schedule(
            rt.store.wakeup_key, job_id, time.time() + full_jitter(CAP_RECHECK_SECONDS)
        )
        return Outcome("waiting", job_id)
    return _create(rt, record)


def _create(rt: Runtime, record: dict[str, Any]) -> Outcome:
    job_id = record["job_id"]
    request = create_request(rt, record)
    try:
        task = rt.akool.create_task(request)
    except AkoolRetryable as exc:
        return _back_to_queue(rt, record, exc)
    except AkoolInsufficientCredits as exc:
        return _out_of_credits(rt, record, exc)
    except AkoolAmbiguous as exc:
        return mark_ambiguous(rt, job_id, exc)
    except AkoolFatal as exc:
        return fail(rt, job_id, reason="akool_refused", error=exc.as_dict(), allowed=None)
    now = time.time()
    webhook = bool(rt.settings.webhook_public_url)
    delay = first_poll_delay(
        task.video_duration,
        per_video_second=rt.settings.processing_seconds_per_video_second,
        minimum=rt.settings.poll_min_interval_seconds,
        # Not capped by the poll back-off: asking before the task can be done only
        # spends detail calls (a 20 s video at 3 s per second is a 60 s estimate).
        maximum=rt.settings.safety_net_poll_seconds,
    )
    if webhook:
        delay = max(delay, rt.settings.safety_net_poll_seconds)
    try:
        _with_redis_retry(rt, lambda: _record_created(rt, job_id, task, now + delay, now), job_id)
    except TransitionRefused:
        # A webhook bound the job while our create call was still in flight.
        log.info("create answered after a webhook bound the job", extra={"job_id": job_id})
        return Outcome("submitted", job_id)
    log.info("akool task created", extra={"job_id": job_id, "remote_id": task.remote_id})
    if signals.job_submitted.receivers:  # reading the record costs a round trip
        signals.job_submitted.send(sender="headswap", job=rt.store.get(job_id))
    return Outcome("submitted", job_id)


def _with_redis_retry(rt: Runtime, action: Callable[[], None], job_id: str) -> None:
    """Run a store write that must not be lost, retrying while Redis is unreachable.

    Used only after a create succeeded: its remote id exists nowhere else (a restart of
    Redis must not turn a paid task into an ambiguous one).
    """
    deadline = time.monotonic() + rt.settings.record_retry_seconds
    pause = 0.2
    while True:
        try:
            action()
            return
        except RedisError:
            if time.monotonic() + pause > deadline:
                raise
            log.warning(
                "redis unavailable; retrying the record of a created task", extra={"job_id": job_id}
            )
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _record_created(rt: Runtime, job_id: str, task: Task, first_poll_at: float, now: float) -> None:
    rt.store.transition(
        job_id,
        states.SUBMITTED,
        fields={
            "remote_id": task.remote_id,
            "remote_status": task.status,
            "video_duration": task.video_duration,
            "ambiguous_at": None,
        },
        ops=[
            Op("zadd", rt.store.poll_key, job_id, first_poll_at),
        ],
        event={"remote_id": task.remote_id},
        now=now,
    )


def create_request(rt: Runtime, record: Mapping[str, Any]) -> CreateTaskRequest:
    req = record["request"]
    webhook_url = req.get("webhook_url")
    if rt.settings.webhook_public_url:
        webhook_url = webhook_url_for(rt.settings.webhook_public_url, record["job_id"])
    return CreateTaskRequest(
        source_video_url=req["video_url"],
        mappings=tuple(AkoolMapping(m["obj_id"], m["img_url"]) for m in req["mappings"]),
        model_name=req["model_name"],
        resolution=req["resolution"],
        template_id=req.get("template_id"),
        keep_original_sound=bool(req.get("keep_original_sound", True)),
        webhook_url=webhook_url,
    )


def webhook_url_for(public_url: str, job_id: str) -> str:
    """Our receiver's URL with the job id in the query, so a webhook can bind the job."""
    base = public_url.rstrip("/")
    path = base if base.endswith("/webhooks/akool") else base + "/webhooks/akool"
    return f"{path}?{urlencode({'job_id': job_id})}"


# --- outcomes -----------------------------------------------------------------------------


def reject(rt: Runtime, message: Any, errors: Mapping[str, Any]) -> Outcome:
    """Record an invalid message as a ``rejected`` job. No Akool call, ever."""
    raw_id = message.get("job_id") if isinstance(message, Mapping) else None
    job_id = raw_id if isinstance(raw_id, str) and "job_id" not in errors else new_job_id()
    created, _ = rt.store.create(
        job_id,
        {"field_errors": dict(errors), "reason": "invalid"},
        state=states.REJECTED,
    )
    if not created:
        return reject_existing(rt, job_id, errors)
    log.info("job rejected", extra={"job_id": job_id, "fields": sorted(errors)})
    _notify(rt, job_id)
    return Outcome("rejected", job_id)


def reject_existing(rt: Runtime, job_id: str, errors: Mapping[str, Any]) -> Outcome:
    try:
        rt.store.transition(
            job_id,
            states.REJECTED,
            fields={"field_errors": dict(errors), "reason": "invalid"},
            event={"reason": "invalid"},
        )
    except TransitionRefused:
        return Outcome("skipped", job_id)
    _notify(rt, job_id)
    return Outcome("rejected", job_id)


def fail(
    rt: Runtime,
    job_id: str,
    *,
    reason: str,
    error: Mapping[str, Any] | None = None,
    allowed: frozenset[str] | None = None,
) -> Outcome:
    try:
        rt.store.transition(
            job_id,
            states.FAILED,
            fields={"reason": reason, "error": dict(error) if error else None},
            event={"reason": reason},
            allowed=allowed,
        )
    except TransitionRefused:
        return Outcome("skipped", job_id)
    log.warning("job failed", extra={"job_id": job_id, "reason": reason})
    _notify(rt, job_id)
    return Outcome("failed", job_id)


def _back_to_queue(rt: Runtime, record: dict[str, Any], exc: AkoolRetryable) -> Outcome:
    job_id = record["job_id"]
    attempts = int(record.get("attempts", 0)) + 1
    if attempts > rt.settings.submit_max_retries:
        return fail(rt, job_id, reason="retries_exhausted", error=exc.as_dict())
    delay = retry_delay(
        attempts, cap=rt.settings.retry_backoff_max_seconds, retry_after=exc.retry_after
    )
    rt.store.transition(
        job_id,
        states.QUEUED,
        fields={"last_error": None, "error": exc.as_dict()},
        ops=[
            Op(
                "zadd",
                rt.store.wakeup_key,
                job_id,
                time.time() + delay + rt.settings.resend_after_seconds,
            )
        ],
        event={"reason": "retry"},
    )
    log.info("create not received; will retry", extra={"job_id": job_id, "delay": round(delay, 2)})
    return Outcome("retry", job_id, retry_in=delay)


# --- credits circuit ----------------------------------------------------------------------


def credits_paused_until(rt: Runtime) -> float | None:
    value = rt.redis.get(rt.store.credits_circuit_key)
    if value is None:
        return None
    until = float(str(value))
    return until if until > time.time() else None


def _out_of_credits(rt: Runtime, record: dict[str, Any], exc: AkoolInsufficientCredits) -> Outcome:
    job_id = record["job_id"]
    metrics.CREDIT_EVENTS.inc()
    now = time.time()
    until = now + rt.settings.credits_pause_seconds
    opened = rt.redis.set(
        rt.store.credits_circuit_key,
        repr(until),
        nx=True,
        ex=max(1, int(rt.settings.credits_pause_seconds) + 1),
    )
    rt.store.transition(
        job_id,
        states.QUEUED,
        fields={
            "credits_wait_since": record.get("credits_wait_since") or now,
            "error": exc.as_dict(),
        },
        ops=[Op("zadd", rt.store.wakeup_key, job_id, until + full_jitter(5.0))],
        event={"reason": "insufficient_credits"},
    )
    if opened:
        log.error(
            "Akool account out of credits; submissions paused",
            extra={"job_id": job_id, "pause_seconds": rt.settings.credits_pause_seconds},
        )
        rt.redis.xadd(
            rt.store.events_key,
            {"alert": "insufficient_credits", "at": repr(now), "paused_until": repr(until)},
        )
        signals.credits_exhausted.send(sender="headswap", paused_until=until)
    return Outcome("waiting", job_id)


def _wait_for_credits(rt: Runtime, record: dict[str, Any], until: float) -> Outcome:
    job_id = record["job_id"]
    since = float(record.get("credits_wait_since") or 0)
    if since and time.time() - since > rt.settings.credits_wait_max_seconds:
        return fail(rt, job_id, reason="insufficient_credits", error=record.get("error"))
    rt.store.schedule(rt.store.wakeup_key, job_id, until + full_jitter(5.0))
    return Outcome("waiting", job_id)


# --- ambiguity ----------------------------------------------------------------------------


def mark_ambiguous(rt: Runtime, job_id: str, exc: AkoolAmbiguous | None) -> Outcome:
    """The create may have run. Never resubmit blindly: wait for a webhook or the grace period.

    Only while the job is still ``submitting``: a webhook may already have bound it.
    """
    now = time.time()
    error = exc.as_dict() if exc else {"error": "worker_lost", "message": "worker lost mid-create"}
    if not rt.store.update_if_state(
        job_id, states.SUBMITTING, {"ambiguous_at": now, "error": error}
    ):
        return Outcome("skipped", job_id)
    rt.redis.zadd(
        rt.store.ambiguous_key, {job_id: now + rt.settings.ambiguous_grace_seconds}, nx=True
    )
    log.warning("create outcome unknown; not resubmitting", extra={"job_id": job_id})
    return Outcome("ambiguous", job_id)


def _notify(rt: Runtime, job_id: str) -> None:
    notify_now(rt, job_id)
