"""Whether each bottleneck the benchmarks found is still in the code being measured.

A status comes from the run's own figures or configuration (True: fixed, False: open,
None: not measured in this run), or names the behaviour test that guards the fix: the
fixes that no figure of a run shows are checked by running the code, not by reading it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench.report import COMPACT_HASH_ENCODINGS

Status = bool | str | None

#: finding -> the test (real processes, real Redis, the sandbox) that fails if it returns.
GUARDED_BY: dict[str, str] = {
    "1": "tests/integration/test_notify_inline.py::"
         "test_a_polled_job_fires_its_signal_in_the_worker_without_a_notify_task",
    "2": "tests/integration/test_akool_client.py::"
         "test_the_client_reads_proxy_settings_once_when_it_is_built",
}


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
    return (kb.get("hash encoding") in COMPACT_HASH_ENCODINGS) if kb else None


def _signals_in_workers(results: Mapping[str, Any]) -> bool | None:
    fired: dict[str, int] = {}
    for run in [*results.get("throughput", {}).values(),
                *results.get("poll_timing", {}).get("project", [])]:
        for kind, count in (run.get("signals_fired_in") or {}).items():
            fired[kind] = fired.get(kind, 0) + count
    if not fired:
        return None
    return not fired.get("webhook")


def statuses(results: Mapping[str, Any]) -> dict[str, Status]:
    """finding number -> True (fixed in the measured code), False (open), None (unknown),
    or the test that guards the fix."""
    checks: dict[str, Callable[[], bool | None]] = {
        "4": _task_events_off,
        "5": lambda: _webhook_race_fixed(results),
        "6": lambda: _compact_hashes(results),
        "8": lambda: _signals_in_workers(results),
    }
    out: dict[str, Status] = dict(GUARDED_BY)
    for key, check in checks.items():
        try:
            out[key] = check()
        except Exception:
            out[key] = None
    return out
