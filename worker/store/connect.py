"""Opening the store from settings: the worker's clients, opened the producers' way
(:func:`headswap_client.connection.open_redis`, the one place a Redis client is configured)."""

from __future__ import annotations

from typing import Any

import redis
from headswap_client.connection import CLIENT_OPTIONS, open_redis
from headswap_client.keys import Keys
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings
from worker.store.dead_messages import DeadMessages
from worker.store.job_store import JobStore
from worker.store.misrouted import MisroutedMessages

#: The watchdog's client: it must know within seconds that Redis does not answer.
QUICK_OPTIONS: dict[str, Any] = {**CLIENT_OPTIONS, "socket_timeout": 2,
                                 "socket_connect_timeout": 2}  # fmt: skip


def redis_client(settings: Settings, *, decode: bool = True,
                 quick: bool = False) -> redis.Redis:  # fmt: skip
    """The store's client; ``decode=False`` for one that answers bytes (dead messages).

    The producers' way of opening Redis (:func:`headswap_client.connection.open_redis`:
    the same URL forms, timeouts and blip retry — three tries within about a second; an
    outage is retried by the layer that owns the operation, Celery's autoretry or the
    wake-up schedule). With a ``sentinel://`` URL the client asks the sentinels for the
    master and asks again after a failover. ``quick``: 2 s timeouts and no retry, for a
    caller that asks "does Redis answer?" (the watchdog)."""
    if quick:
        return open_redis(settings.redis_url, settings.redis_ca_file, decode=decode,
                          retry=Retry(NoBackoff(), 0), options=QUICK_OPTIONS)  # fmt: skip
    return open_redis(settings.redis_url, settings.redis_ca_file, decode=decode)


def open_store(settings: Settings, *, quick: bool = False) -> JobStore:
    return JobStore(
        redis_client(settings, quick=quick),
        settings.key_prefix,
        retention_seconds=settings.job_retention_seconds,
        idempotency_ttl=settings.idempotency_ttl_seconds,
        min_replicas=settings.redis_min_replicas,
        replica_wait_ms=settings.redis_replica_wait_ms,
    )


def open_dead_messages(settings: Settings) -> DeadMessages:
    """The dead-message list on a client of its own that answers bytes."""
    return DeadMessages(redis_client(settings, decode=False), Keys(settings.key_prefix))


def open_misrouted(settings: Settings) -> MisroutedMessages:
    """Our messages in Celery's default queue, on a client of its own that answers bytes."""
    return MisroutedMessages(redis_client(settings, decode=False), Keys(settings.key_prefix))
