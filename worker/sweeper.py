"""The periodic sweep: nothing a crash or a lost message leaves behind stays stuck.

- **wake-ups**: a queued job whose wake-up time has come (its message was lost, it waited
  for credits or for a retry) gets its submit message sent again. The queued -> submitting
  lock makes a duplicate message harmless.
- **outbox**: a terminal job whose notify has not completed a minute later is re-notified.
- **stuck submissions**: a job in ``submitting`` longer than a create can take (the worker
  died between sending and recording) is marked ambiguous.
- **ambiguous deadlines**: an ambiguous job whose grace period ran out fails with reason
  ``ambiguous_submission`` — or, with ``HEADSWAP_AMBIGUOUS_POLICY=resubmit``, goes back to
  ``queued`` and is created again.
"""

from __future__ import annotations

import logging
import time

from worker import states
from worker.errors import TransitionRefused
from worker.runtime import Runtime
from worker.submission import fail, mark_ambiguous, message_from_record

log = logging.getLogger(__name__)

BATCH = 500


def sweep(rt: Runtime) -> dict[str, int]:
    return {
        "resent": resend_due(rt),
        "renotified": renotify_stale(rt),
        "stuck": mark_stuck(rt),
        "ambiguous_resolved": resolve_ambiguous(rt),
    }


def resend_due(rt: Runtime, now: float | None = None) -> int:
    now = time.time() if now is None else now
    due = rt.store.claim_due(rt.store.wakeup_key, now, rt.settings.resend_after_seconds, BATCH)
    sent = 0
    for job_id in due:
        record = rt.store.get(job_id)
        if record is None or record["state"] != states.QUEUED:
            rt.store.unschedule(rt.store.wakeup_key, job_id)
            continue
        rt.send("headswap.submit", message_from_record(record), queue="headswap.submit")
        sent += 1
    return sent


def renotify_stale(rt: Runtime, now: float | None = None) -> int:
    now = time.time() if now is None else now
    grace = rt.settings.notify_grace_seconds
    due = rt.store.claim_due(rt.store.outbox_key, now - grace, grace * 2, BATCH)
    for job_id in due:
        rt.send("headswap.notify", {"job_id": job_id}, queue="headswap.notify")
    return len(due)


def mark_stuck(rt: Runtime, now: float | None = None) -> int:
    """Jobs in ``submitting`` for longer than a create call can last."""
    now = time.time() if now is None else now
    limit = rt.settings.longest_call_seconds
    stuck = rt.redis.zrangebyscore(rt.store.submitting_key, "-inf", now - limit, start=0, num=BATCH)
    marked = 0
    for job_id in stuck:  # type: ignore[union-attr]
        record = rt.store.get(str(job_id))
        if record is None or record["state"] != states.SUBMITTING:
            rt.store.unschedule(rt.store.submitting_key, str(job_id))
            continue
        if not record.get("ambiguous_at"):
            mark_ambiguous(rt, str(job_id), None)
            marked += 1
    return marked


def resolve_ambiguous(rt: Runtime, now: float | None = None) -> int:
    now = time.time() if now is None else now
    due = rt.redis.zrangebyscore(rt.store.ambiguous_key, "-inf", now, start=0, num=BATCH)
    resolved = 0
    for raw in due:  # type: ignore[union-attr]
        job_id = str(raw)
        rt.store.unschedule(rt.store.ambiguous_key, job_id)
        record = rt.store.get(job_id)
        if record is None or record["state"] != states.SUBMITTING:
            continue
        resolved += 1
        if rt.settings.ambiguous_policy == "resubmit":
            _resubmit(rt, job_id)
        else:
            fail(rt, job_id, reason="ambiguous_submission", error=record.get("error"))
    return resolved


def _resubmit(rt: Runtime, job_id: str) -> None:
    try:
        rt.store.transition(
            job_id, states.QUEUED, fields={"ambiguous_at": None}, event={"reason": "resubmit"}
        )
    except TransitionRefused:
        return
    record = rt.store.require(job_id)
    log.warning("resubmitting an ambiguous job by policy", extra={"job_id": job_id})
    rt.send("headswap.submit", message_from_record(record), queue="headswap.submit")
