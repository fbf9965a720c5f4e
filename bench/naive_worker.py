"""The naive worker: what most teams write first, kept here as the benchmark's baseline.

One Celery task per job. It creates the Akool task, then polls it by retrying itself with
``retry(countdown=POLL)`` until the task is final, and fires the same completion signal
as the project. It shares the project's Celery configuration (JSON, acks late, prefetch 1,
threads pool, events), its Akool client and its Redis, so the difference measured is the
design: a Celery round trip (publish, ETA hold, deliver, ack, events) for every poll of
every job, a fixed poll interval, no batching, no exactly-once guard::

    celery -A bench.naive_worker worker -P threads -c 8 -Q bench.naive

``BENCH_NAIVE_POLL_SECONDS`` is the countdown (default 1 s).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import redis
from celery import Celery, Task

from bench.apps import connect_hooks, single_queue_config
from config.settings import get_settings
from worker import signals
from worker.akool import AkoolClient
from worker.akool_types import STATUS_COMPLETED, STATUS_FAILED, CreateTaskRequest, Mapping
from worker.store.connect import redis_client

QUEUE = "bench.naive"
TASK = "bench.naive.headswap"
POLL_SECONDS = float(os.environ.get("BENCH_NAIVE_POLL_SECONDS", "1"))


def naive_config() -> dict[str, Any]:
    return single_queue_config(QUEUE, TASK)


app = Celery("bench-naive")
app.config_from_object(naive_config())

connect_hooks(app)  # logging and presence, as in worker.app


@functools.cache
def akool() -> AkoolClient:
    return AkoolClient.from_settings(get_settings())


@functools.cache
def store() -> redis.Redis:
    return redis_client(get_settings())


def job_key(job_id: str) -> str:
    return f"naive:job:{job_id}"


def ensure_analysis(video_url: str) -> None:
    """Analyse a source URL once (cached in Redis); Akool refuses a create without it."""
    if store().hget("naive:analysis", video_url):
        return
    analysis = akool().analyze(video_url)
    while analysis.status not in (STATUS_COMPLETED, STATUS_FAILED):
        time.sleep(0.2)
        analysis = akool().analysis_detail(analysis.analysis_id)
    store().hset("naive:analysis", video_url, analysis.analysis_id)


@app.task(bind=True, name=TASK, max_retries=None)
def headswap(self: Task, job_id: str, video_url: str, mappings: list[dict[str, Any]],
             resolution: str, remote_id: str | None = None) -> None:
    kwargs = {"job_id": job_id, "video_url": video_url, "mappings": mappings,
              "resolution": resolution}
    if remote_id is None:
        ensure_analysis(video_url)
        task = akool().create_task(CreateTaskRequest(
            source_video_url=video_url,
            mappings=tuple(Mapping(m["obj_id"], m["img_url"]) for m in mappings),
            resolution=resolution,
        ))
        store().hset(job_key(job_id), mapping={"remote_id": task.remote_id,
                                               "state": "submitted"})
        raise self.retry(kwargs={**kwargs, "remote_id": task.remote_id}, countdown=POLL_SECONDS)
    task = akool().task_detail(remote_id)
    if task.status not in (STATUS_COMPLETED, STATUS_FAILED):
        raise self.retry(kwargs={**kwargs, "remote_id": remote_id}, countdown=POLL_SECONDS)
    state = "succeeded" if task.status == STATUS_COMPLETED else "failed"
    record = {"job_id": job_id, "state": state, "remote_id": remote_id,
              "output_url": task.output_url or ""}
    store().hset(job_key(job_id), mapping=record)
    signal = signals.job_succeeded if state == "succeeded" else signals.job_failed
    signal.send(sender="naive", job=record)
