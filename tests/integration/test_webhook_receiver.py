"""The receiver against an attacker (issue 11): no padding oracle, and deliveries confirmed
with Akool before they count. Everything real: redis-server, the sandbox over HTTP,
``headswap webhook`` and ``headswap worker``/``beat`` processes."""

from __future__ import annotations

import base64
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.procs import free_port, wait_until
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack
from worker import webhook_crypto

pytestmark = pytest.mark.integration

FACE = "https://cdn.example.com/face.jpg"
EVIL = "https://evil.example.com/owned.mp4"


def job(n, **extra):
    return {"video_url": f"https://cdn.example.com/rx/{n}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p", **extra}


@pytest.fixture(scope="module")
def sb():
    sandbox = SandboxProcess.start(knobs={**FAST_KNOBS, "processing_time": 0.5}, seed=9)
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def stack(redis_server, sb):
    port = free_port()
    env = {"HEADSWAP_SAFETY_NET_POLL_SECONDS": "300", "HEADSWAP_READ_TIMEOUT": "1",
           "HEADSWAP_AMBIGUOUS_GRACE_SECONDS": "300"}
    with running_stack(redis_server.url, sb, extra_env=env, webhook_port=port) as st:
        st.url = f"http://127.0.0.1:{port}/webhooks/akool"
        yield st


@pytest.fixture
def producer(stack, sb):
    sb.config(webhooks=True, http_5xx_ratio=0.0, hang_ratio=0.0, processing_time=0.5)
    p = producer_for(stack)
    yield p
    p.close()
    sb.config(webhooks=True, http_5xx_ratio=0.0, hang_ratio=0.0, processing_time=0.5)


# --- deliveries ------------------------------------------------------------------------------
def sealed(sb, payload, *, ts=None, nonce=None, secret=None, plaintext=None):
    """A delivery signed and encrypted as Akool does (or with another key / raw plaintext)."""
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = nonce or uuid.uuid4().hex
    secret = secret or sb.client_secret
    raw = plaintext if plaintext is not None else json.dumps(payload).encode()
    data = webhook_crypto.encrypt(raw, sb.client_id, secret, pad="strict")
    return signed(sb, data, ts, nonce)


def signed(sb, data_encrypt, ts=None, nonce=None):
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = nonce or uuid.uuid4().hex
    return {"signature": webhook_crypto.sign(sb.client_id, ts, nonce, data_encrypt),
            "dataEncrypt": data_encrypt, "timestamp": ts, "nonce": nonce}


def bad_padding(sb):
    """A signed delivery whose last block decrypts to a bad PKCS#7 padding (checked)."""
    good = sealed(sb, {"_id": "a" * 24, "status": 3, "url": EVIL})["dataEncrypt"]
    ct = bytearray(base64.b64decode(good))
    for flip in range(1, 256):
        ct[-17] ^= flip
        tampered = base64.b64encode(bytes(ct)).decode()
        try:
            webhook_crypto.decrypt(tampered, sb.client_id, sb.client_secret, pad="strict")
        except webhook_crypto.WebhookCryptoError:
            return signed(sb, tampered)
        ct[-17] ^= flip
    raise AssertionError("no bad padding found")


def raw_body(template, **raw_fields):
    """A JSON body with some fields written verbatim (numbers json.dumps cannot write)."""
    parts = [f'"{k}": {v}' for k, v in raw_fields.items()]
    parts += [f'"{k}": {json.dumps(v)}' for k, v in template.items() if k not in raw_fields]
    return ("{" + ", ".join(parts) + "}").encode()


def refusals(sb):
    """Every kind of delivery that must be refused, by name: bytes to POST."""
    ok = sealed(sb, {"_id": "b" * 24, "status": 3, "url": EVIL})
    as_bytes = lambda d: json.dumps(d).encode()  # noqa: E731
    kinds = {
        "bad padding": as_bytes(bad_padding(sb)),
        "bad base64": as_bytes(signed(sb, "!!!not*base64!!!")),
        "partial block": as_bytes(signed(sb, base64.b64encode(b"x" * 15).decode())),
        "bad JSON plaintext": as_bytes(sealed(sb, None, plaintext=b"not json at all")),
        "non-object plaintext": as_bytes(sealed(sb, None, plaintext=b"[1, 2, 3]")),
        "payload without _id": as_bytes(sealed(sb, {"status": 3, "url": EVIL})),
        "wrong key": as_bytes(sealed(sb, {"_id": "b" * 24, "status": 3},
                                     secret="ATTACKERSECRETKEY0123456")),
        "wrong signature": as_bytes({**ok, "signature": "0" * 40}),
        "stale timestamp": as_bytes(sealed(sb, {"_id": "b" * 24, "status": 3},
                                           ts=int(time.time() * 1000) - 3_600_000)),
        "timestamp 10^400": raw_body(ok, timestamp="1" + "0" * 400),
        "timestamp 10^400 string": raw_body(ok, timestamp='"1' + "0" * 400 + '"'),
        "timestamp 1e308": raw_body(ok, timestamp="1e308"),
        "timestamp -1": raw_body(ok, timestamp="-1"),
        "timestamp NaN": raw_body(ok, timestamp="NaN"),
        "timestamp Infinity": raw_body(ok, timestamp="Infinity"),
        "huge nonce": as_bytes({**ok, "nonce": "9" * 20_000}),
        "nonce 10^400": raw_body(ok, nonce="1" + "0" * 400),
        "signature a number": raw_body(ok, signature="12345"),
        "signature a list": as_bytes({**ok, "signature": ["a", "b"]}),
        "deep nesting": b'{"signature": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        "not JSON": b"{",
        "empty body": b"",
        "not UTF-8": b"\xff\xfe\x00",
        "a JSON list": b"[]",
        "missing fields": as_bytes({"signature": ok["signature"]}),
    }
    return kinds


