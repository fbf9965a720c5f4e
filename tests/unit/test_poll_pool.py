"""How the poll pool runs a batch (worker/poll_pool.py): at once within its bound, each
member once, a failure losing no other, the batch's context and task carried into the
threads."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from config import logs
from worker.poll_pool import PollPool


def test_a_batch_runs_at_once_within_the_bound():
    pool = PollPool(8)
    running, peak = [0], [0]
    lock = threading.Lock()

    def work(member):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1

    try:
        t = time.monotonic()
        pool.run_each(work, [f"m{i}" for i in range(16)])
        took = time.monotonic() - t
    finally:
        pool.close()
    assert peak[0] == 8  # never more than the bound
    assert 0.18 < took < 0.6  # two rounds of 0.1 s, not sixteen


def test_each_member_runs_once_and_a_failure_loses_no_other(caplog):
    pool = PollPool(4)
    seen = []
    lock = threading.Lock()

    def work(member):
        if member == "bad":
            raise RuntimeError("boom")
        with lock:
            seen.append(member)

    members = ["a", "bad", "b", "c", "d", "e"]
    try:
        pool.run_each(work, members)
    finally:
        pool.close()
    assert sorted(seen) == ["a", "b", "c", "d", "e"]
    failed = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert len(failed) == 1 and failed[0].member == "bad" and failed[0].exc_info


@pytest.mark.parametrize("size", [1, 4])
def test_the_pool_threads_see_the_batch_threads_context_and_task(size):
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")
    marker.set("batch")
    token = logs._working_for.set({"task_name": "headswap.poll_batch", "task_id": "t-1"})
    pool = PollPool(size)
    seen = []

    def work(member):
        seen.append((marker.get(), logs.task_fields().get("task_name"),
                     threading.current_thread().name.startswith("poll") or size == 1))

    try:
        pool.run_each(work, ["a", "b", "c"])
    finally:
        pool.close()
        logs._working_for.reset(token)
    assert seen == [("batch", "headswap.poll_batch", True)] * 3
