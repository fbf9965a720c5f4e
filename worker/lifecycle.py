"""Hooks into the Celery worker process's life: heartbeat file, metrics server, shutdown."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from celery.signals import heartbeat_sent, worker_ready, worker_shutting_down

from worker import health
from worker.metrics import start_metrics_server
from worker.runtime import Runtime

log = logging.getLogger(__name__)


def connect(runtime: Callable[[], Runtime]) -> None:
    """Connect the hooks; ``runtime`` builds the process's runtime when first needed."""

    def on_ready(**_: Any) -> None:
        health.touch(min_interval=0)
        port = int(os.environ.get("HEADSWAP_METRICS_PORT", "0") or 0)
        if port:
            start_metrics_server(port, runtime().store)

    worker_ready.connect(on_ready, weak=False)
    heartbeat_sent.connect(_on_heartbeat, weak=False)
    worker_shutting_down.connect(_on_shutdown, weak=False)


def _on_heartbeat(**_: Any) -> None:
    health.touch()


def _on_shutdown(sig: str = "", how: str = "", exitcode: int = 0, **_: Any) -> None:
    health.clear()  # readiness fails at once: no new work is routed here while draining
    log.info("worker shutting down", extra={"signal": sig, "how": how})
