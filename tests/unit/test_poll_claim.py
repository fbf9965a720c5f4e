"""How much a poll tick claims (worker/poll_claim.py): the arithmetic as a pure function,
then the fan-out on a real redis-server with a recording dispatcher."""

from __future__ import annotations

from tests.unit.test_callbacks import make_rt
from worker import poll_claim, polling

__all__ = ["make_rt"]  # the fixture, shared with tests/unit/test_callbacks.py

BATCH = 50
TICK = 2.0


def limit(waiting, previous, now=100.0, cap=10_000):
    return poll_claim.claim_limit(waiting=waiting, previous=previous, now=now, tick=TICK,
                                  batch=BATCH, cap=cap)


def test_a_first_tick_claims_the_old_fixed_amount():
    assert limit(0, None) == poll_claim.FLOOR_BATCHES * BATCH == 1_000


def test_workers_that_emptied_the_queue_get_twice_what_they_took():
    # The previous tick left 30 messages; all were taken within the interval.
    assert limit(0, (30, 100.0 - TICK)) == 60 * BATCH
    # Doubling from the floor: 1,000 -> 2,000 -> 4,000 ... up to the cap.
    assert limit(0, (20, 98.0)) == 2_000
    assert limit(0, (400, 98.0)) == 10_000


def test_workers_behind_get_two_ticks_of_their_own_pace_minus_what_still_waits():
    # 60 messages left, 40 still waiting: they took 20 in one interval.
    # The target depth is 40 messages, 40 wait: nothing more this tick.
    assert limit(40, (60, 98.0)) == 0
    # 60 left, 10 waiting: took 50, target 100 messages, 90 more may go.
    assert limit(10, (60, 98.0)) == 90 * BATCH


def test_the_floor_never_stacks_up_a_queue_nobody_takes():
    # No worker consumes: 20 messages from the first tick still wait.
    assert limit(20, (20, 98.0)) == 0
    assert limit(25, (20, 98.0)) == 0  # beat's own messages pile up too: never negative


def test_a_late_tick_counts_its_share_of_one_interval():
    # 40 taken over five intervals is 8 a tick, below the floor of 20.
    assert limit(0, (40, 100.0 - 5 * TICK)) == 1_000
    # 400 taken over four intervals is 100 a tick: the target is 200 messages.
    assert limit(0, (400, 100.0 - 4 * TICK)) == 200 * BATCH


def test_the_cap_bounds_every_tick():
    assert limit(0, (10_000, 98.0), cap=3_000) == 3_000
    assert limit(0, None, cap=120) == 120


def due_members(rt, count, prefix="j"):
    key = rt.store.keys.schedule("poll")
    now = rt.store.clock()
    rt.store._redis.zadd(key, {f"{prefix}{i}": now - 10 - i / 1000 for i in range(count)})
    return {f"{prefix}{i}" for i in range(count)}


def batches(rt):
    return [sent for sent in rt.sent if sent[0] == "headswap.poll_batch"]


def members_of(sent):
    return [m for _, kwargs, _ in sent for m in kwargs["members"]]


def test_a_backlog_past_the_floor_is_claimed_over_ticks_each_member_once(make_rt):
    rt = make_rt(HEADSWAP_POLL_TICK_SECONDS=str(TICK))
    rt.store._redis.delete("headswap.poll")
    wanted = due_members(rt, 3_500)
    # First tick: the floor, 1,000 in 20 batches of 50 on headswap.poll, each member with
    # the time it was due.
    assert polling.fan_out(rt) == 1_000
    first = batches(rt)
    assert len(first) == 20 and {queue for *_, queue in first} == {"headswap.poll"}
    assert {len(kw["members"]) for _, kw, _ in first} == {50}
    assert all(len(kw["due"]) == 50 for _, kw, _ in first)
    assert rt.store.due_count("poll") == 2_500  # the rest stays due
    # The recording dispatcher puts nothing in headswap.poll: the workers "took" all 20,
    # so the next tick may claim twice that; the third takes what is left.
    claimed = members_of(first)
    sizes = []
    for _ in range(3):
        rt.sent.clear()
        sizes.append(polling.fan_out(rt))
        claimed += members_of(batches(rt))
    assert sizes == [2_000, 500, 0]
    assert len(claimed) == len(set(claimed)) == 3_500 and set(claimed) == wanted
    assert rt.store.due_count("poll") == 0


def test_a_queue_nobody_consumes_holds_no_more_than_the_floor(make_rt):
    rt = make_rt(HEADSWAP_POLL_TICK_SECONDS=str(TICK))
    r = rt.store._redis
    r.delete("headswap.poll")
    due_members(rt, 5_000)
    assert polling.fan_out(rt) == 1_000
    # The 20 messages still wait (no worker): a real send would have pushed them.
    r.rpush("headswap.poll", *[b"m"] * 20)
    assert polling.fan_out(rt) == 0
    assert rt.store.due_count("poll") == 4_000
    r.delete("headswap.poll")
