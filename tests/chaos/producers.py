"""Issue 14's row of the fault suite: three producers share one account.

Producers ``a``, ``b`` and ``c`` (weights 2:1:1, jobs 2:1:1, interleaved) all have jobs
waiting while ``HEADSWAP_MAX_IN_FLIGHT`` binds; a worker is killed -9 with creates on the
wire, then Redis (append-only file on) is restarted; halfway the sandbox's price per task
changes (``credits_per_task`` 3 -> 2), so a ledger that counted jobs, or priced them from a
setting, would not match. Besides the suite's own 0 lost and 0 duplicate creates, the row
holds:

- every producer had jobs waiting at each fault (the cap bound: the faults struck fair
  admission, not an idle queue);
- the ledger (``headswap costs --json``) equals, per producer, the credits the sandbox
  charged (``/_sandbox/stats`` ``charged_by_job``, summed by the producer each job was
  sent with) — the webhook is on so that every create names its job at the sandbox;
- each job's ``charged`` equals what the sandbox charged for that job.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from headswap_client import states
from headswap_client.keys import Keys

from tests.chaos.harness import ChaosContext, Scenario, job_message, mark_fault
from tests.chaos.outages import _all_terminal, _headswap, _restart_redis, _wait_for, _when_creating

PRODUCERS = ("a", "b", "c")
#: job n's producer: a, a, b, c, a, a, b, c, ... (2:1:1, as the weights)
PATTERN = ("a", "a", "b", "c")
POLICY = "a:weight=2;b:weight=1;c:weight=1;*:weight=1"
FIRST_PRICE, SECOND_PRICE = 3, 2
Fault = Callable[[ChaosContext], None]


def message(n: int) -> dict[str, Any]:
    return {**job_message(n), "producer": PATTERN[n % len(PATTERN)]}


def producer_of(ctx: ChaosContext) -> dict[str, str]:
    return {job_id: m.get("producer", "default")
            for job_id, m in zip(ctx.ids, ctx.messages, strict=True)}


def waiting_by_producer(ctx: ChaosContext) -> dict[str, int]:
    """Jobs of each producer in ``queued`` right now (waiting for admission): one pipeline
    of HGETs, so the count does not hold up the fault."""
    owner = producer_of(ctx)
    keys = Keys(ctx.stack.key_prefix)
    counts = dict.fromkeys(PRODUCERS, 0)
    with contextlib.suppress(Exception), ctx.stack.redis.pipeline(transaction=False) as pipe:
        for job_id in ctx.ids:
            pipe.hget(keys.job(job_id), "state")
        for job_id, state in zip(ctx.ids, pipe.execute(), strict=True):
            if state in (states.QUEUED, states.QUEUED.encode()) and owner[job_id] in counts:
                counts[owner[job_id]] += 1
    return counts


def kill_one_worker(ctx: ChaosContext) -> None:
    alive = [p for p in ctx.stack.workers if p.poll() is None]
    victim = ctx.rng.choice(alive)
    ctx.by_fault.add(victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    ctx.log.append(f"kill -9 worker pid {victim.pid}")
    ctx.stack.start_worker(concurrency=4, name=f"k{len(ctx.stack.workers)}@%h")


def backlogged_faults(kill_after: float, restart_after: float, down: float,
                      settle: float = 2.0, finish: float = 150.0) -> Fault:
    """kill -9 a worker ``kill_after`` s in (creates on the wire), Redis restarted on its
    append-only file ``restart_after`` s in (``down`` s away), the price changed after;
    then, once every job is terminal, the ledger against the sandbox's charges."""
    def fault(ctx: ChaosContext) -> None:
        if not _when_creating(ctx, kill_after):
            return
        mark_fault(ctx)
        kill_one_worker(ctx)
        ctx.figures["waiting_at_kill"] = waiting_by_producer(ctx)
        if ctx.stop.wait(max(0.0, restart_after - kill_after)):
            return
        ctx.figures["waiting_at_restart"] = waiting_by_producer(ctx)
        mark_fault(ctx)
        _restart_redis(ctx, down, appendonly=True)
        ctx.log.append(f"redis-server down {down}s (appendonly), restarted on its data")
        ctx.sandbox.config(credits_per_task=SECOND_PRICE)
        ctx.log.append(f"price per task {FIRST_PRICE} -> {SECOND_PRICE} credits")
        _wait_for(lambda: ctx.stop.is_set() or _all_terminal(ctx), finish, 0.5)
        ctx.stop.wait(settle)  # late webhooks: a charge learnt after the terminal state
        compare_ledger(ctx)
    return fault


