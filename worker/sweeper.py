"""The periodic sweep: nothing a crash or a lost message leaves behind stays stuck.

- **wake-ups** (:func:`wake_due`, part of every poll tick, :func:`tick`): a queued job
  whose wake-up time has come (a retry, a wait for credits, the in-flight cap or the
  create rate, or a lost message) gets its submit message sent again; the queued ->
  submitting lock makes a duplicate harmless. Likewise an HTTP callback whose next
  attempt is due gets its ``headswap.deliver_callback`` (the callback lock, likewise), and
  an output copy whose lease ran out gets its ``headswap.store_output`` (the job lock).
- **outbox**: a terminal job whose notify has not completed a minute later is re-notified.
- **stuck submissions**: a job in ``submitting`` longer than a create can take (the worker
  died between sending and recording) is marked ambiguous.
- **ambiguous deadlines**: an ambiguous job whose grace period ran out fails with reason
  ``ambiguous_submission`` — or, with ``HEADSWAP_AMBIGUOUS_POLICY=resubmit``, goes back to
  ``queued`` and is created again.
- **misrouted messages** (:func:`reroute_misrouted`): a ``headswap.*`` task a producer sent
  without ``queue=`` waits in Celery's default queue ``celery``, which no headswap worker
  consumes; it is moved onto its own queue (one atomic step), counted
  (``headswap_misrouted_messages_total``) and logged at WARNING with the fix.

"Due" is always by the Redis server's clock (the store's claim script).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from headswap_client import states

from worker import admission, polling, storing
from worker.broker import misrouted
from worker.jobs import message_from_record
from worker.metrics import MISROUTED_MESSAGES
from worker.notify import CALLBACK_QUEUE, CALLBACK_TASK, notify_now
from worker.runtime import Runtime
from worker.submission import WORKER_LOST

log = logging.getLogger(__name__)

BATCH = 500
#: While no webhook receiver reaches Redis, an ambiguous job under the resubmit policy is
#: looked at again this often.
RECEIVER_DOWN_RECHECK_SECONDS = 30.0


def tick(rt: Runtime) -> int:
    """The poll tick (``headswap.poll_due``, beat, every ``HEADSWAP_POLL_TICK_SECONDS``),
    one task for every schedule that needs the tick: due remote tasks are claimed and fanned
    out (:func:`worker.polling.fan_out`), then the queued jobs whose wake-up time has come
    and the HTTP callbacks whose next attempt is due are re-sent, and a fair admission round
    lets waiting jobs go (:func:`worker.admission.pump`). Returns the members sent."""
    if not polling.tick_runs(rt):
        return 0
    return polling.fan_out(rt) + wake_due(rt) + admission.pump(rt)


def wake_due(rt: Runtime) -> int:
    """Re-send the queued jobs whose wake-up time has come, the HTTP callbacks whose
    next attempt is due, and the output copies whose lease ran out."""
    return resend_due(rt) + resend_due_callbacks(rt) + storing.resend_due(rt)


def sweep(rt: Runtime) -> dict[str, int]:
    if rt.store.guards.tick("sweep", min_gap=1.0) is None:
        return {}  # ticks that piled up, or a second beat: the previous sweep is recent
    return {
        "renotified": renotify_stale(rt),
        "stuck": mark_stuck(rt),
        "ambiguous_resolved": resolve_ambiguous(rt),
        "misrouted": reroute_misrouted(rt),
    }


def resend_due(rt: Runtime) -> int:
    due = rt.store.claim_due("wakeup", rt.settings.resend_after_seconds, BATCH)
    sent = 0
    for job_id in due:
        record = rt.store.get(job_id)
        if record is None or record["state"] != states.QUEUED:
            rt.store.unschedule("wakeup", job_id)
            continue
        rt.send("headswap.submit", message_from_record(record), queue="headswap.submit")
        sent += 1
    return sent


def resend_due_callbacks(rt: Runtime) -> int:
    """Send the next attempt of each callback whose retry time has come. The claim's lease
    (longer than one attempt) brings it back if this send or that attempt is lost."""
    due = rt.store.claim_due("callback", rt.settings.longest_callback_seconds, BATCH)
    for job_id in due:
        rt.send(CALLBACK_TASK, {"job_id": job_id}, queue=CALLBACK_QUEUE)
    return len(due)


def renotify_stale(rt: Runtime) -> int:
    grace = rt.settings.notify_grace_seconds
    due = rt.store.claim_due("outbox", grace * 2, BATCH, lag=grace)
    for job_id in due:
        rt.send("headswap.notify", {"job_id": job_id}, queue="headswap.notify")
    return len(due)


def mark_stuck(rt: Runtime) -> int:
    """Jobs in ``submitting`` for longer than a create call can last."""
    stuck = rt.store.claim_due("submitting", 0, BATCH, lag=rt.settings.longest_call_seconds)
    marked = 0
    for job_id in stuck:
        record = rt.store.get(job_id)
        if record is None or record["state"] != states.SUBMITTING:
            rt.store.unschedule("submitting", job_id)
            continue
        if not record.get("ambiguous_at") and rt.jobs.mark_ambiguous(job_id, WORKER_LOST):
            marked += 1
    return marked


def _binding_still_possible(rt: Runtime, record: dict[str, Any]) -> float:
    """Seconds to wait before resubmitting an ambiguous job, 0 when it may go now.

    With the webhook on, a create that did happen is bound by Akool's delivery — if the
    receiver could take it. Issue 12: the receiver answered 503 through a Redis outage,
    the sandbox gave up its retries, the grace ran out and 7 jobs were created twice. So
    the grace counts from the later of the ambiguity and the moment the receiver last
    became reachable (``receiver_up_since``), and while no receiver is reachable the
    policy waits. A receiver that answered 503 to a binding it could not confirm (Akool's
    detail hung) starts that clock again: to this policy it was not there."""
    if not rt.settings.webhook_public_url:
        return 0.0
    up_since, now = rt.store.guards.receiver_up_since()
    grace = rt.settings.ambiguous_grace_seconds
    if up_since is None:
        return min(grace, RECEIVER_DOWN_RECHECK_SECONDS)
    since = max(float(record.get("ambiguous_at") or 0.0), up_since)
    return max(0.0, since + grace - now)


def resolve_ambiguous(rt: Runtime) -> int:
    due = rt.store.claim_due("ambiguous", 0, BATCH)
    resolved = 0
    for job_id in due:
        rt.store.unschedule("ambiguous", job_id)
        record = rt.store.get(job_id)
        if record is None or record["state"] != states.SUBMITTING:
            continue
        resolved += 1
        if rt.settings.ambiguous_policy == "resubmit":
            wait = _binding_still_possible(rt, record)
            if wait:  # a webhook may yet bind it: resubmitting now would create it twice
                rt.store.schedule("ambiguous", job_id, wait)
                resolved -= 1
                continue
            if rt.jobs.resubmit(job_id):
                log.warning("resubmitting an ambiguous job by policy", extra={"job_id": job_id})
                rt.send("headswap.submit", message_from_record(rt.store.require(job_id)),
                        queue="headswap.submit")  # fmt: skip
        elif rt.jobs.fail(job_id, "ambiguous_submission", record.get("error"),
                          maybe_charged=True):
            notify_now(rt, job_id)
    return resolved


#: What the WARNING about misrouted messages tells the producer's owner to do.
MISROUTED_FIX = (
    "send with queue='headswap.submit' (send_task('headswap.submit', kwargs=..., "
    "queue='headswap.submit')), or use worker.producer.Producer; every task's queue is in "
    "config/celery.py (ROUTES)"
)


def reroute_misrouted(rt: Runtime) -> int:
    """Move our task messages out of Celery's default queue onto their own; returns how
    many were moved.

    Why move rather than only report: nothing else will ever take them (no headswap worker
    consumes ``celery``, and a backend's own worker there would drop a task it does not
    know), the move is one atomic step (never lost, never doubled), and a job submitted
    this way then runs instead of waiting for someone to read a log. The WARNING still
    says how to fix the producer, since every such message waits for a sweep (up to 5 s).
    """
    sources = misrouted.lists_of(misrouted.DEFAULT_QUEUE)
    moved: Counter[tuple[str, str]] = Counter()
    ids: dict[tuple[str, str], list[str]] = {}
    for entry in rt.misrouted.scan(sources):
        task = misrouted.task_of(entry.raw)
        if task is None:
            continue  # the prefilter's false positive: another service's message
        queue = misrouted.home_queue(task)
        new_raw = misrouted.readdressed(entry.raw, queue)
        if not rt.misrouted.move(entry, misrouted.target_list(entry.source, queue), new_raw,
                                 task):  # fmt: skip
            continue  # taken meanwhile
        moved[(task, queue)] += 1
        ids.setdefault((task, queue), []).append(misrouted.message_id(entry.raw))
    for (task, queue), count in moved.items():
        MISROUTED_MESSAGES.labels(misrouted.task_label(task), misrouted.DEFAULT_QUEUE).inc(count)
        log.warning(
            "%d %s message(s) waited in Celery's default queue %r, which no headswap worker "
            "reads (the producer sent them without queue=): moved to %s. Fix the producer: "
            "%s", count, task, misrouted.DEFAULT_QUEUE, queue, MISROUTED_FIX,
            extra={"task": task, "count": count, "from_queue": misrouted.DEFAULT_QUEUE,
                   "queue": queue, "message_ids": ids[(task, queue)][:10]},
        )  # fmt: skip
    return sum(moved.values())
