"""Operator actions against a real Redis: refusals are explicit, nothing half-done."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from headswap_client import states

from config.settings import load_settings
from worker import ops
from worker.errors import TransitionRefused
from worker.jobs import job_fingerprint, record_fields
from worker.runtime import Runtime

JOB = {"video_url": "https://e.com/v.mp4", "mappings": [{"obj_id": 0, "img_url": "https://e.com/f"}],
       "model_name": "akool-premium", "resolution": "720p", "keep_original_sound": True}


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, name, kwargs=None, args=(), queue=None):
        self.sent.append((name, dict(kwargs or {})))


@pytest.fixture
def rt(redis_client, redis_server):
    recorder = Recorder()
    runtime = Runtime(load_settings({"HEADSWAP_REDIS_URL": redis_server.url}), recorder)
    runtime.sent = recorder.sent
    return runtime


def enqueue(rt, job_id):
    fields = record_fields(JOB)
    rt.store.create(job_id, fields, fingerprint=job_fingerprint(fields))


def test_requeue_resends_a_queued_job(rt):
    enqueue(rt, "j1")
    assert "re-sent" in ops.requeue(rt, "j1")
    assert rt.sent == [("headswap.submit", {**{k: v for k, v in JOB.items()}, "job_id": "j1",
                                            "producer": "default"})]


def test_requeue_of_a_submitting_job_needs_force_and_then_clears_ambiguity(rt):
    enqueue(rt, "j1")
    rt.store.transition("j1", states.SUBMITTING)
    rt.jobs.mark_ambiguous("j1", {"error": "test"})
    with pytest.raises(TransitionRefused):
        ops.requeue(rt, "j1")
    assert rt.store.get("j1")["state"] == states.SUBMITTING and rt.sent == []
    ops.requeue(rt, "j1", force=True)
    assert rt.store.get("j1")["state"] == states.QUEUED
    assert rt.store.claim_due("ambiguous", 0, 10, lag=-10_000) == []
    assert len(rt.sent) == 1


def test_a_terminal_job_cannot_be_requeued_or_failed(rt):
    enqueue(rt, "j1")
    rt.store.transition("j1", states.CANCELLED)
    with pytest.raises(TransitionRefused):
        ops.requeue(rt, "j1")
    with pytest.raises(TransitionRefused):
        ops.fail(rt, "j1", "stuck")
    assert rt.store.get("j1")["state"] == states.CANCELLED


def test_fail_by_hand_records_the_reason_and_notifies(rt):
    enqueue(rt, "j1")
    rt.store.transition("j1", states.SUBMITTING)
    ops.fail(rt, "j1", "Akool support confirmed no task")
    record = rt.store.get("j1")
    assert record["state"] == states.FAILED and record["reason"] == "operator"
    assert record["error"]["message"] == "Akool support confirmed no task"
    assert record["notified_at"] > 0  # notified at once, in this thread


def test_stats_counts_schedules_and_recent_failures(rt):
    for i in range(3):
        enqueue(rt, f"j{i}")
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


def test_a_known_analysis_that_fell_off_the_schedule_is_put_back(rt, redis_client):
    from worker import analysis

    url = JOB["video_url"]
    redis_client.hset(rt.store.keys.analysis(url),
                      mapping={"status": "pending", "analysis_id": "a" * 24, "video_url": url,
                               "started_at": "1"})
    record = {"job_id": "j1", "request": JOB}
    assert analysis.gate(rt, record).waiting
    member = rt.store.keys.analysis_member(url)
    assert redis_client.zscore(rt.store.keys.schedule("poll"), member) is not None
