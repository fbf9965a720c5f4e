"""Polling that keeps up (issue #16, item 3), on a real stack: redis-server, the sandbox
over HTTP with latency, ``headswap worker`` and ``headswap beat`` processes.

- A poll batch's 50 detail calls run at once: with 0.4 s per call the batch takes about one
  call's time, not fifty (20 s one after another).
- A backlog larger than 1,000 is claimed in fewer ticks than 1,000 a tick allows: once the
  workers have taken the first tick's 1,000, the next tick claims up to twice that; every
  member is polled exactly once.

The pending jobs are a template job made by the worker's own code, cloned onto tasks
created at the sandbox (``bench.poll_lag``): thousands of jobs at Akool in seconds.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bench import poll_lag
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.integration

TICK_S = 5.0
LATENCY_S = 0.4
#: Polls far apart: a member polled once is not due again during a test.
ENV = {
    "HEADSWAP_POLL_TICK_SECONDS": f"{TICK_S:g}",
    "HEADSWAP_BEAT_SILENCE_SECONDS": "60",
    "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "300",
    "HEADSWAP_POLL_MAX_INTERVAL_SECONDS": "600",
    "HEADSWAP_POLL_LEASE_SECONDS": "60",
    "HEADSWAP_READ_TIMEOUT": "10",
}
SUCCEEDED = re.compile(r"Task headswap\.poll_due\[[^\]]+\] succeeded in [\d.]+s: (\d+)")


@pytest.fixture(scope="module")
def stack(redis_server: Any, sandbox_process: Any) -> Iterator[Stack]:
    with running_stack(redis_server.url, sandbox_process, workers=1, concurrency=8,
                       extra_env=ENV) as stack:
        yield stack


@pytest.fixture
def r(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    yield client
    client.close()


def pending_jobs(stack: Stack, r: redis.Redis, sandbox: Any, count: int) -> list[str]:
    """``count`` jobs at Akool (the sandbox, processing for an hour), none due yet; returns
    the new members of the poll schedule."""
    sandbox.config(processing_time=3600.0, latency=0.0)
    key = f"{{{stack.key_prefix}}}:poll"
    before = set(r.zrange(key, 0, -1))
    seed = poll_lag.make_seed(stack.redis_url, sandbox, count - 1)  # + the template
    poll_lag.write_jobs(r, seed, key)
    members = [m for m in r.zrange(key, 0, -1) if m not in before]
    assert len(members) == count
    r.zadd(key, dict.fromkeys(members, time.time() + 86_400))  # the template's first poll too
    return members


def make_due(r: redis.Redis, stack: Stack, members: list[str]) -> None:
    secs, micros = r.time()
    r.zadd(f"{{{stack.key_prefix}}}:poll", dict.fromkeys(members, secs + micros / 1e6 - 1))


def polled(r: redis.Redis, stack: Stack, members: list[str]) -> int:
    """Members polled since they were made due: rescheduled past the lease."""
    secs, _ = r.time()
    key = f"{{{stack.key_prefix}}}:poll"
    with r.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.zscore(key, member)
        scores = pipe.execute()
    return sum(1 for score in scores if score is not None and score > secs + 120)


def wait_polled(r: redis.Redis, stack: Stack, members: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while polled(r, stack, members) < len(members):
        if time.monotonic() > deadline:
            raise AssertionError(f"{polled(r, stack, members)} of {len(members)} polled "
                                 f"after {timeout:.0f} s:\n{stack.logs()[-3000:]}")
        time.sleep(0.2)


def tick_claims(stack: Stack) -> list[int]:
    """What each poll tick returned (claimed members, plus re-sent wake-ups: none here),
    from the workers' INFO lines."""
    out = []
    for path in sorted(stack.workdir.glob("worker*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                msg = json.loads(line).get("msg", "")
            except ValueError:
                continue
            match = SUCCEEDED.search(msg)
            if match:
                out.append(int(match[1]))
    return out


def detail_call_times(sandbox: Any, r: redis.Redis, stack: Stack,
                      members: list[str]) -> list[float]:  # fmt: skip
    with r.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hget(f"{{{stack.key_prefix}}}:job:{member}", "remote_id")
        remote_ids = pipe.execute()
    return [t for rid in remote_ids for t in sandbox.task(rid)["detail_calls"]]


def test_a_batch_makes_its_detail_calls_at_once(stack, r, sandbox_process):
    sandbox = sandbox_process
    members = pending_jobs(stack, r, sandbox, 50)  # one batch (HEADSWAP_POLL_BATCH_SIZE)
    sandbox.config(latency=LATENCY_S)
    try:
        make_due(r, stack, members)
        wait_polled(r, stack, members, timeout=TICK_S + 30)
    finally:
        sandbox.config(latency=0.0)
    calls = sorted(detail_call_times(sandbox, r, stack, members))
    # Each member asked once; the sandbox stamps a call when it answers it.
    assert len(calls) == 50
    spread = calls[-1] - calls[0]
    # One after another the answers would be 49 x 0.4 = 19.6 s apart; at once, all come
    # about one call's time after the batch started (a margin for a busy machine).
    assert spread < 4 * LATENCY_S, f"answers spread over {spread:.2f} s"


def test_a_backlog_past_1000_is_claimed_over_fewer_ticks_each_member_once(
        stack, r, sandbox_process):  # fmt: skip
    sandbox = sandbox_process
    count = 3_000
    members = pending_jobs(stack, r, sandbox, count)
    ticks_before = len(tick_claims(stack))
    sandbox.config(latency=0.05)
    calls_before = sandbox.stats()["detail_calls"]
    try:
        make_due(r, stack, members)
        wait_polled(r, stack, members, timeout=6 * TICK_S + 60)
    finally:
        sandbox.config(latency=0.0)
    claims = [n for n in tick_claims(stack)[ticks_before:] if n]
    # The first tick claims 1,000 (what it may before the workers showed what they take);
    # the workers take its 20 batches well within a tick, so the next may claim twice that.
    assert claims[0] == 1_000, claims
    assert max(claims) > 1_000, claims
    assert sum(claims) == count, claims  # the rest stayed due and was claimed later
    # Every member exactly once: all rescheduled past their lease, one call each.
    assert sandbox.stats()["detail_calls"] - calls_before == count
