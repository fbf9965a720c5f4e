"""Messages sent without ``queue=``: a backend's plain Celery app puts ``headswap.*`` tasks
in Celery's default queue ``celery``, which no headswap worker reads. The sweep moves them
onto their own queue (never lost, never doubled), and counts and logs them with the fix.
Real Redis (the test's own redis-server) and a real foreign Celery app as the producer."""

from __future__ import annotations

import json
import logging

import pytest
from celery import Celery

from config.settings import load_settings
from tests.support.dispatch import RecordingDispatcher
from worker import ops, sweeper
from worker.broker import misrouted
from worker.metrics import MISROUTED_MESSAGES

JOB = {"video_url": "https://cdn.example.com/in.mp4", "resolution": "720p",
       "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}]}
PRIORITY_6 = f"celery{misrouted.PRIORITY_SEP}6"


@pytest.fixture
def rt(redis_server, redis_client):
    from worker.runtime import Runtime

    runtime = Runtime(load_settings({"HEADSWAP_REDIS_URL": redis_server.url,
                                     "HEADSWAP_KEY_PREFIX": "mr"}), RecordingDispatcher())
    yield runtime
    runtime.store.close()
    runtime.misrouted.close()


@pytest.fixture
def backend(redis_server):
    """A backend's own Celery app: nothing of ours configured, Celery's defaults."""
    app = Celery("backend", broker=redis_server.url)
    yield app
    app.close()


def envelopes(redis_client, key):
    return [json.loads(raw) for raw in redis_client.lrange(key, 0, -1)]


def moved_count(task: str) -> float:
    return MISROUTED_MESSAGES.labels(task, "celery")._value.get()


def test_a_submit_sent_without_queue_is_moved_once_onto_the_submit_queue(rt, backend,
                                                                         redis_client, caplog):
    # Given a backend that forgot queue=, and its own task in the same default queue
    sent = backend.send_task("headswap.submit", kwargs={**JOB, "job_id": "forgot-queue-1"})
    own = backend.send_task("orders.shipped", args=[42])
    assert [e["headers"]["task"] for e in envelopes(redis_client, "celery")] == [
        "orders.shipped", "headswap.submit"]
    [before] = [e for e in envelopes(redis_client, "celery") if e["headers"]["id"] == sent.id]
    assert ops.stats(rt)["misrouted_waiting"] == 1
    counted = moved_count("headswap.submit")

    # When the sweep runs (twice: a second sweep finds nothing more)
    with caplog.at_level(logging.WARNING, logger="worker.sweeper"):
        assert sweeper.reroute_misrouted(rt) == 1
    assert sweeper.reroute_misrouted(rt) == 0

    # Then the message is on headswap.submit, once, byte for byte but its address
    [after] = envelopes(redis_client, "headswap.submit")
    assert after["headers"] == before["headers"] and after["body"] == before["body"]
    assert after["properties"]["delivery_info"] == {"exchange": "",
                                                    "routing_key": "headswap.submit"}
    assert after["properties"]["delivery_tag"] == before["properties"]["delivery_tag"]
    # the backend's own task is left where its sender put it
    assert [e["headers"]["id"] for e in envelopes(redis_client, "celery")] == [own.id]
    # and it was counted and said, with the fix
    assert moved_count("headswap.submit") == counted + 1
    [warning] = [r for r in caplog.records if r.name == "worker.sweeper"]
    assert warning.levelname == "WARNING"
    text = warning.getMessage()
    assert "without queue=" in text and "queue='headswap.submit'" in text
    assert warning.message_ids == [sent.id] and warning.queue == "headswap.submit"
    figures = ops.stats(rt)
    assert figures["misrouted_waiting"] == 0 and figures["misrouted_moved"] == 1
    assert figures["misrouted_last_task"] == "headswap.submit"
    assert figures["misrouted_last_at"] > 0


def test_each_task_goes_to_its_own_queue_at_its_priority(rt, backend, redis_client):
    backend.send_task("headswap.deliver_callback", kwargs={"job_id": "j1"})
    backend.send_task("headswap.submit", kwargs=JOB, priority=6)
    assert redis_client.llen(PRIORITY_6) == 1
    assert sweeper.reroute_misrouted(rt) == 2
    [callback] = envelopes(redis_client, "headswap.notify")
    assert callback["headers"]["task"] == "headswap.deliver_callback"
    [prioritised] = envelopes(redis_client, f"headswap.submit{misrouted.PRIORITY_SEP}6")
    assert prioritised["headers"]["task"] == "headswap.submit"
    assert redis_client.llen("celery") == redis_client.llen(PRIORITY_6) == 0


def test_an_unknown_headswap_task_goes_to_the_submit_queue_where_it_is_kept_as_dead(
        rt, backend, redis_client):
    """The worker there keeps it in dead-messages (``unknown_task``): seen, not lost."""
    counted = moved_count("other")
    backend.send_task("headswap.no_such_task", kwargs={})
    assert sweeper.reroute_misrouted(rt) == 1
    assert [e["headers"]["task"] for e in envelopes(redis_client, "headswap.submit")] == [
        "headswap.no_such_task"]
    assert moved_count("other") == counted + 1


def test_entries_that_only_look_like_ours_are_left_alone(rt, redis_client):
    junk = [b'not json but "task": "headswap.submit"', b'\xff\xfe"task": "headswap.x"',
            json.dumps({"body": '"task": "headswap.submit"', "headers": {"task": "svc.a"},
                        "properties": {}}).encode()]
    redis_client.lpush("celery", *junk)
    assert ops.misrouted_waiting(rt) == {}
    assert sweeper.reroute_misrouted(rt) == 0
    assert redis_client.llen("celery") == 3


def test_a_message_taken_between_scan_and_move_is_not_pushed(rt, backend, redis_client):
    backend.send_task("headswap.submit", kwargs=JOB)
    [entry] = rt.misrouted.scan(misrouted.lists_of("celery"))
    redis_client.delete("celery")  # a consumer of 'celery' took it meanwhile
    assert rt.misrouted.move(entry, "headswap.submit", entry.raw, "headswap.submit") is False
    assert redis_client.llen("headswap.submit") == 0
    assert rt.misrouted.tally()["moved"] == 0


def test_the_sweep_reports_what_it_moved(rt, backend):
    backend.send_task("headswap.submit", kwargs=JOB)
    assert sweeper.sweep(rt)["misrouted"] == 1


def test_pure_helpers():
    assert misrouted.lists_of("celery") == ["celery", "celery\x06\x163", "celery\x06\x166",
                                            "celery\x06\x169"]
    assert misrouted.target_list("celery\x06\x169", "headswap.poll") == "headswap.poll\x06\x169"
    assert misrouted.home_queue("headswap.poll_due") == "headswap.poll"
    assert misrouted.task_label("headswap.bogus") == "other"
    assert misrouted.task_of(b"[1, 2]") is None
    assert misrouted.readdressed(b'{"headers": {}}', "headswap.submit") == b'{"headers": {}}'
