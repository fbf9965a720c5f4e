"""The webhook receiver as its own process: completion without polling, ambiguity
resolution, and refusal of every forged, tampered or replayed delivery."""

from __future__ import annotations

import random
import sys
import time
import uuid

import pytest
import requests

from tests.support import akool_reference
from tests.support.procs import free_port, wait_until
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack, wait_all_terminal
from worker import webhook_crypto

FACE = "https://cdn.example.com/face.jpg"


def job(n, **extra):
    return {"video_url": f"https://cdn.example.com/hook/{n}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p", **extra}


@pytest.fixture(scope="module")
def hook_sandbox():
    sb = SandboxProcess.start(knobs={**FAST_KNOBS, "processing_time": 0.5}, seed=5)
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def hook_stack(redis_server, hook_sandbox):
    port = free_port()
    # Safety-net polling every 5 minutes: within this test, completion can only come by webhook.
    env = {"HEADSWAP_SAFETY_NET_POLL_SECONDS": "300", "HEADSWAP_READ_TIMEOUT": "1",
           "HEADSWAP_AMBIGUOUS_GRACE_SECONDS": "120"}
    # A database of its own (fresh_db_url): no flush, which the workers would rightly
    # report as Redis having lost its data (alert store_lost).
    with running_stack(redis_server.url, hook_sandbox, extra_env=env, webhook_port=port) as st:
        st.webhook_url = f"http://127.0.0.1:{port}/webhooks/akool"
        yield st


@pytest.fixture
def producer(hook_stack):
    p = producer_for(hook_stack)
    yield p
    p.close()


def test_jobs_complete_by_webhook_with_polling_only_a_safety_net(hook_stack, producer,
                                                                 hook_sandbox):
    detail_before = hook_sandbox.stats()["detail_calls"]
    ids = [producer.submit(**job(f"ok{i}")) for i in range(10)]
    ids.append(producer.submit(**job("x-sandbox-fail")))
    results = wait_all_terminal(producer, ids, timeout=45)
    states = sorted(r["state"] for r in results.values())
    assert states == ["failed"] + ["succeeded"] * 10
    assert all(r["source"] == "webhook" for r in results.values())
    assert all(r["output_url"] for r in results.values() if r["state"] == "succeeded")
    # Not one poll was needed: one detail call per job, the webhook's confirmation.
    assert hook_sandbox.stats()["detail_calls"] - detail_before == len(ids)
    per_job = hook_sandbox.stats()["creates_by_job"]
    assert all(per_job[i] == 1 for i in ids)  # our job id rides in the webhookUrl
    # Completion signals fire in a worker (where producers load their receivers), not in
    # the receiver process: the recorder is loaded into the workers only.
    wait_until(lambda: {s["job_id"] for s in hook_stack.recorded_signals()
                        if s["signal"] in ("job_succeeded", "job_failed")} >= set(ids), 15,
               what="completion signals in the workers")


def test_an_ambiguous_create_is_bound_to_its_job_by_the_webhook(hook_stack, producer,
                                                               hook_sandbox):
    message = job("ambiguous")
    producer.analyze(message["video_url"])  # analysed first, so that only the create hangs
    key = producer.store.keys.analysis(message["video_url"])
    wait_until(lambda: hook_stack.redis.hget(key, "status") == "completed", 15, what="analysis")
    # The create runs but its answer comes after our 1 s read timeout; the task ends
    # (and its webhook fires) later still.
    hook_sandbox.config(hang_ratio=1.0, hang_seconds=3, processing_time=2.5)
    job_id = producer.submit(**message)
    try:
        # Only the create hangs: once it is ambiguous, Akool answers again (the webhook's
        # binding is confirmed with a detail call for the task it names).
        wait_until(lambda: (producer.get(job_id) or {}).get("ambiguous_at"), 15,
                   what="the create to turn ambiguous")
        hook_sandbox.config(hang_ratio=0.0)
        record = producer.wait(job_id, timeout=30)
    finally:
        hook_sandbox.config(hang_ratio=0.0)
    assert record["state"] == "succeeded"
    assert record["bound_by"] == "webhook"
    assert record["error"]["message"].startswith("read timeout")  # why it was ambiguous
    assert hook_sandbox.stats()["creates_by_job"][job_id] == 1


def _valid_delivery(sb, remote_id="0" * 24, status=3):
    return webhook_crypto.seal({"_id": remote_id, "status": status, "type": "headswap",
                                "url": "https://evil.example.com/x.mp4"},
                               sb.client_id, sb.client_secret,
                               timestamp=int(time.time() * 1000),
                               nonce=uuid.uuid4().hex).to_json()


