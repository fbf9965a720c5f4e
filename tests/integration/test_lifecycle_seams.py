"""The bugs found in the seams of the lifecycle (issue 10, part 8), each as a user sees it.

Real redis-server, the sandbox over HTTP, the worker's own flow functions in this process
(no Celery needed to show these): each test failed on the code before the lifecycle got
its home.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from headswap_client import states
from werkzeug.test import Client

from config.settings import load_settings
from tests.support.akool_reference import deliver
from tests.support.dispatch import RecordingDispatcher
from tests.support.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FAST_KNOBS,
    SandboxProcess,
)
from worker.analysis import follow, start
from worker.errors import JobValidationError
from worker.jobs import job_fingerprint, record_fields
from worker.producer import Producer
from worker.runtime import Runtime
from worker.submission import submit

pytestmark = pytest.mark.integration

FACE = "https://cdn.example.com/f.jpg"


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def message(name: str, **extra):
    return {"video_url": f"https://cdn.example.com/{name}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p", **extra}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess.start(knobs={**FAST_KNOBS, "analysis_time": 0}) as sb:
        yield sb


def analysed(rt: Runtime, video_url: str) -> None:
    """Drive the analysis of ``video_url`` to its end, as the poller would."""
    start(rt, video_url)
    deadline = time.monotonic() + 10
    while rt.store.analyses.get(video_url).get("status") != "completed":
        follow(rt, rt.store.keys.analysis_member(video_url))
        assert time.monotonic() < deadline, "analysis never completed"
        time.sleep(0.05)


def runtime(redis_server, sandbox, **env) -> Runtime:
    # These seams end at succeeded in this process: no copy task runs here (storage has
    # its own tests: test_outputs_stored.py).
    base = {"HEADSWAP_REDIS_URL": redis_server.url, "HEADSWAP_AKOOL_BASE_URL": sandbox.url,
            "HEADSWAP_AKOOL_API_KEY": sandbox.api_key, "HEADSWAP_STORAGE_URL": "none"}
    rt = Runtime(load_settings({**base, **env}), RecordingDispatcher())
    rt.sent = rt.dispatcher.sent
    return rt


def test_8b_an_auth_failure_while_analysing_is_not_remembered_as_the_videos_verdict(
        redis_server, redis_client, sandbox):
    """Before: the 1101 of a bad key was cached as the URL's analysis failure for 10
    minutes, failing every later job on that URL."""
    msg = message("auth")
    bad = runtime(redis_server, sandbox, HEADSWAP_AKOOL_API_KEY="wrong-key")
    outcome = submit(bad, {**msg, "job_id": "b1"})
    assert outcome.status == "failed"
    assert bad.store.get("b1")["reason"] == "akool_refused"
    good = runtime(redis_server, sandbox)
    assert submit(good, {**msg, "job_id": "b2"}).status == "waiting"  # analysis starts afresh
    analysed(good, msg["video_url"])
    assert submit(good, {**msg, "job_id": "b2"}).status == "submitted"


def test_8c_the_credits_wait_limit_applies_to_a_job_that_keeps_retrying(
        redis_server, redis_client, sandbox):
    """Before: checked only while the pause was on; a job retried after each pause and
    was still queued (calling create) long after the limit."""
    sandbox.config(credits=0)
    try:
        rt = runtime(redis_server, sandbox, HEADSWAP_CREDITS_PAUSE_SECONDS="0.3",
                     HEADSWAP_CREDITS_WAIT_MAX_SECONDS="1")
        msg = {**message("credits"), "job_id": "c1"}
        analysed(rt, msg["video_url"])
        first = submit(rt, msg)
        assert first.status == "waiting" and rt.store.get("c1")["state"] == states.QUEUED
        end = time.monotonic() + 10
        while rt.store.get("c1")["state"] == states.QUEUED and time.monotonic() < end:
            time.sleep(0.35)  # each pause ends; the job retries and gets 1104 again
            submit(rt, msg)
        record = rt.store.get("c1")
        assert record["state"] == states.FAILED and record["reason"] == "insufficient_credits"
        assert time.monotonic() < end
    finally:
        sandbox.config(credits=None)


def test_8d_a_webhook_whose_storing_failed_is_accepted_when_akool_retries_it(
        redis_server, redis_client, sandbox):
    """Before: the nonce was marked used before the state was stored, so when storing
    failed (503) Akool's retry of the same delivery was refused for good (401)."""
    from worker.webhook import WebhookApp

    # Trusting the payload: storing is the subject here, not the confirmation by detail
    # (test_webhook_receiver.py), and the remote task exists only in this test.
    rt = runtime(redis_server, sandbox, HEADSWAP_AKOOL_CLIENT_ID=DEFAULT_CLIENT_ID,
                 HEADSWAP_AKOOL_CLIENT_SECRET=DEFAULT_CLIENT_SECRET,
                 HEADSWAP_WEBHOOK_TRUST_PAYLOAD="true")
    fields = record_fields(message("nonce"))
    rt.store.create("d1", fields, fingerprint=job_fingerprint(fields))
    rt.jobs.claim_for_submit("d1", 1, 0)
    rt.jobs.bind_by_webhook("d1", "r" * 24, 300)
    body = deliver({"_id": "r" * 24, "status": 3, "type": "headswap",
                          "url": "https://cdn.example.com/out.mp4"},
                         DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    client = Client(WebhookApp(rt))
    remotes = rt.store.keys.remotes
    saved = redis_client.hgetall(remotes)
    redis_client.delete(remotes)
    redis_client.set(remotes, "not a hash")  # storing fails: a WRONGTYPE from Redis
    first = client.post("/webhooks/akool?job_id=d1", json=body)
    assert first.status_code == 503
    redis_client.delete(remotes)
    redis_client.hset(remotes, mapping=saved)
    again = client.post("/webhooks/akool?job_id=d1", json=body)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert rt.store.get("d1")["state"] == states.SUCCEEDED
    replay = client.post("/webhooks/akool?job_id=d1", json=body)
    assert replay.status_code == 400  # now it was stored: a replay is refused


def test_8e_the_same_idempotency_key_with_other_parameters_is_refused(
        redis_server, redis_client, sandbox):
    producer = Producer(load_settings({"HEADSWAP_REDIS_URL": redis_server.url}))
    try:
        first = producer.submit(**message("idem-a"), idempotency_key="order-9")
        assert producer.submit(**message("idem-a"), idempotency_key="order-9") == first
        with pytest.raises(JobValidationError) as info:
            producer.submit(**message("idem-b"), idempotency_key="order-9")
        assert "idempotency_key" in info.value.errors
        assert first in info.value.errors["idempotency_key"][0]
    finally:
        producer.close()
    # the same through a raw message: a rejected record under the message's job id
    rt = runtime(redis_server, sandbox)
    outcome = submit(rt, {**message("idem-c"), "idempotency_key": "order-9", "job_id": "e2"})
    assert outcome.status == "rejected" and outcome.job_id == "e2"
    assert "idempotency_key" in rt.store.get("e2")["field_errors"]
    assert rt.store.get(first)["state"] == states.QUEUED  # the first job is untouched


def test_8f_the_producer_refuses_what_the_worker_would_refuse(redis_server, redis_client):
    settings = load_settings({"HEADSWAP_REDIS_URL": redis_server.url,
                              "HEADSWAP_WEBHOOK_PUBLIC_URL": "https://hooks.example.com"})
    producer = Producer(settings)
    try:
        with pytest.raises(JobValidationError) as info:
            producer.submit(**message("f"), webhookUrl="https://mine.example.com/hook")
        assert "webhookUrl" in info.value.errors
        assert redis_client.llen("headswap.submit") == 0
    finally:
        producer.close()


def test_8g_an_invalid_message_never_changes_someone_elses_job(
        redis_server, redis_client, sandbox):
    rt = runtime(redis_server, sandbox)
    fields = record_fields(message("good"))
    rt.store.create("d4-good", fields, fingerprint=job_fingerprint(fields))
    before = rt.store.get("d4-good")
    outcome = submit(rt, {"job_id": "d4-good", "video_url": "not a url", "resolution": "4k"})
    assert outcome.status == "rejected" and outcome.job_id != "d4-good"
    assert rt.store.get("d4-good") == before
    apart = rt.store.get(outcome.job_id)
    assert apart["state"] == states.REJECTED and apart["job_id_sent"] == "d4-good"
    assert {"video_url", "resolution"} <= set(apart["field_errors"])


@pytest.mark.parametrize("bad", [
    pytest.param({"job_id": "h-newline\n"}, id="job_id-trailing-newline"),
    pytest.param({"job_id": "h-sur1", "idempotency_key": "k\ud83d"}, id="surrogate-idem-key"),
    pytest.param({"job_id": "h-sur2", "template_id": "t\ud83d"}, id="surrogate-template"),
    pytest.param({"job_id": "h-deep", "metadata": {"a": nested(100_000)}}, id="deep-nesting"),
    pytest.param({"job_id": "h-big", "mappings": [{"obj_id": 10 ** 5000, "img_url": FACE}]},
                 id="5000-digit-int"),
    pytest.param({"job_id": "h-huge", "x" * 100: "y" * 5_000_000}, id="5MB-unknown-field"),
])
def test_8h_every_message_leaves_a_rejected_record_with_field_errors(
        bad, redis_server, redis_client, sandbox):
    rt = runtime(redis_server, sandbox)
    outcome = submit(rt, {**message("h"), **bad})
    assert outcome.status == "rejected"
    record = rt.store.get(outcome.job_id)
    assert record["state"] == states.REJECTED and record["field_errors"]
    named = bad["job_id"]
    if not named.endswith("\n"):
        assert outcome.job_id == named  # under the job id it named, when valid
    assert len(json.dumps(record)) < 20_000  # capped: no 5 MB stored for a week
    assert redis_client.ttl(rt.store.keys.job(outcome.job_id)) > 0


def test_a_webhook_error_cut_mid_emoji_fails_the_job_whole(redis_server, redis_client,
                                                           sandbox):
    """Before: an error_reason ending in a lone surrogate made the script fail after its
    first write — the record said failed with no reason, no TTL, still polled, never in
    the outbox, no event, no callback. Now the whole terminal move lands."""
    from worker.webhook import WebhookApp

    # The payload's error_reason is the subject (Akool's detail could carry the same):
    # trusted here, as the remote task exists only in this test.
    rt = runtime(redis_server, sandbox, HEADSWAP_AKOOL_CLIENT_ID=DEFAULT_CLIENT_ID,
                 HEADSWAP_AKOOL_CLIENT_SECRET=DEFAULT_CLIENT_SECRET,
                 HEADSWAP_WEBHOOK_TRUST_PAYLOAD="true")
    fields = record_fields(message("emoji"))
    rt.store.create("s1", fields, fingerprint=job_fingerprint(fields))
    rt.jobs.claim_for_submit("s1", 1, 0)
    rt.jobs.bind_by_webhook("s1", "e" * 24, 300)
    body = deliver({"_id": "e" * 24, "status": 4, "type": "headswap", "error_code": 1500,
                    "error_reason": "face not found \ud83d"},
                   DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    answer = Client(WebhookApp(rt)).post("/webhooks/akool?job_id=s1", json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    record = rt.store.get("s1")
    assert record["state"] == states.FAILED and record["reason"] == "akool_failed"
    assert record["error"]["msg"].startswith("face not found")
    assert redis_client.ttl(rt.store.keys.job("s1")) > 0
    assert redis_client.zscore(rt.store.keys.schedule("poll"), "s1") is None
    assert redis_client.zscore(rt.store.keys.schedule("outbox"), "s1") is not None
    assert [e["state"] for e in rt.store.events.read() if e.get("job_id") == "s1"][-1] == "failed"
    assert ("headswap.notify", {"job_id": "s1"}, "headswap.notify") in rt.sent


@pytest.mark.parametrize("key", [False, True], ids=["same-job-id", "same-idempotency-key"])
def test_a_valid_message_that_conflicts_with_a_job_is_refused_where_its_producer_looks(
        key, redis_server, redis_client, sandbox):
    """Issue 11: the same ``job_id`` sent with 100 parameter sets — one won, 99 were
    dropped with no trace. Each loser is now a ``rejected`` job naming the one it clashed
    with, and the winner's own line in the event stream says a conflicting message came
    (a producer following that job sees it); the winner is never changed."""
    rt = runtime(redis_server, sandbox)
    ident = {"idempotency_key": "k-conflict"} if key else {"job_id": "c-conflict"}
    first = submit(rt, message("c-0", **ident))
    assert first.status in ("submitted", "waiting", "retry")
    before = rt.store.get(first.job_id)
    losers = [submit(rt, message(f"c-{n}", **ident)) for n in range(1, 100)]
    assert {o.status for o in losers} == {"rejected"}
    assert len({o.job_id for o in losers}) == 99 and first.job_id not in {
        o.job_id for o in losers}
    field = "idempotency_key" if key else "job_id"
    for o in losers:
        apart = rt.store.get(o.job_id)
        assert apart["state"] == states.REJECTED and field in apart["field_errors"]
        assert first.job_id in json.dumps(apart["field_errors"])
    after = rt.store.get(first.job_id)
    assert {k: after[k] for k in ("request", "fp")} == {k: before[k] for k in (
        "request", "fp")}
    conflicts = [e for e in rt.store.events.read() if e.get("alert") == "conflicting_message"]
    assert len(conflicts) == 99
    assert {e["job_id"] for e in conflicts} == {first.job_id}
    assert {e["rejected_job_id"] for e in conflicts} == {o.job_id for o in losers}
    assert {e["field"] for e in conflicts} == {field}


def test_the_event_stream_shows_a_presigned_output_url_redacted(redis_server, redis_client,
                                                                 sandbox):
    """The stream is read by every consumer group: its copy of a presigned output URL
    (a credential until it expires) is redacted; the record keeps it whole (issue 11)."""
    rt = runtime(redis_server, sandbox)
    fields = record_fields(message("presigned"))
    rt.store.create("p1", fields, fingerprint=job_fingerprint(fields))
    rt.jobs.claim_for_submit("p1", 1, 0)
    rt.jobs.bind_by_webhook("p1", "f" * 24, 300)
    url = "https://out.example.com/p1.mp4?X-Amz-Signature=sig-SECRET"
    assert rt.jobs.finish("p1", states.SUCCEEDED, {"output_url": url})
    assert rt.store.get("p1")["output_url"] == url
    [event] = [e for e in rt.store.events.read() if e.get("state") == states.SUCCEEDED]
    assert event["output_url"] == "https://out.example.com/p1.mp4?***"


def test_creates_not_received_are_retried_for_a_time_not_a_count(redis_server, redis_client,
                                                                 sandbox):
    """Issue 12: 9 attempts spanned ~124 s, so Akool's port closed for 120 s nearly failed
    every waiting job. The budget is now time from the first failure (server clock):
    as many attempts as fit, then ``retries_exhausted`` naming how long it tried."""
    from worker.devstack.procs import free_port

    msg = message("window", job_id="w1")
    analysed(runtime(redis_server, sandbox), msg["video_url"])
    down = runtime(redis_server, sandbox, HEADSWAP_AKOOL_BASE_URL=f"http://127.0.0.1:{free_port()}",
                   HEADSWAP_SUBMIT_RETRY_WINDOW_SECONDS="1.5",
                   HEADSWAP_AKOOL_BREAKER_FAILURES="0", HEADSWAP_CONNECT_TIMEOUT="0.5")
    outcomes = [submit(down, msg).status for _ in range(12)]  # far more than the old 8
    assert outcomes == ["retry"] * 12
    first = down.store.get("w1")["retrying_since"]
    time.sleep(1.6)
    assert submit(down, msg).status == "failed"
    record = down.store.get("w1")
    assert record["reason"] == "retries_exhausted" and record["attempts"] == 13
    assert record["error"]["retrying_for_s"] >= 1.5 and record["retrying_since"] == first


def test_resubmit_waits_while_a_webhook_could_still_bind_the_job(redis_server, redis_client,
                                                                 sandbox):
    """Issue 12: with AMBIGUOUS_POLICY=resubmit and the webhook on, the receiver answered
    503 through a Redis outage, Akool gave up its deliveries, and 7 jobs were created twice.
    The grace now counts from when a receiver last became reachable, and while none is,
    nothing is resubmitted."""
    from worker.sweeper import resolve_ambiguous

    rt = runtime(redis_server, sandbox, HEADSWAP_AMBIGUOUS_POLICY="resubmit",
                 HEADSWAP_AMBIGUOUS_GRACE_SECONDS="1",
                 HEADSWAP_WEBHOOK_PUBLIC_URL="https://hooks.example.com")
    fields = record_fields(message("resubmit"))
    rt.store.create("rs1", fields, fingerprint=job_fingerprint(fields))
    rt.jobs.claim_for_submit("rs1", 1, 0)
    rt.jobs.mark_ambiguous("rs1", {"error": "AkoolAmbiguous"})
    time.sleep(1.1)
    resolve_ambiguous(rt)  # no receiver has ever said it is up
    assert rt.store.get("rs1")["state"] == states.SUBMITTING and not rt.sent
    rt.store.guards.receiver_alive(ttl=30)  # a receiver is back: the grace starts now
    rt.store.schedule("ambiguous", "rs1", 0)
    resolve_ambiguous(rt)
    assert rt.store.get("rs1")["state"] == states.SUBMITTING and not rt.sent
    time.sleep(1.1)
    rt.store.schedule("ambiguous", "rs1", 0)
    resolve_ambiguous(rt)  # reachable for a whole grace: a binding webhook would have come
    assert rt.store.get("rs1")["state"] == states.QUEUED
    assert [name for name, *_ in rt.sent] == ["headswap.submit"]