def ledger_totals(data: Any) -> dict[str, float]:
    """Credits per producer from ``headswap costs --json``, summed over its days. Takes a
    list of rows (``producer``, ``credits``), or such a list under ``rows``/``days``, or
    ``{producer: {day: {credits}}}`` / ``{producer: {credits}}``."""
    rows: Iterable[Any]
    if isinstance(data, dict) and isinstance(data.get("rows", data.get("days")), list):
        rows = data.get("rows", data.get("days"))
    elif isinstance(data, list):
        rows = data
    elif isinstance(data, dict):
        totals: dict[str, float] = {}
        for name, value in data.items():
            if isinstance(value, dict) and "credits" in value:
                totals[name] = float(value["credits"])
            elif isinstance(value, dict):
                totals[name] = sum(float(v.get("credits", 0)) for v in value.values()
                                   if isinstance(v, dict))
        return totals
    else:
        raise ValueError(f"unexpected headswap costs --json output: {str(data)[:200]}")
    totals = {}
    for row in rows:
        name = str(row["producer"])
        totals[name] = totals.get(name, 0.0) + float(row.get("credits", 0))
    return totals


def sandbox_totals(charged_by_job: Mapping[str, float], owner: Mapping[str, str]
                   ) -> dict[str, float]:
    """The sandbox's charges summed by each job's producer (``?`` for a job not ours)."""
    totals: dict[str, float] = {}
    for job_id, credits in charged_by_job.items():
        name = owner.get(job_id, "?")
        totals[name] = totals.get(name, 0.0) + float(credits)
    return totals


def compare_ledger(ctx: ChaosContext) -> None:
    owner = producer_of(ctx)
    stats = ctx.sandbox.stats()
    charged = {k: float(v) for k, v in stats["charged_by_job"].items()}
    sandbox = sandbox_totals(charged, owner)
    ctx.figures["sandbox_credits"] = {k: round(v, 3) for k, v in sorted(sandbox.items())}
    ctx.figures["sandbox_credits_total"] = stats["credits_charged"]
    done = _headswap(ctx, "costs", "--json", "--days", "2")
    try:
        ledger = ledger_totals(json.loads(done.stdout))
    except (ValueError, KeyError, TypeError) as exc:
        ctx.figures["ledger_error"] = f"exit {done.returncode}: {exc}; " \
                                      f"{(done.stdout + done.stderr).strip()[:300]}"
        ledger = {}
    ctx.figures["ledger_credits"] = {k: round(v, 3) for k, v in sorted(ledger.items()) if v}
    mismatched = []
    for job_id in ctx.ids:
        with contextlib.suppress(Exception):
            record = ctx.producer.get(job_id) or {}
            ours = float(record.get("charged") or 0)
            if abs(ours - charged.get(job_id, 0.0)) > 1e-9:
                mismatched.append(f"{job_id}: record {ours}, sandbox {charged.get(job_id, 0)}")
    ctx.figures["job_charge_mismatches"] = len(mismatched)
    if mismatched:
        ctx.log.append("charged differs: " + "; ".join(mismatched[:5]))


def _ledger_matches(result: dict[str, Any]) -> list[str]:
    f = result["figures"]
    problems = []
    if "sandbox_credits" not in f:
        return ["the ledger was never compared (the faults did not complete)"]
    if f.get("ledger_error"):
        problems.append(f"headswap costs --json: {f['ledger_error']}")
    ledger, sandbox = f.get("ledger_credits", {}), f.get("sandbox_credits", {})
    for name in sorted(set(ledger) | set(sandbox)):
        if abs(ledger.get(name, 0) - sandbox.get(name, 0)) > 1e-6:
            problems.append(f"producer {name}: ledger {ledger.get(name, 0)} credits, "
                            f"sandbox {sandbox.get(name, 0)}")
    if f.get("job_charge_mismatches"):
        problems.append(f"{f['job_charge_mismatches']} jobs' charged differs from the sandbox")
    if sum(sandbox.values()) != f.get("sandbox_credits_total"):
        problems.append("a create reached the sandbox without a job id (no webhookUrl)")
    for at in ("waiting_at_kill", "waiting_at_restart"):
        if not all(f.get(at, {}).get(p) for p in PRODUCERS):
            problems.append(f"not every producer was backlogged {at.removeprefix('waiting_')}: "
                            f"{f.get(at)}")
    return problems


def scenarios(short: bool = False) -> list[Scenario]:
    env = {"HEADSWAP_ADMISSION": "fair", "HEADSWAP_PRODUCER_POLICY": POLICY}
    # creates take a while (sandbox latency), so that the kill finds some on the wire
    knobs = {"latency": [0.3, 1.0], "credits_per_task": FIRST_PRICE}
    if short:
        return [Scenario("three producers backlogged: kill -9, redis restart, ledger", jobs=60,
                         workers=2, webhook=True, appendonly=True, message=message,
                         knobs={**knobs, "latency": [0.2, 0.6]},
                         env={**env, "HEADSWAP_MAX_IN_FLIGHT": "4"},
                         fault=backlogged_faults(1.5, 4.0, 1.0, finish=60), deadline=90,
                         targets=_ledger_matches)]
    return [Scenario("three producers backlogged (cap 8): kill -9, redis restart, ledger",
                     jobs=240, workers=3, webhook=True, appendonly=True, message=message,
                     knobs=knobs, env={**env, "HEADSWAP_MAX_IN_FLIGHT": "8"},
                     fault=backlogged_faults(4.0, 10.0, 2.0), deadline=200,
                     targets=_ledger_matches)]
