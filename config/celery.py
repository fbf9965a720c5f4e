"""Celery configuration, built from :class:`config.settings.Settings` (data, not code paths).

The reliability settings are deliberate:

- JSON only (pickle refused): producers in any language can speak it; no code execution.
- ``task_acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1: a message is acked
  only after its task ran, and a worker that dies mid-task gives it back.
- ``visibility_timeout`` longer than any task can run, so Redis never hands a running
  task's message to a second worker.
- results ignored: job state lives in our store.
"""

from __future__ import annotations

import ssl
from typing import Any

from kombu import Queue  # type: ignore[attr-defined]

from config.beat import beat_schedule
from config.settings import Settings

SUBMIT_QUEUE = "headswap.submit"
POLL_QUEUE = "headswap.poll"
NOTIFY_QUEUE = "headswap.notify"
QUEUES = (SUBMIT_QUEUE, POLL_QUEUE, NOTIFY_QUEUE)

ROUTES = {
    "headswap.submit": {"queue": SUBMIT_QUEUE},
    "headswap.analyze": {"queue": SUBMIT_QUEUE},
    "headswap.poll_due": {"queue": POLL_QUEUE},
    "headswap.poll_batch": {"queue": POLL_QUEUE},
    "headswap.sweep": {"queue": POLL_QUEUE},
    "headswap.notify": {"queue": NOTIFY_QUEUE},
    "headswap.deliver_callback": {"queue": NOTIFY_QUEUE},
}


def celery_config(s: Settings) -> dict[str, Any]:
    transport = {
        "visibility_timeout": s.visibility_timeout_seconds,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "retry_on_timeout": True,
    }
    config: dict[str, Any] = {
        "broker_url": s.redis_url,
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
        "task_queues": (Queue(SUBMIT_QUEUE), Queue(POLL_QUEUE), Queue(NOTIFY_QUEUE)),
        "task_default_queue": SUBMIT_QUEUE,
        "task_routes": ROUTES,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
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
