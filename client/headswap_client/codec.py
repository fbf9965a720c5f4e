"""How a job record is kept in its Redis hash: strings in, typed values out.

Complex fields are JSON; ``None`` deletes a field; booleans are ``1``/``0``. Text that
came from outside (an Akool error message cut mid-emoji, say) may hold a lone UTF-16
surrogate, which UTF-8 cannot carry: it is replaced by U+FFFD here, before any script
runs, so a write is never refused half-way for its encoding.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

NUMERIC_FIELDS = (
    "attempts",
    "remote_status",
    "video_duration",
    "progress",
    "not_found_count",
    "callback_attempts",
    "callback_last_status",
    "stored_size",
    "priority",
    "charged",
)
JSON_FIELDS = ("request", "error", "field_errors", "metadata", "callback_task", "analysis_media")
#: Bookkeeping kept on the record that producers never see: the fingerprint, the job's
#: trace context (W3C ``traceparent``; a callback carries it as a header), its member of
#: the admission line and whether its charge is Akool's final one.
INTERNAL_FIELDS = ("fp", "traceparent", "line", "charge_final")
#: Flags read back as booleans (stored ``1``/``0``).
BOOL_FIELDS = ("maybe_charged", "stored_reused")

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """``value`` with lone surrogates replaced (U+FFFD): always encodable as UTF-8."""
    return _SURROGATE.sub("\ufffd", value)


def encode_value(key: str, value: Any) -> str:
    if key in JSON_FIELDS:
        return clean_text(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    if isinstance(value, bool):
        return "1" if value else "0"
    return clean_text(str(value))


def split_fields(fields: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(["k", "v", ...] to set, ["k", ...] to delete)`` — a value of None deletes."""
    sets: list[str] = []
    deletes: list[str] = []
    for key, value in fields.items():
        if value is None:
            deletes.append(key)
        else:
            sets += [key, encode_value(key, value)]
    return sets, deletes


def decode_record(raw: Mapping[str, str]) -> dict[str, Any]:
    """A job hash as a plain dict: JSON fields decoded, timestamps as floats."""
    record: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_FIELDS:
            record[key] = json.loads(value)
        elif key in BOOL_FIELDS:
            record[key] = value == "1"
        elif key.endswith("_at") or key in NUMERIC_FIELDS:
            try:
                record[key] = float(value) if "." in value or key.endswith("_at") else int(value)
            except ValueError:
                record[key] = value
        else:
            record[key] = value
    return record


def fingerprint(fields: Mapping[str, Any]) -> str:
    """A short hash of what a job asks for: two messages with equal fingerprints are the
    same job (idempotency keys and job ids are checked against it)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]
