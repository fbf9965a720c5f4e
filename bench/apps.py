"""The Celery configuration the benchmark's own apps share: the project's, one queue."""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery

from config.celery import celery_config, queue_object, route
from config.settings import get_settings
from worker import lifecycle
from worker.dispatch import CeleryDispatcher
from worker.runtime import Runtime


def single_queue_config(queue: str, task: str) -> dict[str, Any]:
    """``config.celery.celery_config`` (same broker, JSON, acks late, prefetch, events,
    threads pool) with one queue for one task and no beat schedule."""
    config = celery_config(get_settings())
    config.update(
        task_queues=(queue_object(queue),),
        task_default_queue=queue,
        task_default_exchange=queue,
        task_routes={task: route(queue)},
        beat_schedule={},
    )
    return config


def connect_hooks(app: Celery) -> None:
    """The project's process hooks (logging, heartbeat, presence) for a bench app, as
    ``worker.app`` connects them: the bench waits for workers the way tests do."""
    settings = get_settings()
    lifecycle.connect(settings, functools.cache(lambda: Runtime(settings, CeleryDispatcher(app))))
