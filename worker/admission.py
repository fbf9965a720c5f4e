"""Fair admission: many producers share one Akool account.

With ``HEADSWAP_ADMISSION=fair`` (the default) a queued job does not race for the account's
in-flight cap and create rate: it joins its producer's line, and ``admit.lua`` lets jobs go
in weighted fair order across producers (start-time fair queuing: a virtual-time
scheduler — exact weights with one number of state per producer, no quantum to tune, and
a producer that was idle cannot bank credit) and by ``priority`` within a producer, each
within its own policy (``config.producers``: own cap, rate share, daily budget).

Waiting is data in Redis, never a worker thread or a retry: a job in a line has no
wake-up and no message in flight. Admission runs when a job arrives (its submit task), when
a task at Akool ends (:func:`freed`) and on every poll tick (:func:`pump`); each round
grants what the caps and the rate allow and sends those jobs' submit messages. A grant
holds the job's in-flight slot and its create-rate slot; its message is re-sent from the
wake-up schedule if lost, and the ``queued -> submitting`` lock stays the one place a
create is decided.

``HEADSWAP_ADMISSION=fifo`` keeps the first-come path (:mod:`worker.submission` then
checks the cap and the rate itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from headswap_client import states
from headswap_client.queues import SUBMIT_QUEUE

from worker import breaker, metrics, signals
from worker.jobs import message_from_record
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.store.admission import Admitted

log = logging.getLogger(__name__)

#: A job is admitted when its create slot (at the create rate) is at most this far ahead;
#: its submit task sleeps until then. Poll ticks (2 s) come more often than this runs out.
AHEAD_SECONDS = 2.0
#: Most jobs one round admits: a round is one script, kept short for Redis.
ROUND_MAX = 200
#: A completion in this process runs a round when a line was seen non-empty this recently.
BACKLOG_MEMORY_SECONDS = 10.0
#: How often a process that saw no backlog looks at the lines again after a completion.
BACKLOG_LOOK_SECONDS = 1.0
CIRCUITS = ("credits", breaker.NAME, breaker.STORE_LOST)


class _Backlog:
    """Whether this process has seen jobs waiting in a line lately."""

    def __init__(self) -> None:
        self.seen_at = -1e9
        self.looked_at = -1e9
        self._lock = threading.Lock()

    def saw(self, waiting: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.looked_at = now
            if waiting:
                self.seen_at = now

    def worth_a_round(self, look: Any) -> bool:
        now = time.monotonic()
        if now - self.seen_at < BACKLOG_MEMORY_SECONDS:
            return True
        with self._lock:
            if now - self.looked_at < BACKLOG_LOOK_SECONDS:
                return False
            self.looked_at = now
        waiting = int(look())
        if waiting:
            self.seen_at = now
        return waiting > 0


BACKLOG = _Backlog()


def fair(rt: Runtime) -> bool:
    """Whether jobs go through the lines: fair admission on, and something that can bind
    (a cap, a rate, a producer's own cap, rate share or budget). With nothing to bind every
    job would be admitted as it arrives: the first-come path does that without a round."""
    return rt.settings.admission == "fair" and can_bind(rt.settings)


def can_bind(settings: Any) -> bool:
    if settings.max_in_flight > 0 or settings.create_rate > 0:
        return True
    policies = settings.producer_policy
    return any(p.max_in_flight or p.daily_budget or p.rate_share < 1
               for p in (policies.others, *(p for _, p in policies.listed)))


def plan(rt: Runtime, limit: int = ROUND_MAX) -> dict[str, Any]:
    s = rt.settings
    return {
        "cap": s.max_in_flight,
        "interval": 1.0 / s.create_rate if s.create_rate > 0 else 0.0,
        "burst": max(1, s.rate_burst),
        "horizon": AHEAD_SECONDS,
        "lease": s.resend_after_seconds,
        "max": limit,
        "policies": s.producer_policy.as_plan(),
        "estimate": s.cost_estimate_credits,
        "maxlen": 200_000,
    }


def _after(rt: Runtime, result: Admitted, skip: tuple[str | None, ...]) -> None:
    """What follows a round: metrics, budget holds and failures, the grants' messages."""
    BACKLOG.saw(result.waiting)
    labels = rt.settings.producer_policy.label
    for _, _, producer in result.admitted:
        metrics.ADMISSIONS.labels(labels(producer)).inc()
    for producer in result.held:
        policy = rt.settings.producer_policy.of(producer).over_budget
        metrics.BUDGET_HOLDS.labels(labels(producer)).inc()
        log.warning("producer over its daily budget: its jobs %s until the next day (UTC)",
                    "wait" if policy == "hold" else "fail", extra={"producer": producer})
        signals.budget_exhausted.send(sender="headswap", producer=producer, policy=policy)
    _fail_over_budget(rt, result.failed)
    _dispatch(rt, (job_id for job_id, _, _ in result.admitted if job_id not in skip))


def pump(rt: Runtime) -> int:
    """A round with no job joining (poll tick, a freed slot); the jobs granted."""
    if not fair(rt):
        return 0
    result = rt.store.admission.admit(None, plan(rt), CIRCUITS)
    _after(rt, result, skip=())
    return len(result.admitted)


def freed(rt: Runtime) -> None:
    """A task left Akool's in-flight count: let the next waiting job go now rather than at
    the next tick — when lines are known to hold jobs."""
    if fair(rt) and BACKLOG.worth_a_round(rt.store.admission.line_size):
        pump(rt)


@dataclass(frozen=True)
class Turn:
    """What a round did for a job about to be created: ``slot`` None when it waits in its
    line, else the seconds until its create slot (0: go now); ``adopted``: another job the
    round granted, left to this thread to create (its message would wait behind the submit
    queue; the grant's wake-up re-sends it if this thread dies)."""

    slot: float | None
    adopted: str | None = None


def take(rt: Runtime, job_id: str, *, adopt: bool = True) -> Turn:
    """A round with ``job_id`` joining its line, for the thread that will create it."""
    result = rt.store.admission.admit(job_id, plan(rt), CIRCUITS)
    granted = [ident for ident, _, _ in result.admitted if ident != job_id]
    adopted = granted[0] if adopt and result.grant is None and granted else None
    _after(rt, result, skip=(job_id, adopted))
    if result.grant is None:
        return Turn(None, adopted)
    slot, admitted_at = result.grant
    return Turn(max(0.0, slot - result.now) if slot > admitted_at else 0.0)


def release(rt: Runtime, job_id: str) -> None:
    """A granted job that may not go after all (a pause, the breaker) gives its slot back
    and returns to its place in its line."""
    if fair(rt):
        rt.store.admission.ungrant(job_id)


def _dispatch(rt: Runtime, job_ids: Iterable[str]) -> None:
    ids = list(job_ids)
    if not ids:
        return
    for record in rt.store.get_many(ids):
        if record is not None and record.get("state") == states.QUEUED:
            rt.send("headswap.submit", message_from_record(record), queue=SUBMIT_QUEUE)


def _fail_over_budget(rt: Runtime, job_ids: Iterable[str]) -> None:
    for job_id in job_ids:
        error = {"error": "budget_exhausted",
                 "message": "the producer's daily credit budget is spent (policy: fail)"}
        if rt.jobs.fail(job_id, "budget_exhausted", error):
            notify_now(rt, job_id)
