"""Hooks into the Celery worker's life: logging, heartbeat file, presence record, metrics
server, shutdown. ``worker.app`` imports this module, so every worker and beat process
(``headswap worker``, ``headswap beat``) gets them."""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

import redis
from celery.signals import heartbeat_sent, worker_ready, worker_shutting_down
from celery.signals import setup_logging as celery_setup_logging

from worker import health, presence

log = logging.getLogger(__name__)
_presence: dict[str, Any] = {"hostname": None, "at": 0.0}


@celery_setup_logging.connect
def _own_logging(**_: Any) -> None:
    """With a receiver connected Celery leaves logging alone (otherwise it resets the root
    logger to WARNING and its own format): ``HEADSWAP_LOG_FORMAT``/``LOG_LEVEL`` apply."""
    from config.logs import setup_logging
    from config.settings import get_settings

    setup_logging(get_settings())


@functools.cache
def _presence_client() -> tuple[redis.Redis, str]:
    from config.settings import get_settings
    from worker.runtime import redis_client

    settings = get_settings()
    return redis_client(settings), settings.key_prefix


def _announce() -> None:
    hostname = _presence["hostname"]
    if not hostname:
        return
    try:
        client, prefix = _presence_client()
        presence.announce(client, prefix, hostname, os.getpid())
        _presence["at"] = time.monotonic()
    except redis.RedisError as exc:  # the next heartbeat tries again
        log.warning("presence record not written", extra={"error": type(exc).__name__})


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    health.touch(min_interval=0)
    _presence["hostname"] = getattr(sender, "hostname", None)
    _announce()
    port = int(os.environ.get("HEADSWAP_METRICS_PORT", "0") or 0)
    if port:
        from worker.metrics import start_metrics_server
        from worker.runtime import get_runtime

        start_metrics_server(port, get_runtime())


@heartbeat_sent.connect
def _on_heartbeat(**_: Any) -> None:
    health.touch()
    if time.monotonic() - _presence["at"] >= presence.REFRESH_SECONDS:
        _announce()


@worker_shutting_down.connect
def _on_shutdown(sig: str = "", how: str = "", exitcode: int = 0, **_: Any) -> None:
    health.clear()  # readiness fails at once: no new work is routed here while draining
    hostname, _presence["hostname"] = _presence["hostname"], None
    if hostname:
        try:
            client, prefix = _presence_client()
            presence.withdraw(client, prefix, hostname)
        except redis.RedisError:
            pass  # the record expires on its own
    log.info("worker shutting down", extra={"signal": sig, "how": how})