def answer(url, body, session=None):
    s = session or requests
    started = time.perf_counter()
    r = s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    elapsed = time.perf_counter() - started
    headers = {k: v for k, v in r.headers.items() if k.lower() != "date"}
    return (r.status_code, r.content, tuple(sorted(headers.items()))), elapsed


# --- 1. one answer for every refusal --------------------------------------------------------
def test_every_refusal_gets_one_identical_answer(stack, sb, producer):
    # Given a delivery Akool really sent, accepted once
    genuine = json.dumps(sealed(sb, {"_id": "c" * 24, "status": 3, "url": EVIL})).encode()
    assert answer(stack.url, genuine)[0][0] == 200
    kinds = {"replayed delivery": genuine, **refusals(sb)}
    # When every kind of bad delivery is sent (several times each)
    session = requests.Session()
    answers, timings = {}, {}
    for _ in range(5):
        for name, body in kinds.items():
            got, elapsed = answer(stack.url, body, session)
            answers.setdefault(name, set()).add(got)
            timings.setdefault(name, []).append(elapsed * 1000)
    # Then all of them get the very same status, body and headers (no oracle)
    distinct = set().union(*answers.values())
    assert len(distinct) == 1, {n: a for n, a in answers.items()}
    [(status, body, _)] = distinct
    assert status == 400 and json.loads(body) == {"error": "invalid delivery"}
    medians = {n: statistics.median(t) for n, t in timings.items()}
    print("\nrefusal answer time, median ms by kind (5 each): "
          + ", ".join(f"{n} {m:.1f}" for n, m in sorted(medians.items(), key=lambda x: x[1])))
    print(f"spread of medians: {max(medians.values()) - min(medians.values()):.2f} ms")


# --- 2. a hint, not the truth ---------------------------------------------------------------
def _submitted(producer, stack, message, timeout=20):
    job_id = producer.submit(**message)
    wait_until(lambda: (producer.get(job_id) or {}).get("remote_id"), timeout,
               what="the task to be created")
    return job_id, producer.get(job_id)["remote_id"]


def _poll_due_in(stack, producer, job_id):
    score = stack.redis.zscore(producer.store.keys.schedule("poll"), job_id)
    return None if score is None else score - producer.store.clock()


def test_a_forged_final_status_changes_nothing_unless_akool_detail_agrees(stack, sb,
                                                                        producer):
    # Given a job whose task is still processing at Akool
    sb.config(processing_time=6)
    job_id, remote = _submitted(producer, stack, job("forged"))
    before = stack.redis.hgetall(producer.store.keys.job(job_id))
    detail_calls = sb.stats()["detail_calls"]
    # When deliveries signed and encrypted with the real keys claim it ended (an attacker
    # holding a padding oracle could make these)
    for status in (3, 4):
        d = sealed(sb, {"_id": remote, "status": status, "url": EVIL, "error_code": 1})
        assert requests.post(stack.url, json=d, timeout=10).status_code == 200
    # Then nothing changed but the detail calls that checked them
    after = stack.redis.hgetall(producer.store.keys.job(job_id))
    assert after["state"] == before["state"] and "output_url" not in after
    assert sb.stats()["detail_calls"] - detail_calls == 2
    # And a "processing" delivery only brings the next poll forward
    assert _poll_due_in(stack, producer, job_id) > 60  # safety net: 300 s
    d = sealed(sb, {"_id": remote, "status": 2})
    assert requests.post(stack.url, json=d, timeout=10).status_code == 200
    assert _poll_due_in(stack, producer, job_id) < 2
    # And when the task really ends, the job takes Akool's output URL, not a payload's
    record = producer.wait(job_id, timeout=30)
    truth = sb.call("GET", "/v4/headswap/task/detail", params={"_id": remote}).json()["data"]
    assert record["state"] == "succeeded" and record["output_url"] == truth["video_url"]
    assert record["output_url"] != EVIL


