"""What a flow needs, per process: settings, the store and its lifecycle, the Akool
client, the global limits, and the dispatcher that sends tasks.

Built once per process by its entry point (``worker.app`` for workers, the webhook app,
the CLI) with the dispatcher that fits it, and shared by the process's threads; redis-py
and a ``requests.Session`` are safe to share.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from config.settings import Settings
from worker.akool import AkoolClient
from worker.dispatch import Dispatcher
from worker.jobs import Jobs, Timings
from worker.limits import Rate, RateLimiter
from worker.poll_pool import PollPool
from worker.spool import Spool
from worker.storage import Downloader, Storage, open_storage
from worker.store import JobStore, MisroutedMessages, open_misrouted, open_store

T = TypeVar("T")


class Runtime:
    def __init__(
        self, settings: Settings, dispatcher: Dispatcher, store: JobStore | None = None
    ) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
        self.jobs = Jobs(
            self.store,
            Timings(
                resend_after=settings.resend_after_seconds,
                ambiguous_grace=settings.ambiguous_grace_seconds,
                nonce_ttl=int(settings.webhook_max_skew_seconds * 2) + 1,
                store_outputs=settings.stores_outputs,
                store_lease=settings.storage_lease_seconds,
                producer_label=settings.producer_policy.label,
            ),
        )
        self.create_limiter = RateLimiter(
            self.store.guards, "create", Rate(settings.create_rate, settings.rate_burst)
        )
        self.detail_limiter = RateLimiter(
            self.store.guards, "detail", Rate(settings.detail_rate, settings.rate_burst)
        )
        self.dispatcher = dispatcher
        #: Created tasks not yet recorded (Redis away) wait here, durably.
        self.spool = Spool(settings.spool_dir)
        #: Set when the process is shutting down: endless retries end (the spool keeps
        #: what they held).
        self.stopping = threading.Event()
        self._client: AkoolClient | None = None
        self._misrouted: MisroutedMessages | None = None
        self._storage: Storage | None = None
        self._downloader: Downloader | None = None
        #: The poller's threads (``HEADSWAP_POLL_CONCURRENCY``), started on first use.
        self.poll_pool = PollPool(settings.poll_concurrency)
        self._lock = threading.Lock()

    def _once(self, attr: str, build: Callable[[], T]) -> T:
        """The value of ``attr``, built by ``build`` on first use (once, under the lock:
        threads share the runtime)."""
        value = getattr(self, attr)
        if value is None:
            with self._lock:
                value = getattr(self, attr)
                if value is None:
                    value = build()
                    setattr(self, attr, value)
        return cast(T, value)

    @property
    def akool(self) -> AkoolClient:
        return self._once("_client", lambda: AkoolClient.from_settings(self.settings))

    @property
    def misrouted(self) -> MisroutedMessages:
        """Our messages in Celery's default queue (a bytes client, opened on first use)."""
        return self._once("_misrouted", lambda: open_misrouted(self.settings))

    @property
    def storage(self) -> Storage:
        """Where finished videos are copied (``HEADSWAP_STORAGE_URL``), built on first use."""
        return self._once("_storage", lambda: open_storage(self.settings))

    @property
    def downloader(self) -> Downloader:
        """The pooled HTTP session output copies read Akool's URLs with."""
        s = self.settings
        return self._once("_downloader", lambda: Downloader(
            s.connect_timeout, s.read_timeout, s.http_pool_size))

    def send(self, name: str, kwargs: Mapping[str, Any], queue: str | None = None) -> None:
        """Send a task by name with keyword arguments (our own queues)."""
        self.dispatcher.send(name, kwargs=kwargs, queue=queue)

    def send_args(self, name: str, args: Sequence[Any], queue: str | None = None) -> None:
        """Send a task by name with positional arguments (a producer's callback task)."""
        self.dispatcher.send(name, args=args, queue=queue)
