"""Sending tasks by name: the one way the worker puts a message on a queue.

Flows get a :class:`Dispatcher` through their :class:`~worker.runtime.Runtime`; tests may
hand in a recording one, and every send — a producer's ``callback_task`` included — goes
through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from celery import Celery
from celery.utils.saferepr import saferepr

from config.celery import celery_config
from config.settings import Settings, redact_urls

#: As Celery's own (``argsrepr_maxsize``).
REPR_MAXSIZE = 1024


class Dispatcher(Protocol):
    def send(
        self,
        name: str,
        kwargs: Mapping[str, Any] | None = None,
        args: Sequence[Any] = (),
        queue: str | None = None,
    ) -> None: ...


class CeleryDispatcher:
    """Sends through a Celery app (the worker's own, or a sender-only one)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(
        self,
        name: str,
        kwargs: Mapping[str, Any] | None = None,
        args: Sequence[Any] = (),
        queue: str | None = None,
    ) -> None:
        """The message carries the job whole; what Celery logs and puts in task events
        (``argsrepr``/``kwargsrepr``, otherwise the full values) has its URLs redacted:
        no credentials or presigned query strings in worker logs or Flower."""
        args, kw = list(args), dict(kwargs or {})
        self.app.send_task(
            name, args=args, kwargs=kw, queue=queue,
            argsrepr=saferepr(redact_urls(args), REPR_MAXSIZE),
            kwargsrepr=saferepr(redact_urls(kw), REPR_MAXSIZE),
        )  # fmt: skip


def sender_app(settings: Settings, name: str = "headswap-sender") -> Celery:
    """A Celery app that only sends (the webhook receiver, the CLI, producers)."""
    app = Celery(name, set_as_current=False)
    app.config_from_object(celery_config(settings))
    return app
