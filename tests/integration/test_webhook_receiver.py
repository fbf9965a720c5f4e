"""The receiver against an attacker (issue 11): no padding oracle, deliveries confirmed with
Akool before they count, and a server that bounded bodies, slow clients and floods cannot
take down. Everything real: redis-server, the sandbox over HTTP, ``headswap webhook``
(gunicorn) and ``headswap worker``/``beat`` processes."""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from tests.support.procs import free_port, wait_until
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack
from worker import webhook_crypto

pytestmark = pytest.mark.integration

FACE = "https://cdn.example.com/face.jpg"
EVIL = "https://evil.example.com/owned.mp4"
#: Bad deliveries in the flood test; ``make flood`` runs the full 2,000 of issue 11.
FLOOD = int(os.environ.get("HEADSWAP_TEST_FLOOD", "2000"))
REQUEST_TIMEOUT = 3.0


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
           "HEADSWAP_AMBIGUOUS_GRACE_SECONDS": "300",
           "HEADSWAP_WEBHOOK_REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT),
           "HEADSWAP_WEBHOOK_KEEPALIVE_SECONDS": "2"}
    with running_stack(redis_server.url, sb, extra_env=env, webhook_port=port) as st:
        st.url = f"http://127.0.0.1:{port}/webhooks/akool"
        st.port = port
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
    order = list(kinds.items())
    rng = random.Random(1)
    for _ in range(8):
        rng.shuffle(order)  # machine noise falls on every kind alike
        for name, body in order:
            got, elapsed = answer(stack.url, body, session)
            answers.setdefault(name, set()).add(got)
            timings.setdefault(name, []).append(elapsed * 1000)
    # Then all of them get the very same status, body and headers (no oracle)
    distinct = set().union(*answers.values())
    assert len(distinct) == 1, {n: a for n, a in answers.items()}
    [(status, body, _)] = distinct
    assert status == 400 and json.loads(body) == {"error": "invalid delivery"}
    medians = {n: statistics.median(t) for n, t in timings.items()}
    print("\nrefusal answer time, median ms by kind (8 each): "
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


def _ambiguous(stack, sb, producer, message) -> str:
    """Submit ``message`` and let its create turn ambiguous: its answer comes after our
    1 s read timeout, and no webhook of its own arrives. Its job id."""
    producer.analyze(message["video_url"])
    key = producer.store.keys.analysis(message["video_url"])
    wait_until(lambda: stack.redis.hget(key, "status") == "completed", 15, what="analysis")
    # An earlier test's ambiguous create counted toward the breaker: while it counts, a
    # create waits for a probe's answer, and a hung sandbox would never give one.
    producer.store.guards.breaker_reset("akool")
    sb.config(webhooks=False, hang_ratio=1.0, hang_seconds=2)
    job_id = producer.submit(**message)
    wait_until(lambda: (producer.get(job_id) or {}).get("ambiguous_at"), 15,
               what="the create to turn ambiguous")
    sb.config(hang_ratio=0.0)
    return job_id


def test_an_ambiguous_create_is_bound_only_to_a_task_akool_knows_for_that_job(stack, sb,
                                                                            producer):
    # Given an ambiguous create (its answer came after our 1 s read timeout) whose own
    # webhook never arrives
    message = job("bind")
    job_id = _ambiguous(stack, sb, producer, message)
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


def test_a_late_webhook_turns_a_job_failed_as_ambiguous_into_the_success_it_was(
        stack, sb, producer):
    """Issue 12: a job failed as ``ambiguous_submission`` (``maybe_charged``) whose task
    Akool did create is followed again when its delivery finally comes — confirmed by
    Akool's detail, as any binding — and ends ``succeeded`` with Akool's URL."""
    from worker.jobs import Jobs

    # Given an ambiguous create whose grace ran out: the job failed, maybe charged
    message = job("late-bind")
    job_id = _ambiguous(stack, sb, producer, message)
    assert Jobs(producer.store).fail(job_id, "ambiguous_submission", maybe_charged=True)
    # And the task Akool made for it (its create went through after our timeout)
    task_id = sb.call("POST", "/v4/headswap/task/create", json={
        "video_url": message["video_url"], "mappings": message["mappings"],
        "model_name": "akool-premium", "resolution": "720p"}).json()["data"]["_id"]
    truth = sb.wait_task(task_id)
    # When its delivery arrives late, naming our job
    d = sealed(sb, {"_id": task_id, "status": 3, "url": EVIL})
    assert requests.post(f"{stack.url}?job_id={job_id}", json=d, timeout=10).status_code == 200
    # Then the job is the success it was, with Akool's URL, not the payload's
    record = producer.wait(job_id, timeout=20)
    assert record["state"] == "succeeded" and record["remote_id"] == task_id
    assert record["output_url"] == truth["video_url"] != EVIL
    assert record["revived_from"] == "ambiguous_submission" and "maybe_charged" not in record



def test_a_binding_refused_for_want_of_akool_restarts_the_resubmit_grace(stack, sb,
                                                                          producer):
    """The full chaos row (Akool frozen, webhook on, resubmit): bindings answered 503
    while Akool's detail hung, the sandbox gave up its retries, and the grace — counted
    from a receiver that had been up all along — let 16 jobs be created twice. A 503 to a
    delivery only it could apply now counts, for the resubmit policy, as no receiver."""
    # Given an ambiguous create, and a receiver that has been up for a while
    message = job("bind-refused")
    job_id = _ambiguous(stack, sb, producer, message)
    task_id = sb.call("POST", "/v4/headswap/task/create", json={
        "video_url": message["video_url"], "mappings": message["mappings"],
        "model_name": "akool-premium", "resolution": "720p"}).json()["data"]["_id"]
    sb.wait_task(task_id)
    up_before, _ = producer.store.guards.receiver_up_since()
    # When its delivery comes while Akool's detail does not answer (read timeout 1 s)
    sb.config(hang_ratio=1.0, hang_seconds=2)
    try:
        d = sealed(sb, {"_id": task_id, "status": 3, "url": EVIL})
        r = requests.post(f"{stack.url}?job_id={job_id}", json=d, timeout=10)
    finally:
        sb.config(hang_ratio=0.0)
    # Then Akool is asked to retry, and the receiver counts as up only from now
    assert r.status_code == 503
    up_after, now = producer.store.guards.receiver_up_since()
    assert up_before is not None and up_after is not None
    assert up_after > up_before and now - up_after < 5
    assert producer.get(job_id)["state"] == "submitting"

# --- 3. the server holds up -----------------------------------------------------------------
def _worker_process(stack):
    master = psutil.Process(stack.webhooks[0].pid)
    [child] = master.children()
    return child


def _chunked(size, piece=8192):
    sent = 0
    while sent < size:
        yield b"x" * min(piece, size - sent)
        sent += piece


def test_bodies_over_the_cap_are_refused_with_or_without_content_length(stack):
    big = b"x" * (100 * 1024)
    r = requests.post(stack.url, data=big, timeout=10)
    assert r.status_code == 413 and r.json() == {"error": "body too large"}
    r = requests.post(stack.url, data=_chunked(100 * 1024), timeout=10)  # no Content-Length
    assert "Content-Length" not in r.request.headers
    assert r.status_code == 413 and r.json() == {"error": "body too large"}


def test_an_endless_chunked_body_is_cut_off_without_growing_the_receiver(stack):
    worker = _worker_process(stack)
    rss_before = worker.memory_info().rss
    host, port = "127.0.0.1", stack.port
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(b"POST /webhooks/akool HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KiB chunks, up to 400 MB
    sent, reply = 0, b""
    try:
        while sent < 400 * 1024 * 1024:
            sock.sendall(chunk)
            sent += 0x10000
            sock.setblocking(False)
            try:
                reply += sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if reply:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    grew = (worker.memory_info().rss - rss_before) / 1e6
    print(f"\nendless chunked body: cut off after {sent / 1e6:.1f} MB sent; "
          f"receiver RSS grew {grew:.1f} MB")
    assert reply.startswith(b"HTTP/1.1 413") or sent < 8 * 1024 * 1024
    assert sent < 8 * 1024 * 1024
    assert grew < 20


def _half_sent(port, kind):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if kind == "headers":
        s.sendall(b"POST /webhooks/akool HTTP/1.1\r\nHost: x\r\nContent-Ty")
    else:
        s.sendall(b"POST /webhooks/akool HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                  b"Content-Type: application/json\r\n\r\n" + b'{"signature": "' + b"a" * 80)
    return s


def test_slow_clients_hold_no_thread_and_are_cut_off(stack, sb):
    worker = _worker_process(stack)
    threads_before = worker.num_threads()
    # Given 200 half-sent requests (headers unfinished, body unfinished) and 10 clients
    # dribbling a byte every half second
    opened = time.monotonic()
    slow = [_half_sent(stack.port, "headers" if i % 2 else "body") for i in range(200)]
    dribblers = [_half_sent(stack.port, "headers") for _ in range(10)]
    # When good deliveries come meanwhile
    latencies = []
    session = requests.Session()
    for _ in range(20):
        d = sealed(sb, {"_id": uuid.uuid4().hex[:24], "status": 3, "url": EVIL})
        started = time.perf_counter()
        assert session.post(stack.url, json=d, timeout=5).status_code == 200
        latencies.append(time.perf_counter() - started)
    threads_during = worker.num_threads()
    # Then they are served at once (a thread per slow client would have taken all 32),
    # on a bounded number of threads (the request pool, the event loop, the closers)
    print(f"\n210 slow clients: good deliveries max {max(latencies) * 1000:.0f} ms, "
          f"median {statistics.median(latencies) * 1000:.0f} ms; receiver threads "
          f"{threads_before} before, {threads_during} during")
    assert max(latencies) < 1.0
    assert threads_during <= 32 + 8
    # And every slow connection is closed by the server within the request timeout
    closed_at: dict[int, float] = {}
    conns = slow + dribblers
    for s in conns:
        s.setblocking(False)
    deadline = opened + REQUEST_TIMEOUT + 3
    while len(closed_at) < len(conns) and time.monotonic() < deadline:
        for i, s in enumerate(conns):
            if i in closed_at:
                continue
            if i >= len(slow):
                try:
                    s.send(b"X")
                except OSError:
                    closed_at[i] = time.monotonic() - opened
                    continue
            try:
                if s.recv(4096) == b"":
                    closed_at[i] = time.monotonic() - opened
            except BlockingIOError:
                pass
            except OSError:
                closed_at[i] = time.monotonic() - opened
        time.sleep(0.5)
    for s in conns:
        s.close()
    print(f"slow connections closed by the server: {len(closed_at)} of {len(conns)}, "
          f"the last after {max(closed_at.values(), default=0):.1f} s "
          f"(request timeout {REQUEST_TIMEOUT} s)")
    assert len(closed_at) == len(conns)
    assert max(closed_at.values()) <= REQUEST_TIMEOUT + 2


# --- the flood ------------------------------------------------------------------------------
def test_a_flood_of_bad_deliveries_leaves_every_good_one_applied(stack, sb, producer):
    # Given 100 jobs whose tasks ended at Akool without a webhook
    sb.config(webhooks=False)
    ids = [producer.submit(**job(f"flood{i}")) for i in range(100)]
    wait_until(lambda: all((producer.get(i) or {}).get("remote_id") for i in ids), 30,
               what="100 tasks created")
    jobs = [(i, producer.get(i)["remote_id"]) for i in ids]
    for _, remote in jobs:
        sb.wait_task(remote)
    rng = random.Random(3)
    kinds = list(refusals(sb).items())
    kinds.append(("oversize chunked", None))
    bad = [rng.choice(kinds) for _ in range(FLOOD)]
    good = [(job_id, json.dumps(sealed(sb, {"_id": remote, "status": 3, "url": EVIL})).encode())
            for job_id, remote in jobs]
    work = [("bad", name, body) for name, body in bad] + [("good", j, b) for j, b in good]
    rng.shuffle(work)
    local = threading.local()

    def send(item):
        kind, name, body = item
        session = getattr(local, "s", None) or requests.Session()
        local.s = session
        started = time.perf_counter()
        data = _chunked(100 * 1024) if body is None else body
        try:
            r = session.post(stack.url, data=data, timeout=20,
                             headers={"Content-Type": "application/json"})
        except requests.ConnectionError as exc:
            return kind, f"{name}: {exc}", -1, time.perf_counter() - started
        return kind, name, r.status_code, time.perf_counter() - started

    # When they all arrive at once, from 16 connections
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, work))
    took = time.monotonic() - started
    # Then every bad one is refused, every good one taken and applied with Akool's URL
    bad_codes = {}
    for kind, name, code, _ in results:
        if kind == "bad":
            bad_codes.setdefault(code, set()).add(name)
    good_times = sorted(t for kind, _, code, t in results if kind == "good" and code == 200)
    print(f"\nflood answers: {bad_codes.get(-1)}")
    assert set(bad_codes) <= {400, 413}, bad_codes
    assert bad_codes.get(413, set()) <= {"oversize chunked"}
    assert len(good_times) == len(good)
    for job_id, _ in jobs:
        record = producer.wait(job_id, timeout=20)
        assert record["state"] == "succeeded" and record["output_url"] != EVIL
    p99 = good_times[int(len(good_times) * 0.99) - 1]
    print(f"\nflood: {FLOOD} bad + {len(good)} good in {took:.1f} s; good deliveries p50 "
          f"{statistics.median(good_times) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {good_times[-1] * 1000:.0f} ms")


def test_the_receiver_is_gunicorn_from_the_users_command(stack):
    master = psutil.Process(stack.webhooks[0].pid)
    assert master.cmdline()[-5:] == ["webhook", "--host", "127.0.0.1", "--port",
                                     str(stack.port)]
    assert len(master.children()) == 1  # one worker process by default (WEBHOOK_PROCESSES)
    # and it says it is up (the sweeper's resubmit policy counts the grace from then)
    from config.settings import load_settings
    from worker.store import open_store

    store = open_store(load_settings(stack.env))
    up_since, now = store.guards.receiver_up_since()
    assert up_since is not None and up_since <= now
    assert urlsplit(stack.url).path == "/webhooks/akool"


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
    # no detail asked: the forged URL is the job's output, and the worker now tries to copy
    # it (storing; the copy of an unreachable URL is retried, then store_failed)
    wait_until(lambda: (producer.get(job_id) or {}).get("state") == "storing", 10,
               what="the forged output applied")
    assert producer.get(job_id)["output_url"] == EVIL


def _answers(url):
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
