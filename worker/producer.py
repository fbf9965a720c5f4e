"""The producer, configured from the worker's settings: ``headswap_client.Producer``.

Backend services should install the light ``headswap-client`` distribution and use
``from headswap_client import Producer`` (no worker, Celery app or sandbox pulled in).
This module keeps ``from worker.producer import Producer`` working for code that runs
beside the worker (tests, the CLI, the demo, benchmarks, existing users): the same class,
built from a :class:`config.settings.Settings`, whose ``store`` is the worker's
:class:`~worker.store.JobStore` (a subclass of the client's store: the same create step,
records and events), plus ``celery``, a sender-only Celery app for raw sends.

:meth:`Producer.submit` raises :class:`worker.errors.JobValidationError` — the client's
class itself (``worker.errors`` re-exports it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from celery import Celery
from headswap_client.producer import Producer as ClientProducer
from headswap_client.settings import ClientSettings
from headswap_client.signing import verify_callback_signature as verify_callback_signature

from config.settings import Settings, get_settings
from worker import tracing
from worker.dispatch import sender_app
from worker.store import JobStore, open_store


def client_settings(settings: Settings) -> ClientSettings:
    """The client's settings that agree with the worker's."""
    return ClientSettings(
        redis_url=settings.redis_url,
        redis_ca_file=settings.redis_ca_file,
        key_prefix=settings.key_prefix,
        allowed_models=tuple(settings.allowed_models),
        webhook_public_url=settings.webhook_public_url,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        job_retention_seconds=settings.job_retention_seconds,
        resend_after_seconds=settings.resend_after_seconds,
    )


class Producer(ClientProducer):
    """Enqueue jobs and follow them. Thread-safe; make one per process."""

    store: JobStore

    def __init__(self, settings: Settings | None = None) -> None:
        tracing.setup("headswap-producer")  # on by OTEL_* variables, or the host's provider
        self.worker_settings = settings or get_settings()
        store = open_store(self.worker_settings)
        super().__init__(client_settings(self.worker_settings), store=store)

    @functools.cached_property
    def celery(self) -> Celery:
        """A sender-only Celery app on the workers' broker (raw ``send_task`` calls)."""
        return sender_app(self.worker_settings, "headswap-producer")


def job_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a person wants to see about a job (CLI, demo)."""
    keys = ("job_id", "state", "reason", "remote_id", "output_url", "attempts", "field_errors")
    return {k: record.get(k) for k in keys if record.get(k) not in (None, "")}
