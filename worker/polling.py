"""Following remote tasks to their end.

The schedule is a Redis sorted set (``{p}:poll``) of job ids (and ``a:<hash>`` analyses)
scored by next poll time. :func:`claim_and_fan_out` (beat, every few seconds) takes due
members atomically and moves their score forward by a lease, so two beats or two pollers
never take the same member in one round; a lost ``poll_batch`` message simply lets the
lease run out and the member comes due again.

:func:`apply_remote_status` is the one place a remote status becomes a job state; the
poller and the webhook receiver both call it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, cast

from worker import analysis, metrics, states
from worker.akool_types import STATUS_COMPLETED, STATUS_FAILED, STATUS_PROCESSING, Task
from worker.errors import (
    AkoolError,
    AkoolFatal,
    AkoolNotFound,
    TransitionRefused,
)
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.store import Op
from worker.timing import next_poll_interval, transient_pause

log = logging.getLogger(__name__)

#: A poller thread sleeps at most this long for a detail-rate slot before rescheduling.
RATE_MAX_BLOCK_SECONDS = 1.0
#: How many "not found" answers in a row before a remote task is declared lost.
NOT_FOUND_LIMIT = 3


def claim_and_fan_out(rt: Runtime, *, max_batches: int = 20) -> int:
    """Claim due members and send them out as ``headswap.poll_batch`` messages."""
    s = rt.settings
    due = rt.store.claim_due(
        rt.store.poll_key, time.time(), s.poll_lease_seconds, s.poll_batch_size * max_batches
    )
    for start in range(0, len(due), s.poll_batch_size):
        batch = due[start : start + s.poll_batch_size]
        rt.send("headswap.poll_batch", {"members": batch}, queue="headswap.poll")
    return len(due)


def poll_batch(rt: Runtime, members: list[str]) -> None:
    for member in members:
        try:
            if member.startswith(analysis.MEMBER_PREFIX):
                analysis.follow(rt, member)
            else:
                poll_job(rt, member)
        except Exception:  # one bad member must not stop the batch; its lease retries it
            log.exception("poll failed", extra={"member": member})


def poll_job(rt: Runtime, job_id: str) -> None:
    record = rt.store.get(job_id)
    if record is None or record["state"] not in states.REMOTE_ACTIVE:
        rt.store.unschedule(rt.store.poll_key, job_id)
        return
    wait = rt.detail_limiter.wait(max_block=RATE_MAX_BLOCK_SECONDS)
    if wait > 0:  # over the global detail rate: ask later instead of holding the thread
        metrics.RATE_LIMIT_WAITS.labels("detail").inc()
        _reschedule(rt, record, wait)
        return
    try:
        task = rt.akool.task_detail(record["remote_id"])
    except AkoolNotFound as exc:
        _not_found(rt, record, exc)
        return
    except AkoolFatal as exc:
        log.error("task detail refused", extra={"job_id": job_id, "code": exc.code})
        _reschedule(rt, record, rt.settings.poll_max_interval_seconds)
        return
    except AkoolError as exc:
        pause = transient_pause(rt.settings.poll_min_interval_seconds, exc.retry_after)
        _reschedule(rt, record, pause)
        return
    if not apply_remote_status(rt, job_id, task, source="poll"):
        age = time.time() - float(record.get("submitted_at") or time.time())
        _reschedule(rt, record, _interval(rt, age))


def _interval(rt: Runtime, age: float) -> float:
    s = rt.settings
    return next_poll_interval(
        age,
        minimum=s.poll_min_interval_seconds,
        maximum=s.poll_max_interval_seconds,
        webhook_expected=bool(s.webhook_public_url),
        safety_net=s.safety_net_poll_seconds,
    )


def _reschedule(rt: Runtime, record: dict[str, Any], delay: float) -> None:
    rt.store.schedule_if_present(rt.store.poll_key, record["job_id"], time.time() + delay)


def _not_found(rt: Runtime, record: dict[str, Any], exc: AkoolNotFound) -> None:
    job_id = record["job_id"]
    count = cast(int, rt.redis.hincrby(rt.store.job_key(job_id), "not_found_count", 1))
    if count < NOT_FOUND_LIMIT:
        _reschedule(rt, record, rt.settings.poll_min_interval_seconds * count)
        return
    fields = {"reason": "remote_not_found", "error": exc.as_dict()}
    _finish(rt, job_id, states.FAILED, fields, "poll")


def apply_remote_status(rt: Runtime, job_id: str, task: Task, *, source: str) -> bool:
    """Apply what Akool says about a task to its job. Returns True when the job is final.

    Safe to call twice with the same news (poller and webhook racing): the state machine
    refuses the second move and nothing else happens.
    """
    if task.status == STATUS_COMPLETED:
        if not task.output_url:
            log.error("completed task without output url", extra={"job_id": job_id})
            return False
        fields = {"output_url": task.output_url, "remote_status": task.status, "source": source}
        return _finish(rt, job_id, states.SUCCEEDED, fields, source)
    if task.status == STATUS_FAILED:
        error = {"code": task.error_code, "msg": task.error_reason, "operation": "task"}
        fields = {"reason": "akool_failed", "error": error, "remote_status": task.status}
        return _finish(rt, job_id, states.FAILED, {**fields, "source": source}, source)
    if task.status == STATUS_PROCESSING:
        with contextlib.suppress(TransitionRefused):  # already processing
            rt.store.transition(
                job_id,
                states.PROCESSING,
                fields={"remote_status": task.status, "progress": task.progress},
            )
        return False
    if task.progress is not None:
        rt.store.update(job_id, {"progress": task.progress})
    return False


def _finish(rt: Runtime, job_id: str, target: str, fields: dict[str, Any], source: str) -> bool:
    try:
        rt.store.transition(
            job_id,
            target,
            fields=fields,
            event={"reason": fields.get("reason"), "output_url": fields.get("output_url")},
            ops=[Op("zrem", rt.store.ambiguous_key, job_id)],
        )
    except TransitionRefused as exc:
        return exc.current in states.TERMINAL
    if source == "webhook":
        # The receiver process does not load the producers' signal receivers: notify
        # where they live, in a worker.
        rt.send("headswap.notify", {"job_id": job_id}, queue="headswap.notify")
    else:
        notify_now(rt, job_id)
    return True
