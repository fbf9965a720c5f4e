"""OpenTelemetry tracing with real processes: redis-server, the sandbox, ``headswap worker``
and ``headswap beat``, and a producer in a process of its own (a backend), all exporting
to one file (``OTEL_TRACES_EXPORTER=jsonl_file``). One job must come out as one
connected trace: producer.submit → the submit task → Akool's create → polls → notify →
the HTTP callback, whose request carries the trace on to the producer's handler."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.procs import ROOT, free_port, wait_until
from tests.support.receiver import Receiver
from tests.support.stack import producer_for, running_stack

pytestmark = pytest.mark.integration

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed")

#: A query-string token on the callback URL: no span may carry it.
TOKEN = "cb-token-" + uuid.uuid4().hex[:8]
CALLBACK_ENV = {
    "HEADSWAP_CALLBACK_SECRETS": "whsec_"
    + base64.b64encode(b"tracing-callback-secret-42!!").decode(),
    "HEADSWAP_CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
}
#: The job's steps, in the order a job takes them (the HTTP client spans are the
#: requests instrumentation's; the Celery ones the Celery instrumentation's).
STEPS = (
    "headswap.producer.submit", "apply_async/headswap.submit", "run/headswap.submit",
    "headswap.submit", "akool.create_task", "headswap.poll", "akool.task_detail",
    "headswap.store_output", "headswap.notify", "apply_async/headswap.deliver_callback",
    "run/headswap.deliver_callback", "headswap.callback",
)  # fmt: skip

from tests.unit.test_tracing import BLOCKER  # noqa: E402

SUBMIT = """
import json, sys
from config.settings import load_settings
from worker.producer import Producer
producer = Producer(load_settings(json.loads(sys.argv[1])))
print(producer.submit(**json.loads(sys.argv[2])), flush=True)
"""


def tracing_env(spans: Path) -> dict[str, str]:
    return {"OTEL_TRACES_EXPORTER": "jsonl_file", "HEADSWAP_TRACES_FILE": str(spans),
            "OTEL_BSP_SCHEDULE_DELAY": "100"}  # fmt: skip


def read_spans(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trace_of(spans: list[dict], job_id: str) -> list[dict]:
    roots = [s for s in spans if s["name"] == "headswap.producer.submit"
             and s["attributes"].get("headswap.job_id") == job_id]  # fmt: skip
    if not roots:
        return []
    return [s for s in spans if s["trace_id"] == roots[0]["trace_id"]]


def ancestors(span: dict, by_id: dict[str, dict]) -> list[str]:
    names = []
    while span["parent_id"] is not None:
        span = by_id[span["parent_id"]]
        names.append(span["name"])
    return names


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("followed_by", ["polls", "webhook"])
def test_one_job_is_one_connected_trace_from_submit_to_the_callback(
        redis_server, sandbox, receiver, tmp_path, followed_by):  # fmt: skip
    # Given a stack and a producer process that trace to one file
    spans_file = tmp_path / "spans.jsonl"
    env = {**CALLBACK_ENV, **tracing_env(spans_file)}
    port = None
    steps = STEPS
    if followed_by == "webhook":  # polls only as a far safety net
        port = free_port()
        env["HEADSWAP_SAFETY_NET_POLL_SECONDS"] = "300"
        steps = tuple(s for s in STEPS if s not in ("headswap.poll", "akool.task_detail"))
        steps += ("headswap.webhook", "run/headswap.store_output")
    with running_stack(redis_server.url, sandbox, extra_env=env, webhook_port=port) as stack:
        job = {"video_url": "https://cdn.example.com/in/traced.mp4?duration=4",
               "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
               "resolution": "720p", "callback_url": f"{receiver.url('traced')}?t={TOKEN}"}
        # When a backend submits a job
        out = subprocess.run(
            [sys.executable, "-c", SUBMIT, json.dumps(stack.env), json.dumps(job)],
            capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
            env={**os.environ, **stack.env},
        )  # fmt: skip
        job_id = out.stdout.strip().splitlines()[-1]
        producer = producer_for(stack)  # this process does not trace
        assert producer.wait(job_id, timeout=30)["state"] == "succeeded"
        wait_until(lambda: receiver.got("traced"), 20, what="the callback POST")

        def complete() -> bool:
            names = {s["name"] for s in trace_of(read_spans(spans_file), job_id)}
            return set(steps) <= names and "POST" in names and "GET" in names
        wait_until(complete, 20, what="every step of the job's trace exported")
        producer.close()

    # Then every step is in one trace whose parent links all resolve to one root
    spans = read_spans(spans_file)
    traced = trace_of(spans, job_id)
    by_id = {s["span_id"]: s for s in traced}
    roots = [s for s in traced if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["headswap.producer.submit"]
    dangling = [s["name"] for s in traced if s["parent_id"] and s["parent_id"] not in by_id]
    assert dangling == []
    # no step of this job started a trace of its own
    own = {s["trace_id"] for s in spans if s["attributes"].get("headswap.job_id") == job_id}
    assert own == {roots[0]["trace_id"]}

    def one(name: str) -> dict:
        found = [s for s in traced if s["name"] == name]
        assert found, name
        return found[0]

    # the message headers carried the context from the producer process to the worker
    assert ancestors(one("run/headswap.submit"), by_id) == [
        "apply_async/headswap.submit", "headswap.producer.submit"]
    # the create may come from a later submit (re-sent once the video's analysis is done):
    # it is in the job's trace all the same, under a headswap.submit span
    assert "headswap.submit" in ancestors(one("akool.create_task"), by_id)
    assert one("akool.create_task")["attributes"]["headswap.remote_id"]
    if followed_by == "polls":
        assert "headswap.poll" in ancestors(one("akool.task_detail"), by_id)
        assert one("headswap.poll")["service"] == "headswap-worker"
    else:  # the receiver confirmed the final status with a detail call, sent the copy
        assert one("headswap.webhook")["service"] == "headswap-webhook"
        assert any(s["name"] == "GET" and "headswap.webhook" in ancestors(s, by_id)
                   for s in traced)  # fmt: skip
        assert "headswap.webhook" in ancestors(one("run/headswap.store_output"), by_id)
    assert "headswap.notify" in ancestors(one("run/headswap.deliver_callback"), by_id)
    callback_post = [s for s in traced if s["name"] == "POST"
                     and "headswap.callback" in ancestors(s, by_id)]  # fmt: skip
    assert len(callback_post) == 1
    assert one("headswap.callback")["attributes"]["headswap.outcome"] == "delivered"
    assert one("headswap.callback")["attributes"]["headswap.attempt"] == 1
    assert one("headswap.producer.submit")["service"] == "headswap-producer"

    # And the callback request carries the trace on: its parent is the POST span
    (request,) = receiver.got("traced")
    _version, trace_id, parent_id, _flags = request["headers"]["Traceparent"].split("-")
    assert trace_id == roots[0]["trace_id"]
    assert parent_id == callback_post[0]["span_id"]

    # And no span holds the callback URL's query token; beat's ticks are not traced
    assert TOKEN not in spans_file.read_text()
    assert not [s for s in spans if s["name"].endswith("headswap.poll_due")]


def test_without_the_packages_the_stack_runs_and_says_once_why_it_does_not_trace(
        redis_server, sandbox, tmp_path):  # fmt: skip
    # Given worker and beat that cannot import OpenTelemetry, asked to trace
    blocker = tmp_path / "no-otel"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)]),
           "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    with running_stack(redis_server.url, sandbox, extra_env=env) as stack:
        producer = producer_for(stack)
        # When a job runs
        job_id = producer.submit(video_url="https://cdn.example.com/in/untraced.mp4?duration=4",
                                 mappings=[{"obj_id": 0, "img_url": "https://cdn.example.com/f.jpg"}],
                                 resolution="720p")  # fmt: skip
        # Then it ends as always
        record = producer.wait(job_id, timeout=30)
        assert record["state"] == "succeeded", {k: record.get(k) for k in ("reason", "error")}
        producer.close()
    # And each process said once, at INFO, why it does not trace
    for name in ("worker0", "beat0"):
        lines = [json.loads(line) for line in (stack.workdir / f"{name}.log").read_text()
                 .splitlines() if "tracing is off" in line]  # fmt: skip
        assert [line["level"] for line in lines] == ["INFO"], name
        assert "not installed" in lines[0]["msg"]
