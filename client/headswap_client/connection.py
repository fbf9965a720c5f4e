"""Opening Redis and the broker from :class:`~headswap_client.settings.ClientSettings`.

The same URL forms as the workers: ``redis://``, ``rediss://`` (certificate verified,
``redis_ca_file`` or the system store), ``unix://`` and ``sentinel://`` (the master is
asked of the sentinels, and asked again after a failover).
"""

from __future__ import annotations

import ssl
from typing import Any

import redis
from kombu.connection import Connection
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from headswap_client.sentinel import sentinel_of
from headswap_client.settings import ClientSettings

#: A blip (a reset connection, a failover's first second) is retried: three tries within
#: about a second. An outage reaches the caller as redis-py's error.
BLIP_RETRY = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
SENTINEL_OPTIONS: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5}


def open_redis(url: str, ca_file: str | None = None, *, decode: bool = True,
               retry: Retry = BLIP_RETRY,
               options: dict[str, Any] | None = None) -> redis.Redis:  # fmt: skip
    """A Redis client for any of the URL forms (the workers open theirs with it too)."""
    options = CLIENT_OPTIONS if options is None else options
    if url.startswith("sentinel://"):
        where = sentinel_of(url)
        sentinels = Sentinel(
            list(where.sentinels), sentinel_kwargs=SENTINEL_OPTIONS)
        master: redis.Redis = sentinels.master_for(
            where.master, redis_class=redis.Redis, db=where.db, username=where.username,
            password=where.password, decode_responses=decode, retry=retry, **options,
        )  # fmt: skip
        return master
    tls: dict[str, Any] = {}
    if url.startswith("rediss://"):
        tls = {"ssl_cert_reqs": "required", "ssl_ca_certs": ca_file or None}
    return redis.Redis.from_url(url, **tls, decode_responses=decode, retry=retry, **options)


def redis_client(settings: ClientSettings) -> redis.Redis:
    """A decoding Redis client for the store."""
    return open_redis(settings.redis_url, settings.redis_ca_file)


def broker_connection(settings: ClientSettings) -> Connection:
    """A kombu connection to the workers' broker (kombu's own Redis transport: a sender
    needs nothing of the workers' screening transport)."""
    options: dict[str, Any] = {**CLIENT_OPTIONS, "retry_on_timeout": True}
    url = settings.redis_url
    if url.startswith("sentinel://"):
        where = sentinel_of(url)
        url = where.kombu_url()
        options["master_name"] = where.master
        options["sentinel_kwargs"] = SENTINEL_OPTIONS
    ssl_options: Any = False
    if url.startswith("rediss://"):
        ssl_options = {"ssl_cert_reqs": ssl.CERT_REQUIRED,
                       "ssl_ca_certs": settings.redis_ca_file or None}  # fmt: skip
    return Connection(url, transport_options=options, ssl=ssl_options)
