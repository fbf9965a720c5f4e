"""The one exception tree of the headswap worker.

::

    HeadswapError                   (the root, with the next two: headswap_client.errors)
    ├── ConfigError                 settings are invalid (names the variable); fix and restart
    ├── JobValidationError          a job failed its schema: rejected, never retried
    ├── JobNotFound                 no such job id in the store
    ├── TransitionRefused           a state move not allowed from the current state
    ├── InFlightCapReached          HEADSWAP_MAX_IN_FLIGHT tasks are at Akool; wait, no retry spent
    ├── NonceReplayed               a webhook delivery that was already stored
    ├── DeadMessageRefused          a dead message that cannot be requeued (gone, truncated)
    ├── StorageError                copying a finished video to durable storage failed
    │   ├── StorageRetryable        for now: a cut download, a 5xx, a timeout, storage away
    │   └── OutputGone              Akool's output URL refuses it (403/404/410): never retried
    └── AkoolError                  anything the Akool API did (code, msg, http_status)
        ├── AkoolRetryable          not executed: retry with backoff (honour retry_after)
        ├── AkoolAmbiguous          may have executed: never resubmit blindly
        ├── AkoolInsufficientCredits  1104: pause submissions, do not fail the job yet
        └── AkoolFatal              refused: retrying cannot help
            ├── AkoolAuthError      1101/1102/1200 (after one token refresh)
            └── AkoolNotFound       1014: unknown id or another team's

The root and the two errors producers meet live in the client distribution
(:mod:`headswap_client.errors`) and are the same classes here: ``except
worker.errors.JobValidationError`` catches what ``headswap_client.Producer`` raises.
A caller decides "retry, wait, or give up" from the class alone. No exception here
carries a secret: messages hold Akool's ``code``/``msg`` and our own text only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headswap_client.errors import ConfigError as ConfigError
from headswap_client.errors import HeadswapError as HeadswapError
from headswap_client.errors import JobValidationError as JobValidationError


class DeadMessageRefused(HeadswapError):
    """A dead message that cannot be requeued: no such entry, or only its head was kept."""


class JobNotFound(HeadswapError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id!r}")


class TransitionRefused(HeadswapError):
    """A move the state machine does not allow from the job's current state."""

    def __init__(self, job_id: str, current: str | None, target: str, allowed: Sequence[str]):
        self.job_id = job_id
        self.current = current
        self.target = target
        self.allowed = tuple(allowed)
        super().__init__(
            f"job {job_id}: {current} -> {target} refused (allowed from: {', '.join(allowed)})"
        )


class InFlightCapReached(HeadswapError):
    """Submitting now would put more than the configured number of tasks in flight."""

    def __init__(self, job_id: str, cap: int) -> None:
        self.job_id = job_id
        self.cap = cap
        super().__init__(f"job {job_id}: {cap} tasks already in flight at Akool")


class CreateUnrecorded(HeadswapError):
    """Akool created the task but Redis does not have its id yet: the worker stopped
    first, or the job's record is gone. The id is in the spool and in an ERROR line."""

    def __init__(self, job_id: str, remote_id: str) -> None:
        super().__init__(f"job {job_id}: created task {remote_id} not recorded")
        self.job_id = job_id
        self.remote_id = remote_id


class ReplicationLag(HeadswapError):
    """A write the master took but fewer replicas than required acknowledged in time: a
    failover now could forget it. For the lock before a create, no create is sent."""

    def __init__(self, job_id: str, acked: int, wanted: int) -> None:
        super().__init__(f"job {job_id}: {acked} of {wanted} replicas acknowledged the write")
        self.job_id = job_id
        self.acked = acked
        self.wanted = wanted


class NonceReplayed(HeadswapError):
    """A webhook delivery (its nonce) was stored before: nothing changes."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: webhook delivery already stored")


class AkoolError(HeadswapError):
    """An Akool call did not succeed. ``code``/``msg`` come from the envelope when there was one."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        msg: str | None = None,
        http_status: int | None = None,
        operation: str = "",
    ) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.operation = operation
        #: Seconds the server asked us to wait (``Retry-After``); only retryable errors set it.
        self.retry_after: float | None = None
        #: No answer at all (connect failure or timeout, read timeout, cut connection):
        #: what the Akool breaker counts. An answer, even an error, is not "unreachable".
        self.unreachable = False
        super().__init__(message)

    def __str__(self) -> str:
        bits = [super().__str__()]
        if self.operation:
            bits.append(f"operation={self.operation}")
        if self.code is not None:
            bits.append(f"code={self.code}")
        if self.http_status is not None:
            bits.append(f"http_status={self.http_status}")
        return " ".join(bits)

    def as_dict(self) -> dict[str, Any]:
        """What a job record keeps about the failure."""
        return {
            "error": type(self).__name__,
            "code": self.code,
            "msg": self.msg,
            "http_status": self.http_status,
            "operation": self.operation,
            "message": Exception.__str__(self),
        }


class AkoolRetryable(AkoolError):
    """The request was not executed (connect failure, 429/503, 1005). Safe to send again."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class AkoolAmbiguous(AkoolError):
    """The request may have been executed (read timeout, 5xx, cut connection on a create)."""


class AkoolInsufficientCredits(AkoolError):
    """Code 1104: the account has too few credits. The job waits; submissions pause."""


class AkoolFatal(AkoolError):
    """Akool refused the request; sending it again cannot succeed."""


class AkoolAuthError(AkoolFatal):
    """1101/1102/1200 (a bearer token was refreshed once before this is raised)."""


class AkoolNotFound(AkoolFatal):
    """1014: the id is unknown or belongs to another team."""


class StorageError(HeadswapError):
    """Copying a job's output to durable storage did not succeed. ``reason`` is the
    metric label and the job's failure reason (no URL, no credential in it)."""

    reason = "storage_error"

    def __init__(self, message: str, *, reason: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        if reason:
            self.reason = reason
        self.http_status = http_status

    def as_dict(self) -> dict[str, Any]:
        """What a job record keeps about the failure."""
        return {"error": type(self).__name__, "reason": self.reason,
                "http_status": self.http_status, "message": str(self)}  # fmt: skip


class StorageRetryable(StorageError):
    """The copy may succeed later: the download was cut or timed out, Akool's CDN or the
    storage answered 5xx, the storage could not be reached. Retried with backoff."""

    reason = "storage_unavailable"


class OutputGone(StorageError):
    """Akool's output URL answers 403, 404 or 410 (``output_expired``; another 4xx is
    ``output_refused``): the video cannot be had any more. Never retried."""

    reason = "output_expired"
