"""The light client's own parts: its settings and the message it publishes.

The end-to-end run from a separate venv is tests/integration/test_light_client.py.
"""

from __future__ import annotations

import base64
import json

import pytest
from celery import Celery
from headswap_client import ClientSettings, ConfigError
from headswap_client.connection import broker_connection
from headswap_client.publisher import TaskPublisher

from config.celery import celery_config
from config.settings import load_settings
from worker.producer import client_settings


def test_client_settings_name_every_bad_variable_in_one_error():
    env = {"HEADSWAP_REDIS_URL": "http://redis:6379", "HEADSWAP_IDEMPOTENCY_TTL_SECONDS": "soon",
           "HEADSWAP_RESEND_AFTER_SECONDS": "-1", "HEADSWAP_ALLOWED_MODELS": ""}
    with pytest.raises(ConfigError) as caught:
        ClientSettings.from_env(env)
    message = str(caught.value)
    for variable in env:
        assert variable in message
    assert "'soon' is not an integer" in message


def test_explicit_client_settings_win_and_the_redis_password_never_shows(tmp_path):
    secret_file = tmp_path / "redis-url"
    secret_file.write_text("redis://:s3cret@redis:6379/2\n")
    settings = ClientSettings.from_env({"HEADSWAP_REDIS_URL_FILE": str(secret_file),
                                        "HEADSWAP_KEY_PREFIX": "shop"}, key_prefix="orders")
    assert settings.redis_url == "redis://:s3cret@redis:6379/2"
    assert settings.key_prefix == "orders"
    assert "s3cret" not in repr(settings)
    with pytest.raises(ConfigError, match="job_retention_seconds"):
        ClientSettings(job_retention_seconds=5)
    with pytest.raises(ConfigError, match="unknown headswap-client settings: redis"):
        ClientSettings.from_env({}, redis="redis://x")


def test_the_worker_and_its_client_settings_agree():
    env = {"HEADSWAP_REDIS_URL": "redis://r:1/3", "HEADSWAP_KEY_PREFIX": "p",
           "HEADSWAP_ALLOWED_MODELS": "a,b", "HEADSWAP_WEBHOOK_PUBLIC_URL": "https://h",
           "HEADSWAP_IDEMPOTENCY_TTL_SECONDS": "120", "HEADSWAP_JOB_RETENTION_SECONDS": "600",
           "HEADSWAP_RESEND_AFTER_SECONDS": "30"}
    assert ClientSettings.from_env(env) == client_settings(load_settings(env))
    assert ClientSettings.from_env({}) == client_settings(load_settings({}))


def envelope(raw: str) -> tuple[dict, list]:
    message = json.loads(raw)
    return message, json.loads(base64.b64decode(message["body"]))


def test_the_client_publishes_the_message_celery_send_task_would(redis_server, redis_client):
    """Same queue list, headers, properties and body as the workers' own Celery sender,
    but for ids and origin; URLs redacted in the reprs only."""
    url = redis_server.url
    kwargs = {"video_url": "https://u:pw@cdn.example.com/v.mp4?X-Amz-Signature=abc", "n": 1}
    publisher = TaskPublisher(broker_connection(ClientSettings(redis_url=url)))
    publisher.send("headswap.submit", kwargs=kwargs, queue="headswap.submit")
    publisher.close()
    app = Celery("reference", set_as_current=False)
    app.config_from_object({**celery_config(load_settings({"HEADSWAP_REDIS_URL": url})),
                            "broker_transport": "redis"})
    app.send_task("headswap.submit", kwargs=kwargs, queue="headswap.submit",
                  argsrepr="()", kwargsrepr="{}")
    queued = redis_client.lrange("headswap.submit", 0, -1)  # LPUSH: the newest first
    ours, theirs = (envelope(raw) for raw in reversed(queued))

    assert ours[1] == theirs[1] == [[], kwargs, {"callbacks": None, "errbacks": None,
                                                 "chain": None, "chord": None}]
    assert set(ours[0]["headers"]) >= set(theirs[0]["headers"])
    for key in ("lang", "task", "retries", "timelimit", "eta", "expires", "group"):
        assert ours[0]["headers"][key] == theirs[0]["headers"][key], key
    assert ours[0]["headers"]["root_id"] == ours[0]["headers"]["id"]
    assert "pw" not in ours[0]["headers"]["kwargsrepr"]
    assert "X-Amz-Signature" not in ours[0]["headers"]["kwargsrepr"]
    for key in ("content-type", "content-encoding"):
        assert ours[0][key] == theirs[0][key]
    assert ours[0]["properties"]["delivery_info"] == theirs[0]["properties"]["delivery_info"]


