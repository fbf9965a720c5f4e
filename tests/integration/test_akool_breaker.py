"""A frozen Akool stops the creates of every worker (issue 12, Deliver 2).

Before: Akool frozen 120 s (read timeout 10 s) left 63 of 200 jobs paid but failed — the
workers kept sending creates into the hung API, each one a read timeout that Akool
performed once it resumed. Now a few consecutive unanswered creates open a breaker in
Redis: creates stop everywhere, one probe asks Akool again, creates resume by themselves.
Real redis-server, `headswap worker` and `headswap beat`, the sandbox's hang fault (the
request is performed, its answer held) over HTTP.
"""

from __future__ import annotations

import time

import pytest
from headswap_client.keys import Keys

from tests.support.procs import wait_until
from tests.support.stack import producer_for, running_stack, wait_all_terminal

pytestmark = pytest.mark.integration

CONCURRENCY = 4
ENV = {
    "HEADSWAP_READ_TIMEOUT": "1",
    "HEADSWAP_CONNECT_TIMEOUT": "1",
    "HEADSWAP_AMBIGUOUS_GRACE_SECONDS": "3",  # ambiguous jobs end (failed) within the test
    "HEADSWAP_AKOOL_BREAKER_PAUSE_SECONDS": "1",
    "HEADSWAP_AKOOL_BREAKER_PAUSE_MAX_SECONDS": "2",
}


def job(n: int) -> dict:
    # One source video: its analysis is done before the freeze, so creates are what runs.
    return {"video_url": "https://cdn.example.com/frozen.mp4?duration=4", "metadata": {"n": n},
            "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
            "resolution": "720p"}


def test_a_frozen_akool_costs_at_most_the_creates_in_flight(redis_server, sandbox):
    sandbox.config(processing_time=0.5, analysis_time=0.0, webhooks=False)
    with running_stack(redis_server.url, sandbox, concurrency=CONCURRENCY,
                       extra_env=ENV) as stack:
        producer = producer_for(stack)
        try:
            ids = [producer.submit(**job(n)) for n in range(60)]
            wait_until(lambda: sandbox.stats()["creates"] >= 8, 30, what="a few creates")
            sandbox.config(hang_ratio=1.0, hang_seconds=3.0)  # Akool freezes
            frozen_at = sandbox.stats()["creates"]
            time.sleep(12)
            during = sandbox.stats()["creates"] - frozen_at
            sandbox.config(hang_ratio=0.0)  # ...and resumes
            final = wait_all_terminal(producer, ids, timeout=120)
            alerts = [e for e in producer.store.events.read(count=100_000)
                      if e.get("alert") == "akool_unreachable"]
        finally:
            producer.close()
        logs = stack.logs()
    ambiguous = [r for r in final.values() if r.get("reason") == "ambiguous_submission"]
    succeeded = [r for r in final.values() if r["state"] == "succeeded"]
    stats = sandbox.stats()
    # Frozen for 12 s at a 1 s read timeout, 4 threads sent ~40 creates into the hang before
    # the breaker; now at most the creates of its 4 threads that were on the wire.
    assert during <= CONCURRENCY, f"{during} creates sent into a frozen Akool"
    print(f"creates during the freeze {during}, ambiguous {len(ambiguous)}")
    assert len(ambiguous) <= CONCURRENCY, [r["job_id"] for r in ambiguous]
    assert len(succeeded) + len(ambiguous) == len(ids)
    # Each says Akool may have created (and charged) it: here the sandbox did create them.
    assert all(r.get("maybe_charged") is True for r in ambiguous)
    assert stats["duplicate_job_creates"] == 0
    assert alerts, "no akool_unreachable alert in the stream"
    assert "Akool does not answer: all creates stop" in logs
    assert "Akool answers again: creates resume" in logs
    assert Keys("headswap").circuit("akool")  # (the key the docs name)


def test_after_one_unanswered_create_a_probe_asks_before_the_next(redis_client, sandbox):
    """A thread freed by its own read timeout used to send the next create into the same
    hung API (the breaker had counted 1 of 3). Now the fleet asks a free question first."""
    from config.settings import load_settings
    from worker import breaker
    from worker.akool import AkoolClient
    from worker.store import JobStore

    settings = load_settings({"HEADSWAP_READ_TIMEOUT": "1"})
    store = JobStore(redis_client, "t", retention_seconds=3600, idempotency_ttl=600)
    client = AkoolClient(sandbox.url, api_key=sandbox.api_key, connect_timeout=1,
                         read_timeout=1)
    assert breaker.admit(store, client, settings, breaker.read(store)) is None  # healthy

    # Given one create that got no answer, and Akool still hung
    breaker.failed(store, settings)
    sandbox.config(hang_ratio=1.0, hang_seconds=2.0)
    details = sandbox.stats()["detail_calls"]
    # When the next create asks to go, then the probe asks first and it stays held
    wait = breaker.admit(store, client, settings, breaker.read(store))
    assert wait is not None and wait > 0
    assert sandbox.stats()["detail_calls"] == details + 1
    assert breaker.read(store).failures == 2  # the probe's silence counts too

    # Given Akool answers again, then one probe lets creates go; the next need not ask
    sandbox.config(hang_ratio=0.0)
    assert breaker.admit(store, client, settings, breaker.read(store)) is None
    assert breaker.admit(store, client, settings, breaker.read(store)) is None
    assert sandbox.stats()["detail_calls"] == details + 2
    assert breaker.read(store).failures == 2  # only an answered create ends the count
