"""``headswap.poll_due`` (beat) and ``headswap.poll_batch``: thin wrappers over worker.polling."""

from __future__ import annotations

from worker import polling
from worker.app import app, get_runtime


@app.task(name="headswap.poll_due")
def poll_due() -> int:
    """Claim due remote tasks and fan them out in batches."""
    return polling.claim_and_fan_out(get_runtime())


@app.task(name="headswap.poll_batch")
def poll_batch(members: list[str]) -> None:
    """Ask Akool about each claimed task and apply what it says."""
    polling.poll_batch(get_runtime(), members)
