"""Opening the store from settings (the one place a Redis client is configured)."""

from __future__ import annotations

from typing import Any

import redis
from headswap_client.keys import Keys
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from config.settings import Settings, sentinel_of
from worker.store.dead_messages import DeadMessages
from worker.store.job_store import JobStore
from worker.store.misrouted import MisroutedMessages

#: The client's own retry covers a blip only (a reset connection, a failover's first
#: second): three tries within about a second. An outage is not retried here but by the
#: layer that owns the operation (Celery's autoretry on the task, or the wake-up schedule).
BLIP_RETRY = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)


#: How the store's client talks to Redis, whichever way it finds it.
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}


#: The watchdog's client: it must know within seconds that Redis does not answer.
QUICK_OPTIONS: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}


def redis_client(settings: Settings, *, decode: bool = True,
                 quick: bool = False) -> redis.Redis:  # fmt: skip
    """The store's client; ``decode=False`` for one that answers bytes (dead messages).

    With a ``sentinel://`` URL the client asks the sentinels for the master and asks
    again after a failover (redis-py's ``Sentinel.master_for``). ``quick``: 2 s timeouts
    and no retry, for a caller that asks "does Redis answer?" (the watchdog)."""
    options = {**CLIENT_OPTIONS, **QUICK_OPTIONS} if quick else CLIENT_OPTIONS
    retry = Retry(NoBackoff(), 0) if quick else BLIP_RETRY
    if settings.redis_url.startswith("sentinel://"):
        where = sentinel_of(settings.redis_url)
        sentinels = Sentinel(  # type: ignore[no-untyped-call]
            list(where.sentinels),
            sentinel_kwargs={"socket_timeout": 5, "socket_connect_timeout": 5})
        master: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
            where.master, redis_class=redis.Redis, db=where.db, username=where.username,
            password=where.password, decode_responses=decode, retry=retry, **options,
        )  # fmt: skip
        return master
    tls: dict[str, Any] = {}
    if settings.redis_url.startswith("rediss://"):
        tls = {"ssl_cert_reqs": "required", "ssl_ca_certs": settings.redis_ca_file or None}
    return redis.Redis.from_url(
        settings.redis_url,
        **tls,
        decode_responses=decode,
        retry=retry,
        **options,
    )


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
