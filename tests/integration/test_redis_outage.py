"""A worker through a Redis outage, as its pod's probes see it (issue 12, Deliver 6 and 8).

Before: Redis away for longer than the probe's max age made every worker's heartbeat file
stale (Celery's heartbeats need the broker): liveness would restart every pod during a
Redis incident. And kombu 5.7 could end the worker on the reconnect itself
(``AttributeError: 'NoneType' object has no attribute 'hostname'``). Real redis-server
stopped and restarted on its port, `headswap worker` and `headswap healthcheck` as the
Kubernetes manifests run them, the sandbox over HTTP.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from config.settings import load_settings
from tests.integration.test_commands import HEADSWAP, JOB, cli_env, json_lines, started_worker
from tests.support.procs import ROOT, spawn, stop
from worker.devstack.redis_server import start_redis
from worker.producer import Producer
from worker.store import redis_client

pytestmark = pytest.mark.integration

MAX_AGE = "20"  # the probe's --max-age here; the outage lasts longer than it
OUTAGE_SECONDS = 24


def probe(env, *extra: str) -> bool:
    done = subprocess.run([HEADSWAP, "healthcheck", "--max-age", MAX_AGE, *extra], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    return done.returncode == 0


def test_liveness_holds_and_the_worker_lives_through_a_redis_outage(sandbox, tmp_path):
    server = start_redis(appendonly=True)
    env = cli_env(server.url, sandbox, HEADSWAP_HEARTBEAT_FILE=str(tmp_path / "heartbeat"))
    client = redis_client(load_settings(env))
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                 log=tmp_path / "beat.log")
    worker = started_worker("outage", env, tmp_path / "worker.log", client, "-c", "2")
    producer = Producer(load_settings(env))
    try:
        assert probe(env) and probe(env, "--ready")
        server.stop()
        alive, ready = [], []
        ends = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < ends:
            alive.append(probe(env))
            ready.append(probe(env, "--ready"))
            assert worker.poll() is None, "the worker exited during the outage"
            time.sleep(1)
        server = start_redis(server.port, appendonly=True, directory=server.directory)
        assert all(alive), f"liveness failed {alive.count(False)} of {len(alive)} probes"
        assert not ready[-1], "readiness passed while Redis was away"
        job_id = producer.submit(**JOB)
        assert producer.wait(job_id, timeout=60)["state"] == "succeeded"
        assert worker.poll() is None
        assert probe(env, "--ready")
    finally:
        producer.close()
        client.close()
        stop(worker)
        stop(beat)
        server.stop()
    said = [x["msg"] for x in json_lines(tmp_path / "worker.log")]
    assert "waiting for Redis: alive (liveness), not ready" in said


def test_a_silent_beat_is_an_error_in_every_worker_log(redis_server, sandbox, tmp_path):
    """Issue 12: beat stopped 10 minutes, the pipeline stood still and nothing raised an
    alarm. A worker now logs it at ERROR once the poll tick is missing for longer than
    HEADSWAP_BEAT_SILENCE_SECONDS, and says when it ticks again."""
    from tests.support.stack import fresh_db_url
    from worker.devstack.procs import wait_until

    env = cli_env(fresh_db_url(redis_server.url), sandbox, HEADSWAP_BEAT_SILENCE_SECONDS="6")
    client = redis_client(load_settings(env))
    worker = started_worker("nobeat", env, tmp_path / "worker.log", client, "-c", "1")
    beat = None

    def said(level: str, start: str) -> bool:
        return any(x["level"] == level and x["msg"].startswith(start)
                   for x in json_lines(tmp_path / "worker.log"))
    try:
        wait_until(lambda: said("ERROR", "beat is silent"), 30, what="the silence alarm")
        beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                     log=tmp_path / "beat.log")
        wait_until(lambda: said("WARNING", "beat ticks again"), 30, what="the all-clear")
        silences = sum(x["msg"].startswith("beat is silent")
                       for x in json_lines(tmp_path / "worker.log"))
        assert silences == 1  # said once per silence, not at every look
    finally:
        stop(worker)
        if beat is not None:
            stop(beat)
        client.close()
