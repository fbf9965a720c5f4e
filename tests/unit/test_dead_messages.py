"""The dead-message list in Redis: kept once, byte for byte, requeued all or nothing."""

from __future__ import annotations

import pytest
import redis as redis_lib

from worker.errors import DeadMessageRefused
from worker.store import RAW_CAP, DeadMessages, Keys


@pytest.fixture
def raw_client(redis_server, redis_client):  # redis_client flushes the database
    client = redis_lib.Redis.from_url(redis_server.url)  # answers bytes, like the worker's
    yield client
    client.close()


@pytest.fixture
def dead(raw_client):
    return DeadMessages(raw_client, Keys("t"))


def test_an_entry_is_kept_byte_for_byte_with_the_server_time(dead, raw_client):
    secs, _ = raw_client.time()
    assert dead.keep("a", "not_utf8", "headswap.submit", b"\xff\xfe\x00", "d")
    [entry] = dead.list()
    assert (entry.id, entry.reason, entry.queue, entry.raw, entry.size, entry.truncated,
            entry.detail) == ("a", "not_utf8", "headswap.submit", b"\xff\xfe\x00", 3, False, "d")
    assert abs(entry.at - secs) < 5


def test_the_same_id_is_kept_once(dead):
    assert dead.keep("a", "unknown_task", "q", b"1")
    assert not dead.keep("a", "unknown_task", "q", b"1")
    assert dead.count() == 1


def test_an_entry_over_the_cap_keeps_its_head_and_cannot_be_requeued(dead, raw_client):
    dead.keep("big", "not_json", "q", b"x" * (RAW_CAP + 10))
    entry = dead.get("big")
    assert entry is not None and entry.truncated and entry.size == RAW_CAP + 10
    assert len(entry.raw) == RAW_CAP
    with pytest.raises(DeadMessageRefused, match="truncated"):
        dead.requeue("big")
    assert dead.count() == 1 and raw_client.llen("q") == 0


def test_requeue_pushes_the_bytes_at_the_back_of_the_queue_and_forgets_the_entry(
        dead, raw_client):
    raw_client.lpush("q", b"waiting")
    dead.keep("a", "unknown_task", "q", b"fixed")
    dead.requeue("a")
    assert raw_client.lrange("q", 0, -1) == [b"fixed", b"waiting"]  # BRPOP takes "waiting" first
    assert dead.count() == 0 and dead.get("a") is None
    with pytest.raises(DeadMessageRefused, match="no dead message"):
        dead.requeue("a")


def test_delete_forgets_one_entry(dead):
    dead.keep("a", "not_json", "q", b"1")
    dead.keep("b", "not_json", "q", b"2")
    assert dead.delete("a") and not dead.delete("a")
    assert [e.id for e in dead.list()] == ["b"]
