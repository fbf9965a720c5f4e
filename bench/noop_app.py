"""The ceiling: a Celery app whose one task does nothing, on the project's own Celery config.

Same broker, serializer, acks-late, prefetch, events and threads pool as ``worker.app``
(``config.celery.celery_config``); only the queue differs. Whatever is built on Celery
cannot run jobs faster than this runs no-op tasks::

    celery -A bench.noop_app worker -P threads -c 8 -Q bench.noop
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from bench.apps import connect_hooks, single_queue_config

QUEUE = "bench.noop"
TASK = "bench.noop"


def noop_config() -> dict[str, Any]:
    return single_queue_config(QUEUE, TASK)


app = Celery("bench-noop")
app.config_from_object(noop_config())

connect_hooks(app)  # logging and presence, as in worker.app


@app.task(name=TASK)
def noop(job_id: str) -> None:
    """Nothing: the cost measured is Celery's own (receive, run, ack, events)."""
