"""The fault suite: real processes, real faults, figures per scenario.

Each scenario gets its own redis-server, sandbox, workers and beat; submits its jobs;
injects its faults while they run; waits until every job is terminal (or a deadline);
then counts, from the outside, what a user would check:

- ``lost``: jobs not terminal at the end;
- ``duplicate_creates``: tasks the sandbox created beyond one per (video_url, mappings)
  fingerprint — every job has its own fingerprint, so this is "created twice";
- failures by reason, with every ``ambiguous_submission`` explained from the sandbox's
  own record (was a task created for that job at all?);
- ``paid_but_failed``: jobs that ended ``failed`` (any reason) although the sandbox created
  a task for their fingerprint: Akool charged for them and the producer got no video;
- ``terminal``: jobs in a terminal state at the end (``jobs - lost``);
- ``creates_in_flight_at_fault``: jobs in ``submitting`` (a create sent or about to be,
  its answer not recorded) at each instant a fault struck, summed; the most creates a
  fault can leave without a known outcome;
- ``worker_exits``: workers that exited non-zero on their own (not killed by the fault),
  each replaced by the supervisor (``supervisor_restarts``);
- row-specific figures (detection and alarm times, probe failures) under ``figures``;
- p50/p99 seconds from enqueue to the terminal state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from headswap_client import states

from config.settings import load_settings
from tests.support.poison import bad_entries
from tests.support.procs import free_port
from tests.support.sandbox import SandboxProcess
from tests.support.stack import Stack, producer_for, running_stack
from tests.support.tcp_proxy import TcpProxy
from worker.devstack.redis_server import LocalRedis, start_redis
from worker.devstack.sentinel import start_sentinel_group
from worker.store import open_dead_messages

FACE = "https://cdn.example.com/faces/ref.jpg"

#: Timings that let every recovery path finish within a scenario.
CHAOS_ENV = {
    "HEADSWAP_READ_TIMEOUT": "3",
    "HEADSWAP_CONNECT_TIMEOUT": "1",
    "HEADSWAP_RETRY_BACKOFF_MAX_SECONDS": "2",
    # The default policy (issue 12): not-received creates are retried for
    # HEADSWAP_SUBMIT_RETRY_WINDOW_SECONDS (1800), with no count bound; a count (30 here
    # before) is what made Akool's port closed 120 s exhaust 146 jobs.
    "HEADSWAP_SUBMIT_MAX_RETRIES": "0",
    "HEADSWAP_VISIBILITY_TIMEOUT_SECONDS": "60",
    "HEADSWAP_RESEND_AFTER_SECONDS": "6",
    "HEADSWAP_AMBIGUOUS_GRACE_SECONDS": "15",
    "HEADSWAP_NOTIFY_GRACE_SECONDS": "5",
    "HEADSWAP_CREDITS_PAUSE_SECONDS": "3",
    "HEADSWAP_SAFETY_NET_POLL_SECONDS": "10",
    "HEADSWAP_POLL_TICK_SECONDS": "0.5",
    "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "0.5",
    "HEADSWAP_POLL_MAX_INTERVAL_SECONDS": "2",
    "HEADSWAP_POLL_LEASE_SECONDS": "6",
    "HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND": "0.1",
    "HEADSWAP_LOG_LEVEL": "WARNING",
}


@dataclass
class Scenario:
    name: str
    jobs: int
    workers: int = 4
    concurrency: int = 4
    beats: int = 1
    webhook: bool = False
    knobs: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    appendonly: bool = False
    #: fault(ctx) runs in a thread while jobs run; it must return when ctx.stop is set.
    fault: Callable[[ChaosContext], None] | None = None
    deadline: float = 240.0
    #: bad queue entries (every kind of tests.support.poison) interleaved with the jobs
    poison: int = 0
    #: more redis-server arguments (e.g. ``--maxmemory``)
    redis_args: tuple[str, ...] = ()
    #: Akool reached through a TCP proxy the fault can close (``ctx.proxy``)
    akool_proxy: bool = False
    #: Redis behind Sentinel (master, replica, three sentinels) instead of one server
    sentinel: bool = False
    #: idempotency keys on the jobs (``chaos-<n>``), so a re-send is recognisable
    idempotency_keys: bool = False
    #: row-specific targets: result -> problems (besides lost and duplicate creates)
    targets: Callable[[dict[str, Any]], list[str]] | None = None
    #: why this row may lose jobs (an override of the default policy), or "" (it may not)
    loss_allowed: str = ""
    #: job n's message (default :func:`job_message`), e.g. to name its producer
    message: Callable[[int], dict[str, Any]] | None = None


@dataclass
class ChaosContext:
    stack: Stack
    sandbox: SandboxProcess
    redis: LocalRedis
    stop: threading.Event
    rng: random.Random
    log: list[str] = field(default_factory=list)
    redis_lock: threading.Lock = field(default_factory=threading.Lock)
    #: pids the fault itself killed or stopped (the supervisor leaves those alone)
    by_fault: set[int] = field(default_factory=set)
    supervisor_restarts: int = 0
    #: (pid, exit code) of workers that exited non-zero on their own
    exits: list[tuple[int, int]] = field(default_factory=list)
    producer: Any = None
    ids: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    workdir: Path = field(default_factory=Path)
    proxy: Any = None
    #: the Sentinel group (``Scenario.sentinel``)
    sentinel: Any = None
    #: jobs in ``submitting`` at each fault instant (:func:`mark_fault`)
    in_flight: list[int] = field(default_factory=list)
    #: row-specific figures, copied into the result
    figures: dict[str, Any] = field(default_factory=dict)
    #: jobs the scenario accounts for itself (not waited on, not counted lost)
    written_off: set[str] = field(default_factory=set)
    #: jobs the harness has seen terminal (what a producer knows has finished)
    seen_terminal: set[str] = field(default_factory=set)


def submitting(ctx: ChaosContext) -> int:
    """The jobs in ``submitting`` right now: creates sent (or about to be), not recorded."""
    count = 0
    for job_id in ctx.ids:
        with contextlib.suppress(Exception):
            record = ctx.producer.get(job_id)
            count += bool(record and record.get("state") == states.SUBMITTING)
    return count


def mark_fault(ctx: ChaosContext) -> int:
    """Count the creates outstanding right now (:func:`submitting`) and remember it."""
    count = submitting(ctx)
    ctx.in_flight.append(count)
    return count


def supervise(ctx: ChaosContext) -> None:
    """Do what the orchestrator (Kubernetes, compose ``restart: unless-stopped``) does: start
    a replacement for a worker that exited on its own with a non-zero code. Celery 5.7 /
    kombu 5.7 workers can exit with "Unrecoverable error: AttributeError('NoneType' ...
    'hostname')" while reconnecting after a Redis restart (a kombu bug in closing a channel
    whose connection is gone); the design tolerates a dead worker, the orchestrator
    replaces it."""
    while not ctx.stop.wait(1.0):
        for proc in list(ctx.stack.workers):
            code = proc.poll()
            if code not in (None, 0) and proc.pid not in ctx.by_fault:
                ctx.by_fault.add(proc.pid)  # handled
                ctx.exits.append((proc.pid, int(code or 0)))
                ctx.stack.start_worker(concurrency=4, name=f"s{len(ctx.stack.workers)}@%h")
                ctx.supervisor_restarts += 1
                ctx.log.append(f"supervisor restarted worker pid {proc.pid} (exit {code})")


def fingerprint(video_url: str, mappings: list[dict[str, Any]]) -> str:
    """The sandbox's create fingerprint (docs/SANDBOX.md)."""
    pairs = sorted([m["obj_id"], m["img_url"]] for m in mappings)
    canon = json.dumps({"video_url": video_url, "mappings": pairs}, sort_keys=True,
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def job_message(n: int, idempotency_key: bool = False) -> dict[str, Any]:
    # 20 source videos (analysed once each); a unique face per job = a unique fingerprint.
    message: dict[str, Any] = {
        "video_url": f"https://cdn.example.com/chaos/{n % 20}.mp4?duration=4",
        "mappings": [{"obj_id": 0, "img_url": f"{FACE}?job={n}"}], "resolution": "720p"}
    if idempotency_key:
        message["idempotency_key"] = f"chaos-{n}"
    return message


def run_scenario(sc: Scenario, seed: int = 1) -> dict[str, Any]:
    slug = "".join(c if c.isalnum() else "-" for c in sc.name)
    workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{slug}-"))
    group = start_sentinel_group() if sc.sentinel else None
    redis = group.nodes[0] if group else start_redis(
        appendonly=sc.appendonly, directory=workdir / "redis", extra_args=sc.redis_args)
    knobs = {"processing_time": [0.5, 1.5], "analysis_time": 0.2, "webhook_backoff": 0.2,
             **sc.knobs}
    proxy = None
    try:
        with SandboxProcess.start(knobs=knobs, seed=seed) as sb:
            env = {}
            if sc.akool_proxy:
                proxy = TcpProxy(int(sb.url.rsplit(":", 1)[1].split("/")[0]))
                env["HEADSWAP_AKOOL_BASE_URL"] = proxy.url
            if group:
                env["HEADSWAP_REDIS_MIN_REPLICAS"] = "1"
            url = group.url() if group else redis.url
            with _stack(sc, url, sb, workdir, env) as st:
                return _drive(sc, st, sb, redis, seed, workdir, proxy, group)
    finally:
        if proxy:
            proxy.stop()
        if group:
            group.stop()
        else:
            redis.stop()


@contextlib.contextmanager
def _stack(sc: Scenario, redis_url: str, sb: SandboxProcess, workdir: Path,
           extra: dict[str, str]) -> Iterator[Stack]:
    # The spool and heartbeat file of this scenario's own (the defaults live in /tmp and
    # would be shared with every other stack on the machine).
    env = {**CHAOS_ENV, "HEADSWAP_SPOOL_DIR": str(workdir / "spool"),
           "HEADSWAP_HEARTBEAT_FILE": str(workdir / "heartbeat"), **sc.env, **extra}
    port = free_port() if sc.webhook else None
    with running_stack(redis_url, sb, workers=sc.workers, beats=sc.beats,
                       concurrency=sc.concurrency, extra_env=env, webhook_port=port) as st:
        yield st


def _drive(sc: Scenario, st: Stack, sb: SandboxProcess, redis: LocalRedis,
           seed: int, workdir: Path, proxy: Any, group: Any = None) -> dict[str, Any]:
    producer = producer_for(st)
    messages = [sc.message(n) if sc.message else job_message(n, sc.idempotency_keys)
                for n in range(sc.jobs)]
    poison = poison_entries(sc.poison)
    started = time.monotonic()
    ids = _submit_interleaved(producer, st, messages, poison)
    ctx = ChaosContext(st, sb, redis, threading.Event(), random.Random(seed),
                       producer=producer, ids=ids, messages=messages, workdir=workdir,
                       proxy=proxy, sentinel=group)
    injector = threading.Thread(target=sc.fault, args=(ctx,), daemon=True) if sc.fault else None
    if injector:
        injector.start()
    supervisor = threading.Thread(target=supervise, args=(ctx,), daemon=True)
    supervisor.start()
    records = _wait_terminal(producer, ids, ctx, started + sc.deadline, injector)
    ctx.stop.set()
    if injector:
        injector.join(60)
    elapsed = time.monotonic() - started
    supervisor.join(10)
    result = _figures(sc, ids, messages, records, sb.stats(), elapsed, ctx.written_off)
    result.update(stored_copies(st, records))
    result["supervisor_restarts"] = ctx.supervisor_restarts
    result["worker_exits"] = len(ctx.exits) + sum(
        1 for p in st.workers if p.poll() not in (None, 0) and p.pid not in ctx.by_fault)
    if ctx.in_flight:
        result["creates_in_flight_at_fault"] = sum(ctx.in_flight)
    result["figures"] = dict(ctx.figures)
    if sc.targets:
        result["target_misses"] = sc.targets(result)
        if sc.fault and not ctx.log:
            result["target_misses"].append("the fault never struck (the jobs finished first)")
    if sc.loss_allowed:
        result["loss_allowed"] = sc.loss_allowed
    if poison:
        result.update(_dead_figures(st, poison, started + sc.deadline))
        result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["faults"] = ctx.log[-5:] + ([f"... {len(ctx.log)} fault events"] if ctx.log else [])
    producer.close()
    return result


def poison_entries(count: int) -> list[tuple[str, bytes, str]]:
    """``count`` bad entries, every kind in turn; one in ten on the poll or notify queue."""
    out: list[tuple[str, bytes, str]] = []
    batch = 0
    while len(out) < count:
        queue = ("headswap.submit", "headswap.submit", "headswap.poll", "headswap.submit",
                 "headswap.notify")[batch % 5] if batch % 2 else "headswap.submit"
        out += [(queue, entry, reason) for _kind, entry, reason in bad_entries(queue, batch)]
        batch += 1
    return out[:count]


def _submit_interleaved(producer: Any, st: Stack, messages: list[dict[str, Any]],
                        poison: list[tuple[str, bytes, str]]) -> list[str]:
    """Submit the jobs with the bad entries spread evenly between them (LPUSH, as a
    producer would put them there)."""
    ids, pushed = [], 0
    for n, message in enumerate(messages):
        ids.append(producer.submit(**message))
        upto = len(poison) * (n + 1) // len(messages)
        for queue, entry, _reason in poison[pushed:upto]:
            st.redis.lpush(queue, entry)
        pushed = upto
    return ids


def stored_copies(st: Stack, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 15: every succeeded job has exactly one complete stored object — one file
    named for it under the outputs directory, its SHA-256 the record's — and no part of
    a killed copy sits under a final name."""
    root = Path(urlsplit(st.env.get("HEADSWAP_STORAGE_URL", "")).path)
    finals: Counter[str] = Counter(p.stem for p in root.rglob("*.mp4") if p.is_file())
    problems = []
    for job_id, record in records.items():
        if record.get("state") != states.SUCCEEDED:
            continue
        path = Path(urlsplit(str(record.get("stored_url") or "")).path)
        if finals[job_id] != 1:
            problems.append(f"{job_id}: {finals[job_id]} stored objects")
        elif not path.is_file() or hashlib.sha256(
                path.read_bytes()).hexdigest() != record.get("stored_sha256"):
            problems.append(f"{job_id}: stored object missing or its SHA-256 differs")
    return {"stored_ok": sum(1 for r in records.values() if r.get("state") == "succeeded")
            - len(problems), "stored_problems": problems[:10]}


def _dead_figures(st: Stack, poison: list[tuple[str, bytes, str]],
                  deadline: float) -> dict[str, Any]:
    """Wait (to the deadline) until every bad entry is kept; count them by reason."""
    dead = open_dead_messages(load_settings(st.env))
    while dead.count() < len(poison) and time.monotonic() < deadline:
        time.sleep(0.5)
    kept = dead.list(limit=len(poison) + 100)
    expected = Counter((reason, queue) for queue, _e, reason in poison)
    got = Counter((e.reason, e.queue) for e in kept)
    return {"poison": len(poison), "dead_messages": len(kept),
            "dead_as_expected": got == expected,
            "worker_exits": sum(1 for p in st.workers if p.poll() not in (None, 0)),
            "queues_left": sum(int(st.redis.llen(q)) for q in
                               ("headswap.submit", "headswap.poll", "headswap.notify"))}


def _wait_terminal(producer: Any, ids: list[str], ctx: ChaosContext, deadline: float,
                   injector: threading.Thread | None) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        still = []
        for job_id in pending:
            if job_id in ctx.written_off:
                continue
            try:
                with ctx.redis_lock:
                    record = producer.get(job_id)
            except Exception:  # Redis down during a fault: look again later
                still.append(job_id)
                continue
            if record and record["state"] in states.TERMINAL:
                records[job_id] = record
                ctx.seen_terminal.add(job_id)
            else:
                still.append(job_id)
        pending = still
        if pending:
            time.sleep(0.5)
    for job_id in pending:
        if job_id in ctx.written_off:
            continue
        with contextlib.suppress(Exception):
            records[job_id] = producer.get(job_id) or {"state": "missing"}
    return records


def _figures(sc: Scenario, ids: list[str], messages: list[dict[str, Any]],
             records: dict[str, dict[str, Any]], stats: dict[str, Any],
             elapsed: float, written_off: frozenset[str] | set[str] = frozenset(),
             ) -> dict[str, Any]:
    by_state = Counter(r.get("state") for r in records.values())
    lost = sum(1 for i in ids if i not in written_off
               and records.get(i, {}).get("state") not in states.TERMINAL)
    failed = Counter(r.get("reason", "?") for r in records.values() if r.get("state") == "failed")
    created = stats["creates_by_fingerprint"]
    explained = []
    paid_but_failed = 0
    for job_id, message in zip(ids, messages, strict=True):
        record = records.get(job_id, {})
        made_any = created.get(fingerprint(message["video_url"], message["mappings"]), 0)
        paid_but_failed += bool(record.get("state") == states.FAILED and made_any)
        if record.get("reason") == "ambiguous_submission":
            fp = fingerprint(message["video_url"], message["mappings"])
            made = created.get(fp, 0)
            cause = (record.get("error") or {}).get("message", "worker lost mid-create")
            explained.append({
                "job_id": job_id, "cause": cause, "akool_tasks_created": made,
                "explanation": ("the create ran at Akool but its answer was lost and no webhook "
                                "bound it within the grace period" if made else
                                "Akool never created the task (no credit spent); the worker "
                                "could not know, so it did not resubmit"),
            })
    durations = sorted(
        r[f"{r['state']}_at"] - r["created_at"] for r in records.values()
        if r.get("state") in states.TERMINAL and f"{r['state']}_at" in r and "created_at" in r
    )
    return {
        "scenario": sc.name,
        "jobs": len(ids),
        "succeeded": by_state.get("succeeded", 0),
        "failed": sum(failed.values()),
        "failed_by_reason": dict(failed),
        "rejected": by_state.get("rejected", 0),
        "lost": lost,
        "terminal": sum(1 for i in ids if records.get(i, {}).get("state") in states.TERMINAL),
        "duplicate_creates": int(stats["duplicate_creates"]),
        "paid_but_failed": paid_but_failed,
        "maybe_charged": sum(1 for r in records.values() if r.get("maybe_charged")),
        "unbound_alerts": sum(1 for r in records.values() if r.get("unbound_remote_id")),
        "creates": int(stats["creates"]),
        "ambiguous_explained": explained,
        "p50_s": round(statistics.median(durations), 2) if durations else None,
        "p99_s": round(durations[min(len(durations) - 1, int(len(durations) * 0.99))], 2)
        if durations else None,
        "elapsed_s": round(elapsed, 1),
    }


# --- faults ---------------------------------------------------------------------------------


def kill_random_worker_every(
    seconds: float, restart: bool = True
) -> Callable[[ChaosContext], None]:
    def fault(ctx: ChaosContext) -> None:
        while not ctx.stop.wait(seconds):
            alive = [p for p in ctx.stack.workers if p.poll() is None]
            if not alive:
                continue
            victim = ctx.rng.choice(alive)
            ctx.by_fault.add(victim.pid)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            ctx.log.append(f"kill -9 worker pid {victim.pid}")
            if restart:
                ctx.stack.start_worker(concurrency=4, name=f"r{len(ctx.stack.workers)}@%h")
    return fault


def sigterm_all_then_restart(after: float, down: float) -> Callable[[ChaosContext], None]:
    def fault(ctx: ChaosContext) -> None:
        if ctx.stop.wait(after):
            return
        alive = [p for p in ctx.stack.workers if p.poll() is None]
        for proc in alive:
            ctx.by_fault.add(proc.pid)
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(120) for proc in alive]
        ctx.log.append(f"SIGTERM to {len(alive)} workers; exit codes {sorted(set(codes))}")
        if ctx.stop.wait(down):
            return
        for _ in alive:
            ctx.stack.start_worker(concurrency=4, name=f"r{len(ctx.stack.workers)}@%h")
        ctx.log.append(f"restarted {len(alive)} workers")
    return fault


def restart_redis(after: float, down: float) -> Callable[[ChaosContext], None]:
    def fault(ctx: ChaosContext) -> None:
        if ctx.stop.wait(after):
            return
        port, directory = ctx.redis.port, ctx.redis.directory
        with ctx.redis_lock:
            ctx.redis.stop()
            ctx.log.append(f"redis-server stopped (appendonly) on port {port}")
            time.sleep(down)
            fresh = start_redis(port=port, appendonly=True, directory=directory)
            ctx.redis.process = fresh.process
        ctx.log.append(f"redis-server restarted after {down}s")
    return fault


def credits_out_then_topped_up(after: float) -> Callable[[ChaosContext], None]:
    def fault(ctx: ChaosContext) -> None:
        if ctx.stop.wait(after):
            return
        ctx.sandbox.config(credits=None)
        ctx.log.append(f"credits topped up after {after}s")
    return fault


# --- the table of scenarios ----------------------------------------------------------------


def scenarios(short: bool = False) -> list[Scenario]:
    """The suite: the rows below, then issue 12's (``tests.chaos.outages``) and issue 14's
    (``tests.chaos.producers``)."""
    from tests.chaos import outages, producers  # they build on this module

    return _scenarios(short) + outages.scenarios(short) + producers.scenarios(short)


def _scenarios(short: bool) -> list[Scenario]:
    if short:
        return [
            Scenario("kill -9 worker every 1.5s", jobs=300, webhook=True,
                     knobs={"latency": [0.05, 0.3]},
                     fault=kill_random_worker_every(1.5), deadline=150),
            Scenario("5xx 20% + hangs 5% + 429 bursts", jobs=200, webhook=True,
                     knobs={"http_5xx_ratio": 0.2, "hang_ratio": 0.05, "hang_seconds": 5,
                            "burst_429_every": 2, "burst_429_size": 5, "retry_after": 0.5},
                     deadline=150),
            Scenario("poison messages among jobs", jobs=30, poison=60, workers=2,
                     deadline=60),
        ]
    return [
        Scenario("kill -9 worker every 2s", jobs=1000, workers=4, webhook=True,
                 knobs={"latency": [0.05, 0.3]}, fault=kill_random_worker_every(2.0)),
        Scenario("SIGTERM all workers, restart", jobs=600, fault=sigterm_all_then_restart(4, 2)),
        Scenario("redis restart (appendonly)", jobs=600, appendonly=True,
                 fault=restart_redis(4, 2)),
        Scenario("5xx 20% + hangs 5% + 429 bursts", jobs=600, webhook=True,
                 knobs={"http_5xx_ratio": 0.2, "hang_ratio": 0.05, "hang_seconds": 5,
                        "burst_429_every": 2, "burst_429_size": 5, "retry_after": 0.5}),
        Scenario("5xx/hangs/429, AMBIGUOUS_POLICY=resubmit", jobs=600, webhook=True,
                 knobs={"http_5xx_ratio": 0.2, "hang_ratio": 0.05, "hang_seconds": 5,
                        "burst_429_every": 2, "burst_429_size": 5, "retry_after": 0.5},
                 env={"HEADSWAP_AMBIGUOUS_POLICY": "resubmit"}),
        Scenario("credits run out, then top-up", jobs=400, knobs={"credits": 150},
                 fault=credits_out_then_topped_up(8)),
        Scenario("two beats at once", jobs=600, beats=2),
        Scenario("poison messages among jobs", jobs=300, poison=1000),
    ]


def violations(result: dict[str, Any]) -> list[str]:
    problems = []
    if result["lost"] and not result.get("loss_allowed"):
        problems.append(f"{result['lost']} jobs lost (not terminal)")
    if result["duplicate_creates"]:
        problems.append(f"{result['duplicate_creates']} duplicate creates")
    problems += result.get("target_misses", [])
    if result.get("stored_problems") and "kill -9" in result["scenario"]:
        problems.append(f"succeeded jobs without exactly one complete stored object: "
                        f"{result['stored_problems']}")
    if "poison" in result:
        if result["worker_exits"] or result["supervisor_restarts"]:
            problems.append(f"{result['worker_exits']} workers exited on bad entries")
        if result["dead_messages"] != result["poison"] or not result["dead_as_expected"]:
            problems.append(f"{result['dead_messages']} of {result['poison']} bad entries "
                            "kept (or with the wrong reason or queue)")
    return problems


