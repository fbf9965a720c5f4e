"""Identifiers: 24-hex ObjectId-like ids (unknown #23) and opaque JWT-shaped tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import time

_PROCESS_PART = os.urandom(5).hex()
_COUNTER = itertools.count(int.from_bytes(os.urandom(3), "big"))
_TOKEN_KEY = os.urandom(32)


def new_object_id(now: float | None = None) -> str:
    """A MongoDB-style id: 4-byte seconds, 5-byte process part, 3-byte counter, as 24 hex."""
    seconds = int(now if now is not None else time.time()) & 0xFFFFFFFF
    count = next(_COUNTER) & 0xFFFFFF
    return f"{seconds:08x}{_PROCESS_PART}{count:06x}"


def is_object_id(value: str) -> bool:
    """True when ``value`` has the 24-lowercase-hex shape of our ids."""
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_token(subject: str, issued_at: float) -> str:
    """An HS256 JWT-shaped string signed with a per-process random key (opaque to clients)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": subject, "iat": int(issued_at), "jti": new_object_id(issued_at)}
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(_TOKEN_KEY, f"{header}.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(mac)}"
