"""Poison messages are quarantined, never fatal (issue 11).

Bad entries of every kind sit on the queues ahead of real jobs; a real ``headswap worker``
(and beat) run as operators run them. On main the first unreadable entry stopped the
worker ("Unrecoverable error", exit 1) and every restarted worker hit the next one;
unknown task names and pickle bodies vanished with one log line.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests

from config.settings import load_settings
from tests.integration.test_commands import (
    HEADSWAP,
    cli_env,
    headswap_output,
    json_lines,
    started_worker,
)
from tests.support.poison import HUGE, bad_entries, envelope, raw
from tests.support.procs import free_port, spawn, stop, wait_until
from tests.support.stack import fresh_db_url
from worker.producer import Producer
from worker.store import RAW_CAP, open_dead_messages, redis_client

pytestmark = pytest.mark.integration

QUEUES = ("headswap.submit", "headswap.poll", "headswap.notify")
#: kombu's hash of delivered, unacked messages (and its index).
UNACKED = ("unacked", "unacked_index")


def job(n: int) -> dict:
    return {"video_url": f"https://cdn.example.com/poison/{n}.mp4?duration=4",
            "resolution": "720p",
            "mappings": [{"obj_id": 0, "img_url": f"https://cdn.example.com/face.jpg?n={n}"}]}


def dead_total(text: str) -> Counter:
    out: Counter = Counter()
    for line in text.splitlines():
        if line.startswith("headswap_dead_messages_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:
                                                            line.index("}")].split(","))
            out[labels["reason"].strip('"'), labels["queue"].strip('"')] += float(
                line.rsplit(" ", 1)[1])
    return out


def test_bad_entries_ahead_of_real_jobs_are_quarantined_and_the_jobs_still_succeed(
        redis_server, sandbox, tmp_path):
    # Given every kind of bad entry on headswap.submit, some on poll and notify, and real
    # jobs behind them
    port = free_port()
    env = cli_env(fresh_db_url(redis_server.url), sandbox, HEADSWAP_METRICS_PORT=str(port))
    settings = load_settings(env)
    client = redis_client(settings, decode=False)
    text_client = redis_client(settings)
    dead = open_dead_messages(settings)
    pushed = [("headswap.submit", *e) for e in bad_entries("headswap.submit")]
    pushed += [("headswap.poll", *e) for e in bad_entries("headswap.poll", n=1)[:3]]
    pushed += [("headswap.notify", "unknown task", raw(envelope(
        "headswap.nope", queue="headswap.notify")), "unknown_task")]
    for queue, _kind, entry, _reason in pushed:
        client.lpush(queue, entry)
    producer = Producer(settings)
    ids = [producer.submit(**job(n)) for n in range(3)]
    beat = spawn([HEADSWAP, "beat", "-s", str(tmp_path / "schedule")], env=env,
                 log=tmp_path / "beat.log")
    worker = None
    try:
        # When one worker takes them all
        worker = started_worker("poison", env, tmp_path / "worker.log", text_client, "-c", "2")
        wait_until(lambda: dead.count() == len(pushed) or worker.poll() is not None, 30,
                   what="every bad entry kept")
        # Then the worker is still there, and the real jobs behind the bad entries succeed
        assert worker.poll() is None, "the worker exited: " + (
            tmp_path / "worker.log").read_text()[-600:]
        records = [producer.wait(job_id, timeout=60) for job_id in ids]
        assert [r["state"] for r in records] == ["succeeded"] * 3
        stop(beat)
        wait_until(lambda: not any(client.exists(k) for k in (*QUEUES, *UNACKED)), 30,
                   what="queues and kombu's unacked hash empty")
        assert worker.poll() is None
        scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        metrics = dead_total(scraped)
        assert f"headswap_dead_messages_kept {float(len(pushed))}" in scraped  # the global gauge
    finally:
        producer.close()
        if worker is not None:
            stop(worker)
        stop(beat)
        text_client.close()

    # And every bad entry is in dead-messages with its reason and queue, counted and logged
    kept = dead.list(limit=1000)
    expected = Counter((reason, queue) for queue, _k, _e, reason in pushed)
    assert Counter((e.reason, e.queue) for e in kept) == expected
    assert metrics == expected
    for entry in kept:
        if entry.reason in ("not_json", "not_an_object", "not_utf8", "bad_envelope",
                            "bad_body_encoding"):
            assert any(entry.raw == e[:RAW_CAP] for _q, _k, e, _r in pushed)  # byte for byte
    [huge] = [e for e in kept if e.size == HUGE]
    assert huge.truncated and len(huge.raw) == RAW_CAP
    log = (tmp_path / "worker.log").read_text()
    said = [x for x in json_lines(tmp_path / "worker.log")
            if x["msg"] == "queue entry quarantined in dead-messages"]
    assert len(said) == len(pushed) and {x["level"] for x in said} == {"WARNING"}
    assert "Unrecoverable error" not in log
    assert "I am not JSON" not in log and "xxxxxxxxxx" not in log  # never the bytes
    client.close()


def test_dead_messages_lists_entries_and_requeue_hands_a_fixed_one_to_a_worker(
        redis_server, sandbox, tmp_path):
    # Given a task a producer sends before any worker knows it: it is quarantined
    env = cli_env(fresh_db_url(redis_server.url), sandbox)
    settings = load_settings(env)
    text_client = redis_client(settings)
    bytes_client = redis_client(settings, decode=False)
    bytes_client.lpush("headswap.submit", b"not json, https://u:pw@cdn.example.com/x?sig=S3CRET")
    late = envelope("tests.late_task", json.dumps([["marker-1"], {}, {}]).encode())
    bytes_client.lpush("headswap.submit", raw(late))
    worker = started_worker("old", env, tmp_path / "old.log", text_client, "-c", "1")
    try:
        wait_until(lambda: open_dead_messages(settings).count() == 2, 30, what="both kept")
    finally:
        stop(worker)

    # When an operator lists them
    assert json.loads(headswap_output(env, "stats", "--json"))["dead_messages"] == 2
    listed = json.loads(headswap_output(env, "dead-messages", "--json"))
    table = headswap_output(env, "dead-messages")
    # Then each shows its id, queue, reason, size and a preview without secrets
    assert {(e["reason"], e["queue"]) for e in listed} == {
        ("not_json", "headswap.submit"), ("unknown_task", "headswap.submit")}
    assert all(e["id"] and e["at"] > 0 and e["size"] > 0 for e in listed)
    assert "S3CRET" not in json.dumps(listed) and "pw@" not in json.dumps(listed)
    assert "S3CRET" not in table and "unknown_task" in table
    [entry] = [e for e in listed if e["reason"] == "unknown_task"]
    assert "tests.late_task" in entry["preview"]

    # When the fix ships (a worker that knows the task) and the operator requeues it
    worker = started_worker("new", env, tmp_path / "new.log", text_client, "-c", "1",
                            "--include", "tests.support.late_task")
    try:
        said = headswap_output(env, "dead-messages", "--requeue", entry["id"])
        assert entry["id"] in said
        # Then the worker runs it, and the list no longer holds it
        wait_until(lambda: text_client.lrange("test:late", 0, -1) == ["marker-1"], 30,
                   what="the requeued task to run")
        [garbage] = json.loads(headswap_output(env, "dead-messages", "--json"))
        assert garbage["reason"] == "not_json"
        # And the operator can forget what no fix will save
        headswap_output(env, "dead-messages", "--delete", garbage["id"])
        assert json.loads(headswap_output(env, "dead-messages", "--json")) == []
    finally:
        stop(worker)
        text_client.close()
        bytes_client.close()
