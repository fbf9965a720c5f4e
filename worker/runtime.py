"""Per-process singletons: settings, the store, the Akool client, and task dispatch.

Built lazily on first use (a worker thread, the webhook, a CLI command) and shared by
the threads of the process; redis-py and a ``requests.Session`` are safe to share.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import redis

from config.settings import Settings, get_settings
from worker.akool import AkoolClient
from worker.limits import Rate, RateLimiter
from worker.store import JobStore


class Dispatcher(Protocol):
    def __call__(self, name: str, kwargs: Mapping[str, Any], queue: str | None = None) -> None: ...


class Runtime:
    def __init__(self, settings: Settings, dispatch: Dispatcher | None = None) -> None:
        self.settings = settings
        self.redis = redis_client(settings)
        self.store = JobStore(
            self.redis,
            settings.key_prefix,
            retention_seconds=settings.job_retention_seconds,
            idempotency_ttl=settings.idempotency_ttl_seconds,
            resend_after=settings.resend_after_seconds,
        )
        self.create_limiter = RateLimiter(
            self.redis,
            f"{self.store.p}:rate:create",
            Rate(settings.create_rate, settings.rate_burst),
        )
        self.detail_limiter = RateLimiter(
            self.redis,
            f"{self.store.p}:rate:detail",
            Rate(settings.detail_rate, settings.rate_burst),
        )
        self._dispatch = dispatch
        self._client: AkoolClient | None = None
        self._lock = threading.Lock()

    @property
    def akool(self) -> AkoolClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = AkoolClient.from_settings(self.settings)
        return self._client

    def send(self, name: str, kwargs: Mapping[str, Any], queue: str | None = None) -> None:
        """Send a task by name (to our own queues or a producer's callback task)."""
        if self._dispatch is None:
            from worker.app import app

            app.send_task(name, kwargs=dict(kwargs), queue=queue)
        else:
            self._dispatch(name, kwargs, queue)

    def send_args(self, name: str, args: tuple[Any, ...], queue: str | None = None) -> None:
        from worker.app import app

        app.send_task(name, args=args, queue=queue)


def redis_client(settings: Settings) -> redis.Redis:
    tls: dict[str, Any] = {}
    if settings.redis_url.startswith("rediss://"):
        tls = {"ssl_cert_reqs": "required", "ssl_ca_certs": settings.redis_ca_file or None}
    return redis.Redis.from_url(
        settings.redis_url,
        **tls,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=25,
        retry_on_timeout=True,
    )


@functools.cache
def get_runtime() -> Runtime:
    return Runtime(get_settings())
