"""Opening the store from settings (the one place a Redis client is configured)."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from config.settings import Settings
from worker.store.dead_messages import DeadMessages
from worker.store.job_store import JobStore
from worker.store.keys import Keys

#: The client's own retry covers a blip only (a reset connection, a failover's first
#: second): three tries within about a second. An outage is not retried here but by the
#: layer that owns the operation (Celery's autoretry on the task, or the wake-up schedule).
BLIP_RETRY = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)


def redis_client(settings: Settings, *, decode: bool = True) -> redis.Redis:
    """The store's client; ``decode=False`` for one that answers bytes (dead messages)."""
    tls: dict[str, Any] = {}
    if settings.redis_url.startswith("rediss://"):
        tls = {"ssl_cert_reqs": "required", "ssl_ca_certs": settings.redis_ca_file or None}
    return redis.Redis.from_url(
        settings.redis_url,
        **tls,
        decode_responses=decode,
        socket_timeout=10,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=25,
        retry=BLIP_RETRY,
    )


def open_store(settings: Settings) -> JobStore:
    return JobStore(
        redis_client(settings),
        settings.key_prefix,
        retention_seconds=settings.job_retention_seconds,
        idempotency_ttl=settings.idempotency_ttl_seconds,
    )


def open_dead_messages(settings: Settings) -> DeadMessages:
    """The dead-message list on a client of its own that answers bytes."""
    return DeadMessages(redis_client(settings, decode=False), Keys(settings.key_prefix))
