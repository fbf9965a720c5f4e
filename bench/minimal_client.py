"""The minimal Akool client: the fair ceiling for anything that runs Akool jobs on Celery.

One Celery task per job that makes the two calls every Akool client must make — the
create, then the detail that finds the task final — over the HTTP session the project's
client uses (:func:`worker.akool.new_session`: the same pool size, timeouts, headers and
proxy handling), reads the two JSON answers, and fires the same completion signal as the
others (:mod:`bench.signal_probe` stamps it: the bench's measurement, paid by every
scenario). Nothing else: no validation, no state in Redis, no exactly-once guard, no
error classification, no retries. The source videos are analysed by the bench before the
clock starts (Akool requires it), so the timed jobs are create + detail only::

    celery -A bench.minimal_client worker -P threads -c 8 -Q bench.minimal

The job's body is the project's own create body (``CreateTaskRequest.to_body()``), built
by the bench, so Akool sees the same requests.
"""

from __future__ import annotations

import functools
from typing import Any

import requests
from celery import Celery

from bench.apps import connect_hooks, single_queue_config
from config.settings import get_settings
from worker import signals
from worker.akool import PATH_CREATE, PATH_TASK_DETAIL, new_session

QUEUE = "bench.minimal"
TASK = "bench.minimal.headswap"


def minimal_config() -> dict[str, Any]:
    return single_queue_config(QUEUE, TASK)


app = Celery("bench-minimal")
app.config_from_object(minimal_config())

connect_hooks(app)  # logging and presence, as in worker.app


@functools.cache
def session() -> tuple[requests.Session, str, dict[str, str], tuple[float, float]]:
    s = get_settings()
    base = s.akool_base_url.rstrip("/")
    return (new_session(base, s.http_pool_size, "headswap-worker/0.1"), base,
            {"x-api-key": s.akool_api_key.get()}, (s.connect_timeout, s.read_timeout))


@app.task(name=TASK)
def headswap(job_id: str, body: dict[str, Any]) -> None:
    http, base, auth, timeout = session()
    with http.post(base + PATH_CREATE, json=body, headers=auth, timeout=timeout) as created:
        remote_id = created.json()["data"]["_id"]
    with http.get(base + PATH_TASK_DETAIL, params={"_id": remote_id}, headers=auth,
                  timeout=timeout) as detail:
        status = detail.json()["data"]["status"]
    signal = signals.job_succeeded if status == 3 else signals.job_failed
    signal.send(sender="minimal",
                job={"job_id": job_id, "state": "succeeded" if status == 3 else "failed"})
