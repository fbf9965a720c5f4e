"""What a JSON log line carries: RFC 3339 UTC time, the Celery task, the host, the trace."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest
from celery import Celery

from config import logs
from config.logs import JsonFormatter, TextFormatter, rfc3339

RFC3339_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def line(msg: str = "job queued -> submitting", **extra: object) -> dict:
    record = logging.LogRecord("worker.jobs", logging.INFO, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter().format(record))


def test_time_is_rfc3339_in_utc_with_milliseconds_and_names_the_same_instant_as_ts():
    out = line()
    assert RFC3339_UTC_MS.match(out["time"]), out["time"]
    assert out["time"] == rfc3339(out["ts"])
    assert rfc3339(1700000000.1239) == "2023-11-14T22:13:20.123Z"


def test_a_line_holds_level_logger_msg_hostname_and_the_extra_fields_that_are_known():
    out = line(job_id="j1", remote_id=None)
    assert (out["level"], out["logger"], out["msg"]) == ("INFO", "worker.jobs",
                                                         "job queued -> submitting")
    assert out["job_id"] == "j1" and "remote_id" not in out
    assert out["hostname"]  # the machine's outside a worker
    assert "task_id" not in out and "trace_id" not in out


def test_inside_a_celery_task_the_line_names_the_task_and_the_worker_node(monkeypatch):
    # A worker's requests carry its node name; apply() would give the machine's.
    monkeypatch.setattr("celery.app.task.gethostname", lambda: "w1@pod-7f9c")
    app = Celery("t", set_as_current=False)

    @app.task(name="headswap.submit", bind=True)
    def submit(self):  # type: ignore[no-untyped-def]
        return line(job_id="j2")

    result = submit.apply(task_id="tid-1").get()
    assert result["task_id"] == "tid-1"
    assert result["task_name"] == "headswap.submit"
    assert result["hostname"] == "w1@pod-7f9c"
    assert result["job_id"] == "j2"


def test_a_worker_names_its_lines_with_its_node_name(monkeypatch):
    monkeypatch.setitem(logs._process, "hostname", "machine")
    logs.set_hostname("w3@machine")
    assert line()["hostname"] == "w3@machine"


def test_text_lines_carry_the_same_time_and_the_task_when_known():
    record = logging.LogRecord("worker.jobs", logging.WARNING, __file__, 1, "hello", None, None)
    text = TextFormatter().format(record)
    stamp, level, rest = text.split(" ", 2)
    assert RFC3339_UTC_MS.match(stamp) and level == "WARNING" and rest == "worker.jobs: hello"


def test_the_current_opentelemetry_span_is_named_when_one_is_recording():
    sdk = pytest.importorskip("opentelemetry.sdk.trace",
                              reason="opentelemetry-sdk is a dev dependency")
    from opentelemetry import trace

    tracer = sdk.TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("headswap.submit") as span:
        out = line()
    context = span.get_span_context()
    assert out["trace_id"] == f"{context.trace_id:032x}" and len(out["trace_id"]) == 32
    assert out["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in line()  # no span now
    with trace.use_span(trace.NonRecordingSpan(context)):
        assert "trace_id" not in line()  # a span that is not recorded is not linked


def test_without_opentelemetry_loaded_nothing_is_imported_to_look(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("opentelemetry")]:
        monkeypatch.delitem(sys.modules, name)
    assert "trace_id" not in line()
    assert not any(m.startswith("opentelemetry") for m in sys.modules)
