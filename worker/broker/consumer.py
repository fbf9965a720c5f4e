"""The Celery consumer, with its "not a task of ours" hooks keeping the message.

Celery's consumer has one method per way a delivered envelope fails to be a task
(``on_unknown_message``, ``on_unknown_task``, ``on_invalid_task``, ``on_decode_error``);
each used to log (with up to 1 KiB of the body) and drop the message. Here each keeps it
in ``{prefix}:dead-messages`` first, then acks it: a crash between the two leaves the
message unacked, kombu restores it after the visibility timeout, and it is kept again
under the same id (its delivery tag) — once. Selected with ``worker_consumer``.

A consumer on another transport (no :meth:`~worker.broker.transport.Channel.quarantine_message`)
keeps Celery's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.exceptions import ContentDisallowed
from vine import promise

from worker.broker import envelope


def _why(message: Any, exc: BaseException, otherwise: str) -> tuple[str, str]:
    """(reason, detail): a refused content type names itself, anything else its error."""
    if isinstance(exc, ContentDisallowed):
        return envelope.REFUSED_CONTENT_TYPE, envelope.safe_text(message.content_type)
    return otherwise, type(exc).__name__


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer; refused messages go to the dead-message list, not away."""

    def create_task_handler(self, promise: Any = promise) -> Callable[[Any], Any]:
        """Celery's handler, and a message it raised on while making a request of it is an
        invalid task. A v2 message without an ``id`` header raises KeyError there, and
        kombu's virtual transport lists KeyError among its *connection* errors: Celery
        took the message for a lost connection, restored it, met it again — forever.
        Real connection and channel errors (sockets, Redis) still go up."""
        on_task_received = super().create_task_handler(promise)
        passes = tuple(e for e in (*self.connection_errors, *self.channel_errors)
                       if not issubclass(e, LookupError))

        def screened(message: Any) -> Any:
            try:
                if not self._body_is_a_task(message):
                    return None
                return on_task_received(message)
            except passes:
                raise
            except Exception as exc:
                if not self._quarantine(message, envelope.INVALID_TASK, type(exc).__name__):
                    raise
                return None

        return screened

    def _body_is_a_task(self, message: Any) -> bool:
        """For a v2 message naming a task of ours: its body decodes (by its content type,
        through the accept list) to ``[args, kwargs, embed]``; else it is quarantined.
        The decoded body is kombu's cached ``message.payload``, which Celery's strategy
        reads next anyway."""
        headers = message.headers
        task = headers.get("task") if isinstance(headers, dict) else None
        if not isinstance(task, str) or task not in self.strategies:
            return True  # not ours to judge here: Celery's own hooks name it
        try:
            payload = message.payload
        except Exception as exc:
            reason, detail = _why(message, exc, envelope.UNDECODABLE_BODY)
            if self._quarantine(message, reason, detail):
                return False
            raise
        if envelope.is_task_body(payload):
            return True
        return not self._quarantine(message, envelope.NOT_A_TASK_BODY, type(payload).__name__)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        if not self._quarantine(message, envelope.NOT_A_TASK):
            super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: BaseException) -> None:
        task = (message.headers or {}).get("task")
        if not self._quarantine(message, envelope.UNKNOWN_TASK, envelope.safe_text(task)):
            super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: BaseException) -> None:
        reason, detail = _why(message, exc, envelope.INVALID_TASK)
        if not self._quarantine(message, reason, detail):
            super().on_invalid_task(body, message, exc)

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        reason, detail = _why(message, exc, envelope.UNDECODABLE_BODY)
        if not self._quarantine(message, reason, detail):
            super().on_decode_error(message, exc)

    def _quarantine(self, message: Any, reason: str, detail: str = "") -> bool:
        """Keep, then ack. False when the channel cannot keep messages (another transport)."""
        keep = getattr(message.channel, "quarantine_message", None)
        if keep is None:
            return False
        keep(message, reason, detail)
        message.ack()
        return True