JOB = {"video_url": "https://cdn.example.com/in.mp4",
       "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
       "resolution": "720p"}


def test_a_client_producer_enqueues_and_cancels_as_the_workers_would(redis_server,
                                                                     redis_client):
    """No worker runs: the record, its schedules and the messages are what a worker would
    find. A cancelled job leaves the wake-up schedule for the outbox (its notify is sent)
    and expires after the retention; a second cancel is refused."""
    from headswap_client import Producer

    with Producer(redis_url=redis_server.url, job_retention_seconds=600) as producer:
        job_id = producer.submit(**JOB, idempotency_key="order-7")
        assert producer.submit(**JOB, idempotency_key="order-7") == job_id
        record = producer.get(job_id)
        assert record["state"] == "queued"
        assert record["request"]["video_url"] == JOB["video_url"]
        assert redis_client.zscore("{headswap}:wakeup", job_id) is not None
        [sent] = [json.loads(m) for m in redis_client.lrange("headswap.submit", 0, -1)]
        assert sent["headers"]["task"] == "headswap.submit"

        assert producer.cancel(job_id) is True
        assert producer.get(job_id)["state"] == "cancelled"
        assert redis_client.zscore("{headswap}:wakeup", job_id) is None
        assert redis_client.zscore("{headswap}:outbox", job_id) is not None
        assert 0 < redis_client.ttl(f"{{headswap}}:job:{job_id}") <= 600
        [notify] = [envelope(m)[1] for m in redis_client.lrange("headswap.notify", 0, -1)]
        assert notify[1] == {"job_id": job_id}
        assert producer.cancel(job_id) is False
        assert producer.cancel("no-such-job") is False


TRACED_SUBMIT = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)                  # the host application's own setup

from headswap_client import Producer
with Producer(redis_url=sys.argv[1]) as producer:
    job_id = producer.submit(**json.loads(sys.argv[2]))
    record = producer.get(job_id)
spans = [{"name": s.name, "id": s.context.span_id, "trace": s.context.trace_id,
          "parent": s.parent.span_id if s.parent else None,
          "job_id": s.attributes.get("headswap.job_id")} for s in exporter.get_finished_spans()]
print(json.dumps({"spans": spans, "traceparent": record.get("traceparent"), "fp": record["fp"],
                  "job_id": job_id}))
"""


def test_a_traced_backend_gets_one_trace_from_submit_into_the_message_and_record(
        redis_server, redis_client):
    """The host configured OpenTelemetry: submit is a span, the publish its child (named
    as Celery's instrumentation names it), and both the message headers and the record
    carry that trace's context; the fingerprint does not change with it."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", TRACED_SUBMIT, redis_server.url,
                          json.dumps(JOB)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    by_name = {s["name"]: s for s in out["spans"]}
    root, publish = by_name["headswap.producer.submit"], by_name["apply_async/headswap.submit"]
    assert root["parent"] is None and root["job_id"] == out["job_id"]
    assert publish["parent"] == root["id"] and publish["trace"] == root["trace"]
    [message] = [json.loads(m) for m in redis_client.lrange("headswap.submit", 0, -1)]
    _version, trace_id, span_id, _flags = message["headers"]["traceparent"].split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (root["trace"], publish["id"])
    assert int(out["traceparent"].split("-")[1], 16) == root["trace"]
    # the same job sent again untraced is the same job: the context is not in its fingerprint
    from headswap_client import Producer

    with Producer(redis_url=redis_server.url) as producer:
        assert producer.submit(**JOB, job_id=out["job_id"]) == out["job_id"]
        assert producer.get(out["job_id"])["fp"] == out["fp"]
