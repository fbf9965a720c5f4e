"""Telling producers that a job has ended.

A terminal transition puts the job in the outbox in the same atomic step; :func:`notify`
fires the in-process signal and the producer's callback task, then marks the job notified
and takes it out of the outbox. The sweeper re-sends notify for entries left in the outbox
(a worker died mid-notify), so a notification is never lost; a short lock keeps two
concurrent notifies of one job from both firing.

A job with a ``callback_url`` also gets its HTTP callback: notify only enqueues
``headswap.deliver_callback`` (the job id is its one argument) and marks the record
``callback_status=pending``; delivery, retries and dead letters are ``worker.callbacks``'s,
in their own task, so a slow producer endpoint never holds up a notification.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from headswap_client import states

from worker import metrics, signals, tracing
from worker.jobs import public_record
from worker.runtime import Runtime

log = logging.getLogger(__name__)

LOCK_SECONDS = 120
CALLBACK_QUEUE = "headswap.notify"
CALLBACK_TASK = "headswap.deliver_callback"
CALLBACK_PENDING = "pending"


def notify(rt: Runtime, job_id: str, record: dict[str, Any] | None = None) -> bool:
    """Fire the completion signals of a terminal job once. Returns True when it fired.
    ``record``: the job as its caller just read it (after the terminal move), to spare a
    read; the lock below still decides who fires."""
    if record is None:
        record = rt.store.get(job_id)
    if record is None or record.get("notified_at"):
        rt.store.unschedule("outbox", job_id)
        return False
    if record["state"] not in states.TERMINAL:
        return False
    if rt.store.guards.lock("notify", job_id, LOCK_SECONDS) is None:
        return False
    with tracing.job_span("headswap.notify", record.get(tracing.RECORD_FIELD), job_id=job_id,
                          state=record["state"]):  # fmt: skip
        return _fire(rt, job_id, record)


def _fire(rt: Runtime, job_id: str, record: dict[str, Any]) -> bool:
    """The signal, the callback task, the HTTP callback's task; then the job is notified."""
    view = public_record(record)
    signals.TERMINAL_SIGNALS[record["state"]].send(sender="headswap", job=view)
    callback = record.get("callback_task")
    if callback:
        rt.send_args(callback["name"], (view,), queue=callback.get("queue"))
    if record.get("callback_url"):
        # pending before the task exists, so the task's own verdict is never overwritten
        rt.store.update(job_id, {"callback_status": CALLBACK_PENDING}, absent="callback_status")
        rt.send(CALLBACK_TASK, {"job_id": job_id}, queue=CALLBACK_QUEUE)
    now = rt.store.mark_notified(job_id)  # stamped, out of the outbox: one round trip
    log.info("job notified", extra={"job_id": job_id, "state": record["state"]})
    with contextlib.suppress(Exception):  # a metric never fails a done notification
        metrics.observe_notified(record, now)
    return True


def notify_now(rt: Runtime, job_id: str, record: dict[str, Any] | None = None) -> None:
    """Fire the completion signals in this thread rather than as a second Celery task (a
    task costs more than the notification itself). The job is already in the outbox, so
    if this fails or the process dies, the sweeper notifies it again."""
    try:
        notify(rt, job_id, record)
    except Exception:
        log.exception("inline notify failed; the sweeper will retry", extra={"job_id": job_id})
