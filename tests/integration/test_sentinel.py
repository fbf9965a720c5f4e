"""Redis behind Sentinel, and a failover mid-load (issue 12, Deliver 5).

Before: ``sentinel://`` was refused, and with asynchronous replication a failover could
lose the acknowledged ``queued -> submitting`` lock, so a job would look queued again and
be created twice. Now broker (kombu's Sentinel transport, our screening channel) and
store (redis-py's ``Sentinel.master_for``) take one URL form, and the lock waits for one
replica (``WAIT``) before the create. Real processes: a master, a replica and three
sentinels (all ``redis-server``), `headswap worker` and `headswap beat`, the sandbox.
"""

from __future__ import annotations

import pytest

from config.settings import load_settings
from tests.integration.test_commands import HEADSWAP, cli_env, json_lines
from tests.support.procs import spawn, stop, wait_until
from worker.devstack.sentinel import start_sentinel_group
from worker.producer import Producer

pytestmark = pytest.mark.integration

JOBS = 40


def job(n: int) -> dict:
    return {"video_url": "https://cdn.example.com/sentinel.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
            "resolution": "720p", "metadata": {"n": n}}


def test_a_master_killed_mid_load_loses_no_job_and_creates_none_twice(sandbox, tmp_path):
    group = start_sentinel_group()
    # A failover loses the writes the replica had not yet received — a submit message
    # among them: the job's record is on the wake-up schedule and re-sent after 5 s.
    env = cli_env(group.url(), sandbox, HEADSWAP_REDIS_MIN_REPLICAS="1",
                  HEADSWAP_REDIS_REPLICA_WAIT_MS="500", HEADSWAP_RESEND_AFTER_SECONDS="5")
    sandbox.config(processing_time=1.0, analysis_time=0.0, latency=0.1)
    producer = Producer(load_settings(env))
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                 log=tmp_path / "beat.log")
    worker = spawn([HEADSWAP, "worker", "-c", "4", "-n", "sentinel@%h"], env=env,
                   log=tmp_path / "worker.log")
    try:
        ids = [producer.submit(**job(n)) for n in range(JOBS)]
        wait_until(lambda: sandbox.stats()["creates"] >= 10, 60, what="creates under way")
        old = group.kill_master()
        group.wait_failover(old)
        group.restart_killed()  # back as a replica: WAIT can be satisfied again
        final = {j: producer.wait(j, timeout=120) for j in ids}
    finally:
        producer.close()
        stop(worker)
        stop(beat)
        group.stop()
    states = [r["state"] for r in final.values()]
    assert states.count("succeeded") == JOBS, states
    assert sandbox.stats()["duplicate_job_creates"] == 0
    assert worker.returncode is not None  # stopped by us, not before
    said = " ".join(x["msg"] for x in json_lines(tmp_path / "worker.log"))
    assert "Unrecoverable error" not in said