def _forgeries(sb, n, rng):
    """Forged (wrong key), tampered (one field changed), malformed and stale deliveries."""
    for i in range(n):
        kind = i % 6
        d = _valid_delivery(sb)
        if kind == 0:
            d = webhook_crypto.seal({"_id": "0" * 24, "status": 3}, "ATTACKERCLIENT01",
                                    "ATTACKERSECRETKEY0123456", timestamp=d["timestamp"],
                                    nonce=d["nonce"]).to_json()
        elif kind == 1:
            d["dataEncrypt"] = d["dataEncrypt"][:-6] + "".join(rng.choices("ABCDEF", k=4)) + "=="
        elif kind == 2:
            d["signature"] = "".join(rng.choices("0123456789abcdef", k=40))
        elif kind == 3:
            d["timestamp"] = d["timestamp"] - 3_600_000  # an hour old: replay window
        elif kind == 4:
            d = rng.choice([{}, [], "x", {"signature": 1}, {**d, "nonce": None},
                            {**d, "timestamp": "soon"}])
        else:
            d["nonce"] = d["nonce"] + "x"
        yield d


def test_forged_tampered_and_replayed_deliveries_are_all_refused(hook_stack, producer,
                                                                 hook_sandbox):
    job_id = producer.submit(**job("target"))
    record = producer.wait(job_id, timeout=30)
    target_remote = record["remote_id"]
    wait_until(lambda: producer.get(job_id).get("notified_at"), 15, what="notify")
    def job_events():
        return [e for _, e in hook_stack.redis.xrange(producer.store.keys.events)
                if e.get("job_id") == job_id]
    events_before = job_events()
    snapshot = hook_stack.redis.hgetall(producer.store.keys.job(job_id))

    rng = random.Random(11)
    session = requests.Session()
    codes: dict[int, int] = {}
    accepted = 0
    for d in _forgeries(hook_sandbox, 1000, rng):
        r = session.post(hook_stack.webhook_url, json=d, timeout=5)
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
        accepted += r.status_code == 200
    # Replays: one genuine delivery accepted once, then refused every time after.
    genuine = _valid_delivery(hook_sandbox, remote_id=target_remote, status=4)
    replies = [session.post(hook_stack.webhook_url, json=genuine, timeout=5).status_code
               for _ in range(50)]
    print(f"\nforged/tampered/malformed: 1000 sent, {accepted} accepted, codes {codes}; "
          f"genuine delivery accepted once; replays: {replies[1:].count(200)} of 49 accepted")
    assert accepted == 0
    assert set(codes) == {400}  # one answer for every kind of refusal: no oracle
    assert replies[0] == 200 and replies[1:] == [400] * 49
    # The genuine (late, contradictory) status 4 could not undo a succeeded job either.
    assert hook_stack.redis.hgetall(producer.store.keys.job(job_id)) == snapshot
    assert job_events() == events_before


def test_a_delivery_from_an_independent_implementation_is_accepted(hook_stack, producer,
                                                                  hook_sandbox):
    body = akool_reference.deliver({"_id": "f" * 24, "status": 3, "type": "headswap",
                                    "url": "https://cdn.example.com/o.mp4"},
                                   hook_sandbox.client_id, hook_sandbox.client_secret)
    r = requests.post(hook_stack.webhook_url, json=body, timeout=5)
    assert r.status_code == 200 and r.json()["ok"] is True


def test_health_endpoint_answers(hook_stack):
    r = requests.get(hook_stack.webhook_url.replace("/webhooks/akool", "/healthz"), timeout=5)
    assert r.status_code == 200 and r.json() == {"ok": True}


def test_bad_input_is_never_a_server_error(hook_stack):
    for body in (b"", b"{", b"[]", b"\xff\xfe", b'{"signature": "a"}', b"9" * 70000):
        r = requests.post(hook_stack.webhook_url, data=body, timeout=5,
                          headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (body[:20], r.status_code)


def test_a_receiver_process_serves_its_delivery_counts_as_metrics(hook_stack, hook_sandbox):
    """The webhook process has its own Prometheus endpoint (HEADSWAP_METRICS_PORT)."""
    from tests.support.procs import spawn, stop

    port, metrics_port = free_port(), free_port()
    env = {**hook_stack.env, "HEADSWAP_METRICS_PORT": str(metrics_port)}
    proc = spawn([sys.executable, "-m", "worker.cli", "webhook", "--port", str(port)], env=env)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{metrics_port}/metrics"), 20,
                   what="receiver metrics")
        url = f"http://127.0.0.1:{port}/webhooks/akool"
        forged = {**_valid_delivery(hook_sandbox), "signature": "0" * 40}
        assert requests.post(url, json=forged, timeout=5).status_code == 400
        assert requests.post(url, data=b"{", timeout=5).status_code == 400
        assert requests.post(url, json=_valid_delivery(hook_sandbox), timeout=5).status_code == 200
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    finally:
        stop(proc)
    assert 'headswap_webhook_deliveries_total{outcome="refused"} 2.0' in text
    assert 'headswap_webhook_deliveries_total{outcome="applied"} 1.0' in text
    assert "headswap_pending_remote_tasks" in text


def _answers(url):
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
