"""HTTP callbacks end to end: real redis-server, celery worker and beat, the sandbox, and a
receiver (Werkzeug in a thread of this process) that records every POST byte for byte.
Deliveries are checked with the ``standardwebhooks`` library itself, as a producer in
another stack would check them."""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.dispatch import RecordingDispatcher
from tests.support.procs import wait_until
from tests.support.receiver import Receiver
from tests.support.stack import producer_for, running_stack
from worker.callbacks import verify_callback_signature

#: Two Standard Webhooks secrets, as in the middle of a rotation (new first, old second).
SECRET = "whsec_" + base64.b64encode(b"integration-callback-secret-new!").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"integration-callback-secret-old!").decode()
FACE = "https://cdn.example.com/face.jpg"
MAX_ATTEMPTS = 4
#: Backoff in the stack: attempt n waits uniform [b*2**(n-1)/2, b*2**(n-1)], cap 1 s.
BASE, CAP = 0.3, 1.0

CALLBACK_ENV = {
    "HEADSWAP_CALLBACK_SECRETS": f"{SECRET},{OLD_SECRET}",
    "HEADSWAP_CALLBACK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "HEADSWAP_CALLBACK_BACKOFF_BASE_SECONDS": str(BASE),
    "HEADSWAP_CALLBACK_BACKOFF_MAX_SECONDS": str(CAP),
    "HEADSWAP_CALLBACK_CONNECT_TIMEOUT": "1",
    "HEADSWAP_CALLBACK_READ_TIMEOUT": "2",
}


def job(name: str, **extra):
    return {"video_url": f"https://cdn.example.com/in/{name}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p", **extra}


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def stack(redis_server, sandbox_process):
    env = {**CALLBACK_ENV, "HEADSWAP_CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8"}
    with running_stack(redis_server.url, sandbox_process, extra_env=env) as st:
        yield st


@pytest.fixture(scope="module")
def producer(stack):
    p = producer_for(stack)
    yield p
    p.close()


def name() -> str:
    return uuid.uuid4().hex[:8]


def callback_settled(producer, job_id: str, timeout: float = 20) -> dict:
    """The job record once its callback is delivered or failed."""
    def settled() -> bool:
        record = producer.get(job_id) or {}
        return record.get("callback_status") in ("delivered", "failed")
    wait_until(settled, timeout, what=f"callback of {job_id} settled")
    return producer.get(job_id)


def test_a_succeeded_job_is_posted_once_and_verifies_with_the_standardwebhooks_library(
        stack, producer, receiver):
    n = name()
    job_id = producer.submit(**job(n), callback_url=receiver.url(n))
    record = producer.wait(job_id, timeout=30)
    assert record["state"] == "succeeded"
    settled = callback_settled(producer, job_id)
    time.sleep(1.0)  # a duplicate would have arrived by now (notify is long done)
    [post] = receiver.got(n)

    headers, body = post["headers"], post["body"]
    assert post["method"] == "POST"
    assert headers["Content-Type"] == "application/json"
    assert headers["Webhook-Id"] == f"{job_id}:succeeded"
    assert abs(int(headers["Webhook-Timestamp"]) - time.time()) < 60
    # A receiver on the new secret and one still on the old both verify (rotation) ...
    for secret in (SECRET, OLD_SECRET):
        sent = Webhook(secret).verify(body, headers)
        assert sent["job_id"] == job_id and sent["state"] == "succeeded"
        assert sent["output_url"] == record["output_url"]
    assert verify_callback_signature([OLD_SECRET], headers, body, tolerance=60)
    # ... and one on any other secret refuses it.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(body, headers)
    assert settled["callback_status"] == "delivered"
    assert int(settled["callback_attempts"]) == 1
    # the task message carries the job id only; neither secret nor signature is logged
    logs = stack.logs()
    assert "headswap.deliver_callback" in logs
    for secret in (SECRET, OLD_SECRET):
        assert secret.removeprefix("whsec_") not in logs
    for signature in headers["Webhook-Signature"].split(" "):
        assert signature.split(",", 1)[1] not in logs


def test_a_failed_job_gets_its_own_event_id(stack, producer, receiver):
    n = name()
    job_id = producer.submit(**job(f"{n}-sandbox-fail"), callback_url=receiver.url(n))
    assert producer.wait(job_id, timeout=30)["state"] == "failed"
    callback_settled(producer, job_id)
    [post] = receiver.got(n)
    assert post["headers"]["Webhook-Id"] == f"{job_id}:failed"
    Webhook(SECRET).verify(post["body"], post["headers"])
    assert json.loads(post["body"])["reason"] == "akool_failed"


