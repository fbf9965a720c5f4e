"""The job lifecycle: one function per arrow of the state diagram, and nothing else moves a job.

::

            validate fails
 enqueue ─────────────────────────────▶ rejected                         (reject_message)
    │ enqueue                                                          (reject_queued)
    ▼
 queued ──▶ submitting ──▶ submitted ──▶ processing ──▶ succeeded / failed  (finish)
    │ ▲ claim_for_submit │ record_created   start_processing  │
    │ │                  │                   (status 3) ──▶ storing ──▶ succeeded (record_stored)
    │ │                  │                       start_storing       └──▶ failed (fail)
    │ └────back_to_queue─┤ bind_by_webhook (a webhook names the task of an ambiguous create)
    │     wait_for_credits │ mark_ambiguous (stays submitting) → resubmit | fail
    ▼                      ▼
 cancelled (cancel)       failed (fail, operator_fail)          requeue: operator_requeue

Each function is one atomic step of the store (:meth:`JobStore.transition`): it checks the
current state, writes the record, streams the event and moves the job between the
schedules — the schedule rules are the data of :mod:`headswap_client.states`. A function whose move
ends the job returns True: the caller then notifies (``worker.notify``). A move the state
machine refuses returns False (or raises, where the caller must know why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headswap_client import states
from headswap_client.codec import INTERNAL_FIELDS
from headswap_client.records import (
    ENVELOPE_FIELDS,
    job_fingerprint,
    new_job_id,
    record_fields,
)

from config.settings import redact_url
from worker.akool_types import STATUS_COMPLETED, STATUS_FAILED, STATUS_PROCESSING, Task
from worker.errors import JobNotFound, NonceReplayed, TransitionRefused
from worker.metrics import FAILURES, TRANSITIONS
from worker.store import Created, JobStore, Moved

log = logging.getLogger(__name__)

#: Callback delivery bookkeeping kept on the job record (not part of what producers get).
CALLBACK_RECORD_FIELDS = (
    "callback_status",
    "callback_attempts",
    "callback_last_status",
    "callback_error",
    "callback_delivered_at",
    "callback_failed_at",
)


@dataclass(frozen=True)
class Timings:
    """The settings the arrows need (seconds)."""

    resend_after: float = 300.0
    ambiguous_grace: float = 900.0
    nonce_ttl: int = 601
    #: Akool's finished output is copied to durable storage before ``succeeded``.
    store_outputs: bool = False
    #: A job entering ``storing`` is on the ``store`` schedule this far out: the copy is
    #: re-sent then if no attempt finished it (a lost message, a worker killed mid-copy).
    store_lease: float = 935.0
    #: The metric label of a producer (``config.producers.Policies.label``: bounded).
    producer_label: Callable[[str], str] = field(default=lambda name: name)


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The job record as producers see it (no internal bookkeeping fields)."""
    hidden = {"not_found_count", *INTERNAL_FIELDS, *CALLBACK_RECORD_FIELDS}
    return {k: v for k, v in record.items() if k not in hidden}


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


def _moved(jobs: Jobs, job_id: str, target: str, moved: Moved,
           fields: Mapping[str, Any]) -> None:  # fmt: skip
    producer = jobs.t.producer_label(moved.producer)
    TRANSITIONS.labels(target, producer).inc()
    if target == states.FAILED:
        FAILURES.labels(str(fields.get("reason") or "unknown"), producer).inc()
    log.info(
        "job %s -> %s",
        moved.previous,
        target,
        extra={"job_id": job_id, "state": target, "previous": moved.previous,
               "remote_id": fields.get("remote_id"), "reason": fields.get("reason")},
    )  # fmt: skip


def _move(jobs: Jobs, job_id: str, target: str, **kw: Any) -> Moved:
    moved = jobs.store.transition(job_id, target, **kw)
    _moved(jobs, job_id, target, moved, kw.get("fields") or {})
    return moved


def _try(jobs: Jobs, job_id: str, target: str, **kw: Any) -> bool:
    """The move, or False when the state machine refuses it (someone was first)."""
    try:
        _move(jobs, job_id, target, **kw)
    except TransitionRefused:
        return False
    return True


