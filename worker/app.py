"""The Celery app. Builds it from settings and nothing else (``celery -A worker.app``)."""

from __future__ import annotations

from celery import Celery

from config.celery import celery_config
from config.logs import setup_logging
from config.settings import get_settings

_settings = get_settings()
setup_logging(_settings)

app = Celery(
    "headswap",
    include=["tasks.submit", "tasks.poll", "tasks.notify", "tasks.sweep", "tasks.callbacks"],
)
app.config_from_object(celery_config(_settings))

import worker.lifecycle  # noqa: E402, F401  (heartbeat file, metrics server)
