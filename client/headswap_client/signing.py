"""Signing HTTP callbacks, and checking them: the part a producer's receiver imports.

Callbacks follow `Standard Webhooks <https://www.standardwebhooks.com>`_, so a receiver
can check them with that project's library in its own language, or with
:func:`verify_callback_signature`::

    webhook-id: <job_id>:<state>          the event id, the same on every attempt
    webhook-timestamp: 1700000000         Unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"> [v1,<...>]

Secrets have the Standard Webhooks form ``whsec_<base64 of the key bytes>``; the worker
signs with every secret in ``HEADSWAP_CALLBACK_SECRETS`` (one signature each,
space-separated), so during a rotation receivers holding the old secret and receivers
holding the new one both verify. Uses only the standard library and imports nothing of
the worker: a producer checking signatures loads this module alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Iterable, Mapping

SIGNATURE_VERSION = "v1"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a password)
#: The smallest key accepted (the Standard Webhooks spec asks for 24 to 64 random bytes).
MIN_SECRET_BYTES = 24

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
#: Not part of the standard (not signed): which attempt this POST is, from 1.
HEADER_ATTEMPT = "X-Headswap-Delivery-Attempt"

#: Default accepted age of a delivery, for :func:`verify_callback_signature` (the
#: standard's five minutes).
DEFAULT_TOLERANCE_SECONDS = 300


def parse_secret(text: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; ValueError says what is wrong (never
    showing the value)."""
    value = text.strip()
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"a callback secret must have the form {SECRET_PREFIX}<base64>")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"a callback secret must have the form {SECRET_PREFIX}<base64>: the part after "
            f"{SECRET_PREFIX} is not valid base64"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"a callback secret must hold at least {MIN_SECRET_BYTES} random bytes "
            f"(this one has {len(key)})"
        )
    return key


def new_secret(nbytes: int = 32) -> str:
    """A fresh random secret in the ``whsec_`` form (``nbytes`` random bytes)."""
    if nbytes < MIN_SECRET_BYTES:
        raise ValueError(f"a callback secret needs at least {MIN_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode("ascii")


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = msg_id.encode("utf-8") + b"." + str(timestamp).encode("ascii") + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
    for each key, space-separated."""
    parts = [
        f"{SIGNATURE_VERSION},{base64.b64encode(_mac(k, msg_id, timestamp, body)).decode()}"
        for k in keys
    ]
    if not parts:
        raise ValueError("signing needs at least one secret")
    return " ".join(parts)


def headers_for(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one POST."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(keys, msg_id, timestamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return ""


def verify_callback_signature(
    secrets: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """For producers: is this callback authentic and fresh?

    ``secrets`` is one ``whsec_...`` secret or several (during a rotation, accept the old
    and the new), ``headers`` the request's headers (any mapping; names are matched
    without regard to case), ``body`` the raw request body (exactly the bytes received,
    before any JSON parsing). True only when ``webhook-timestamp`` is within ``tolerance``
    seconds of now and a ``v1`` signature in ``webhook-signature`` matches one of the
    secrets (compared in constant time). A malformed secret raises ValueError (a
    configuration error, not a bad delivery). Deduplicate accepted deliveries by
    ``webhook-id``.
    """
    keys = [parse_secret(s) for s in ([secrets] if isinstance(secrets, str) else secrets)]
    if not keys:
        raise ValueError("verify_callback_signature needs at least one secret")
    msg_id = _header(headers, HEADER_ID)
    stamp = _header(headers, HEADER_TIMESTAMP).strip()
    if not msg_id or len(stamp) > 20 or not stamp.isascii() or not stamp.isdigit():
        return False
    ts = int(stamp)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = [_mac(k, msg_id, ts, raw) for k in keys]
    for part in _header(headers, HEADER_SIGNATURE).split():
        version, _, value = part.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(hmac.compare_digest(candidate, e) for e in expected):
            return True
    return False


def event_id(job_id: str, state: str) -> str:
    """One id per terminal event of a job, the same on every attempt (``webhook-id``)."""
    return f"{job_id}:{state}"
