"""What operators rely on: metrics from a running worker, the heartbeat probe, and a
SIGTERM mid-run that loses nothing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import requests

from tests.support.procs import free_port, wait_until
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack, wait_all_terminal

FACE = "https://cdn.example.com/face.jpg"


def job(n):
    return {"video_url": f"https://cdn.example.com/ops/{n}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p"}


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")) and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} {labels} not exposed")


def healthcheck(env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker.cli", "healthcheck", "--max-age", "30"],
                          env=env, capture_output=True, text=True, timeout=30)


def test_metrics_are_scraped_from_a_running_worker_and_the_heartbeat_tracks_its_life(
        redis_server, tmp_path):
    port = free_port()
    heartbeat = tmp_path / "heartbeat"
    env = {"HEADSWAP_METRICS_PORT": str(port), "HEADSWAP_HEARTBEAT_FILE": str(heartbeat)}
    with SandboxProcess.start(knobs=FAST_KNOBS) as sb, \
            running_stack(redis_server.url, sb, extra_env=env) as st:
        producer = producer_for(st)
        ids = [producer.submit(**job(i)) for i in range(5)]
        wait_all_terminal(producer, ids, timeout=30)

        def scrape() -> str:
            return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

        def all_notified() -> bool:
            text = scrape()
            try:
                done = metric(text, "headswap_job_duration_seconds_count", state="succeeded")
            except AssertionError:  # no job notified yet: the series does not exist
                return False
            return done == 5 and metric(text, "headswap_jobs_notify_pending") == 0

        # terminal first, notified a moment later (the outbox, then the latency metrics)
        wait_until(all_notified, 15, what="the jobs to be notified")
        text = scrape()
        assert metric(text, "headswap_akool_calls_total", operation="create", result="ok") == 5
        assert metric(text, "headswap_akool_calls_total", operation="task_detail",
                      result="ok") >= 5
        assert metric(text, "headswap_akool_call_seconds_count", operation="create") == 5
        assert metric(text, "headswap_job_transitions_total", state="succeeded") == 5
        assert metric(text, "headswap_pending_remote_tasks") == 0
        for state in ("queued", "submitting", "at_akool"):  # states only: sum() = unfinished
            assert metric(text, "headswap_jobs", state=state) == 0
        assert metric(text, "headswap_jobs_in_flight") == 0
        assert metric(text, "headswap_jobs_notify_pending") == 0
        assert metric(text, "headswap_credits_circuit_open") == 0
        assert metric(text, "headswap_akool_breaker_open") == 0
        assert metric(text, "headswap_store_lost") == 0
        assert metric(text, "headswap_build_info", component="worker") == 1
        # enqueue -> terminal once per job; Akool's answer -> signal for each polled job
        assert metric(text, "headswap_job_duration_seconds_count", state="succeeded") == 5
        assert metric(text, "headswap_completion_signal_delay_seconds_count",
                      source="poll") == 5
        assert metric(text, "headswap_completion_signal_delay_seconds_bucket",
                      source="poll", le="5.0") == 5  # signalled within seconds of the answer
        assert metric(text, "headswap_poll_lag_seconds_count") >= 5  # one per detail call
        assert re.search(r'headswap_queue_length\{queue="headswap.submit"\} \d', text)

        probe_env = {**st.env, "HEADSWAP_HEARTBEAT_FILE": str(heartbeat)}
        assert healthcheck(probe_env).returncode == 0
        st.workers[0].send_signal(signal.SIGTERM)
        st.workers[0].wait(30)
        assert not heartbeat.exists()
        failed = healthcheck(probe_env)
        assert failed.returncode == 1 and "no heartbeat" in failed.stdout
        producer.close()


def test_sigterm_mid_run_loses_nothing_and_creates_nothing_twice(redis_server):
    """In-flight tasks finish (Celery warm shutdown) or go back to the queue; a new worker
    takes the rest. Every job ends, each created at Akool once."""
    knobs = {**FAST_KNOBS, "processing_time": [0.5, 1.5], "latency": 0.05}
    with SandboxProcess.start(knobs=knobs) as sb, \
            running_stack(redis_server.url, sb, concurrency=8) as st:
        producer = producer_for(st)
        ids = [producer.submit(**job(f"term{i}")) for i in range(80)]
        wait_until(lambda: sum(producer.get(i)["state"] == "succeeded" for i in ids) >= 10, 60,
                   what="the run to be under way")
        first = st.workers[0]
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0  # a clean, warm shutdown
        states_at_stop = {producer.get(i)["state"] for i in ids}
        st.start_worker(name="w-after@%h")
        st.wait_ready()
        results = wait_all_terminal(producer, ids, timeout=90)
        stats = sb.stats()
        producer.close()
    print(f"\nstates when the worker stopped: {sorted(states_at_stop)}; "
          f"creates {stats['creates']}, duplicates {stats['duplicate_creates']}")
    # The stop really came mid-run: some jobs done, some still on their way.
    assert "succeeded" in states_at_stop and len(states_at_stop) > 1
    assert {r["state"] for r in results.values()} == {"succeeded"}
    assert stats["duplicate_creates"] == 0
    assert stats["creates"] == 80


def test_heartbeat_check_reports_age(tmp_path):
    from worker.health import check

    path = tmp_path / "hb"
    assert check(60, path) == (False, "no heartbeat file")
    path.write_text("x")
    ok, message = check(60, path)
    assert ok and message.startswith("heartbeat")
    old = time.time() - 120
    import os
    os.utime(path, (old, old))
    ok, message = check(60, path)
    assert not ok and "old" in message
