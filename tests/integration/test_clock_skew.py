"""Processes whose clocks disagree still agree on what is due: the one clock is Redis's.

Workers run under libfaketime (the ``libfaketime`` wheel ships the library; LD_PRELOAD
shifts what ``time.time()`` and ``datetime.now()`` return in that process only). Before
the store took every timestamp from Redis ``TIME``:
- a worker 300 s behind recorded its creates "300 s old" and a correct worker's sweep
  marked them ambiguous (outcome unknown) at once — one was even resubmitted mid-call;
- a worker 3 s ahead of beat discarded every ``poll_due`` as expired (Celery computes
  ``expires`` on beat's clock): jobs stayed queued, nothing logged above INFO.
"""

from __future__ import annotations

import itertools
import time
import uuid

import pytest

from tests.support.stack import producer_for, running_stack

libfaketime = pytest.importorskip("libfaketime")

pytestmark = pytest.mark.integration

FACE = "https://cdn.example.com/face.jpg"


def skewed(offset: str) -> dict[str, str]:
    """Environment that runs a process with its clock shifted by ``offset`` ("-300")."""
    _, env = libfaketime.get_reload_information()
    lib_dir = env["LD_LIBRARY_PATH"]
    return {**env, "LD_PRELOAD": f"{lib_dir}/{env['LD_PRELOAD']}", "FAKETIME": offset,
            "DONT_FAKE_MONOTONIC": "1"}


def test_workers_with_skewed_clocks_neither_stall_nor_duplicate(redis_server, sandbox):
    sandbox.config(latency=0.3)  # creates take a while: a sweep may look at them mid-call
    run = uuid.uuid4().hex[:6]
    with running_stack(redis_server.url, sandbox, workers=0, beats=0,
                       extra_env={"HEADSWAP_CREATE_RATE": "8"}) as stack:
        normal = dict(stack.env)
        stack.env.update(skewed("-300"))  # five minutes behind everyone else
        stack.start_worker(concurrency=4)
        stack.env = {**normal, **skewed("+3")}  # three seconds ahead of beat
        stack.start_worker(concurrency=4)
        stack.env = normal
        stack.start_beat()
        stack.wait_ready()
        producer = producer_for(stack)
        try:
            started = time.monotonic()
            ids = [producer.submit(
                video_url=f"https://cdn.example.com/skew/{run}-{i % 4}.mp4?duration=4",
                mappings=[{"obj_id": 0, "img_url": f"{FACE}?job={i}"}], resolution="720p")
                for i in range(24)]
            records = [producer.wait(job_id, timeout=90) for job_id in ids]
            elapsed = time.monotonic() - started
        finally:
            producer.close()
    states = {r["job_id"]: r["state"] for r in records}
    assert set(states.values()) == {"succeeded"}, states
    assert not [r["job_id"] for r in records if r.get("ambiguous_at")]
    assert all(r["attempts"] == 1 for r in records)
    stats = sandbox.stats()
    assert stats["duplicate_creates"] == 0 and stats["duplicate_job_creates"] == 0
    print(f"\n24 jobs with worker clocks at -300 s and +3 s: done in {elapsed:.1f} s")
    assert elapsed < 60


def test_callback_retries_wait_their_backoff_whichever_clock_sends_or_takes_them(
        redis_server, sandbox):
    """Two workers, one 300 s behind. A callback retry used to be a Celery countdown: an
    ETA on the sending worker's clock, awaited on the taking worker's, so it ran at once
    (the receiver's wait ignored) or five minutes late. Now it waits on the callback
    schedule, by the Redis clock."""
    from tests.support.receiver import Receiver

    receiver = Receiver()
    env = {"HEADSWAP_CALLBACK_SECRETS": "whsec_c2tldy1jYWxsYmFjay1zZWNyZXQtMDEyMzQ1Njc4OSE=",
           "HEADSWAP_CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
           "HEADSWAP_CALLBACK_BACKOFF_BASE_SECONDS": "2",
           "HEADSWAP_CALLBACK_BACKOFF_MAX_SECONDS": "2"}  # a retry waits 1-2 s
    run = uuid.uuid4().hex[:6]
    try:
        with running_stack(redis_server.url, sandbox, workers=0, beats=0,
                           extra_env=env) as stack:
            normal = dict(stack.env)
            stack.env.update(skewed("-300"))
            stack.start_worker(concurrency=4)
            stack.env = normal
            stack.start_worker(concurrency=4)
            stack.start_beat()
            stack.wait_ready()
            producer = producer_for(stack)
            names = [f"{run}-{i}" for i in range(8)]
            try:
                ids = [producer.submit(
                    video_url=f"https://cdn.example.com/skew/{run}.mp4?duration=4",
                    mappings=[{"obj_id": 0, "img_url": FACE}], resolution="720p",
                    callback_url=receiver.url(n, [503, 503])) for n in names]
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not all(
                        (producer.get(j) or {}).get("callback_status") == "delivered"
                        for j in ids):
                    time.sleep(0.2)
                records = [producer.get(j) for j in ids]
            finally:
                producer.close()
    finally:
        receiver.close()
    assert [r["callback_status"] for r in records] == ["delivered"] * 8, records
    gaps = []
    for n in names:
        posts = receiver.got(n)
        assert [p["status"] for p in posts] == [503, 503, 200]
        gaps += [b["at"] - a["at"] for a, b in itertools.pairwise(posts)]
    print(f"\n8 callbacks, 2 retries each, across clocks 300 s apart: gaps "
          f"{min(gaps):.2f}-{max(gaps):.2f} s")
    assert min(gaps) >= 0.9  # never before its backoff
    assert max(gaps) < 10  # nor minutes late
