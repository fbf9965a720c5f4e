"""The pure parts of output storage: the object key template and the hashing reader."""

from __future__ import annotations

import calendar
import hashlib

import pytest

from worker.storage import HashingReader, object_key

TEMPLATE = "{producer}/{date}/{job_id}.mp4"
AT = calendar.timegm((2026, 12, 3, 23, 59, 59))


def record(**kw):
    return {"job_id": "job-1", "remote_id": "r1", "storing_at": AT, **kw}


def test_the_key_names_producer_day_and_job():
    key = object_key(TEMPLATE, record(metadata={"producer": "orders"}))
    assert key == "orders/2026/12/03/job-1.mp4"


def test_every_attempt_renders_the_same_key_from_the_stored_time():
    first = object_key(TEMPLATE, record())
    assert object_key(TEMPLATE, record()) == first == "_/2026/12/03/job-1.mp4"


@pytest.mark.parametrize(("producer", "part"), [
    ("../../etc", "_.._.._etc"),
    ("a/b c", "a_b_c"),
    ("   ", "_"),
    (17, "_"),
    ("x" * 100, "x" * 64),
])
def test_no_producer_name_can_climb_out_of_the_prefix(producer, part):
    key = object_key(TEMPLATE, record(metadata={"producer": producer}))
    assert key == f"{part}/2026/12/03/job-1.mp4"
    assert ".." not in key.split("/")


def test_a_template_starting_with_a_slash_gives_a_relative_key():
    assert object_key("/{job_id}/{remote_id}.mp4", record()) == "job-1/r1.mp4"


def test_the_hashing_reader_counts_and_hashes_what_it_hands_out():
    chunks = [b"abc", b"", b"defgh", b"i"]
    reader = HashingReader(iter(chunks), expected_size=9)
    got = [reader.read(4), reader.read(4), reader.read(4), reader.read(4)]
    assert got == [b"abcd", b"efgh", b"i", b""]
    assert reader.size == 9 and reader.sha256 == hashlib.sha256(b"abcdefghi").hexdigest()


def test_the_hashing_reader_reads_the_rest_at_once():
    reader = HashingReader(iter([b"ab", b"cd"]))
    assert reader.read(1) == b"a" and reader.read() == b"bcd" and reader.size == 4
