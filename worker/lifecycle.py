"""Hooks into the Celery worker's life: heartbeat file, metrics server, shutdown."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import heartbeat_sent, worker_ready, worker_shutting_down

from worker import health

log = logging.getLogger(__name__)


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    health.touch(min_interval=0)
    port = int(os.environ.get("HEADSWAP_METRICS_PORT", "0") or 0)
    if port:
        from worker.metrics import start_metrics_server
        from worker.runtime import get_runtime

        start_metrics_server(port, get_runtime())


@heartbeat_sent.connect
def _on_heartbeat(**_: Any) -> None:
    health.touch()


@worker_shutting_down.connect
def _on_shutdown(sig: str = "", how: str = "", exitcode: int = 0, **_: Any) -> None:
    health.clear()  # readiness fails at once: no new work is routed here while draining
    log.info("worker shutting down", extra={"signal": sig, "how": how})
