"""Following remote tasks to their end.

The schedule is a Redis sorted set (``poll``) of job ids (and ``a:<hash>`` analyses)
scored by next poll time on the Redis server's clock. :func:`fan_out` (part of beat's
poll tick, :func:`worker.sweeper.tick`) takes due members atomically and moves their score
forward by a lease, so two beats or two pollers never take the same member in one round;
a lost ``poll_batch`` message simply lets the lease run out and the member comes due again.

What a remote status does to a job is :meth:`worker.jobs.Jobs.apply_remote_status`'s; the
poller and the webhook receiver both call it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from headswap_client import states
from headswap_client.queues import POLL_QUEUE

from worker import analysis, metrics, poll_claim, storing, tracing
from worker.errors import AkoolError, AkoolFatal, AkoolNotFound
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.timing import next_poll_interval, transient_pause

log = logging.getLogger(__name__)

#: A poller thread sleeps at most this long for a detail-rate slot before rescheduling.
RATE_MAX_BLOCK_SECONDS = 1.0
#: How many "not found" answers in a row before a remote task is declared lost.
NOT_FOUND_LIMIT = 3
#: Beat ticks later than this many intervals are logged: the pipeline stood still.
LATE_TICKS = 5


def tick_runs(rt: Runtime) -> bool:
    """Whether this poll tick runs. A tick that comes less than half an interval after the
    previous one (ticks that piled up while no worker took them, or a second beat) is
    skipped: by the server's clock, so it needs no agreement between the clocks of beat and
    workers. A tick that comes very late is logged."""
    s = rt.settings
    gap = rt.store.guards.tick("poll_due", min_gap=s.poll_tick_seconds / 2)
    if gap is None:
        return False
    if gap > LATE_TICKS * s.poll_tick_seconds:
        log.warning("poll ticks were late: nothing was polled meanwhile",
                    extra={"gap_seconds": round(gap, 1)})  # fmt: skip
    return True


def fan_out(rt: Runtime) -> int:
    """Claim due members and send them out as ``headswap.poll_batch`` messages, each
    with the server time its members were due (``due``, for the poll-lag metric). How
    many: what is due, up to :func:`worker.poll_claim.claim_limit` (about two ticks of
    what the workers took). Returns the members claimed."""
    s = rt.settings
    now, waiting, previous = rt.store.guards.fan_out_view(POLL_QUEUE)
    limit = poll_claim.claim_limit(waiting=waiting, previous=previous, now=now,
                                   tick=s.poll_tick_seconds, batch=s.poll_batch_size,
                                   cap=s.poll_max_claim_per_tick)  # fmt: skip
    claimed = sent = 0
    while claimed < limit:
        ask = min(limit - claimed, s.poll_batch_size * poll_claim.CHUNK_BATCHES)
        due = rt.store.claim_due_scored("poll", s.poll_lease_seconds, ask)
        for start in range(0, len(due), s.poll_batch_size):
            batch = due[start : start + s.poll_batch_size]
            rt.send("headswap.poll_batch", {"members": [m for m, _ in batch],
                                            "due": [round(at, 3) for _, at in batch]},
                    queue=POLL_QUEUE)  # fmt: skip
            sent += 1
        claimed += len(due)
        if len(due) < ask:
            break
    rt.store.guards.fan_out_done(waiting + sent, now)
    return claimed


def poll_batch(rt: Runtime, members: list[str], due: list[float] | None = None) -> None:
    """Poll each member once, ``HEADSWAP_POLL_CONCURRENCY`` at a time in this process
    (:mod:`worker.poll_pool`); returns when every one is done. One that fails is logged and
    does not stop the others: its lease brings it back."""
    due_at = _due_times(members, due)
    clock = server_clock(rt)

    def poll_one(member: str) -> None:
        if member.startswith(analysis.MEMBER_PREFIX):
            analysis.follow(rt, member)
        else:
            poll_job(rt, member, due_at=due_at.get(member), clock=clock)

    rt.poll_pool.run_each(poll_one, list(dict.fromkeys(members)))


def _due_times(members: list[str], due: Any) -> dict[str, float]:
    """member -> due time, from a batch's ``due`` list (absent in messages from an older
    beat; anything malformed is ignored: it only feeds a metric)."""
    if not isinstance(due, list) or len(due) != len(members):
        return {}
    return {m: float(at) for m, at in zip(members, due, strict=True)
            if isinstance(at, int | float) and not isinstance(at, bool)}  # fmt: skip


def server_clock(rt: Runtime) -> Callable[[], float]:
    """The Redis server's clock for one batch: read once, then carried forward on this
    machine's monotonic clock (a batch lasts seconds; two ``TIME`` round trips a member
    saved). For what a poll measures and schedules by — its lag, the task's age — never
    for a score or lease the store compares (those the scripts take from ``TIME``)."""
    base, start = rt.store.clock(), time.monotonic()
    return lambda: base + (time.monotonic() - start)


def poll_job(rt: Runtime, job_id: str, due_at: float | None = None,
             clock: Callable[[], float] | None = None) -> None:  # fmt: skip
    record = rt.store.get(job_id)
    if record is None or record["state"] not in states.REMOTE_ACTIVE:
        rt.store.unschedule("poll", job_id)
        return
    with tracing.job_span("headswap.poll", record.get(tracing.RECORD_FIELD), job_id=job_id,
                          remote_id=record.get("remote_id")):  # fmt: skip
        _ask(rt, job_id, record, due_at, clock or rt.store.clock)


def _ask(rt: Runtime, job_id: str, record: dict[str, Any], due_at: float | None,
         clock: Callable[[], float]) -> None:  # fmt: skip
    """One detail call for a followed job, and what its answer does."""
    wait = rt.detail_limiter.wait(max_block=RATE_MAX_BLOCK_SECONDS)
    if wait > 0:  # over the global detail rate: ask later instead of holding the thread
        metrics.RATE_LIMIT_WAITS.labels("detail").inc()
        _reschedule(rt, job_id, wait)
        return
    if due_at is not None:
        metrics.observe_poll_lag(clock() - due_at)
    try:
        with tracing.span("akool.task_detail", "CLIENT") as span:
            task = rt.akool.task_detail(record["remote_id"])
            tracing.set_attributes(span, remote_status=task.status)
    except AkoolNotFound as exc:
        _not_found(rt, record, exc)
        return
    except AkoolFatal as exc:
        log.error("task detail refused", extra={"job_id": job_id, "code": exc.code})
        _reschedule(rt, job_id, rt.settings.poll_max_interval_seconds)
        return
    except AkoolError as exc:
        _reschedule(rt, job_id, transient_pause(rt.settings.poll_min_interval_seconds,
                                                exc.retry_after))  # fmt: skip
        return
    if rt.jobs.apply_remote_status(job_id, task, source="poll"):
        storing.follow_up(rt, job_id)  # the copy of a finished output, or the notification
    else:  # "xx": a job that ended meanwhile has left the schedule and stays out
        _reschedule(rt, job_id, _interval(rt, record, clock()))


def _interval(rt: Runtime, record: dict[str, Any], now: float) -> float:
    s = rt.settings
    submitted = float(record.get("submitted_at") or 0)
    age = max(0.0, now - submitted) if submitted else 0.0
    return next_poll_interval(
        age,
        minimum=s.poll_min_interval_seconds,
        maximum=s.poll_max_interval_seconds,
        webhook_expected=bool(s.webhook_public_url),
        safety_net=s.safety_net_poll_seconds,
    )


def _reschedule(rt: Runtime, job_id: str, delay: float) -> None:
    rt.store.schedule("poll", job_id, delay, "xx")


def _not_found(rt: Runtime, record: dict[str, Any], exc: AkoolNotFound) -> None:
    job_id = record["job_id"]
    count = rt.jobs.count_not_found(job_id)
    if count < NOT_FOUND_LIMIT:
        _reschedule(rt, job_id, rt.settings.poll_min_interval_seconds * count)
        return
    fields = {"reason": "remote_not_found", "error": exc.as_dict()}
    if rt.jobs.finish(job_id, states.FAILED, fields):
        notify_now(rt, job_id)
