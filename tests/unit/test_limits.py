"""Global limits in Redis: GCRA rates and the in-flight cap (real redis-server)."""

import threading
import time

import pytest
from headswap_client import states

from worker.errors import InFlightCapReached
from worker.limits import Rate, RateLimiter
from worker.store import JobStore


def test_a_rate_grants_burst_then_spaces_calls(redis_client):
    limiter = RateLimiter(JobStore(redis_client, "t").guards, "rate", Rate(per_second=10, burst=3))
    assert [limiter.acquire() for _ in range(3)] == [0, 0, 0]
    wait = limiter.acquire()
    assert 0.05 < wait <= 0.1


def test_a_rate_is_shared_by_concurrent_callers(redis_client):
    """20 calls/s for 1 s across 8 threads with their own limiter objects: about 20 granted."""
    granted = []

    def caller():
        limiter = RateLimiter(JobStore(redis_client, "t").guards, "shared", Rate(per_second=20))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if limiter.acquire() == 0:
                granted.append(time.monotonic())
            time.sleep(0.002)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 19 <= len(granted) <= 22


def test_disabled_rate_never_waits(redis_client):
    limiter = RateLimiter(JobStore(redis_client, "t").guards, "off", Rate(per_second=0))
    assert all(limiter.acquire() == 0 for _ in range(100))
    assert redis_client.exists("{t}:rate:off") == 0


def test_the_in_flight_cap_holds_back_the_job_over_it(redis_client):
    store = JobStore(redis_client, "t")
    for i in range(3):
        store.create(f"j{i}", {}, fingerprint="f")
    store.transition("j0", states.SUBMITTING, cap=2)
    store.transition("j1", states.SUBMITTING, cap=2)
    with pytest.raises(InFlightCapReached):
        store.transition("j2", states.SUBMITTING, cap=2)
    assert store.get("j2")["state"] == states.QUEUED
    store.transition("j0", states.SUBMITTED)  # still in flight
    with pytest.raises(InFlightCapReached):
        store.transition("j2", states.SUBMITTING, cap=2)
    store.transition("j0", states.FAILED)  # leaves flight
    store.transition("j2", states.SUBMITTING, cap=2)
    assert redis_client.zcard(store.keys.schedule("inflight")) == 2
