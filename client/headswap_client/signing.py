"""Signing HTTP callbacks, and checking them: the part a producer's receiver imports.

Each POST carries ``X-Headswap-Timestamp`` (Unix seconds) and ``X-Headswap-Signature:
v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``, keyed with ``HEADSWAP_CALLBACK_SECRET``.
Imports nothing of the worker: a producer checking signatures loads this module alone.
"""

from __future__ import annotations

import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

SIGNATURE_VERSION = "v1"
HEADER_EVENT_ID = "X-Headswap-Event-Id"
HEADER_TIMESTAMP = "X-Headswap-Timestamp"
HEADER_SIGNATURE = "X-Headswap-Signature"
HEADER_ATTEMPT = "X-Headswap-Delivery-Attempt"

#: Default accepted age of a delivery, for :func:`verify_callback_signature`.
DEFAULT_TOLERANCE_SECONDS = 300


def _mac(secret: str, timestamp: int | str, body: bytes) -> crypto_hmac.HMAC:
    mac = crypto_hmac.HMAC(secret.encode("utf-8"), hashes.SHA256())
    mac.update(str(timestamp).encode("ascii") + b"." + body)
    return mac


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Headswap-Signature`` value: ``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    return f"{SIGNATURE_VERSION}={_mac(secret, timestamp, body).finalize().hex()}"


def verify_callback_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    header: str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """For producers: is this callback authentic and fresh?

    ``timestamp`` is the ``X-Headswap-Timestamp`` header, ``body`` the raw request body
    (exactly the bytes received, before any JSON parsing), ``header`` the
    ``X-Headswap-Signature`` header. True only when the timestamp is within ``tolerance``
    seconds of now and one ``v1=`` signature in the header matches (compared in constant
    time). Deduplicate accepted deliveries by ``X-Headswap-Event-Id``.
    """
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    for part in (header or "").split(","):
        version, _, value = part.strip().partition("=")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = bytes.fromhex(value)
        except ValueError:
            continue
        try:
            _mac(secret, ts, raw).verify(candidate)  # constant-time comparison
        except InvalidSignature:
            continue
        return True
    return False


def event_id(job_id: str, state: str) -> str:
    """One id per terminal event of a job, the same on every attempt."""
    return f"{job_id}:{state}"