def test_a_true_status_with_a_forged_url_takes_the_url_from_akool(stack, sb, producer):
    # Given a finished task whose webhook never came
    sb.config(webhooks=False)
    job_id, remote = _submitted(producer, stack, job("forged-url"))
    sb.wait_task(remote)
    # When a delivery says "completed" with an attacker's URL
    d = sealed(sb, {"_id": remote, "status": 3, "url": EVIL})
    assert requests.post(stack.url, json=d, timeout=10).status_code == 200
    # Then the job succeeded with the URL Akool's detail gives
    record = producer.wait(job_id, timeout=10)
    truth = sb.call("GET", "/v4/headswap/task/detail", params={"_id": remote}).json()["data"]
    assert record["state"] == "succeeded" and record["source"] == "webhook"
    assert record["output_url"] == truth["video_url"] != EVIL


def test_when_akool_cannot_confirm_the_job_is_polled_at_once(stack, sb, producer):
    # Given a finished task whose webhook never came, and Akool answering 500 to everything
    sb.config(webhooks=False)
    job_id, remote = _submitted(producer, stack, job("akool-down"))
    sb.wait_task(remote)
    sb.config(http_5xx_ratio=1.0)
    # When its delivery arrives
    d = sealed(sb, {"_id": remote, "status": 3, "url": EVIL})
    r = requests.post(stack.url, json=d, timeout=10)
    # Then it is taken (200: Akool need not retry), the payload is not applied, and the
    # job is polled at once rather than in 300 s
    assert r.status_code == 200
    assert producer.get(job_id)["state"] in ("submitted", "processing")
    assert _poll_due_in(stack, producer, job_id) < 2
    sb.config(http_5xx_ratio=0.0)
    record = producer.wait(job_id, timeout=20)
    assert record["state"] == "succeeded" and record["source"] == "poll"
    assert record["output_url"] != EVIL


def test_an_ambiguous_create_is_bound_only_to_a_task_akool_knows_for_that_job(stack, sb,
                                                                            producer):
    # Given an ambiguous create (its answer came after our 1 s read timeout) whose own
    # webhook never arrives
    message = job("bind")
    producer.analyze(message["video_url"])
    key = producer.store.keys.analysis(message["video_url"])
    wait_until(lambda: stack.redis.hget(key, "status") == "completed", 15, what="analysis")
    sb.config(webhooks=False, hang_ratio=1.0, hang_seconds=2)
    job_id = producer.submit(**message)
    wait_until(lambda: (producer.get(job_id) or {}).get("ambiguous_at"), 15,
               what="the create to turn ambiguous")
    sb.config(hang_ratio=0.0)
    # And a task of someone else's video that we never created
    other_video = "https://cdn.example.com/rx/foreign.mp4?duration=4"
    sb.analyze(other_video)
    foreign = sb.call("POST", "/v4/headswap/task/create", json={
        "video_url": other_video, "mappings": [{"obj_id": 0, "img_url": FACE}],
        "model_name": "akool-premium", "resolution": "720p"}).json()["data"]["_id"]
    sb.wait_task(foreign)
    hook = f"{stack.url}?job_id={job_id}"
    # When deliveries name our job with an id Akool does not know, and with the foreign task
    for remote in ("f" * 24, foreign):
        d = sealed(sb, {"_id": remote, "status": 3, "url": EVIL})
        assert requests.post(hook, json=d, timeout=10).status_code == 200
    # Then the job is bound to neither
    record = producer.get(job_id)
    assert record["state"] == "submitting" and not record.get("remote_id")
    assert producer.store.job_for_remote(foreign) is None


def test_trusting_the_payload_applies_a_forged_url_as_documented(stack, sb, producer):
    """HEADSWAP_WEBHOOK_TRUST_PAYLOAD=true is the documented risk: what it does, shown."""
    from tests.support.procs import spawn, stop

    sb.config(webhooks=False, processing_time=30)
    job_id, remote = _submitted(producer, stack, job("trusted"))
    port = free_port()
    env = {**stack.env, "HEADSWAP_WEBHOOK_TRUST_PAYLOAD": "true"}
    proc = spawn([str(Path(sys.executable).parent / "headswap"), "webhook", "--host",
                  "127.0.0.1", "--port", str(port)], env=env)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 20,
                   what="the trusting receiver")
        d = sealed(sb, {"_id": remote, "status": 3, "url": EVIL})
        detail_calls = sb.stats()["detail_calls"]
        r = requests.post(f"http://127.0.0.1:{port}/webhooks/akool", json=d, timeout=10)
        assert sb.stats()["detail_calls"] == detail_calls
    finally:
        stop(proc)
    assert r.status_code == 200
    record = producer.wait(job_id, timeout=10)
    assert record["state"] == "succeeded" and record["output_url"] == EVIL  # no detail asked


def _answers(url):
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