class Jobs:
    """The arrows, bound to one store and its timings."""

    def __init__(self, store: JobStore, timings: Timings | None = None) -> None:
        self.store = store
        self.t = timings or Timings()

    # --- entering the system ------------------------------------------------------------
    def enqueue(self, job_id: str, job: Mapping[str, Any],
                traceparent: str | None = None) -> Created:  # fmt: skip
        """A validated job becomes ``queued`` (on the wake-up schedule: a lost message is
        re-sent). ``status`` says whether it was created, existed, or conflicts with the
        job that holds its idempotency key or id (different parameters). ``traceparent``
        (the job's trace context) is kept on the record, outside the fingerprint."""
        fields = record_fields(job)
        fp = job_fingerprint(fields)
        if traceparent:
            fields["traceparent"] = traceparent
        return self.store.create(
            job_id,
            fields,
            fingerprint=fp,
            idempotency_key=job.get("idempotency_key"),
            delays={"wakeup": self.t.resend_after},
        )

    def stored(self, job_id: str, job: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record of ``job_id`` when it holds this very job (same fingerprint), else
        None. A submit message whose job the producer already enqueued (or a re-send, or
        a redelivery) needs no create step: one read instead of a script and a read."""
        record = self.store.get(job_id)
        if record is None or record.get("fp") != job_fingerprint(record_fields(job)):
            return None
        return record

    def reject_message(self, job_id: str, kept: Mapping[str, Any]) -> bool:
        """An invalid message becomes a ``rejected`` record under ``job_id`` — a new id
        only: a message that does not validate never changes an existing job. True when
        the record was written (the caller notifies)."""
        created = self.store.create(
            job_id, {**kept, "reason": "invalid"}, fingerprint="rejected", state=states.REJECTED
        )
        if created.status != "created":
            return False
        producer = self.t.producer_label(str(kept.get("producer") or "default"))
        TRANSITIONS.labels(states.REJECTED, producer).inc()
        log.info("job rejected", extra={"job_id": job_id, "fields": sorted(kept.get(
            "field_errors") or {})})  # fmt: skip
        return True

    # --- submission ---------------------------------------------------------------------
    def claim_for_submit(self, job_id: str, attempts: int, cap: int) -> Moved:
        """``queued -> submitting``: the lock; only its winner calls create. Raises
        TransitionRefused (another worker has it) or InFlightCapReached, and
        ReplicationLag when replicas are required and too few acknowledged the lock in
        time (a failover could forget it and hand the job to a second create)."""
        return _move(self, job_id, states.SUBMITTING, fields={"attempts": attempts},
                     cap=cap, replicated=True)  # fmt: skip

    def record_created(self, job_id: str, task: Task, first_poll_in: float) -> bool:
        """``submitting -> submitted``: Akool created the task. False when a webhook bound
        the job first (the create answered after it)."""
        fields = {"remote_id": task.remote_id, "remote_status": task.status,
                  "video_duration": task.video_duration, "ambiguous_at": None}  # fmt: skip
        return _try(self, job_id, states.SUBMITTED, fields=fields,
                    delays={"poll": first_poll_in}, event={"remote_id": task.remote_id},
                    charge=task.charge, charge_final=task.final_charge is not None)  # fmt: skip

    def bind_by_webhook(self, job_id: str, remote_id: str, safety_net: float) -> bool:
        """``submitting -> submitted`` from a webhook naming our job id: the create (maybe
        ambiguous) did happen. The task is then followed like any other."""
        fields = {"remote_id": remote_id, "ambiguous_at": None, "bound_by": "webhook"}
        return _try(self, job_id, states.SUBMITTED, fields=fields,
                    delays={"poll": safety_net},
                    event={"remote_id": remote_id, "reason": "bound_by_webhook"})  # fmt: skip

    def revive(self, job_id: str, remote_id: str, first_poll_in: float,
               charge: float | None = None) -> bool:  # fmt: skip
        """``failed -> submitted`` for a job failed as ``ambiguous_submission`` whose task
        turned out to exist (Akool created and charged it): it is followed to its real end
        instead of staying a paid failure. The caller checked the reason (a terminal
        record does not change); True when this call revived it."""
        fields = {"remote_id": remote_id, "reason": None, "error": None, "ambiguous_at": None,
                  "maybe_charged": None, "revived_from": states.REVIVABLE_REASON}  # fmt: skip
        revived = _try(self, job_id, states.SUBMITTED, fields=fields,
                       allowed=states.REVIVABLE, delays={"poll": first_poll_in},
                       event={"remote_id": remote_id, "reason": "revived"},
                       charge=charge)  # fmt: skip
        if revived:
            log.warning("a job failed as ambiguous is followed again: its task exists",
                        extra={"job_id": job_id, "remote_id": remote_id})
        return revived

    def back_to_queue(
        self, job_id: str, error: Mapping[str, Any], retry_in: float, reason: str = "retry"
    ) -> bool:
        """``submitting -> queued``: the create surely did not run; the wake-up re-sends
        the job in ``retry_in`` (server clock). The first such failure is stamped
        (``retrying_since``): the retry budget is time from there."""
        return _try(self, job_id, states.QUEUED, fields={"error": dict(error)},
                    delays={"wakeup": retry_in}, stamp_once=("retrying_since",),
                    event={"reason": reason})  # fmt: skip

    def wait_for_credits(self, job_id: str, error: Mapping[str, Any], wake_in: float) -> bool:
        """``submitting -> queued`` on 1104: the job waits for credits; the first such wait
        is stamped (``credits_wait_since``) so the wait is bounded."""
        return _try(self, job_id, states.QUEUED, fields={"error": dict(error)},
                    delays={"wakeup": wake_in}, stamp_once=("credits_wait_since",),
                    event={"reason": "insufficient_credits"})  # fmt: skip

    def postpone(self, job_id: str, delay: float) -> None:
        """A queued job that may not go yet (cap, credits pause): look again in ``delay``."""
        self.store.schedule("wakeup", job_id, delay)

    def mark_ambiguous(self, job_id: str, error: Mapping[str, Any]) -> bool:
        """The create may have run: the job stays ``submitting``, marked, with a grace
        deadline. Only while still submitting and not marked yet (a webhook may have bound
        it meanwhile). One atomic step."""
        written, _ = self.store.update(
            job_id, {"error": dict(error)}, state=states.SUBMITTING, absent="ambiguous_at",
            stamp=("ambiguous_at",), join={"ambiguous": self.t.ambiguous_grace},
        )  # fmt: skip
        if written:
            log.warning("create outcome unknown; not resubmitting", extra={"job_id": job_id})
        return written

    def resubmit(self, job_id: str, reason: str = "resubmit") -> bool:
        """``submitting -> queued`` for an ambiguous create, by policy or by an operator."""
        return _try(self, job_id, states.QUEUED, fields={"ambiguous_at": None},
                    delays={"wakeup": self.t.resend_after}, event={"reason": reason})  # fmt: skip

    # --- following the remote task ------------------------------------------------------
    def apply_remote_status(
        self, job_id: str, task: Task, *, source: str, nonce: str | None = None
    ) -> bool:
        """Apply what Akool says about a task to its job. True when the job ended *now*,
        or entered ``storing`` now (the caller follows up: ``worker.storing.follow_up``
        notifies or sends the copy). Safe to call twice with the same news (poller and webhook
        racing): the state machine refuses the second move. ``nonce`` (a webhook delivery)
        is recorded in the same step that stores the outcome, and refused if seen."""
        seal = (nonce, self.t.nonce_ttl) if nonce else None
        cost: dict[str, Any] = {"charge": task.charge,
                                "charge_final": task.final_charge is not None}  # fmt: skip
        if task.status == STATUS_COMPLETED:
            if not task.output_url:
                log.error("completed task without output url", extra={"job_id": job_id})
                return False
            fields = {"output_url": task.output_url, "remote_status": task.status,
                      "source": source}  # fmt: skip
            if self.t.store_outputs:
                return self.start_storing(job_id, fields, nonce=seal, **cost)
            return self.finish(job_id, states.SUCCEEDED, fields, nonce=seal, **cost)
        if task.status == STATUS_FAILED:
            error = {"code": task.error_code, "msg": task.error_reason, "operation": "task"}
            fields = {"reason": "akool_failed", "error": error, "remote_status": task.status,
                      "source": source}  # fmt: skip
            return self.finish(job_id, states.FAILED, fields, nonce=seal, **cost)
        if task.status == STATUS_PROCESSING:
            _try(self, job_id, states.PROCESSING, nonce=seal, **cost,
                 fields={"remote_status": task.status, "progress": task.progress})  # fmt: skip
            return False
        if task.progress is not None:
            self.store.update(job_id, {"progress": task.progress}, state=states.SUBMITTED)
        return False

    def finish(
        self,
        job_id: str,
        target: str,
        fields: Mapping[str, Any],
        *,
        nonce: tuple[str, int] | None = None,
        charge: float | None = None,
        charge_final: bool = False,
    ) -> bool:
        """A followed task ended: ``succeeded`` or ``failed``. True when this call ended it.
        ``charge``: what Akool says the task cost (recorded once; a final charge replaces
        a hold)."""
        # The stream is read by many: its copy of the URL is redacted (a presigned output
        # URL is a credential); the record keeps it whole for get(), signals and callbacks.
        url = fields.get("output_url")
        event = {"reason": fields.get("reason"), "output_url": redact_url(url) if url else url}
        return _try(self, job_id, target, fields=dict(fields), event=event, nonce=nonce,
                    charge=charge, charge_final=charge_final)  # fmt: skip

    def start_storing(
        self, job_id: str, fields: Mapping[str, Any], *, nonce: tuple[str, int] | None = None,
        charge: float | None = None, charge_final: bool = False,
    ) -> bool:
        """Akool finished: ``-> storing`` with its output URL, on the ``store`` schedule
        (the lease). True when this call moved it (the caller sends the copy)."""
        url = fields.get("output_url")
        event = {"output_url": redact_url(url) if url else url}
        return _try(self, job_id, states.STORING, fields=dict(fields), event=event,
                    nonce=nonce, delays={"store": self.t.store_lease}, charge=charge,
                    charge_final=charge_final)  # fmt: skip

    def record_stored(self, job_id: str, stored: Mapping[str, Any]) -> bool:
        """``storing -> succeeded``: the output is under its final key, complete. The
        event carries where (not the presigned URL: a credential). True when this call
        ended the job (the caller notifies)."""
        event = {"stored_url": redact_url(str(stored.get("stored_url") or "")),
                 "stored_sha256": stored.get("stored_sha256")}  # fmt: skip
        return _try(self, job_id, states.SUCCEEDED, fields=dict(stored), event=event,
                    allowed=(states.STORING,))  # fmt: skip

    def count_not_found(self, job_id: str) -> int:
        """One more "Akool does not know this task" answer; the count so far."""
        _, count = self.store.update(job_id, incr="not_found_count")
        return count

    # --- ends decided here --------------------------------------------------------------
    def fail(
        self,
        job_id: str,
        reason: str,
        error: Mapping[str, Any] | None = None,
        *,
        maybe_charged: bool = False,
    ) -> bool:
        """``-> failed`` from any non-terminal state. True when this call ended the job.
        ``maybe_charged``: Akool may have created (and charged) the task all the same —
        said on the record, its event and so its callback and signal."""
        fields: dict[str, Any] = {"reason": reason, "error": dict(error) if error else None}
        event: dict[str, Any] = {"reason": reason}
        if maybe_charged:
            fields["maybe_charged"] = True
            event["maybe_charged"] = "true"
        ended = _try(self, job_id, states.FAILED, fields=fields, event=event)
        if ended:
            log.warning("job failed", extra={"job_id": job_id, "reason": reason})
        return ended

    def reject_queued(self, job_id: str, field_errors: Mapping[str, Any]) -> bool:
        """``queued -> rejected`` for what only the analysis can tell (an obj_id the
        video does not contain)."""
        fields = {"field_errors": dict(field_errors), "reason": "invalid"}
        return _try(self, job_id, states.REJECTED, fields=fields,
                    event={"reason": "invalid"})  # fmt: skip

    def cancel(self, job_id: str) -> bool:
        """``queued -> cancelled`` (a producer's cancel). False when too late or unknown."""
        try:
            return _try(self, job_id, states.CANCELLED, event={"reason": "cancelled"})
        except JobNotFound:
            return False

    # --- operators ----------------------------------------------------------------------
    def operator_fail(self, job_id: str, message: str) -> bool:
        return self.fail(job_id, "operator", {"message": message, "operation": "operator"})

    def operator_requeue(self, job_id: str, *, force: bool) -> str:
        """Back to submission. A ``queued`` job stays as it is (the caller re-sends its
        message); a ``submitting`` one may exist at Akool, so moving it needs ``force``.
        Returns the state the job was in; raises TransitionRefused otherwise."""
        record = self.store.require(job_id)
        state = str(record["state"])
        if state == states.SUBMITTING:
            if not force:
                raise TransitionRefused(job_id, state, states.QUEUED, ["queued (use --force)"])
            if not self.resubmit(job_id, reason="operator_requeue"):
                raise TransitionRefused(job_id, state, states.QUEUED, [states.SUBMITTING])
        elif state != states.QUEUED:
            raise TransitionRefused(job_id, state, states.QUEUED, [states.QUEUED,
                                                                   states.SUBMITTING])
        return state


__all__ = ["Jobs", "NonceReplayed", "Timings", "job_fingerprint", "message_from_record",
           "new_job_id", "record_fields"]  # fmt: skip
