"""The beat schedule, as data. Every entry expires within its own interval, so a backlog
of ticks (a slow worker, a second beat) never piles up; every scheduled task is idempotent."""

from __future__ import annotations

from typing import Any

from config.settings import Settings

SWEEP_SECONDS = 5.0


def beat_schedule(s: Settings) -> dict[str, dict[str, Any]]:
    return {
        "poll-due": {
            "task": "headswap.poll_due",
            "schedule": s.poll_tick_seconds,
            "options": {"expires": s.poll_tick_seconds, "queue": "headswap.poll"},
        },
        "sweep": {
            "task": "headswap.sweep",
            "schedule": SWEEP_SECONDS,
            "options": {"expires": SWEEP_SECONDS, "queue": "headswap.poll"},
        },
    }
