"""The object key of a job's video: ``HEADSWAP_STORAGE_KEY_TEMPLATE`` rendered (pure).

``{producer}`` is the job's ``producer`` (the contract field), else — for jobs of the
default producer — a string ``metadata.producer`` (what named it before the field
existed; characters other than ``A-Za-z0-9_.-`` become ``_``, at most 64), else ``_``;
``{date}`` is the UTC day the job entered ``storing`` as ``YYYY/MM/DD`` (a stored time:
every attempt of one job renders the same key); ``{job_id}`` and ``{remote_id}`` as
recorded. Job ids match ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``, so no part can climb out of
the prefix.
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


def _producer_of(record: Mapping[str, Any]) -> str:
    named = record.get("producer")
    if isinstance(named, str) and named and named != "default":
        return producer_part({"producer": named})
    return producer_part(record.get("metadata"))


def object_key(template: str, record: Mapping[str, Any]) -> str:
    """The key for ``record`` (a job in ``storing``)."""
    at = float(record.get("storing_at") or record.get("updated_at") or 0.0)
    return template.format(
        producer=_producer_of(record),
        date=time.strftime("%Y/%m/%d", time.gmtime(at)),
        job_id=_UNSAFE.sub("_", str(record["job_id"])),
        remote_id=_UNSAFE.sub("_", str(record.get("remote_id") or "_")),
    ).lstrip("/")
