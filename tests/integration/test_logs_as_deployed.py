"""Logs as deployed (issue 13): ``headswap worker``, ``headswap beat`` and ``headswap
webhook`` run with the command lines and the log settings of ``deploy/`` (the Kubernetes
manifests; compose runs the same), and every process writes INFO JSON lines: RFC 3339 UTC
time, level, logger, msg, and in a task the job, the Celery task and the worker's name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery.utils.nodenames import default_nodename, host_format

from config.settings import load_settings
from tests.support.procs import ROOT, free_port, wait_until
from tests.support.stack import FAST, fresh_db_url
from worker.cli import headswap_command
from worker.devstack.procs import spawn, stop_all
from worker.devstack.stack import http_ok, sandbox_env
from worker.producer import Producer
from worker.store import presence, redis_client

pytestmark = pytest.mark.integration

BASE = ROOT / "deploy" / "k8s" / "base"
RFC3339_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FACE = "https://cdn.example.com/face.jpg"


def deployed_args(component: str) -> list[str]:
    """The container's ``args`` in ``deploy/k8s/base/<component>-deployment.yaml``."""
    doc = yaml.safe_load((BASE / f"{component}-deployment.yaml").read_text())
    return list(doc["spec"]["template"]["spec"]["containers"][0]["args"])


def deployed_log_settings() -> dict[str, str]:
    data = yaml.safe_load((BASE / "configmap.yaml").read_text())["data"]
    return {k: v for k, v in data.items() if k.startswith("HEADSWAP_LOG_")}


def replaced(args: list[str], option: str, value: str) -> list[str]:
    """``args`` with ``option``'s value swapped (a path or port of this machine)."""
    out = list(args)
    out[out.index(option) + 1] = value
    return out


def json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            out.append(json.loads(text))
    return out


@pytest.fixture
def env(redis_server: Any, sandbox: Any, tmp_path: Path) -> dict[str, str]:
    log_settings = deployed_log_settings()
    assert log_settings == {"HEADSWAP_LOG_FORMAT": "json", "HEADSWAP_LOG_LEVEL": "INFO"}
    return {**FAST, **sandbox_env(sandbox), **log_settings,
            "HEADSWAP_REDIS_URL": fresh_db_url(redis_server.url),
            "HEADSWAP_SPOOL_DIR": str(tmp_path / "spool"),
            "HEADSWAP_HEARTBEAT_FILE": str(tmp_path / "heartbeat")}


def test_a_deployed_worker_and_beat_log_info_json_lines_naming_job_task_and_host(env, tmp_path):
    worker_args = deployed_args("worker")
    beat_args = replaced(deployed_args("beat"), "-s", str(tmp_path / "beat-schedule"))
    assert worker_args[0] == "worker" and beat_args[0] == "beat"
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    procs = [spawn(headswap_command(*worker_args), env=env, log=worker_log, cwd=ROOT),
             spawn(headswap_command(*beat_args), env=env, log=beat_log, cwd=ROOT)]
    try:
        # No -n in the manifest: Celery's default node name, celery@<host>.
        node = host_format(default_nodename(None))
        settings = load_settings(env)
        with redis_client(settings) as r:
            wait_until(lambda: presence.record_of(r, settings.key_prefix, node) is not None,
                       60, what=f"{node} consuming")
        producer = Producer(settings)
        job_id = producer.submit(video_url="https://cdn.example.com/logs/1.mp4?duration=4",
                                 mappings=[{"obj_id": 0, "img_url": FACE}], resolution="720p")
        assert producer.wait(job_id, timeout=60)["state"] == "succeeded"
    finally:
        stop_all(procs)

    lines = json_lines(worker_log)
    claim = [x for x in lines
             if x.get("job_id") == job_id and x["msg"] == "job queued -> submitting"]
    assert len(claim) == 1, worker_log.read_text()[-3000:]
    line = claim[0]
    assert line["level"] == "INFO" and line["logger"] == "worker.jobs"
    assert RFC3339_UTC_MS.match(line["time"]), line["time"]
    assert line["task_name"] == "headswap.submit"
    assert re.fullmatch(r"[0-9a-f-]{36}", line["task_id"])
    assert line["hostname"] == node
    # The poll that saw Akool finish and the copy that ended it were other tasks, named.
    seen = [x for x in lines if x.get("job_id") == job_id and x.get("state") == "storing"]
    assert seen and seen[0]["task_name"] == "headswap.poll_batch"
    done = [x for x in lines if x.get("job_id") == job_id and x.get("state") == "succeeded"]
    assert done and done[0]["task_name"] == "headswap.store_output"
    assert len({line["task_id"], seen[0]["task_id"], done[0]["task_id"]}) == 3
    # Outside a task the worker's lines still carry its node name.
    assert any(x["msg"] == "worker shutting down" and x["hostname"] == node for x in lines)
    # Beat logs at INFO too (Celery would have reset it to WARNING), in the same form.
    sent = [x for x in json_lines(beat_log) if x["logger"] == "celery.beat"
            and x["level"] == "INFO" and "poll_due" in x["msg"]]
    assert sent and RFC3339_UTC_MS.match(sent[0]["time"]) and sent[0]["hostname"]


def test_the_deployed_webhook_receiver_logs_info_json_lines_gunicorns_own_included(env, tmp_path):
    port = free_port()
    args = replaced(replaced(deployed_args("webhook"), "--port", str(port)), "--host",
                    "127.0.0.1")
    log = tmp_path / "webhook.log"
    proc = spawn(headswap_command(*args), env=env, log=log, cwd=ROOT)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 30,
                   what="the receiver answering")
    finally:
        stop_all([proc])
    lines = json_lines(log)
    by_logger = {(x["logger"], x["level"]) for x in lines}
    assert ("worker.webhook", "INFO") in by_logger  # "webhook receiver listening"
    assert ("gunicorn.error", "INFO") in by_logger, log.read_text()  # "Booting worker ..."
    assert all(RFC3339_UTC_MS.match(x["time"]) and x["hostname"] for x in lines)

