"""``headswap.sweep`` (beat): re-send what was lost, resolve what is stuck."""

from __future__ import annotations

from worker import sweeper
from worker.app import app, get_runtime


@app.task(name="headswap.wake_due")
def wake_due() -> int:
    """What the poll tick does for the wake-up and callback schedules. Beat no longer sends
    it (``headswap.poll_due`` does both); kept for messages a previous beat sent."""
    return sweeper.wake_due(get_runtime())


@app.task(name="headswap.sweep")
def sweep() -> dict[str, int]:
    return sweeper.sweep(get_runtime())
