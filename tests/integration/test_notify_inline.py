"""Finding 1 of docs/BENCHMARKS.md, as behaviour: a job the poller finishes is notified
inline, in the worker that polled it, without a ``headswap.notify`` task."""

from __future__ import annotations

import pytest

from config.celery import NOTIFY_QUEUE, POLL_QUEUE, STORE_QUEUE, SUBMIT_QUEUE
from tests.support.procs import wait_until
from tests.support.stack import producer_for, running_stack

pytestmark = pytest.mark.integration

JOB = {"video_url": "https://cdn.example.com/inline.mp4?duration=4", "resolution": "720p",
       "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}]}


def test_a_polled_job_fires_its_signal_in_the_worker_without_a_notify_task(
        redis_server, sandbox):
    # Given a worker that does not consume headswap.notify (a notify task would stay
    # queued where the test can see it) and beat polling
    with running_stack(redis_server.url, sandbox, workers=0) as st:
        st.start_worker(queues=f"{SUBMIT_QUEUE},{POLL_QUEUE},{STORE_QUEUE}")  # no notify queue
        st.wait_ready()
        producer = producer_for(st)
        # When a job runs to its end by polling
        job_id = producer.submit(**JOB)
        assert producer.wait(job_id, timeout=30)["state"] == "succeeded"
        # Then the worker fired job_succeeded itself, and no notify task was sent
        wanted = {"signal": "job_succeeded", "job_id": job_id, "state": "succeeded"}
        wait_until(lambda: any(wanted.items() <= s.items() for s in st.recorded_signals()),
                   10, what="job_succeeded")
        assert st.redis.llen(NOTIFY_QUEUE) == 0
        producer.close()
