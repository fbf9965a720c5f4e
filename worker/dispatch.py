"""Sending tasks by name: the one way the worker puts a message on a queue.

Flows get a :class:`Dispatcher` through their :class:`~worker.runtime.Runtime`; tests may
hand in a recording one, and every send — a producer's ``callback_task`` included — goes
through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from celery import Celery, Task
from celery.utils.saferepr import saferepr
from celery.worker.request import Request

from config.celery import celery_config
from config.settings import Settings, redact_text, redact_urls

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


class RedactedRequest(Request):  # type: ignore[misc]
    """A received task as Celery's worker shows it — the "received" log line, the
    ``task-received`` event (Flower), ``inspect active`` — with the URLs in its arguments
    redacted. Our own sends carry redacted reprs already; a backend that sends with its
    own Celery app (``send_task``, ``apply_async``) carries Celery's default repr, the
    arguments whole. The task itself still gets them whole."""

    @property
    def argsrepr(self) -> str:
        return redact_text(str(super().argsrepr or ""))

    @property
    def kwargsrepr(self) -> str:
        return redact_text(str(super().kwargsrepr or ""))

    def info(self, safe: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = super().info(safe=True)
        out["args"], out["kwargs"] = self.argsrepr, self.kwargsrepr
        return out


class HeadswapTask(Task):  # type: ignore[misc]
    """The base of every task of the app: its requests are :class:`RedactedRequest`."""

    Request = RedactedRequest


def sender_app(settings: Settings, name: str = "headswap-sender") -> Celery:
    """A Celery app that only sends (the webhook receiver, the CLI, producers)."""
    app = Celery(name, set_as_current=False)
    app.config_from_object(celery_config(settings))
    return app
