"""Operator actions and figures: what ``headswap stats|watch|requeue|fail|dead-messages`` do.

Plain functions over the store and the lifecycle, so they are tested without a terminal.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from headswap_client import states

from config.celery import QUEUES
from config.settings import Settings
from worker import breaker, ledger
from worker.broker import misrouted
from worker.broker.envelope import preview
from worker.errors import DeadMessageRefused, StorageError, TransitionRefused
from worker.jobs import message_from_record
from worker.notify import notify_now
from worker.runtime import Runtime
from worker.storage import open_storage
from worker.store import DeadMessages, StoreError, open_store


def misrouted_waiting(rt: Runtime) -> dict[str, int]:
    """Our task messages waiting in Celery's default queue now, by task (the sweep moves
    them within seconds; a count that stays means no sweep runs)."""
    waiting: Counter[str] = Counter()
    for entry in rt.misrouted.scan(misrouted.lists_of(misrouted.DEFAULT_QUEUE)):
        task = misrouted.task_of(entry.raw)
        if task is not None:
            waiting[task] += 1
    return dict(waiting)


def stats(rt: Runtime, window: float = 300.0) -> dict[str, Any]:
    """Queue depths, schedules, and what happened in the last ``window`` seconds."""
    snap = rt.store.snapshot(QUEUES)
    waiting = misrouted_waiting(rt)
    tally = rt.misrouted.tally()
    recent = rt.store.events.recent(window)
    transitions = Counter(e["state"] for e in recent if "state" in e)
    failures = Counter(e.get("reason", "?") for e in recent if e.get("state") == states.FAILED)
    return {
        **dataclasses.asdict(snap),
        "beat_last_tick_age_s": rt.store.guards.last_tick_age("poll_due"),
        "redis_risks": rt.store.server_risks(),
        "redis_data_since": rt.store.epoch(),
        "redis_evicted_keys": rt.store.evicted_keys(),
        "store_lost": rt.store.guards.held(breaker.STORE_LOST),
        "window_s": window,
        "per_minute": {s: round(n * 60 / window, 2) for s, n in sorted(transitions.items())},
        "failed_by_reason": dict(failures),
        # Sent without queue= (Celery's default queue): waiting now, and moved so far.
        "misrouted_waiting": sum(waiting.values()),
        "misrouted_waiting_by_task": waiting,
        "misrouted_moved": tally["moved"],
        "misrouted_last_at": tally["last_at"],
        "misrouted_last_task": tally["last_task"],
        "admission": rt.settings.admission,
        **producer_figures(rt),
    }


def producer_figures(rt: Runtime) -> dict[str, Any]:
    """Per producer: its line, in flight, admitted, weight, and today's spend (UTC)."""
    lines = rt.store.admission.lines()
    fields, now = rt.store.ledger()
    spent = ledger.today(fields, now)
    policies = rt.settings.producer_policy
    names = sorted({*lines.lines, *spent, *policies.names})
    producers = {}
    for name in names:
        line = lines.lines.get(name)
        cost = spent.get(name)
        policy = policies.of(name)
        producers[name] = {
            "waiting": line.waiting if line else 0,
            "in_flight": line.in_flight if line else 0,
            "admitted": line.admitted if line else 0,
            "weight": policy.weight,
            "max_in_flight": policy.max_in_flight,
            "daily_budget": policy.daily_budget,
            "jobs_today": cost.jobs if cost else 0,
            "credits_today": cost.credits if cost else 0.0,
            "budget_held": bool(cost and cost.held_at),
        }
    return {"waiting_for_admission": lines.waiting,
            "admission_rate_per_s": round(lines.rate, 3), "producers": producers}


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


def store_lost(rt: Runtime) -> str | None:
    """Why creates are held because Redis lost our data, or None when they are not."""
    return rt.store.guards.held(breaker.STORE_LOST)


def ack_store_lost(rt: Runtime) -> str:
    """The operator has reconciled against Akool: creates may resume."""
    reason = rt.store.guards.held(breaker.STORE_LOST)
    if reason is None:
        return "creates are not held"
    rt.store.guards.lift(breaker.STORE_LOST)
    rt.store.events.alert({"alert": "store_lost_acknowledged", "reason": reason})
    return f"creates resume (the hold was: {reason})"


def eviction_refusal(settings: Settings) -> str | None:
    """Why a worker must not start on this Redis (an evicting ``maxmemory-policy``), or
    None. A Redis that cannot be reached now is not judged: the worker waits for it and
    says the risk at start (``worker.lifecycle``). ``HEADSWAP_ALLOW_EVICTION`` overrides."""
    if settings.allow_eviction:
        return None
    try:
        store = open_store(settings)
        try:
            risk = store.server_risks().get("eviction")
        finally:
            store.close()
    except StoreError:
        return None
    if risk is None:
        return None
    return f"{risk} (or set HEADSWAP_ALLOW_EVICTION=true to run anyway, at that risk)"


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


def stored_copy(settings: Settings, record: dict[str, Any]) -> dict[str, Any] | None:
    """What ``headswap status`` says of a job's stored video: where, size, checksum, and
    whether a complete object is there now (asked of the storage), or None (no copy)."""
    if not record.get("stored_key"):
        return None
    out = {"url": record.get("stored_url"), "size": record.get("stored_size"),
           "sha256": record.get("stored_sha256")}  # fmt: skip
    try:
        found = open_storage(settings).find(str(record["stored_key"]))
    except StorageError as exc:
        return {**out, "present": None, "error": str(exc)}
    out["present"] = found is not None and found.sha256 == record.get("stored_sha256")
    return out
