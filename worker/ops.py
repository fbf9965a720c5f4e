"""Operator actions and figures: what ``headswap stats|watch|requeue|fail`` do.

Plain functions over the store, so they are tested without a terminal.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any, cast

from config.celery import QUEUES
from worker import states
from worker.errors import JobNotFound, TransitionRefused
from worker.runtime import Runtime
from worker.submission import message_from_record


def stats(rt: Runtime, window: float = 300.0) -> dict[str, Any]:
    """Queue depths, schedules, and what happened in the last ``window`` seconds."""
    now = time.time()
    snap = rt.store.snapshot(QUEUES, now)
    recent = _recent_events(rt, now - window)
    transitions = Counter(e["state"] for e in recent if "state" in e)
    failures = Counter(e.get("reason", "?") for e in recent if e.get("state") == states.FAILED)
    return {
        **dataclasses.asdict(snap),
        "window_s": window,
        "per_minute": {s: round(n * 60 / window, 2) for s, n in sorted(transitions.items())},
        "failed_by_reason": dict(failures),
    }


def _recent_events(rt: Runtime, since: float, limit: int = 50_000) -> list[dict[str, str]]:
    start = f"{int(since * 1000)}-0"
    entries = cast(
        list[tuple[str, dict[str, str]]],
        rt.redis.xrange(rt.store.events_key, min=start, count=limit),
    )
    return [fields for _id, fields in entries]


def requeue(rt: Runtime, job_id: str, *, force: bool = False) -> str:
    """Send a stuck job through submission again. Returns what was done.

    A ``queued`` job gets its message re-sent (always safe). A ``submitting`` job may have
    been created at Akool: moving it back needs ``force`` — the operator asserts (e.g. from
    Akool's console) that no task exists, since a second create costs credits.
    """
    record = rt.store.get(job_id)
    if record is None:
        raise JobNotFound(job_id)
    state = record["state"]
    if state == states.SUBMITTING:
        if not force:
            raise TransitionRefused(job_id, state, states.QUEUED, ["queued (use --force)"])
        rt.store.transition(
            job_id,
            states.QUEUED,
            fields={"ambiguous_at": None},
            event={"reason": "operator_requeue"},
        )
        rt.store.unschedule(rt.store.ambiguous_key, job_id)
        record = rt.store.require(job_id)
    elif state != states.QUEUED:
        raise TransitionRefused(job_id, state, states.QUEUED, [states.QUEUED, states.SUBMITTING])
    rt.send("headswap.submit", message_from_record(record), queue="headswap.submit")
    return f"{job_id}: submit re-sent (was {state})"


def fail(rt: Runtime, job_id: str, reason: str) -> str:
    """Fail a non-terminal job by hand (it is notified like any other failure)."""
    from worker.submission import fail as fail_job

    record = rt.store.get(job_id)
    if record is None:
        raise JobNotFound(job_id)
    outcome = fail_job(
        rt,
        job_id,
        reason="operator",
        error={"message": reason, "operation": "operator"},
    )
    if outcome.status != "failed":
        raise TransitionRefused(
            job_id, record["state"], states.FAILED, sorted(states.ALLOWED[states.FAILED])
        )
    return f"{job_id}: failed by operator ({reason})"
