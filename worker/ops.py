"""Operator actions and figures: what ``headswap stats|watch|requeue|fail|dead-messages`` do.

Plain functions over the store and the lifecycle, so they are tested without a terminal.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from config.celery import QUEUES
from worker import states
from worker.broker.envelope import preview
from worker.errors import DeadMessageRefused, TransitionRefused
from worker.jobs import message_from_record
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.store import DeadMessages


def stats(rt: Runtime, window: float = 300.0) -> dict[str, Any]:
    """Queue depths, schedules, and what happened in the last ``window`` seconds."""
    snap = rt.store.snapshot(QUEUES)
    recent = rt.store.events.recent(window)
    transitions = Counter(e["state"] for e in recent if "state" in e)
    failures = Counter(e.get("reason", "?") for e in recent if e.get("state") == states.FAILED)
    return {
        **dataclasses.asdict(snap),
        "beat_last_tick_age_s": rt.store.guards.last_tick_age("poll_due"),
        "redis_risks": rt.store.server_risks(),
        "redis_data_since": rt.store.epoch(),
        "window_s": window,
        "per_minute": {s: round(n * 60 / window, 2) for s, n in sorted(transitions.items())},
        "failed_by_reason": dict(failures),
    }


def requeue(rt: Runtime, job_id: str, *, force: bool = False) -> str:
    """Send a stuck job through submission again. Returns what was done.

    A ``queued`` job gets its message re-sent (always safe). A ``submitting`` job may have
    been created at Akool: moving it back needs ``force`` — the operator asserts (e.g. from
    Akool's console) that no task exists, since a second create costs credits.
    """
    was = rt.jobs.operator_requeue(job_id, force=force)
    record = rt.store.require(job_id)
    rt.send("headswap.submit", message_from_record(record), queue="headswap.submit")
    return f"{job_id}: submit re-sent (was {was})"


def fail(rt: Runtime, job_id: str, reason: str) -> str:
    """Fail a non-terminal job by hand (it is notified like any other failure)."""
    record = rt.store.require(job_id)
    if not rt.jobs.operator_fail(job_id, reason):
        raise TransitionRefused(
            job_id, record["state"], states.FAILED, sorted(states.ALLOWED[states.FAILED])
        )
    notify_now(rt, job_id)
    return f"{job_id}: failed by operator ({reason})"


def dead_messages(dead: DeadMessages, limit: int = 100) -> list[dict[str, Any]]:
    """The oldest ``limit`` dead messages: id, time, queue, reason, size and a safe preview
    (never the raw bytes: they may hold credentials)."""
    return [
        {"id": e.id, "at": e.at, "queue": e.queue, "reason": e.reason, "size": e.size,
         "truncated": e.truncated, "detail": e.detail, "preview": preview(e.raw)}
        for e in dead.list(limit)
    ]  # fmt: skip


def requeue_dead_message(dead: DeadMessages, entry_id: str) -> str:
    """Put one dead message's bytes back on its queue (at the back: LPUSH) and drop it from
    the list, in one step. A message still bad is simply kept again."""
    entry = dead.requeue(entry_id)
    return f"{entry_id}: {entry.size} bytes back on {entry.queue} (was {entry.reason})"


def delete_dead_message(dead: DeadMessages, entry_id: str) -> str:
    """Forget one dead message (dealt with, or not worth keeping)."""
    if not dead.delete(entry_id):
        raise DeadMessageRefused(f"no dead message {entry_id}")
    return f"{entry_id}: deleted"
