"""The Celery configuration the benchmark's own apps share: the project's, one queue."""

from __future__ import annotations

from typing import Any

from kombu import Queue

from config.celery import celery_config
from config.settings import get_settings


def single_queue_config(queue: str, task: str) -> dict[str, Any]:
    """``config.celery.celery_config`` (same broker, JSON, acks late, prefetch, events,
    threads pool) with one queue for one task and no beat schedule."""
    config = celery_config(get_settings())
    config.update(
        task_queues=(Queue(queue),),
        task_default_queue=queue,
        task_routes={task: {"queue": queue}},
        beat_schedule={},
    )
    return config
