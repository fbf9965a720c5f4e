"""The object key of a job's video: ``HEADSWAP_STORAGE_KEY_TEMPLATE`` rendered (pure).

``{producer}`` is the job's ``metadata.producer`` (characters other than
``A-Za-z0-9_.-`` become ``_``, at most 64), ``_`` without one; ``{date}`` is the UTC day
the job entered ``storing`` as ``YYYY/MM/DD`` (a stored time: every attempt of one job
renders the same key); ``{job_id}`` and ``{remote_id}`` as recorded. Job ids match
``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``, so no part can climb out of the prefix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def producer_part(metadata: Any) -> str:
    value = metadata.get("producer") if isinstance(metadata, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        return "_"
    safe = _UNSAFE.sub("_", value.strip())[:64]
    return "_" + safe if safe.startswith(".") else safe


def object_key(template: str, record: Mapping[str, Any]) -> str:
    """The key for ``record`` (a job in ``storing``)."""
    at = float(record.get("storing_at") or record.get("updated_at") or 0.0)
    return template.format(
        producer=producer_part(record.get("metadata")),
        date=time.strftime("%Y/%m/%d", time.gmtime(at)),
        job_id=_UNSAFE.sub("_", str(record["job_id"])),
        remote_id=_UNSAFE.sub("_", str(record.get("remote_id") or "_")),
    ).lstrip("/")
