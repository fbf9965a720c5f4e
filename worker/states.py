"""The job state machine: states and the moves allowed between them.

::

             validate fails
   enqueue ─────────────────────────────▶ rejected
      │
      ▼
   queued ──▶ submitting ──▶ submitted ──▶ processing ──▶ succeeded
      │  ◀──────┘ (not received: retry)       └────────▶ failed
      ▼            └─────────────────────────────────────▶ failed
   cancelled

A move not in :data:`ALLOWED` is refused by the store, atomically, so a redelivered message
or a second poller can do no harm.
"""

from __future__ import annotations

from typing import Final

QUEUED: Final = "queued"
SUBMITTING: Final = "submitting"
SUBMITTED: Final = "submitted"
PROCESSING: Final = "processing"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REJECTED: Final = "rejected"
CANCELLED: Final = "cancelled"

ALL_STATES: Final = (
    QUEUED, SUBMITTING, SUBMITTED, PROCESSING, SUCCEEDED, FAILED, REJECTED, CANCELLED,
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
    SUCCEEDED: frozenset({SUBMITTED, PROCESSING}),
    FAILED: frozenset({QUEUED, SUBMITTING, SUBMITTED, PROCESSING}),
    REJECTED: frozenset({QUEUED}),
    CANCELLED: frozenset({QUEUED}),
}


def allowed_from(target: str) -> frozenset[str]:
    try:
        return ALLOWED[target]
    except KeyError:
        raise ValueError(f"unknown job state {target!r}") from None
