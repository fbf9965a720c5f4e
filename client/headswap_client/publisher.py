"""Sending a task to the workers by name: a Celery message (protocol 2) published with
kombu alone, so a producer needs no Celery app (nor Celery) of its own.

The message is what ``Celery.send_task(name, args, kwargs, queue=queue)`` publishes with
the workers' configuration: JSON, on the default exchange with the queue's name as routing
key (which kombu's Redis transport pushes straight onto the queue's list), with
``argsrepr``/``kwargsrepr`` redacted — what the workers log and show in task events
(Flower) of the arguments has no credentials or presigned query strings; the message
itself carries them whole.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from kombu.connection import Connection
from kombu.pools import ProducerPool

from headswap_client import tracing
from headswap_client.redaction import redact_urls

#: As Celery's own (``argsrepr_maxsize``, ``kwargsrepr_maxsize``).
REPR_MAXSIZE = 1024
#: Connections (and producers) one publisher keeps open at most; a send beyond waits.
POOL_LIMIT = 8
#: A send that meets a broken connection is retried this way (kombu's ``ensure``), then
#: the broker's error reaches the caller.
RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 1}


def short_repr(value: Any, limit: int = REPR_MAXSIZE) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_message(
    name: str, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any], origin: str
) -> tuple[str, dict[str, Any]]:
    """``(body, headers)`` of one task message, Celery's protocol 2."""
    args, kwargs = list(args), dict(kwargs)
    headers: dict[str, Any] = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": short_repr(redact_urls(args)),
        "kwargsrepr": short_repr(redact_urls(kwargs)),
        "origin": origin, "ignore_result": True, "replaced_task_nesting": 0,
        "stamped_headers": None, "stamps": {},
    }  # fmt: skip
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return json.dumps([args, kwargs, embed], allow_nan=False), headers


class TaskPublisher:
    """Publishes task messages to one broker through a pool of its own (safe across
    threads; :meth:`close` closes every connection it opened)."""

    def __init__(self, connection: Connection, pool_limit: int = POOL_LIMIT) -> None:
        self.connection = connection
        self._connections = connection.Pool(limit=pool_limit)
        self._producers = ProducerPool(self._connections, limit=pool_limit)
        self.origin = f"{os.getpid()}@{socket.gethostname()}"

    def send(
        self,
        name: str,
        *,
        queue: str,
        kwargs: Mapping[str, Any] | None = None,
        args: Sequence[Any] = (),
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Send task ``name`` to ``queue``; return the message's task id. ``headers`` are
        added to the message's. When the host application traces, the send is a span
        ``apply_async/<name>`` and the message carries its context (W3C headers), as
        with Celery's instrumentation."""
        task_id = str(uuid.uuid4())
        body, task_headers = task_message(name, task_id, args, kwargs or {}, self.origin)
        with tracing.span(f"apply_async/{name}", producer=True, task_id=task_id):
            extra = {**tracing.carrier(), **(headers or {})}
            self._publish(body, queue, {**task_headers, **extra}, task_id)
        return task_id

    def _publish(self, body: str, queue: str, headers: Mapping[str, Any], task_id: str) -> None:
        with self._producers.acquire(block=True) as producer:
            producer.publish(
                body, exchange="", routing_key=queue, headers=dict(headers),
                content_type="application/json", content_encoding="utf-8",
                correlation_id=task_id, delivery_mode=2, retry=True, retry_policy=RETRY_POLICY,
            )  # fmt: skip

    def close(self) -> None:
        self._producers.force_close_all()
        self._connections.force_close_all()
        self.connection.release()
