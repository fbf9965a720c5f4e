"""kombu's Redis transport, with a channel that screens what it pops.

kombu's channel pops an entry (``BRPOP``) and reads it as a JSON envelope inside its read
loop; bytes it cannot read (not JSON, not an object, no ``properties``, a body that is not
base64 ...) raised out of that loop and the worker exited ("Unrecoverable error"). This
channel looks at each popped entry first, through the public hook redis-py has for it
(a response callback for ``BRPOP`` on the channel's consuming client): an entry that
:func:`worker.broker.envelope.check` refuses is kept in ``{prefix}:dead-messages`` and
the pop reads as "nothing this time", so kombu polls again and takes the next entry.

Selected with ``broker_transport`` (config/celery.py); ``redis://`` and ``rediss://``
URLs keep working (the URL names the server, the setting names the class). The key
prefix arrives as the transport option ``dead_messages_prefix``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kombu.transport.redis import Channel as RedisChannel
from kombu.transport.redis import SentinelChannel as RedisSentinelChannel
from kombu.transport.redis import SentinelTransport as RedisSentinelTransport
from kombu.transport.redis import Transport as RedisTransport
from kombu.transport.redis import get_redis_ConnectionError
from kombu.utils.json import dumps

from worker.broker import envelope
from worker.metrics import DEAD_MESSAGES
from worker.store import DeadMessages, Keys

log = logging.getLogger(__name__)

#: kombu's separator between a queue's name and its priority in list names.
_PRIORITY_SEP = "\x06\x16"


class Channel(RedisChannel):  # type: ignore[misc]
    """A Redis channel whose consuming client screens every ``BRPOP`` reply."""

    #: The store's key prefix (``HEADSWAP_KEY_PREFIX``), from the transport options.
    dead_messages_prefix = "headswap"
    from_transport_options = (  # type: ignore[assignment]
        *RedisChannel.from_transport_options, "dead_messages_prefix")

    _dead: DeadMessages | None = None

    def _connparams(self, asynchronous: bool = False) -> Any:
        """kombu's, except when the connection is already closed. kombu 5.7 closes a
        channel after losing Redis and, restoring unacked messages on the way, asks for a
        new pool on a connection whose ``client`` is gone: ``AttributeError: 'NoneType'
        object has no attribute 'hostname'`` escaped ``ignore_errors`` and the worker
        exited ("Unrecoverable error", issue 12). Said as what it is — no connection —
        it is ignored like every other connection error, the consumer reconnects, and the
        unacked messages stay in Redis's unacked hash, restored after the visibility
        timeout as they would be after kill -9."""
        if self.connection is None or self.connection.client is None:
            raise get_redis_ConnectionError()("the connection to Redis is already closed")
        return super()._connparams(asynchronous=asynchronous)

    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if not asynchronous:
            return self._shared_client()
        client = super()._create_client(asynchronous=asynchronous)
        # the client that BRPOPs (kombu's ``Channel.client``)
        parse = client.response_callbacks.get("BRPOP")
        client.set_response_callback("BRPOP", self._screening(parse))
        return client

    def _shared_client(self) -> Any:
        """kombu builds a new ``redis.Redis`` on its pool for every publish, ack and
        queue-size read (``conn_or_acquire``): ~60 µs of CPU each, several per task. One
        client per channel and pool does the same (redis-py clients are thread-safe:
        each command takes a connection from the pool); a new pool after a reconnect
        gets a new client."""
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client(asynchronous=False)
        return client

    def _screening(self, parse: Callable[..., Any] | None) -> Callable[..., Any]:
        def screen(response: Any, **options: Any) -> Any:
            reply = parse(response, **options) if parse else response
            if not reply:
                return reply
            dest, item = reply
            raw = item if isinstance(item, bytes) else str(item).encode()
            reason = envelope.check(raw)
            if reason is None:
                return reply
            queue = (dest.decode() if isinstance(dest, bytes) else str(dest))
            queue = queue.rsplit(_PRIORITY_SEP, 1)[0]
            try:
                self.quarantine(raw, reason, queue)
            except Exception:
                # Popped and not kept: Redis failed in the instant after answering the pop
                # (kombu loses a good message in that same instant). Say so, never quietly;
                # a connection error goes on up and kombu reconnects.
                log.error("a bad queue entry could not be kept in dead-messages; it is lost",
                          extra={"reason": reason, "queue": queue, "size": len(raw)},
                          exc_info=True)
                raise
            return None  # "nothing popped": kombu's loop goes on to the next entry

        return screen

    def basic_consume(self, queue: str, no_ack: bool, callback: Callable[[Any], Any],
                      consumer_tag: str, **kwargs: Any) -> Any:
        """kombu's, with each message told which queue it was consumed from (a message
        Celery refuses goes back to that queue when an operator requeues it)."""

        def consumed(message: Any) -> Any:
            message.consumed_from = queue
            return callback(message)

        return super().basic_consume(queue, no_ack, consumed, consumer_tag, **kwargs)

    @property
    def dead_messages(self) -> DeadMessages:
        """The list, on a client of kombu's non-consuming pool (never the BRPOP socket)."""
        if self._dead is None:
            self._dead = DeadMessages(self._create_client(), Keys(self.dead_messages_prefix))
        return self._dead

    def quarantine(self, raw: bytes, reason: str, queue: str, *, entry_id: str | None = None,
                   detail: str = "") -> bool:
        """Keep one entry, count it, log it once (never its bytes). False when that
        entry was kept already (a redelivery of the same message)."""
        entry_id = entry_id or envelope.entry_id()
        kept = self.dead_messages.keep(entry_id, reason, queue, raw, detail)
        if kept:
            DEAD_MESSAGES.labels(reason, queue).inc()
            log.warning(
                "queue entry quarantined in dead-messages",
                extra={"dead_message_id": entry_id, "reason": reason, "queue": queue,
                       "size": len(raw), "detail": detail},
            )  # fmt: skip
        return kept

    def quarantine_message(self, message: Any, reason: str, detail: str = "") -> bool:
        """Keep a message Celery refused, as kombu would restore it (its envelope, JSON)."""
        raw_envelope = getattr(message, "_raw", None)
        raw = dumps(raw_envelope).encode() if raw_envelope is not None else b""
        queue = str(getattr(message, "consumed_from", "") or
                    (message.delivery_info or {}).get("routing_key") or "")
        return self.quarantine(raw, reason, queue, detail=detail,
                               entry_id=envelope.entry_id(message.delivery_tag))


class Transport(RedisTransport):  # type: ignore[misc]
    """kombu's Redis transport with the screening :class:`Channel`."""

    Channel = Channel


class SentinelChannel(Channel, RedisSentinelChannel):  # type: ignore[misc]
    """The screening channel on kombu's Sentinel channel (the master found by asking the
    sentinels, and asked again after a failover)."""

    from_transport_options = (  # type: ignore[assignment]
        *RedisSentinelChannel.from_transport_options, "dead_messages_prefix")


class SentinelTransport(RedisSentinelTransport):  # type: ignore[misc]
    """kombu's Sentinel transport with the screening :class:`SentinelChannel`."""

    Channel = SentinelChannel