def test_two_500s_then_200_takes_three_attempts_with_growing_backoff(stack, producer,
                                                                     receiver):
    n = name()
    job_id = producer.submit(**job(n), callback_url=receiver.url(n, [500, 500]))
    settled = callback_settled(producer, job_id, timeout=30)
    posts = receiver.got(n)
    assert [p["status"] for p in posts] == [500, 500, 200]
    assert settled["callback_status"] == "delivered"
    assert int(settled["callback_attempts"]) == 3
    assert {p["headers"]["Webhook-Id"] for p in posts} == {f"{job_id}:succeeded"}
    assert [p["headers"]["X-Headswap-Delivery-Attempt"] for p in posts] == ["1", "2", "3"]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(posts)]
    assert gaps[0] >= BASE / 2 - 0.05  # attempt 1 waits [0.15, 0.3] s
    assert gaps[1] >= BASE - 0.05  # attempt 2 waits [0.3, 0.6] s
    for p in posts:  # each attempt is signed afresh and verifies
        Webhook(SECRET).verify(p["body"], p["headers"])
    assert job_id not in {d["job_id"] for d in producer.dead_letters(limit=1000)}


def test_an_always_failing_receiver_ends_in_a_dead_letter_after_max_attempts(stack, producer,
                                                                            receiver):
    n = name()
    url = receiver.url(n, [500] * 50)
    job_id = producer.submit(**job(n), callback_url=url)
    settled = callback_settled(producer, job_id, timeout=30)
    time.sleep(CAP + 0.5)  # no attempt after the last one
    assert len(receiver.got(n)) == MAX_ATTEMPTS
    assert settled["callback_status"] == "failed"
    assert int(settled["callback_attempts"]) == MAX_ATTEMPTS
    letters = {d["job_id"]: d for d in producer.dead_letters(limit=1000)}
    letter = letters[job_id]
    assert letter["reason"] == "attempts_exhausted"
    assert letter["attempts"] == MAX_ATTEMPTS and letter["last_status"] == 500
    assert letter["url"] == url and letter["event_id"] == f"{job_id}:succeeded"
    assert letter["at"] > time.time() - 60


def test_a_404_is_not_retried_and_is_dead_lettered(stack, producer, receiver):
    n = name()
    job_id = producer.submit(**job(n), callback_url=receiver.url(n, [404, 200, 200]))
    settled = callback_settled(producer, job_id)
    time.sleep(CAP + 0.5)  # a retry would have come by now
    assert [p["status"] for p in receiver.got(n)] == [404]
    assert settled["callback_status"] == "failed"
    letter = {d["job_id"]: d for d in producer.dead_letters(limit=1000)}[job_id]
    assert (letter["reason"], letter["last_status"], letter["attempts"]) == (
        "http_status", 404, 1)


def test_a_loopback_callback_without_the_allow_list_is_refused_unsent(redis_server,
                                                                     sandbox_process,
                                                                     receiver):
    """The default policy: no allowed networks, so 127.0.0.1 is never contacted."""
    with running_stack(redis_server.url, sandbox_process, extra_env=CALLBACK_ENV) as st:
        producer = producer_for(st)
        try:
            n = name()
            job_id = producer.submit(**job(n), callback_url=receiver.url(n))
            assert producer.wait(job_id, timeout=30)["state"] == "succeeded"
            settled = callback_settled(producer, job_id)
            time.sleep(0.5)
            assert receiver.got(n) == []
            assert settled["callback_status"] == "failed"
            [letter] = producer.dead_letters()
            assert (letter["job_id"], letter["reason"], letter["attempts"]) == (
                job_id, "blocked_address", 0)
            assert "blocked_address" in st.logs()
        finally:
            producer.close()


def test_the_post_goes_to_the_address_that_was_checked_not_a_second_lookup(redis_server,
                                                                          receiver):
    """Real HTTP through the shared session, in this process: the name resolves once
    (to loopback, allowed here); a second lookup would answer a refused address."""
    import socket

    from headswap_client import states

    from config.settings import load_settings
    from worker.callbacks import delivery
    from worker.runtime import Runtime

    answers = iter(["127.0.0.1", "169.254.169.254"])
    lookups = []

    def rebinding_resolver(host, port, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    settings = load_settings({**CALLBACK_ENV, "HEADSWAP_REDIS_URL": redis_server.url,
                              "HEADSWAP_KEY_PREFIX": "cb-" + name(),
                              "HEADSWAP_CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8"})
    rt = Runtime(settings, RecordingDispatcher())
    try:
        n = name()
        port = receiver.server.server_port
        rt.store.create("pin-1", {"callback_url": f"http://hooks.test:{port}/cb/{n}"},
                        state=states.SUCCEEDED)
        outcome = delivery.deliver(rt, "pin-1", resolver=rebinding_resolver)
        assert outcome.status == "delivered"
        assert lookups == ["hooks.test"]
        [post] = receiver.got(n)
        assert post["headers"]["Host"] == f"hooks.test:{port}"
        assert rt.store.get("pin-1")["callback_status"] == "delivered"
    finally:
        rt.store.close()
