"""Tracing's pure parts (which variables switch it on, which exporters they name, what an
attribute may hold), and processes set up with and without the OpenTelemetry packages
(each in a subprocess: a tracer provider is set once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worker import tracing

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "x"}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
])  # fmt: skip
def test_tracing_is_requested_only_by_the_standard_variables(env, expected):
    assert tracing.requested(env) is expected


@pytest.mark.parametrize(("env", "names"), [
    ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_http"]),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     ["otlp_proto_grpc"]),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp_proto_http"]),
    ({"OTEL_TRACES_EXPORTER": "console, jsonl_file"}, ["console", "jsonl_file"]),
])  # fmt: skip
def test_exporter_names_follow_the_sdk_conventions(monkeypatch, env, names):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL",
                 "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tracing._exporter_names() == names


def test_attributes_hold_no_credentials_and_are_bounded():
    attributes = tracing._attributes({
        "job_id": "j1", "reason": None, "attempt": 3,
        "url": "https://user:pw@hooks.example.com/cb?token=s3cret",
        "http.status": 200, "note": "x" * 1000,
    })  # fmt: skip
    assert attributes["headswap.job_id"] == "j1"
    assert "headswap.reason" not in attributes
    assert attributes["headswap.attempt"] == 3
    assert attributes["http.status"] == 200
    assert "s3cret" not in attributes["headswap.url"] and "pw" not in attributes["headswap.url"]
    assert len(attributes["headswap.note"]) == tracing.MAX_ATTRIBUTE_CHARS


def test_the_file_exporter_names_its_variable_when_it_has_no_path(monkeypatch):
    monkeypatch.delenv(tracing.FILE_VARIABLE, raising=False)
    with pytest.raises(ValueError, match=tracing.FILE_VARIABLE):
        tracing.FileSpanExporter()


#: Makes ``import opentelemetry...`` fail, as on a machine without the tracing extra.
BLOCKER = """
import sys
class _NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _NoOpenTelemetry())
"""

PROBE = """
import json, logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append([record.levelname, record.getMessage(), getattr(record, "exporter", None)])
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.INFO)
from worker import tracing
on = tracing.setup("probe")
with tracing.span("anything") as span:
    pass
print(json.dumps({"on": on, "span": span is not None, "traceparent": tracing.traceparent(),
                  "records": records}))
"""


def probe(env: dict[str, str], tmp_path: Path, blocked: bool = False) -> dict:
    code = (BLOCKER if blocked else "") + PROBE
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                         env={**clean, **env}, capture_output=True, text=True, timeout=60,
                         check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_the_packages_tracing_is_off_and_says_why_once(tmp_path):
    result = probe({"OTEL_TRACES_EXPORTER": "otlp"}, tmp_path, blocked=True)
    assert result["on"] is False and result["span"] is False and result["traceparent"] is None
    said = [r for r in result["records"] if "tracing" in r[1]]
    assert [r[0] for r in said] == ["INFO"]
    assert "not installed" in said[0][1] and "[tracing]" in said[0][1]


def test_without_the_packages_and_without_variables_nothing_is_said(tmp_path):
    result = probe({}, tmp_path, blocked=True)
    assert result == {"on": False, "span": False, "traceparent": None, "records": []}


def test_off_by_default_with_the_packages(tmp_path):
    result = probe({}, tmp_path)
    assert result["on"] is False and result["traceparent"] is None


def test_an_exporter_nothing_provides_is_named_in_an_error(tmp_path):
    result = probe({"OTEL_TRACES_EXPORTER": "nonesuch"}, tmp_path)
    assert result["on"] is False
    assert ["ERROR", "span exporter not available; left out", "nonesuch"] in result["records"]


def test_the_sdk_switch_wins_over_an_exporter(tmp_path):
    result = probe({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, tmp_path)
    assert result["on"] is False


def test_with_the_file_exporter_a_span_is_written_with_its_context(tmp_path):
    spans = tmp_path / "spans.jsonl"
    result = probe({"OTEL_TRACES_EXPORTER": "jsonl_file", tracing.FILE_VARIABLE: str(spans),
                    "OTEL_SERVICE_NAME": "probe-service"}, tmp_path)  # fmt: skip
    assert result["on"] is True
    (span,) = [json.loads(line) for line in spans.read_text().splitlines()]
    assert span["name"] == "anything" and span["service"] == "probe-service"
    assert span["parent_id"] is None and len(span["trace_id"]) == 32
