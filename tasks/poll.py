"""``headswap.poll_due`` (beat) and ``headswap.poll_batch``: thin wrappers over worker.polling."""

from __future__ import annotations

from typing import Any

from worker import polling, sweeper
from worker.app import app, get_runtime


@app.task(name="headswap.poll_due")
def poll_due() -> int:
    """The poll tick: claim due remote tasks and fan them out in batches; re-send the
    queued jobs and callbacks whose time has come (:func:`worker.sweeper.tick`)."""
    return sweeper.tick(get_runtime())


@app.task(name="headswap.poll_batch")
def poll_batch(members: list[str], due: list[float] | None = None, **_later: Any) -> None:
    """Ask Akool about each claimed task and apply what it says. ``due``: when each was
    due (server clock); arguments a later beat may add are ignored (rolling upgrades)."""
    polling.poll_batch(get_runtime(), members, due)
