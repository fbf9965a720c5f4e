"""Celery configuration, built from :class:`config.settings.Settings` (data, not code paths).

The reliability settings are deliberate:

- JSON only (pickle refused): producers in any language can speak it; no code execution.
- ``task_acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1: a message is acked
  only after its task ran, and a worker that dies mid-task gives it back.
- ``visibility_timeout`` longer than any task can run, so Redis never hands a running
  task's message to a second worker.
- results ignored: job state lives in our store.
- our transport and consumer (``worker.broker``): a queue entry that is not a task of
  ours is kept in ``{prefix}:dead-messages``, never fatal, never silently dropped.
"""

from __future__ import annotations

import ssl
from typing import Any

# The queue names are the contract's: producers send to them (headswap_client.queues).
from headswap_client.queues import NOTIFY_QUEUE as NOTIFY_QUEUE
from headswap_client.queues import POLL_QUEUE as POLL_QUEUE
from headswap_client.queues import QUEUES as QUEUES
from headswap_client.queues import STORE_QUEUE as STORE_QUEUE
from headswap_client.queues import SUBMIT_QUEUE as SUBMIT_QUEUE
from kombu import Exchange, Queue  # type: ignore[attr-defined]

from config.beat import beat_schedule
from config.settings import Settings, sentinel_of


def queue_object(name: str) -> Queue:
    """A queue bound to its own direct exchange with its own name as routing key.

    Never leave the exchange to Celery: a Queue without one gets the default exchange and
    routing key (both ``headswap.submit``), so all three queues were bound to the same
    pair and one publish to it landed in all three lists (one submit ran three times).
    """
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


#: ``task_queues``: one exchange and routing key per queue, named like the queue.
QUEUE_OBJECTS = tuple(queue_object(name) for name in QUEUES)


def route(queue: str) -> dict[str, str]:
    """A ``task_routes`` entry naming the queue only.

    Celery then publishes to the default (anonymous) exchange with the queue's name as
    routing key, which kombu's Redis transport delivers straight to the list. Naming the
    queue's exchange instead would make every send look up ``_kombu.binding.<exchange>``
    in Redis; a Redis that forgets its data (restart without persistence, eviction,
    FLUSHDB) forgets the bindings too, and a connected sender, which declares once per
    connection, then drops every message without an error.
    """
    return {"queue": queue}


ROUTES = {
    "headswap.submit": route(SUBMIT_QUEUE),
    "headswap.analyze": route(SUBMIT_QUEUE),
    "headswap.poll_due": route(POLL_QUEUE),
    "headswap.poll_batch": route(POLL_QUEUE),
    "headswap.wake_due": route(POLL_QUEUE),
    "headswap.sweep": route(POLL_QUEUE),
    "headswap.notify": route(NOTIFY_QUEUE),
    "headswap.deliver_callback": route(NOTIFY_QUEUE),
    "headswap.store_output": route(STORE_QUEUE),
}

#: kombu's Redis transport keeps bindings forever (``_kombu.binding.<exchange>`` and
#: ``_kombu.binding_permanent.<exchange>``, members ``routing_key\x06\x16\x06\x16queue``).
#: Before this release every queue was bound to exchange ``headswap.submit``; these
#: (key, member) pairs must be removed once (SREM) or that exchange still fans out.
OBSOLETE_BINDINGS = tuple(
    (f"{prefix}{SUBMIT_QUEUE}", f"{SUBMIT_QUEUE}\x06\x16\x06\x16{queue}")
    for prefix in ("_kombu.binding.", "_kombu.binding_permanent.")
    for queue in (POLL_QUEUE, NOTIFY_QUEUE)
)


#: kombu's Redis transport with a channel that quarantines entries it cannot read.
BROKER_TRANSPORT = "worker.broker.transport:Transport"
#: The same behind Sentinel (``sentinel://`` URLs).
BROKER_TRANSPORT_SENTINEL = "worker.broker.transport:SentinelTransport"
#: Celery's consumer with its unknown/invalid/undecodable hooks quarantining.
WORKER_CONSUMER = "worker.broker.consumer:Consumer"


def celery_config(s: Settings) -> dict[str, Any]:
    transport = {
        "visibility_timeout": s.visibility_timeout_seconds,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "retry_on_timeout": True,
        "dead_messages_prefix": s.key_prefix,
    }
    broker_url, broker_transport = s.redis_url, BROKER_TRANSPORT
    if s.redis_url.startswith("sentinel://"):
        where = sentinel_of(s.redis_url)
        broker_url, broker_transport = where.kombu_url(), BROKER_TRANSPORT_SENTINEL
        transport["master_name"] = where.master
        transport["sentinel_kwargs"] = {"socket_timeout": 5, "socket_connect_timeout": 5}
    config: dict[str, Any] = {
        "broker_url": broker_url,
        # The URL names the server (redis://, rediss:// or sentinel://); this the class.
        "broker_transport": broker_transport,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_pool": "threads",
        "worker_consumer": WORKER_CONSUMER,
        "task_queues": QUEUE_OBJECTS,
        "task_default_queue": SUBMIT_QUEUE,
        "task_default_exchange": SUBMIT_QUEUE,
        "task_default_exchange_type": "direct",
        "task_default_routing_key": SUBMIT_QUEUE,
        "task_routes": ROUTES,
        # Task events (task-sent, -received, -started, -succeeded) are four messages per
        # task that only Flower-like monitors read: off unless HEADSWAP_TASK_EVENTS
        # (docs/BENCHMARKS.md finding 4). Worker heartbeats are sent either way.
        "task_send_sent_event": s.task_events,
        "worker_send_task_events": s.task_events,
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(s),
        "timezone": "UTC",
    }
    if s.redis_url.startswith("rediss://"):
        config["broker_use_ssl"] = {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "ssl_ca_certs": s.redis_ca_file or None,
        }
    return config
