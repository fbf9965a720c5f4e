"""Callbacks given up on, and the delivery bookkeeping on the job record.

A permanent failure or the last attempt writes a dead letter (one transaction)::

    {p}:callback-dead:<job_id>   hash: job_id, event_id, state, url, reason, attempts,
                                 last_status, last_error, at   (expires with the job)
    {p}:callback-dead            zset: job ids by dead-letter time

then the job record gets ``callback_status`` = ``failed`` (see :func:`dead` for why two
steps in that order are safe). The URL kept is redacted
(:func:`config.settings.redact_url`, the one redactor): credentials and query hidden.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headswap_client.signing import event_id

from config.settings import redact_url
from worker.jobs import CALLBACK_RECORD_FIELDS

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

#: Dead-letter reasons.
BLOCKED_ADDRESS = "blocked_address"
NO_SECRET = "no_callback_secret"  # noqa: S105  (a reason, not a password)
INVALID_URL = "invalid_url"
PERMANENT_STATUS = "http_status"
EXHAUSTED = "attempts_exhausted"

#: Delivery bookkeeping kept on the job record (not part of the record producers get).
RECORD_FIELDS = CALLBACK_RECORD_FIELDS


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to; for ``retry``, ``retry_in`` is when the next attempt is
    scheduled (seconds from now)."""

    status: str  # delivered | retry | dead | skipped
    retry_in: float | None = None
    reason: str | None = None
    http_status: int | None = None


def attempts_of(record: Mapping[str, Any]) -> int:
    try:
        return int(record.get("callback_attempts") or 0)
    except (TypeError, ValueError):
        return 0


def count_attempt(rt: Runtime, job_id: str) -> int:
    """One more attempt on the record; 0 when the job no longer exists (never recreated)."""
    _, count = rt.store.update(job_id, incr="callback_attempts")
    return count


def bookkeep(
    rt: Runtime, job_id: str, fields: Mapping[str, Any], *, retry_in: float | None = None
) -> None:
    """Delivery bookkeeping on an existing job ('' deletes a field); with ``retry_in``, the
    job joins the ``callback`` schedule that many seconds from now, in the same step."""
    rt.store.update(job_id, {k: (None if v == "" else v) for k, v in fields.items()
                             if v is not None},
                    join=None if retry_in is None else {"callback": retry_in})  # fmt: skip


def dead(
    rt: Runtime,
    record: Mapping[str, Any],
    reason: str,
    *,
    attempts: int,
    status: int | None = None,
    error: str | None = None,
) -> Outcome:
    """Write the dead letter, then mark the job's callback failed. A crash between the two
    leaves the letter and a ``pending`` record; the redelivered task writes the same
    letter again (one key per job), so nothing is lost or doubled."""
    job_id = str(record["job_id"])
    now = time.time()
    url = redact_url(str(record.get("callback_url") or ""))
    letter = {
        "job_id": job_id,
        "event_id": event_id(job_id, str(record["state"])),
        "state": str(record["state"]),
        "url": url,
        "reason": reason,
        "attempts": str(attempts),
        "last_status": "" if status is None else str(status),
        "last_error": error or "",
        "at": repr(now),
    }
    rt.store.callbacks.write_dead_letter(job_id, letter, now)
    fields: dict[str, Any] = {
        "callback_status": FAILED,
        "callback_attempts": attempts,
        "callback_error": reason if not error else f"{reason}: {error}",
        "callback_failed_at": repr(now),
    }
    if status is not None:
        fields["callback_last_status"] = status
    bookkeep(rt, job_id, fields)
    rt.store.unschedule("callback", job_id)
    log.warning(
        "callback dead-lettered",
        extra={"job_id": job_id, "callback_url": url, "reason": reason,
               "attempts": attempts, "http_status": status},
    )  # fmt: skip
    return Outcome("dead", reason=reason, http_status=status)
