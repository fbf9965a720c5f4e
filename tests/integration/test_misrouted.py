"""A backend that sends ``headswap.submit`` with its own plain Celery app and forgets
``queue=``: the message lands in Celery's default queue ``celery``, which no headswap
worker reads. ``headswap stats`` shows it waiting; a running stack's sweep moves it onto
``headswap.submit``, the job runs, and the worker's WARNING says how to fix the producer.
Real redis-server, ``headswap worker`` / ``beat`` processes, the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from celery import Celery

from tests.support.procs import ROOT, VENV_BIN, wait_until
from tests.support.stack import fresh_db_url, producer_for, running_stack

pytestmark = pytest.mark.integration

JOB = {"video_url": "https://cdn.example.com/misrouted.mp4?duration=4", "resolution": "720p",
       "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}]}


def stats(env: dict[str, str]) -> dict:
    done = subprocess.run([str(VENV_BIN / "headswap"), "stats", "--json"],
                          env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_headswap_stats_shows_a_submit_waiting_in_the_default_queue(redis_server):
    url = fresh_db_url(redis_server.url)
    backend = Celery("backend", broker=url)
    try:
        backend.send_task("headswap.submit", kwargs=JOB)  # no queue=
        figures = stats({"HEADSWAP_REDIS_URL": url})
        assert figures["misrouted_waiting"] == 1
        assert figures["misrouted_waiting_by_task"] == {"headswap.submit": 1}
        assert figures["misrouted_moved"] == 0
        # looking moves nothing
        assert backend.connection_for_write().default_channel.client.llen("celery") == 1
    finally:
        backend.close()


def test_a_submit_sent_without_queue_is_moved_by_the_sweep_and_runs(redis_server, sandbox):
    with running_stack(redis_server.url, sandbox) as st:
        producer = producer_for(st)
        backend = Celery("backend", broker=st.env["HEADSWAP_REDIS_URL"])
        try:
            job_id = "misrouted-" + uuid.uuid4().hex[:8]
            sent = backend.send_task("headswap.submit", kwargs={**JOB, "job_id": job_id})

            wait_until(lambda: producer.get(job_id) is not None, 20,
                       what="the misrouted submit to be taken")
            record = producer.wait(job_id, timeout=30)
            assert record["state"] == "succeeded" and record["attempts"] == 1
            assert st.redis.llen("celery") == 0 and st.redis.llen("headswap.submit") == 0

            [line] = [json.loads(x) for x in st.logs().splitlines()
                      if x.startswith("{") and "Celery's default queue" in x]
            assert line["level"] == "WARNING"
            assert line["message_ids"] == [sent.id] and line["queue"] == "headswap.submit"
            assert "without queue=" in line["msg"] and "queue='headswap.submit'" in line["msg"]

            figures = stats(st.env)
            assert (figures["misrouted_waiting"], figures["misrouted_moved"]) == (0, 1)
        finally:
            backend.close()
            producer.close()
