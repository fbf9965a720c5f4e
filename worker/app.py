"""The Celery app. Builds it from settings and nothing else (``celery -A worker.app``),
and the worker process's :class:`~worker.runtime.Runtime`, which sends through it."""

from __future__ import annotations

import functools

from celery import Celery

from config.celery import celery_config
from config.logs import setup_logging
from config.settings import get_settings
from worker import lifecycle
from worker.dispatch import CeleryDispatcher, HeadswapTask
from worker.runtime import Runtime

_settings = get_settings()
setup_logging(_settings)

app = Celery(
    "headswap",
    include=["tasks.submit", "tasks.poll", "tasks.notify", "tasks.sweep", "tasks.callbacks",
             "tasks.store_output"],
    task_cls=HeadswapTask,  # what Celery logs and streams of a task has its URLs redacted
)
app.config_from_object(celery_config(_settings))


@functools.cache
def get_runtime() -> Runtime:
    """The process's runtime: its sends go through this app."""
    return Runtime(_settings, CeleryDispatcher(app))


lifecycle.connect(_settings, get_runtime)  # logging, heartbeat, presence, metrics
