"""Submitting a job to Akool exactly once.

The move ``queued -> submitting`` is the lock: only the caller that makes it calls
create. Every outcome of that call is classified (see ``worker/errors.py``) before
anything is retried:

- created: ``submitting -> submitted``, remote id stored, first poll scheduled
- not received (AkoolRetryable): back to ``queued``, retried after a backoff
- out of credits (1104): back to ``queued``; all submissions pause (a circuit in Redis)
- refused (AkoolFatal): ``failed`` with Akool's code and msg
- may have run (AkoolAmbiguous): stays ``submitting``, marked ambiguous; the sweeper
  resolves it (webhook binding, or fail/resubmit after a grace period)

The moves themselves are :mod:`worker.jobs`'s; this module decides which one to make.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from headswap_client import states
from headswap_client.schemas import ContractPolicy, rejection_fields, safe_job_id

from worker import admission, analysis, breaker, metrics, signals, tracing
from worker.akool_types import CreateTaskRequest, Task
from worker.akool_types import Mapping as AkoolMapping
from worker.errors import (
    AkoolAmbiguous,
    AkoolError,
    AkoolFatal,
    AkoolInsufficientCredits,
    AkoolRetryable,
    CreateUnrecorded,
    InFlightCapReached,
    JobValidationError,
    ReplicationLag,
    TransitionRefused,
)
from worker.jobs import new_job_id
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.store import StoreError
from worker.timing import first_poll_delay, full_jitter, retry_delay

log = logging.getLogger(__name__)

#: A worker thread sleeps at most this long for a create-rate slot before deferring.
RATE_MAX_BLOCK_SECONDS = 2.0
#: How soon a job held back by the in-flight cap is looked at again.
CAP_RECHECK_SECONDS = 4.0
#: How often a job held by the store-lost hold looks again.
STORE_LOST_RECHECK_SECONDS = 10.0
#: The longest pause between two tries to record a created task (Redis away).
RECORD_RETRY_CAP_SECONDS = 5.0
#: The error kept on a job whose worker died mid-create.
WORKER_LOST = {"error": "worker_lost", "message": "worker lost mid-create"}


@dataclass(frozen=True)
class Outcome:
    """What became of a message. A job that must try again later (``retry``) or wait
    (``waiting``) is on the wake-up schedule, scored on the Redis server's clock: its
    message is re-sent when due. Celery's countdown is not used for that — its ETA is
    set on the sender's clock and awaited on the consumer's, so a worker whose clock runs
    behind would hold the job for as long as the skew."""

    status: str  # submitted | rejected | failed | retry | waiting | ambiguous | skipped
    #              | unrecorded (created at Akool; the id is in the spool, not in Redis)
    job_id: str | None
    retry_in: float | None = None


def validate_message(rt: Runtime, message: Any) -> dict[str, Any]:
    """The schema plus the rules that depend on this worker's settings (the producer
    applies the very same policy)."""
    return ContractPolicy.from_settings(rt.settings).validate(message)


def submit(rt: Runtime, message: Any) -> Outcome:
    """Handle one ``headswap.submit`` message. Safe to call any number of times."""
    try:
        job = validate_message(rt, message)
    except JobValidationError as exc:
        return reject(rt, message, exc.errors)
    job_id = job["job_id"] or new_job_id()
    record = rt.jobs.stored(job_id, job) if job["job_id"] else None
    if record is None:
        outcome = _enqueue(rt, message, job_id, job)
        if outcome is not None:
            return outcome
        record = rt.store.require(job_id)
    if record["state"] != states.QUEUED:
        return Outcome("skipped", job_id)  # redelivered, or already past the lock
    stored = record.get(tracing.RECORD_FIELD)
    with tracing.job_span("headswap.submit", stored, job_id=job_id) as span:
        if span is not None and not stored:  # a producer that does not trace: start here
            rt.store.update(job_id, {tracing.RECORD_FIELD: tracing.traceparent()},
                            absent=tracing.RECORD_FIELD)  # fmt: skip
        outcome = _submit_queued(rt, record)
        tracing.set_attributes(span, outcome=outcome.status, retry_in=outcome.retry_in)
        return outcome


def _enqueue(rt: Runtime, message: Any, job_id: str, job: dict[str, Any]) -> Outcome | None:
    """Create the job's record; an Outcome when this message ends here (a conflict, or a
    duplicate of another job by its idempotency key), None when the job is ``job_id``."""
    # A foreign producer's job: its trace starts with this task's span (or the context
    # its message carried).
    created = rt.jobs.enqueue(job_id, job, traceparent=tracing.traceparent())
    if created.status == "conflict":
        used = f"Key {job.get('idempotency_key')!r} was used for job {created.job_id}"
        return _refuse_conflict(rt, message, created.job_id, "idempotency_key",
                                f"{used} with different parameters.")  # fmt: skip
    if created.status == "taken":
        return _refuse_conflict(rt, message, job_id, "job_id",
                                f"Job {job_id} exists with different parameters.")  # fmt: skip
    if created.job_id != job_id:
        log.info("duplicate by idempotency key", extra={"job_id": created.job_id})
        return Outcome("skipped", created.job_id)
    return None


def _refuse_conflict(rt: Runtime, message: Any, existing: str, field: str,
                     error: str) -> Outcome:  # fmt: skip
    """A valid message that asks something else of an existing job (its id or its
    idempotency key): recorded apart as a ``rejected`` job, and a ``conflicting_message``
    alert on the existing job's line of the event stream, so that whoever follows either
    job sees it. The existing job is never changed."""
    outcome = reject(rt, message, {field: [error]})
    rt.store.events.alert({"alert": "conflicting_message", "job_id": existing,
                           "rejected_job_id": str(outcome.job_id), "field": field})  # fmt: skip
    metrics.CONFLICTING_MESSAGES.labels(field).inc()
    log.warning("message conflicts with an existing job; recorded apart as rejected",
                extra={"job_id": existing, "rejected_job_id": outcome.job_id, "field": field})
    return outcome


def _submit_queued(rt: Runtime, record: dict[str, Any], adopt: bool = True) -> Outcome:
    job_id = record["job_id"]
    circuits = breaker.read(rt.store)
    held = _held(rt, record, circuits)
    if held is not None:
        admission.release(rt, job_id)  # a grant it held goes back: it waits in its line
        return held
    if admission.fair(rt):
        turn = admission.take(rt, job_id, adopt=adopt)
        slot = turn.slot
        if slot is None:  # in its producer's line: admission sends it again when its turn comes
            metrics.RATE_LIMIT_WAITS.labels("admission").inc()
            if turn.adopted:  # this thread is free: it creates a job the round granted
                _adopt(rt, turn.adopted)
            return Outcome("waiting", job_id)
        if slot > RATE_MAX_BLOCK_SECONDS:  # granted, its create slot further out: keep it
            rt.jobs.postpone(job_id, slot)
            return Outcome("waiting", job_id, retry_in=slot)
        if slot > 0:
            time.sleep(slot)
    else:
        wait = rt.create_limiter.wait(max_block=RATE_MAX_BLOCK_SECONDS)
        if wait > 0:  # over the global create rate: come back later, no attempt spent
            metrics.RATE_LIMIT_WAITS.labels("create").inc()
            delay = wait + full_jitter(0.2)
            rt.jobs.postpone(job_id, delay)
            return Outcome("retry", job_id, retry_in=delay)
    return _claim_and_create(rt, record, circuits)


def _adopt(rt: Runtime, job_id: str) -> None:
    """Create a job another round granted, in this thread (once: no further adoption)."""
    record = rt.store.get(job_id)
    if record is None or record["state"] != states.QUEUED:
        return
    with tracing.job_span("headswap.submit", record.get(tracing.RECORD_FIELD), job_id=job_id):
        _submit_queued(rt, record, adopt=False)


def _held(rt: Runtime, record: dict[str, Any], circuits: breaker.Gate) -> Outcome | None:
    """What stops every create now (a pause, the breaker, the analysis), as the outcome
    for this job; None when nothing does."""
    job_id = record["job_id"]
    if circuits.store_lost:  # idempotency keys from before the loss cannot be honoured
        metrics.RATE_LIMIT_WAITS.labels("store_lost").inc()
        delay = STORE_LOST_RECHECK_SECONDS + full_jitter(2.0)
        rt.jobs.postpone(job_id, delay)
        return Outcome("waiting", job_id, retry_in=delay)
    if circuits.credits_paused:
        return _wait_for_credits(rt, record, circuits.credits_paused)
    hold = breaker.admit(rt.store, rt.akool, rt.settings, circuits)
    if hold is not None:  # Akool does not answer: wait in queued, no attempt spent
        metrics.RATE_LIMIT_WAITS.labels("akool_breaker").inc()
        rt.jobs.postpone(job_id, hold)
        return Outcome("waiting", job_id, retry_in=hold)
    slow = breaker.slow_hold(rt.settings)
    if slow is not None:  # one of our creates waits for its answer: Akool may be hung
        metrics.RATE_LIMIT_WAITS.labels("akool_slow").inc()
        rt.jobs.postpone(job_id, slow)
        return Outcome("waiting", job_id, retry_in=slow)
    try:
        gate = analysis.gate(rt, record)
    except AkoolFatal as exc:  # our own trouble (auth...), not a verdict on the video
        return _fail(rt, job_id, "akool_refused", exc.as_dict())
    except AkoolError as exc:  # analyze not received or unreadable: try again later
        delay = retry_delay(
            int(record.get("attempts", 0)) + 1, cap=rt.settings.retry_backoff_max_seconds
        )
        log.info(
            "analysis could not start; will retry", extra={"job_id": job_id, "error": str(exc)}
        )
        rt.jobs.postpone(job_id, delay)
        return Outcome("retry", job_id, retry_in=delay)
    if gate.rejected:
        if rt.jobs.reject_queued(job_id, gate.field_errors):
            notify_now(rt, job_id)
            return Outcome("rejected", job_id)
        return Outcome("skipped", job_id)
    if gate.failed:
        return _fail(rt, job_id, "analysis_failed", gate.error)
    if gate.waiting:
        return Outcome("waiting", job_id)
    return None


def _claim_and_create(rt: Runtime, record: dict[str, Any], circuits: breaker.Gate) -> Outcome:
    """The lock (``queued -> submitting``), then the create."""
    job_id = record["job_id"]
    try:
        claimed = rt.jobs.claim_for_submit(
            job_id, int(record.get("attempts", 0)) + 1, rt.settings.max_in_flight
        )
    except TransitionRefused:
        return Outcome("skipped", job_id)  # another worker holds the lock
    except ReplicationLag as exc:  # the lock may not survive a failover: no create now
        delay = retry_delay(int(record.get("attempts", 0)) + 1,
                            cap=rt.settings.retry_backoff_max_seconds)  # fmt: skip
        rt.jobs.back_to_queue(job_id, {"error": "ReplicationLag", "message": str(exc)}, delay,
                              reason="replication_lag")  # fmt: skip
        log.warning("lock not acknowledged by enough replicas; no create, will retry",
                    extra={"job_id": job_id, "acked": exc.acked, "wanted": exc.wanted})
        return Outcome("retry", job_id, retry_in=delay)
    except InFlightCapReached:
        metrics.RATE_LIMIT_WAITS.labels("in_flight").inc()
        if admission.fair(rt):  # its grant is gone (an operator?): back to its line
            admission.release(rt, job_id)
            return Outcome("waiting", job_id)
        # Wait in queued without spending a retry; the sweeper re-sends it.
        rt.jobs.postpone(job_id, full_jitter(CAP_RECHECK_SECONDS))
        return Outcome("waiting", job_id)
    return _create(rt, record, circuits.failures, claimed.at)


def _create(rt: Runtime, record: dict[str, Any], failures: int, now: float) -> Outcome:
    """The create itself. ``failures``: the breaker's count when the job was admitted;
    ``now``: the server time of the claim."""
    job_id = record["job_id"]
    request = create_request(rt, record)
    try:
        with tracing.span("akool.create_task", "CLIENT", job_id=job_id) as span, \
                breaker.ON_THE_WIRE.sending():
            task = rt.akool.create_task(request)
            tracing.set_attributes(span, remote_id=task.remote_id)
    except AkoolRetryable as exc:
        if exc.unreachable:
            breaker.failed(rt.store, rt.settings)
        return _back_to_queue(rt, record, exc, now)
    except AkoolInsufficientCredits as exc:
        return _out_of_credits(rt, record, exc)
    except AkoolAmbiguous as exc:
        if exc.unreachable:
            breaker.failed(rt.store, rt.settings)
        rt.jobs.mark_ambiguous(job_id, exc.as_dict())
        return Outcome("ambiguous", job_id)
    except AkoolFatal as exc:
        return _fail(rt, job_id, "akool_refused", exc.as_dict())
    if failures:  # the breaker counted failures: this answer ends them
        breaker.closed(rt.store)
    try:
        recorded = _record_created(rt, job_id, task)
    except CreateUnrecorded:  # in the spool and in an ERROR line; the next worker applies it
        return Outcome("unrecorded", job_id)
    if not recorded:
        # A webhook bound the job while our create call was still in flight.
        log.info("create answered after a webhook bound the job", extra={"job_id": job_id})
        return Outcome("submitted", job_id)
    log.info("akool task created", extra={"job_id": job_id, "remote_id": task.remote_id,
                                          "charge": task.charge})  # fmt: skip
    if task.charge:
        label = rt.settings.producer_policy.label(str(record.get("producer") or "default"))
        metrics.CREDITS_CHARGED.labels(label).inc(task.charge)
    if signals.job_submitted.receivers:  # reading the record costs a round trip
        signals.job_submitted.send(sender="headswap", job=rt.store.get(job_id))
    return Outcome("submitted", job_id)


def first_poll_in(rt: Runtime, task: Task) -> float:
    """When to ask about a new task first: its expected processing time."""
    s = rt.settings
    delay = first_poll_delay(
        task.video_duration,
        per_video_second=s.processing_seconds_per_video_second,
        minimum=s.poll_min_interval_seconds,
        # Not capped by the poll back-off: asking before the task can be done only
        # spends detail calls (a 20 s video at 3 s per second is a 60 s estimate).
        maximum=s.safety_net_poll_seconds,
    )
    return max(delay, s.safety_net_poll_seconds) if s.webhook_public_url else delay


def _record_created(rt: Runtime, job_id: str, task: Task) -> bool:
    """Store the created task's id. It exists nowhere else and cost credits, so it is never
    given up: when Redis does not take it, the ids go to the local spool (durable) and to
    an ERROR line at once — an operator can always reconcile — and the write is retried
    for as long as this worker runs. Stopping leaves the entry in the spool, which the next
    worker to start applies. False when the job was bound or ended without this create's
    answer (see :func:`settle_created`)."""
    delay = first_poll_in(rt, task)
    try:
        return settle_created(rt, job_id, task, delay)
    except StoreError as exc:
        error: Exception = exc
    except CreateUnrecorded as exc:  # the job vanished from Redis between claim and now
        error = exc
    spooled = _spool(rt, job_id, task)
    metrics.UNRECORDED_CREATES.inc()
    log.error("a created Akool task is not recorded yet (Redis does not answer): retrying "
              "until it is; its ids are in this line", extra={
                  "job_id": job_id, "remote_id": task.remote_id, "spooled": spooled,
                  "error": type(error).__name__})  # fmt: skip
    since, attempt = time.monotonic(), 0
    try:
        while True:
            attempt += 1
            pause = retry_delay(attempt, base=0.2, cap=RECORD_RETRY_CAP_SECONDS)
            if rt.stopping.wait(pause):
                log.warning("worker stopping with a created task not recorded; the spool "
                            "keeps it for the next worker", extra={
                                "job_id": job_id, "remote_id": task.remote_id,
                                "spooled": spooled})  # fmt: skip
                raise CreateUnrecorded(job_id, task.remote_id)
            try:
                settled = settle_created(rt, job_id, task, delay)
            except StoreError:
                continue
            except CreateUnrecorded:
                if isinstance(error, CreateUnrecorded):  # Redis answers; the job is gone
                    raise
                error = CreateUnrecorded(job_id, task.remote_id)
                continue
            rt.spool.remove(job_id)
            log.warning("created task recorded after Redis came back", extra={
                "job_id": job_id, "remote_id": task.remote_id,
                "waited_s": round(time.monotonic() - since, 1)})  # fmt: skip
            return settled
    finally:
        metrics.UNRECORDED_CREATES.dec()


def _spool(rt: Runtime, job_id: str, task: Task) -> bool:
    try:
        rt.spool.put(job_id, task.remote_id, task.status, task.video_duration, time.time())
    except OSError as exc:  # the ERROR line is then the only copy: say so
        log.error("created task could not be spooled", extra={
            "job_id": job_id, "remote_id": task.remote_id, "error": str(exc)})  # fmt: skip
        return False
    return True


def settle_created(rt: Runtime, job_id: str, task: Task, first_poll: float) -> bool:
    """Record that Akool created ``task`` for ``job_id``; True when this call did.

    False when the record already had it (a webhook bound the job first, or the spool was
    applied twice) — or when the job moved on without it: failed after its create looked
    lost, resubmitted, cancelled. That last case is a task Akool created (and charged)
    that no job follows: the record gets ``unbound_remote_id``, the stream an
    ``alert=paid_but_failed`` (the job failed) or ``alert=unbound_create`` entry, and it
    is counted and logged at ERROR, never left as a silent mislabel."""
    if rt.jobs.record_created(job_id, task, first_poll):
        return True
    record = rt.store.get(job_id)
    if record is None:
        raise CreateUnrecorded(job_id, task.remote_id)  # Redis lost the job: keep the entry
    if record.get("remote_id") == task.remote_id or record.get(
            "unbound_remote_id") == task.remote_id:  # fmt: skip
        return False
    if states.revivable(record) and rt.jobs.revive(job_id, task.remote_id, first_poll,
                                                  charge=task.charge):  # fmt: skip
        return True  # failed as lost mid-create; its task exists: followed to its end
    alert = "paid_but_failed" if record["state"] == states.FAILED else "unbound_create"
    rt.store.update(job_id, {"unbound_remote_id": task.remote_id})
    if task.charge:  # Akool charged it all the same: the ledger says so
        rt.store.charge_apart(str(record.get("producer") or "default"), task.charge)
    rt.store.events.alert({"alert": alert, "job_id": job_id, "remote_id": task.remote_id,
                           "state": str(record["state"])})  # fmt: skip
    metrics.UNBOUND_CREATES.labels(alert).inc()
    log.error("Akool created a task that no job follows (it was charged)", extra={
        "job_id": job_id, "remote_id": task.remote_id, "state": record["state"],
        "alert": alert})  # fmt: skip
    return False


def apply_spool(rt: Runtime) -> int:
    """Record what the spool holds (a worker stopped, or Redis was away); the number of
    entries settled. Stops at the first store failure: Redis is still away."""
    done = 0
    for entry in rt.spool.entries():
        task = Task(remote_id=entry.remote_id, status=entry.status,
                    video_duration=entry.video_duration)  # fmt: skip
        try:
            settle_created(rt, entry.job_id, task, first_poll_in(rt, task))
        except StoreError:
            break
        except CreateUnrecorded:
            log.error("spooled create names a job Redis does not know (lost data?): moved "
                      "aside for the operator", extra={"job_id": entry.job_id,
                      "remote_id": entry.remote_id})  # fmt: skip
            rt.spool.set_aside(entry)
            continue
        rt.spool.remove(entry.job_id)
        log.warning("spooled create recorded", extra={"job_id": entry.job_id,
                                                      "remote_id": entry.remote_id})
        done += 1
    return done


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
    """Record an invalid message as a ``rejected`` job. No Akool call, ever.

    Under the message's own job id when it names a valid one that is free; otherwise
    under a new id (the id it named is kept as ``job_id_sent``): an invalid message never
    changes an existing job.
    """
    kept = {k: v for k, v in rejection_fields(message, errors).items() if k != "job_id"}
    named = safe_job_id(message)
    if named and rt.jobs.reject_message(named, kept):
        notify_now(rt, named)
        return Outcome("rejected", named)
    job_id = new_job_id()
    if named:
        kept = {**kept, "job_id_sent": named}
        log.warning("invalid message names an existing job; recorded apart",
                    extra={"job_id": job_id, "existing_job_id": named})  # fmt: skip
    rt.jobs.reject_message(job_id, kept)
    notify_now(rt, job_id)
    return Outcome("rejected", job_id)


def _fail(rt: Runtime, job_id: str, reason: str, error: Mapping[str, Any] | None) -> Outcome:
    if not rt.jobs.fail(job_id, reason, error):
        return Outcome("skipped", job_id)
    notify_now(rt, job_id)
    return Outcome("failed", job_id)


def _back_to_queue(rt: Runtime, record: dict[str, Any], exc: AkoolRetryable,
                   now: float) -> Outcome:  # fmt: skip
    """A create surely not received goes back to ``queued`` for a later attempt. The
    budget is time (``HEADSWAP_SUBMIT_RETRY_WINDOW_SECONDS`` from the first such failure,
    server clock), so an Akool outage shorter than it fails no job; a count bound is
    optional (``HEADSWAP_SUBMIT_MAX_RETRIES``)."""
    job_id = record["job_id"]
    attempts = int(record.get("attempts", 0)) + 1
    since = float(record.get("retrying_since") or now)
    bound = rt.settings.submit_max_retries
    if now - since > rt.settings.submit_retry_window_seconds or (bound and attempts > bound):
        return _fail(rt, job_id, "retries_exhausted",
                     {**exc.as_dict(), "attempts": attempts,
                      "retrying_for_s": round(now - since, 1)})  # fmt: skip
    delay = retry_delay(
        attempts, cap=rt.settings.retry_backoff_max_seconds, retry_after=exc.retry_after
    )
    rt.jobs.back_to_queue(job_id, exc.as_dict(), delay)
    log.info("create not received; will retry", extra={"job_id": job_id, "delay": round(delay, 2)})
    return Outcome("retry", job_id, retry_in=delay)


# --- credits circuit ----------------------------------------------------------------------


def _credits_wait_exceeded(rt: Runtime, record: Mapping[str, Any]) -> bool:
    since = float(record.get("credits_wait_since") or 0)
    return bool(since) and rt.store.clock() - since > rt.settings.credits_wait_max_seconds


def _out_of_credits(rt: Runtime, record: dict[str, Any], exc: AkoolInsufficientCredits) -> Outcome:
    job_id = record["job_id"]
    metrics.CREDIT_EVENTS.inc()
    if _credits_wait_exceeded(rt, record):  # it has waited long enough, retries or not
        return _fail(rt, job_id, "insufficient_credits", exc.as_dict())
    pause = rt.settings.credits_pause_seconds
    opened, left = rt.store.guards.open_circuit("credits", pause)
    rt.jobs.wait_for_credits(job_id, exc.as_dict(), left + full_jitter(5.0))
    if opened:
        log.error(
            "Akool account out of credits; submissions paused",
            extra={"job_id": job_id, "pause_seconds": pause},
        )
        until = rt.store.clock() + left
        rt.store.events.alert({"alert": "insufficient_credits", "paused_until": repr(until)})
        signals.credits_exhausted.send(sender="headswap", paused_until=until)
    return Outcome("waiting", job_id)


def _wait_for_credits(rt: Runtime, record: dict[str, Any], paused_for: float) -> Outcome:
    job_id = record["job_id"]
    if _credits_wait_exceeded(rt, record):
        return _fail(rt, job_id, "insufficient_credits", record.get("error"))
    rt.jobs.postpone(job_id, paused_for + full_jitter(5.0))
    return Outcome("waiting", job_id)
