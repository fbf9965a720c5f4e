"""The job state machine: states and the moves allowed between them.

::

             validate fails
   enqueue ─────────────────────────────▶ rejected
      │
      ▼
   queued ──▶ submitting ──▶ submitted ──▶ processing ──▶ storing ──▶ succeeded
      │  ◀──────┘ (not received: retry)       └────────▶ failed  └──▶ failed
      ▼            └─────────────────────────────────────▶ failed    (output_expired,
   cancelled                                                          store_failed)

``storing``: Akool finished (status 3) and the output is being copied to durable storage
(``worker.storing``); ``succeeded`` comes with the stored copy. With storage off
(``HEADSWAP_STORAGE_URL=none``) a finished task goes straight to ``succeeded``.

A move not in :data:`ALLOWED` is refused by the store, atomically, so a redelivered message
or a second poller can do no harm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

QUEUED: Final = "queued"
SUBMITTING: Final = "submitting"
SUBMITTED: Final = "submitted"
PROCESSING: Final = "processing"
STORING: Final = "storing"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REJECTED: Final = "rejected"
CANCELLED: Final = "cancelled"

ALL_STATES: Final = (
    QUEUED, SUBMITTING, SUBMITTED, PROCESSING, STORING, SUCCEEDED, FAILED, REJECTED,
    CANCELLED,
)  # fmt: skip
TERMINAL: Final = frozenset({SUCCEEDED, FAILED, REJECTED, CANCELLED})
#: Jobs that have a task at Akool that we are following.
REMOTE_ACTIVE: Final = frozenset({SUBMITTED, PROCESSING})

#: target state -> states it may be entered from
ALLOWED: Final[dict[str, frozenset[str]]] = {
    QUEUED: frozenset({SUBMITTING}),  # a create that was surely not received goes back
    SUBMITTING: frozenset({QUEUED}),  # the lock: only one worker makes this move
    SUBMITTED: frozenset({SUBMITTING}),
    PROCESSING: frozenset({SUBMITTED}),
    STORING: frozenset({SUBMITTED, PROCESSING}),  # Akool finished; the copy is under way
    SUCCEEDED: frozenset({SUBMITTED, PROCESSING, STORING}),
    FAILED: frozenset({QUEUED, SUBMITTING, SUBMITTED, PROCESSING, STORING}),
    REJECTED: frozenset({QUEUED}),
    CANCELLED: frozenset({QUEUED}),
}
#: The one way out of a terminal state: a job failed as ``ambiguous_submission`` whose
#: task is then proven to exist (a late webhook, Akool's detail agreeing; or a spooled
#: create) goes back to ``submitted`` and is followed to its real end. Only
#: :meth:`worker.jobs.Jobs.revive` makes this move.
REVIVABLE: Final = frozenset({FAILED})
REVIVABLE_REASON: Final = "ambiguous_submission"


def revivable(record: Mapping[str, Any]) -> bool:
    """A record :meth:`worker.jobs.Jobs.revive` may move back to ``submitted``."""
    return record.get("state") in REVIVABLE and record.get("reason") == REVIVABLE_REASON


#: Schedules (Redis sorted sets of the store) and the states whose jobs each may hold.
#: A transition takes the job out of every schedule that does not hold its new state.
SCHEDULE_HOLDS: Final[dict[str, frozenset[str]]] = {
    "wakeup": frozenset({QUEUED}),  # when to (re)send a queued job's submit message
    "submitting": frozenset({SUBMITTING}),  # since when a create has been under way
    "ambiguous": frozenset({SUBMITTING}),  # creates that may have run, by grace deadline
    "inflight": frozenset({SUBMITTING, SUBMITTED, PROCESSING}),  # tasks at Akool (the cap)
    "poll": frozenset({SUBMITTED, PROCESSING}),  # next detail call of a remote task
    "outbox": TERMINAL,  # finished jobs whose notification has not completed
    "callback": TERMINAL,  # when to make the next attempt of an HTTP callback
    "store": frozenset({STORING}),  # when to (re)send the copy of a finished output
}

#: Schedules a job joins on entering a state. The arrow may give a delay (seconds from
#: now, then the score is set); without one the job joins at "now" unless already there.
SCHEDULES_JOINED: Final[dict[str, tuple[str, ...]]] = {
    QUEUED: ("wakeup",),
    SUBMITTING: ("submitting", "inflight"),
    SUBMITTED: ("inflight", "poll"),
    PROCESSING: ("inflight", "poll"),
    STORING: ("store",),
    **{state: ("outbox",) for state in TERMINAL},
}

#: States whose job is found by its Akool task id (the remote-id index).
REMOTE_INDEXED: Final = REMOTE_ACTIVE


@dataclass(frozen=True)
class SchedulePlan:
    """The schedule moves of one transition, as data for the store's script."""

    leave: tuple[str, ...]
    join: tuple[tuple[str, float, bool], ...]  # (schedule, delay seconds, only if absent)


def schedule_plan(target: str, delays: Mapping[str, float] | None = None) -> SchedulePlan:
    """Which schedules a job entering ``target`` leaves and joins.

    ``delays`` gives the score (seconds from now) of a joined schedule; a schedule not
    named there is joined at "now", and only if the job is not already in it.
    """
    delays = delays or {}
    unknown = set(delays) - set(SCHEDULES_JOINED.get(target, ()))
    if unknown:
        raise ValueError(f"{target!r} does not join {sorted(unknown)}")
    leave = tuple(name for name, holds in SCHEDULE_HOLDS.items() if target not in holds)
    join = tuple(
        (name, float(delays.get(name, 0.0)), name not in delays)
        for name in SCHEDULES_JOINED.get(target, ())
    )
    return SchedulePlan(leave, join)


def allowed_from(target: str) -> frozenset[str]:
    try:
        return ALLOWED[target]
    except KeyError:
        raise ValueError(f"unknown job state {target!r}") from None
