"""The beat schedule, as data. Every scheduled task is idempotent.

No entry carries Celery's ``expires``: it is computed on beat's clock and checked on the
worker's, so a worker whose clock runs a few seconds ahead of beat's would discard every
tick as expired (seen: 20 of 20 jobs stalled, nothing logged). Instead each task records
its run on the Redis server's clock and skips a tick that comes too soon after the
previous one (ticks that piled up while no worker took them, or a second beat); a tick
that comes late is logged, and its age is the ``headswap_beat_last_tick_age_seconds``
gauge — an alert, not silence.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings

SWEEP_SECONDS = 5.0


def beat_schedule(s: Settings) -> dict[str, dict[str, Any]]:
    return {
        "poll-due": {
            "task": "headswap.poll_due",
            "schedule": s.poll_tick_seconds,
            "options": {"queue": "headswap.poll"},
        },
        "sweep": {
            "task": "headswap.sweep",
            "schedule": SWEEP_SECONDS,
            "options": {"queue": "headswap.poll"},
        },
    }
