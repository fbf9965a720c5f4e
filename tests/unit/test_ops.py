"""Operator actions against a real Redis: refusals are explicit, nothing half-done."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from config.settings import load_settings
from worker import ops, states
from worker.errors import TransitionRefused
from worker.runtime import Runtime
from worker.submission import record_fields

JOB = {"video_url": "https://e.com/v.mp4", "mappings": [{"obj_id": 0, "img_url": "https://e.com/f"}],
       "model_name": "akool-premium", "resolution": "720p", "keep_original_sound": True}


@pytest.fixture
def rt(redis_client, redis_server):
    sent = []
    runtime = Runtime(load_settings({"HEADSWAP_REDIS_URL": redis_server.url}),
                      dispatch=lambda name, kwargs, queue=None: sent.append((name, dict(kwargs))))
    runtime.sent = sent
    return runtime


def test_requeue_resends_a_queued_job(rt):
    rt.store.create("j1", record_fields(JOB))
    assert "re-sent" in ops.requeue(rt, "j1")
    assert rt.sent == [("headswap.submit", {**{k: v for k, v in JOB.items()}, "job_id": "j1"})]


def test_requeue_of_a_submitting_job_needs_force_and_then_clears_ambiguity(rt):
    rt.store.create("j1", record_fields(JOB))
    rt.store.transition("j1", states.SUBMITTING)
    rt.redis.zadd(rt.store.ambiguous_key, {"j1": 1})
    with pytest.raises(TransitionRefused):
        ops.requeue(rt, "j1")
    assert rt.store.get("j1")["state"] == states.SUBMITTING and rt.sent == []
    ops.requeue(rt, "j1", force=True)
    assert rt.store.get("j1")["state"] == states.QUEUED
    assert rt.redis.zscore(rt.store.ambiguous_key, "j1") is None
    assert len(rt.sent) == 1


def test_a_terminal_job_cannot_be_requeued_or_failed(rt):
    rt.store.create("j1", record_fields(JOB))
    rt.store.transition("j1", states.CANCELLED)
    with pytest.raises(TransitionRefused):
        ops.requeue(rt, "j1")
    with pytest.raises(TransitionRefused):
        ops.fail(rt, "j1", "stuck")
    assert rt.store.get("j1")["state"] == states.CANCELLED


def test_fail_by_hand_records_the_reason_and_notifies(rt):
    rt.store.create("j1", record_fields(JOB))
    rt.store.transition("j1", states.SUBMITTING)
    ops.fail(rt, "j1", "Akool support confirmed no task")
    record = rt.store.get("j1")
    assert record["state"] == states.FAILED and record["reason"] == "operator"
    assert record["error"]["message"] == "Akool support confirmed no task"
    assert record["notified_at"] > 0  # notified at once, in this thread


def test_stats_counts_schedules_and_recent_failures(rt):
    for i in range(3):
        rt.store.create(f"j{i}", record_fields(JOB))
    rt.store.transition("j0", states.SUBMITTING)
    ops.fail(rt, "j1", "x")
    figures = ops.stats(rt, window=60)
    assert figures["queued"] == 1  # j2 (j1 left the wake-up schedule when it failed)
    assert figures["submitting"] == 1 and figures["in_flight"] == 1
    assert figures["failed_by_reason"] == {"operator": 1}
    assert figures["queues"]["headswap.submit"] == 0


def test_stats_command_prints_json(redis_server, redis_client):
    out = subprocess.run([sys.executable, "-m", "worker.cli", "stats", "--json"],
                         env={"HEADSWAP_REDIS_URL": redis_server.url, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert set(json.loads(out)) >= {"queues", "queued", "in_flight", "failed_by_reason"}


def test_an_analysis_claimed_by_a_worker_that_died_is_started_again(rt):
    """A claim without an Akool id, older than a call can take, is released by the gate."""
    import time as _time

    from worker import analysis

    url = JOB["video_url"]
    rt.redis.hset(rt.store.analysis_key(url),
                  mapping={"status": "pending", "started_at": repr(_time.time() - 3600)})
    analysis._repair_pending(rt, url, rt.redis.hgetall(rt.store.analysis_key(url)))
    assert rt.redis.exists(rt.store.analysis_key(url)) == 0


def test_a_known_analysis_that_fell_off_the_schedule_is_put_back(rt):
    from worker import analysis

    url = JOB["video_url"]
    key = rt.store.analysis_key(url)
    rt.redis.hset(key, mapping={"status": "pending", "analysis_id": "a" * 24})
    analysis._repair_pending(rt, url, rt.redis.hgetall(key))
    member = analysis.MEMBER_PREFIX + key.rsplit(":", 1)[1]
    assert rt.redis.zscore(rt.store.poll_key, member) is not None
