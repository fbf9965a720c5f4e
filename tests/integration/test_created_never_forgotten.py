"""A task Akool created is never forgotten (issue 12, Deliver 1).

Before: with Redis down, the worker retried recording a created task's id for 60 s, then
dropped it; the job ended "worker lost mid-create" although Akool had created (and
charged) it. Now the ids are spooled to a local file and logged at ERROR at once, the
write is retried for as long as the worker runs, and a worker that stops hands the
spool to the next one. Real redis-server (append-only, stopped and restarted on its
port), `headswap worker` / `headswap beat` processes, the sandbox over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from headswap_client import states

from config.settings import load_settings
from tests.integration.test_commands import HEADSWAP, cli_env, json_lines, started_worker
from tests.support.dispatch import RecordingDispatcher
from tests.support.procs import spawn, stop, wait_until
from tests.support.stack import fresh_db_url
from worker.devstack.redis_server import LocalRedis, start_redis
from worker.devstack.sandbox import SandboxProcess
from worker.jobs import job_fingerprint, record_fields
from worker.producer import Producer
from worker.runtime import Runtime
from worker.store import redis_client
from worker.submission import apply_spool

pytestmark = pytest.mark.integration

JOB = {"video_url": "https://cdn.example.com/spool.mp4?duration=4", "resolution": "720p",
       "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}]}


@pytest.fixture
def slow_sandbox():
    """Creates take 2 s: time to take Redis away while one is in flight."""
    with SandboxProcess.start(knobs={"processing_time": 1.0, "analysis_time": 0.0,
                                     "latency": 0.0}) as sb:
        yield sb


def restarted(server: LocalRedis) -> LocalRedis:
    """The same server again: same port, same append-only file."""
    return start_redis(server.port, appendonly=True, directory=server.directory)


def take_redis_away_mid_create(env, client, sandbox, producer) -> str:
    """Submit one job and stop Redis while its create is at Akool (2 s latency on create
    only would be ideal; the sandbox's latency knob is global, so it is set once the
    analysis is done)."""
    job_id = producer.submit(**JOB)
    wait_until(lambda: (producer.get(job_id) or {}).get("state") in (
        states.QUEUED, states.SUBMITTING), 20, what="the job to be stored")
    sandbox.config(latency=2.0)
    wait_until(lambda: (producer.get(job_id) or {}).get("state") == states.SUBMITTING, 30,
               interval=0.02, what="the create to be in flight")
    return job_id


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def errors_naming(log: Path, job_id: str) -> list[dict]:
    return [x for x in json_lines(log) if x["level"] == "ERROR" and x.get("job_id") == job_id]


def test_a_task_created_while_redis_is_down_is_recorded_when_it_returns(slow_sandbox,
                                                                        tmp_path):
    server = start_redis(appendonly=True)
    spool = tmp_path / "spool"
    env = cli_env(server.url, slow_sandbox, HEADSWAP_SPOOL_DIR=str(spool))
    client = redis_client(load_settings(env))
    producer = Producer(load_settings(env))
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                 log=tmp_path / "beat.log")
    worker = started_worker("spool1", env, tmp_path / "worker.log", client, "-c", "2")
    try:
        job_id = take_redis_away_mid_create(env, client, slow_sandbox, producer)
        server.stop()
        # Akool answers the create; Redis does not take it: spooled and said at once.
        wait_until(lambda: bool(errors_naming(tmp_path / "worker.log", job_id)), 20,
                   what="the ERROR line naming the created task")
        [said] = errors_naming(tmp_path / "worker.log", job_id)
        assert said["remote_id"] and said["spooled"] is True
        [entry] = spool_files(spool)
        assert json.loads(entry.read_text())["remote_id"] == said["remote_id"]
        time.sleep(6)  # longer than one retry pause: the worker keeps trying, and lives
        assert worker.poll() is None
        slow_sandbox.config(latency=0.0)
        server = restarted(server)
        final = producer.wait(job_id, timeout=60)
        assert final["state"] == states.SUCCEEDED
        assert final["remote_id"] == said["remote_id"]
        assert spool_files(spool) == []
        assert slow_sandbox.stats()["creates"] == 1
        # kombu 5.7 once ended the worker on this reconnect (a task in flight, its message
        # unacked): "Unrecoverable error: AttributeError(... 'hostname')".
        assert worker.poll() is None
        assert "Unrecoverable error" not in (tmp_path / "worker.log").read_text()
    finally:
        producer.close()
        client.close()
        stop(worker)
        stop(beat)
        server.stop()


def test_a_worker_stopped_during_the_outage_hands_the_task_to_the_next(slow_sandbox,
                                                                       tmp_path):
    server = start_redis(appendonly=True)
    spool = tmp_path / "spool"
    env = cli_env(server.url, slow_sandbox, HEADSWAP_SPOOL_DIR=str(spool))
    client = redis_client(load_settings(env))
    producer = Producer(load_settings(env))
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                 log=tmp_path / "beat.log")
    first = started_worker("spool2a", env, tmp_path / "first.log", client, "-c", "2")
    second = None
    try:
        job_id = take_redis_away_mid_create(env, client, slow_sandbox, producer)
        server.stop()
        wait_until(lambda: bool(spool_files(spool)), 20, what="the create to be spooled")
        remote_id = json.loads(spool_files(spool)[0].read_text())["remote_id"]
        os.kill(first.pid, signal.SIGTERM)  # a rollout during the outage
        first.wait(30)
        said = [x["msg"] for x in json_lines(tmp_path / "first.log")
                if x.get("job_id") == job_id]
        assert any("spool keeps it" in m for m in said)
        assert spool_files(spool)  # left for the next worker
        slow_sandbox.config(latency=0.0)
        server = restarted(server)
        second = started_worker("spool2b", env, tmp_path / "second.log", client, "-c", "2")
        final = producer.wait(job_id, timeout=60)
        assert final["state"] == states.SUCCEEDED and final["remote_id"] == remote_id
        assert spool_files(spool) == []
        assert slow_sandbox.stats()["creates"] == 1
    finally:
        producer.close()
        client.close()
        stop(first)
        if second is not None:
            stop(second)
        stop(beat)
        server.stop()


def test_a_spooled_task_whose_job_already_failed_is_revived_or_alerted(redis_server,
                                                                       tmp_path):
    """The spool was applied after the job had failed. Failed as lost mid-create
    (``ambiguous_submission``): its task exists after all, so the job is followed again to
    its real end. Failed for another reason (an operator's): Akool charged a task nobody
    follows — named on the record, alerted in the stream (``paid_but_failed``), counted."""
    from headswap_client.keys import Keys

    settings = load_settings({"HEADSWAP_REDIS_URL": fresh_db_url(redis_server.url),
                              "HEADSWAP_SPOOL_DIR": str(tmp_path / "spool")})
    rt = Runtime(settings, RecordingDispatcher())
    fields = record_fields(JOB)
    for job_id, reason in (("amb-1", "ambiguous_submission"), ("op-1", "operator")):
        rt.store.create(job_id, fields, fingerprint=job_fingerprint(fields))
        rt.jobs.claim_for_submit(job_id, 1, 0)
        assert rt.jobs.fail(job_id, reason, maybe_charged=reason != "operator")
    rt.spool.put("amb-1", "a" * 24, 1, 4.0, time.time())
    rt.spool.put("op-1", "o" * 24, 1, 4.0, time.time())
    assert apply_spool(rt) == 2
    revived = rt.store.get("amb-1")
    assert revived["state"] == states.SUBMITTED and revived["remote_id"] == "a" * 24
    assert "reason" not in revived and "maybe_charged" not in revived
    assert rt.store.job_for_remote("a" * 24) == "amb-1"
    paid = rt.store.get("op-1")
    assert paid["state"] == states.FAILED and paid["unbound_remote_id"] == "o" * 24
    client = redis_client(settings)
    alerts = [f for _, f in client.xrange(Keys(settings.key_prefix).events)
              if f.get("alert") == "paid_but_failed"]
    client.close()
    assert alerts == [{"alert": "paid_but_failed", "job_id": "op-1", "remote_id": "o" * 24,
                       "state": "failed"}]
    assert rt.spool.entries() == []
    assert apply_spool(rt) == 0  # applied once: nothing left, nothing alerted twice
