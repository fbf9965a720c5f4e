"""Whether each bottleneck the benchmarks found is still in the code being measured.

Each check reads the code (``inspect.getsource``) or the run's own figures, so
``BENCHMARKS.md`` says "fixed" or "open" for the code it actually measured.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def _source(get: Callable[[], Any]) -> str:
    try:
        return inspect.getsource(get())
    except Exception:  # moved or renamed: unknown
        return ""


def _notify_inline() -> bool | None:
    from worker import polling

    src = _source(lambda: polling._finish)
    if not src:
        return None
    # Polled jobs are notified inline; webhook-completed ones go to a worker by design
    # (the receiver process does not load the producers' signal receivers).
    return "notify_now(" in src


def _env_read_once() -> bool | None:
    from worker.akool import AkoolClient

    src = _source(lambda: AkoolClient.__init__)
    return ("trust_env = False" in src) if src else None


def _no_unused_reads() -> bool | None:
    from worker import submission

    src = _source(lambda: submission._create)
    return ("receivers" in src) if src else None


def _task_events_off() -> bool:
    from config.celery import celery_config
    from config.settings import load_settings

    config = celery_config(load_settings({"HEADSWAP_AKOOL_API_KEY": "x"}))
    return not config.get("worker_send_task_events") and not config.get("task_send_sent_event")


def _webhook_race_fixed(results: Mapping[str, Any]) -> bool | None:
    on = results.get("throughput", {}).get("project_webhook_on")
    if not on:
        return None
    return not (on.get("completed_by") or {}).get("poll")


def _compact_hashes(results: Mapping[str, Any]) -> bool | None:
    kb = results.get("schedule_scale", {}).get("key_breakdown")
    return (kb.get("hash encoding") == "listpack") if kb else None


def _signals_in_workers(results: Mapping[str, Any]) -> bool | None:
    fired: dict[str, int] = {}
    for run in [*results.get("throughput", {}).values(),
                *results.get("poll_timing", {}).get("project", [])]:
        for kind, count in (run.get("signals_fired_in") or {}).items():
            fired[kind] = fired.get(kind, 0) + count
    if not fired:
        return None
    return not fired.get("webhook")


def statuses(results: Mapping[str, Any]) -> dict[str, bool | None]:
    """finding number -> True (fixed in the measured code), False (open), None (unknown)."""
    checks: dict[str, Callable[[], bool | None]] = {
        "1": _notify_inline,
        "2": _env_read_once,
        "3": _no_unused_reads,
        "4": _task_events_off,
        "5": lambda: _webhook_race_fixed(results),
        "6": lambda: _compact_hashes(results),
        "8": lambda: _signals_in_workers(results),
    }
    out: dict[str, bool | None] = {}
    for key, check in checks.items():
        try:
            out[key] = check()
        except Exception:
            out[key] = None
    return out
