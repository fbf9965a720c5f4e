"""Fair admission, priorities, budgets and the cost ledger, end to end: real redis-server,
`headswap worker` and `headswap beat` processes, the sandbox over HTTP. The account's cap
(HEADSWAP_MAX_IN_FLIGHT=2) binds, so the order in which jobs are admitted is the
scheduler's, and every figure is read the way users read it (records, `headswap costs`,
the event stream, the sandbox's own counters)."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest
import redis

from tests.integration.test_commands import HEADSWAP
from tests.support.procs import wait_until
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack, wait_all_terminal

FACE = "https://cdn.example.com/face.jpg"
CHARGE = 100  # the sandbox's charge per create (credits_per_task)
POLICY = ("a:weight=1;b:weight=1;heavy:weight=2;light:weight=1;"
          "capped:max_in_flight=1;"
          "thrifty:daily_budget=250;strict:daily_budget=150,over_budget=fail;*:weight=1")


def job(n: object, producer: str, **extra: object) -> dict:
    return {"video_url": f"https://cdn.example.com/{producer}/{n}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p",
            "producer": producer, **extra}


@pytest.fixture(scope="module")
def sandbox_for_stack():
    sb = SandboxProcess.start(knobs={**FAST_KNOBS, "processing_time": 0.4,
                                     "credits_per_task": CHARGE}, seed=14)
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def stack(redis_server, sandbox_for_stack):
    env = {"HEADSWAP_MAX_IN_FLIGHT": "2", "HEADSWAP_PRODUCER_POLICY": POLICY,
           "HEADSWAP_COST_ESTIMATE_CREDITS": str(CHARGE), "HEADSWAP_STORAGE_URL": "none"}
    with running_stack(redis_server.url, sandbox_for_stack, workers=1, beats=1,
                       extra_env=env) as st:
        yield st


@pytest.fixture
def producer(stack):
    p = producer_for(stack)
    yield p
    p.close()


def admission_order(producer, job_ids):
    records = [producer.get(j) for j in job_ids]
    assert all(r and r.get("admitted_at") for r in records), "every created job was admitted"
    return [r["producer"] for r in sorted(records, key=lambda r: float(r["admitted_at"]))]


def cost_rows(stack, *args):
    """`headswap costs --json` as an operator runs it: one row per producer and day."""
    out = subprocess.run([HEADSWAP, "costs", "--json", *args], env=stack.env, cwd=stack.cwd,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def costs(stack, *args):
    return {row["producer"]: row for row in cost_rows(stack, *args)}


def test_a_flood_from_one_producer_does_not_hold_back_another(stack, producer):
    flood = [producer.submit(**job(i, "a")) for i in range(24)]
    few = [producer.submit(**job(i, "b")) for i in range(4)]
    # while they wait, a job shows where it stands in its producer's line
    wait_until(lambda: bool((producer.get(flood[-1]) or {}).get("queue")), timeout=20)
    last = producer.get(flood[-1])["queue"]
    assert last["position"] > 1 and last["ahead"] >= last["position"] - 1
    records = wait_all_terminal(producer, flood + few, timeout=120)
    assert {r["state"] for r in records.values()} == {"succeeded"}
    order = admission_order(producer, flood + few)
    first_b = order.index("b")
    last_b = len(order) - 1 - order[::-1].index("b")
    # equal weights: from b's first admission on, a and b alternate (FIFO would put all
    # four of b's jobs after the 24 of a: positions 24..27)
    assert last_b - first_b <= 2 * 4, order
    assert last_b < 16, order


def test_weights_share_admissions_two_to_one(stack, producer):
    heavy = [producer.submit(**job(i, "heavy")) for i in range(16)]
    light = [producer.submit(**job(i, "light")) for i in range(16)]
    wait_all_terminal(producer, heavy + light, timeout=120)
    order = admission_order(producer, heavy + light)
    # while both wait (the first 18 admissions), heavy gets two for each of light's one
    window = order[:18]
    assert 11 <= window.count("heavy") <= 13, order


def test_a_higher_priority_goes_first_within_its_producer(stack, producer):
    # one source video: its analysis is done once, so the urgent job joins the line at once
    normal = [producer.submit(**job("same", "a")) for _ in range(10)]

    def in_line():
        return [j for j in normal if (producer.get(j) or {}).get("queue")]

    wait_until(lambda: len(in_line()) >= 5, timeout=30)
    waiting = set(in_line())
    urgent = producer.submit(**job("same", "a", priority=9))
    wait_all_terminal(producer, [*normal, urgent], timeout=120)
    at = {j: float(producer.get(j)["admitted_at"]) for j in [*normal, urgent]}
    overtaken = [j for j in waiting if at[j] > at[urgent]]
    # all that waited in the line when it came go after it (one may have been admitted
    # while its message was on the way)
    assert len(overtaken) >= len(waiting) - 1, (len(overtaken), len(waiting))


def test_a_producer_cap_holds_only_that_producer(stack, producer, sandbox_for_stack):
    capped = [producer.submit(**job(i, "capped")) for i in range(4)]
    records = wait_all_terminal(producer, capped, timeout=120)
    spans = sorted((float(r["submitting_at"]), float(r.get("succeeded_at") or 0))
                   for r in records.values())
    overlaps = [1 for (_, end), (start, _) in itertools.pairwise(spans) if start < end]
    assert not overlaps, "max_in_flight=1: one task of this producer at Akool at a time"


def test_a_budget_holds_its_producer_until_the_next_day(stack, producer, sandbox_for_stack):
    jobs = [producer.submit(**job(i, "thrifty")) for i in range(4)]
    # 250 credits at 100 a create: two are created, two wait (held, not failed)
    wait_until(lambda: sum((producer.get(j) or {}).get("state") == "succeeded"
                           for j in jobs) == 2, timeout=60)
    held = [j for j in jobs if producer.get(j)["state"] == "queued"]
    assert len(held) == 2
    assert sorted(producer.get(j)["queue"]["position"] for j in held) == [1, 2]
    assert {producer.get(j)["queue"].get("held") for j in held} == {"budget_exhausted"}
    ledger = costs(stack, "--producer", "thrifty")
    assert ledger["thrifty"]["jobs"] == 2 and ledger["thrifty"]["credits"] == 2 * CHARGE
    assert ledger["thrifty"]["held_at"] is not None
    alerts = [e for e in producer.store.events.read(count=100_000)
              if e.get("alert") == "budget_exhausted" and e.get("producer") == "thrifty"]
    assert len(alerts) == 1, "one alert a producer and day"
    # the day turns (the spend belongs to yesterday now): the held jobs go by themselves
    r = redis.Redis.from_url(stack.env["HEADSWAP_REDIS_URL"], decode_responses=True)
    fields = r.hgetall(producer.store.keys.ledger)
    for name, value in fields.items():
        day, _, rest = name.partition(":")
        if rest.startswith("thrifty:"):
            r.hdel(producer.store.keys.ledger, name)
            r.hset(producer.store.keys.ledger, f"d{int(day[1:]) - 1}:{rest}", value)
    records = wait_all_terminal(producer, jobs, timeout=60)
    assert {rec["state"] for rec in records.values()} == {"succeeded"}
    assert costs(stack, "--producer", "thrifty")["thrifty"]["jobs"] == 2  # today's two


def test_a_budget_with_the_fail_policy_fails_what_it_cannot_pay(stack, producer):
    jobs = [producer.submit(**job(i, "strict")) for i in range(3)]
    records = wait_all_terminal(producer, jobs, timeout=60)
    states = sorted((r["state"], r.get("reason")) for r in records.values())
    assert states == [("failed", "budget_exhausted"), ("failed", "budget_exhausted"),
                      ("succeeded", None)]


def test_the_ledger_equals_the_sandboxs_own_count(stack, producer, sandbox_for_stack):
    """Last in the module: the ledger (summed over days) holds as many creates as the
    sandbox made, each charged once at the sandbox's price; per producer it agrees with the
    tasks the sandbox holds (their source videos name the producer)."""
    stats = sandbox_for_stack.stats()
    rows = cost_rows(stack, "--days", "3")
    summed: dict[str, int] = {}
    for row in rows:
        summed[row["producer"]] = summed.get(row["producer"], 0) + row["jobs"]
        assert row["credits"] == row["jobs"] * CHARGE
    assert sum(summed.values()) == stats["creates"] > 0
    r = redis.Redis.from_url(stack.env["HEADSWAP_REDIS_URL"], decode_responses=True)
    sandbox_side: dict[str, int] = {}
    for key in r.scan_iter(match=producer.store.keys.job("*")):
        remote_id = r.hget(key, "remote_id")
        if remote_id:
            url = sandbox_for_stack.task(remote_id)["video_url"]
            who = url.split("/")[3]
            sandbox_side[who] = sandbox_side.get(who, 0) + 1
    assert summed == sandbox_side
