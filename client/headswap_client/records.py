"""What a job record holds of a validated job, and what makes two messages the same job.

Producers and workers must agree on both: ``Producer.submit`` creates the record and the
worker's submit task checks the message it receives against it (``fp``). A different
fingerprint under the same idempotency key or job id is another job and is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from headswap_client.codec import fingerprint

ENVELOPE_FIELDS = (
    "job_id", "idempotency_key", "callback_task", "callback_url", "metadata", "producer",
    "priority",
)  # fmt: skip
REQUEST_FIELDS = (
    "video_url", "mappings", "model_name", "resolution", "template_id",
    "keep_original_sound", "webhook_url",
)  # fmt: skip


def new_job_id() -> str:
    return uuid.uuid4().hex


def record_fields(job: Mapping[str, Any]) -> dict[str, Any]:
    """What the store keeps of a validated job: only fields with a value (a pending job's
    memory is mostly this hash; absent fields read back as their defaults)."""
    request = {k: job[k] for k in REQUEST_FIELDS if job.get(k) is not None}
    fields = {
        "request": request,
        "idempotency_key": job.get("idempotency_key"),
        "callback_task": job.get("callback_task"),
        "callback_url": job.get("callback_url"),
        "metadata": job.get("metadata") or None,
        "producer": job.get("producer") or "default",
        "priority": job.get("priority"),
    }
    return {k: v for k, v in fields.items() if v is not None}


def job_fingerprint(fields: Mapping[str, Any]) -> str:
    """What a job asks for, as a hash: the same idempotency key (or job id) with another
    fingerprint is a different job and is refused."""
    return fingerprint({k: v for k, v in fields.items() if k != "idempotency_key"})
