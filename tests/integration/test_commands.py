"""The commands the README and deploy/ run, run for real: ``headswap worker`` and
``headswap beat`` (the console script) with Celery's own options passed through, and the
project's logging in the Celery processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from headswap_client.keys import Keys

from config.settings import load_settings
from tests.support.procs import ROOT, VENV_BIN, spawn, stop, wait_until
from tests.support.stack import FAST, fresh_db_url
from worker.devstack.stack import sandbox_env
from worker.producer import Producer
from worker.store import presence, redis_client

pytestmark = pytest.mark.integration

HEADSWAP = str(VENV_BIN / "headswap")
JOB = {"video_url": "https://cdn.example.com/cli.mp4?duration=4", "resolution": "720p",
       "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}]}


def cli_env(redis_url: str, sandbox, **extra: str) -> dict[str, str]:
    """What the commands below see: the fast test timings, the sandbox, JSON logs, and a
    spool and heartbeat file of their own (the /tmp defaults are shared machine-wide)."""
    own = Path(tempfile.mkdtemp(prefix="headswap-cli-"))
    return {**FAST, **sandbox_env(sandbox), "HEADSWAP_REDIS_URL": redis_url,
            "HEADSWAP_LOG_FORMAT": "json", "HEADSWAP_SPOOL_DIR": str(own / "spool"),
            "HEADSWAP_HEARTBEAT_FILE": str(own / "heartbeat"),
            "HEADSWAP_STORAGE_URL": (own / "outputs").as_uri(),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


def started_worker(name: str, env: dict[str, str], log: Path, client, *options: str):
    """``headswap worker -n <name>@%h``, once its presence record says it consumes."""
    worker = spawn([HEADSWAP, "worker", "-n", f"{name}@%h", *options], env=env, log=log)
    hostname = f"{name}@{socket.gethostname()}"
    try:
        wait_until(lambda: presence.record_of(client, "headswap", hostname) is not None, 30,
                   what=f"worker {name} to start")
    except BaseException:
        stop(worker)
        raise
    return worker


def json_lines(log: Path) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:  # the line the process is writing as we read
                continue
    return out


def headswap_output(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([HEADSWAP, *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_headswap_worker_and_beat_pass_celery_options_through_and_log_at_info(
        redis_server, sandbox, tmp_path):
    # Given a worker started as the README says, with Celery options of every kind, and
    # a beat whose Celery options come after "--"
    env = cli_env(fresh_db_url(redis_server.url), sandbox, HEADSWAP_LOG_LEVEL="INFO")
    pidfile = tmp_path / "beat.pid"
    worker = spawn([HEADSWAP, "worker", "-c", "2", "--include", "tests.support.signal_recorder",
                    "-l", "INFO", "-n", "cli@%h", "--prefetch-multiplier", "1", "-O", "fair"],
                   env=env, log=tmp_path / "worker.log")
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule"), "--", "--pidfile",
                  str(pidfile)], env=env, log=tmp_path / "beat.log")
    settings = load_settings(env)
    client = redis_client(settings)
    producer = Producer(settings)
    try:
        hostname = f"cli@{socket.gethostname()}"

        def named_worker_ready() -> bool:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            record = presence.record_of(client, settings.key_prefix, hostname)
            return bool(record and record["pid"] == worker.pid)

        wait_until(named_worker_ready, 30, what="the worker named by -n to consume")

        # When a job runs through it
        job_id = producer.submit(**JOB)
        assert producer.wait(job_id, timeout=30)["state"] == "succeeded"

        # Then --include loaded the receivers, the beat got its --pidfile, and the worker
        # logged the job at INFO through the project's JSON logging
        succeeded = {"signal": "job_succeeded", "job_id": job_id, "state": "succeeded"}
        recorded = lambda: [json.loads(x) for x in client.lrange("test:signals", 0, -1)]  # noqa: E731
        wait_until(lambda: any(succeeded.items() <= s.items() for s in recorded()), 10,
                   what="job_succeeded seen by --include")
        assert pidfile.exists()
        assert any(x["level"] == "INFO" and x["msg"] == "akool task created"
                   and x.get("job_id") == job_id for x in json_lines(tmp_path / "worker.log"))
    finally:
        producer.close()
        stop(worker)
        stop(beat)
    # And a worker that shut down withdrew its presence record
    assert presence.record_of(client, settings.key_prefix, hostname) is None
    client.close()


def test_a_worker_refuses_an_evicting_redis_and_says_what_can_lose_jobs(sandbox, tmp_path):
    """An evicting maxmemory-policy once made 200 of 600 jobs vanish with nothing logged
    (issue 12): `headswap worker` now refuses to start on one, unless told to run anyway
    (then it says so at ERROR), and `headswap stats` shows the risks."""
    from worker.devstack.redis_server import start_redis

    server = start_redis(extra_args=["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"])
    env = cli_env(server.url, sandbox)
    client = redis_client(load_settings(env))
    worker = None
    try:
        refused = subprocess.run([HEADSWAP, "worker", "-c", "1"], env={**os.environ, **env},
                                 cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        assert "refused: maxmemory-policy is allkeys-lru" in refused.stderr
        assert "HEADSWAP_ALLOW_EVICTION" in refused.stderr
        env = {**env, "HEADSWAP_ALLOW_EVICTION": "true"}
        worker = started_worker("risk", env, tmp_path / "worker.log", client, "-c", "1")
        said = {(x["level"], x["msg"]): x for x in json_lines(tmp_path / "worker.log")}
        evict = said[("ERROR", "redis can evict jobs")]
        assert "allkeys-lru" in evict["risk"] and evict["allowed"] is True
        assert "appendonly" in said[("WARNING", "redis does not persist jobs")]["risk"]
        stats = json.loads(headswap_output(env, "stats", "--json"))
        assert set(stats["redis_risks"]) == {"eviction", "persistence"}
        assert stats["redis_evicted_keys"] == 0
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("appendonly", "yes")
        wait_until(lambda: json.loads(headswap_output(env, "stats", "--json"))[
            "redis_risks"] == {}, 20, what="the risks to clear once Redis is configured")
    finally:
        if worker is not None:
            stop(worker)
        client.close()
        server.stop()


def test_a_redis_that_lost_its_data_holds_creates_until_an_operator_acks(
        redis_server, sandbox, tmp_path):
    """Redis restarted without persistence once left 'a healthy empty system' in
    `headswap stats` and not one log line, and producers re-sending with the same
    idempotency keys created (and paid for) 24 tasks twice (issue 12). Now each worker
    says it (within a watchdog round, 2 s), holds every create, fails readiness and
    streams an alert, until `headswap store-lost --ack`."""
    env = cli_env(fresh_db_url(redis_server.url), sandbox,
                  HEADSWAP_HEARTBEAT_FILE=str(tmp_path / "heartbeat"))
    client = redis_client(load_settings(env))
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                 log=tmp_path / "beat.log")
    producer = Producer(load_settings(env))
    worker = None
    try:
        worker = started_worker("epoch", env, tmp_path / "worker.log", client, "-c", "1")
        before = json.loads(headswap_output(env, "stats", "--json"))["redis_data_since"]
        assert headswap_output(env, "store-lost").strip() == "creates are not held"
        client.flushdb()  # what a restart without persistence leaves

        def lost() -> list[dict]:
            return [x for x in json_lines(tmp_path / "worker.log")
                    if x["msg"].startswith("redis lost its data")]
        wait_until(lambda: bool(lost()), 40, what="the worker to notice the loss")
        [said] = lost()
        assert said["level"] == "ERROR" and said["previous_data_since"] == before
        stats = json.loads(headswap_output(env, "stats", "--json"))
        assert stats["redis_data_since"] > before and "epoch changed" in stats["store_lost"]
        alerts = [f for _, f in client.xrange(Keys("headswap").events)
                  if f.get("alert") == "store_lost"]
        assert len(alerts) == 1
        job_id = producer.submit(**JOB)  # a producer re-sending after the loss
        creates = sandbox.stats()["creates"]
        wait_until(lambda: subprocess.run(
            [HEADSWAP, "healthcheck", "--ready"], env={**os.environ, **env}, cwd=ROOT,
            capture_output=True).returncode == 1, 20, what="readiness to fail")
        time.sleep(3)
        assert producer.get(job_id)["state"] == "queued"
        assert sandbox.stats()["creates"] == creates  # held: nothing sent to Akool
        assert "creates resume" in headswap_output(env, "store-lost", "--ack")
        assert producer.wait(job_id, timeout=40)["state"] == "succeeded"
        wait_until(lambda: subprocess.run(
            [HEADSWAP, "healthcheck", "--ready"], env={**os.environ, **env}, cwd=ROOT,
            capture_output=True).returncode == 0, 20, what="readiness to pass again")
    finally:
        producer.close()
        if worker is not None:
            stop(worker)
        stop(beat)
        client.close()


def test_credentials_in_job_urls_show_nowhere_but_in_the_record(redis_server, sandbox,
                                                                 tmp_path):
    """Issue 11: a ``callback_url`` with ``user:password@`` appeared 192 times in the logs,
    in Celery's task events (Flower) and in `headswap status`; presigned query strings
    likewise. A run whose video, face and callback URLs all carry credentials — one job
    from our Producer, one from a backend's own Celery app (Celery's default, unredacted
    ``argsrepr``) — now shows none of them in the worker's and beat's logs, the task
    events, the event stream or the CLI; the record keeps them (the callback got its
    basic-auth credentials)."""
    from celery import Celery

    from tests.support.receiver import Receiver

    receiver = Receiver()
    env = cli_env(fresh_db_url(redis_server.url), sandbox, HEADSWAP_LOG_LEVEL="INFO",
                  HEADSWAP_CALLBACK_SECRETS="whsec_" + "Y2Itc2lnbmluZy1rZXktMQ" * 2,
                  HEADSWAP_CALLBACK_ALLOWED_NETWORKS="127.0.0.0/8",
                  HEADSWAP_TASK_EVENTS="true")  # off by default: Flower's view is checked too
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                 log=tmp_path / "beat.log")
    events = spawn([str(VENV_BIN / "celery"), "-A", "worker.app", "events", "--dump"],
                   env=env, log=tmp_path / "events.log")
    settings = load_settings(env)
    client = redis_client(settings)
    producer = Producer(settings)
    backend = Celery("backend", broker=settings.redis_url)
    host = receiver.base.removeprefix("http://")
    secret_job = {
        "video_url": "https://cdn.example.com/v.mp4?duration=4&X-Amz-Signature=sig-SECRET-1",
        "mappings": [{"obj_id": 0, "img_url": "https://u:pw-SECRET-2@cdn.example.com/f.jpg"}],
        "resolution": "720p",
        "callback_url": f"http://cb:pw-SECRET-3@{host}/cb?token=tok-SECRET-4"}
    worker = None
    try:
        worker = started_worker("redact", env, tmp_path / "worker.log", client, "-c", "2")
        ours = producer.submit(**secret_job)
        backend.send_task("headswap.submit", kwargs={**secret_job, "job_id": "from-backend"},
                          queue="headswap.submit")
        for job_id in (ours, "from-backend"):
            assert producer.wait(job_id, timeout=30)["state"] == "succeeded"
        wait_until(lambda: len(receiver.requests) >= 2, 20, what="both callbacks")
        status = headswap_output(env, "status", ours)
        stream = json.dumps(client.xrange(Keys(settings.key_prefix).events))
        record = producer.get(ours)
    finally:
        producer.close()
        backend.close()
        if worker is not None:
            stop(worker)
        stop(beat)
        stop(events)
        client.close()
        receiver.close()
    assert record["callback_url"] == secret_job["callback_url"]  # the record keeps it
    assert all(r["headers"].get("Authorization", "").startswith("Basic ")
               for r in receiver.requests)
    shown = {
        "worker log": (tmp_path / "worker.log").read_text(),
        "beat log": (tmp_path / "beat.log").read_text(),
        "task events": (tmp_path / "events.log").read_text(),
        "headswap status": status,
        "event stream": stream,
    }
    # Each place did show these jobs (a test that finds nothing proves nothing)...
    assert ours in shown["worker log"] and "from-backend" in shown["worker log"]
    assert "received" in shown["worker log"]
    assert "headswap.submit" in shown["task events"] and "cdn.example.com" in shown[
        "task events"]
    assert ours in shown["event stream"] and ours in shown["headswap status"]
    # ...and none of their credentials.
    leaks = {where: text.count("SECRET") for where, text in shown.items() if "SECRET" in text}
    assert leaks == {}
    assert "***@cdn.example.com" in shown["headswap status"]
