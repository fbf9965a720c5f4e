"""Pure rules that turn what an Akool call produced into an error class.

Each rule says *why*. ``unsafe`` marks a call that changes state at Akool (task create):
for those, anything that may have reached the server becomes :class:`AkoolAmbiguous`
instead of retryable, because sending it again could create (and bill) a second task.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.errors import (
    AkoolAmbiguous,
    AkoolAuthError,
    AkoolError,
    AkoolFatal,
    AkoolInsufficientCredits,
    AkoolNotFound,
    AkoolRetryable,
)
from worker.timing import parse_retry_after

CODE_OK = 1000
CODE_BAD_PARAMETER = 1003
CODE_TOO_FREQUENT = 1005
CODE_NOT_FOUND = 1014
CODE_TOKEN_INVALID = 1101
CODE_TOKEN_MISSING = 1102
CODE_NO_CREDITS = 1104
CODE_ACCOUNT_BLOCKED = 1200
CODE_SERVER_ERROR = 2001

_AUTH_CODES = frozenset({CODE_TOKEN_INVALID, CODE_TOKEN_MISSING, CODE_ACCOUNT_BLOCKED})


def for_http_status(
    status: int, headers: Mapping[str, str], *, unsafe: bool, operation: str
) -> AkoolError | None:
    """The error for a non-200 HTTP answer, or None when the body should be read."""
    if status == 200:
        return None
    if status in (429, 503):
        # Rate limited or unavailable: the server refused before doing the work.
        return AkoolRetryable(
            f"HTTP {status} from Akool",
            retry_after=parse_retry_after(headers.get("Retry-After")),
            http_status=status,
            operation=operation,
        )
    if status >= 500:
        # Any other 5xx may come from a proxy after the request was executed.
        if unsafe:
            return AkoolAmbiguous(
                f"HTTP {status} from Akool; the create may have run",
                http_status=status,
                operation=operation,
            )
        return AkoolRetryable(f"HTTP {status} from Akool", http_status=status, operation=operation)
    if status in (401, 403):
        return AkoolAuthError(f"HTTP {status} from Akool", http_status=status, operation=operation)
    if status == 404:
        return AkoolNotFound(f"HTTP {status} from Akool", http_status=status, operation=operation)
    # Other 4xx: the request itself is wrong; sending it again will not help.
    return AkoolFatal(f"HTTP {status} from Akool", http_status=status, operation=operation)


def for_code(code: int, msg: str | None, *, unsafe: bool, operation: str) -> AkoolError | None:
    """The error for a business ``code`` in a 200 envelope, or None for success."""
    if code == CODE_OK:
        return None
    text = f"Akool refused {operation or 'the call'}: {msg or 'no message'}"
    if code == CODE_TOO_FREQUENT:
        # "Frequent operation": a rate limit; nothing was done.
        return AkoolRetryable(text, code=code, msg=msg, http_status=200, operation=operation)
    if code == CODE_NO_CREDITS:
        # Credits are checked before anything is created; the job can wait for a top-up.
        return AkoolInsufficientCredits(
            text, code=code, msg=msg, http_status=200, operation=operation
        )
    if code in _AUTH_CODES:
        return AkoolAuthError(text, code=code, msg=msg, http_status=200, operation=operation)
    if code == CODE_NOT_FOUND:
        return AkoolNotFound(text, code=code, msg=msg, http_status=200, operation=operation)
    if code == CODE_SERVER_ERROR and not unsafe:
        # A server error on a read is transient; on a create we treat it as a refusal
        # because an answered envelope means the server did not create the task.
        return AkoolRetryable(text, code=code, msg=msg, http_status=200, operation=operation)
    return AkoolFatal(text, code=code, msg=msg, http_status=200, operation=operation)


def is_verdict(exc: AkoolError) -> bool:
    """Is this refusal Akool's verdict on what we sent (worth remembering for that input),
    rather than trouble of ours — credentials (1101/1102/1200), an id Akool does not know
    (1014), or an HTTP-level refusal without a business code?"""
    return (
        isinstance(exc, AkoolFatal)
        and not isinstance(exc, AkoolAuthError | AkoolNotFound)
        and exc.code is not None
    )
