"""Poll lag with many tasks at Akool: does polling keep up (issue #16, item 3)?

10,000 remote tasks are pending at the sandbox (each a real task there, processing for an
hour, so every poll answers "processing" and reschedules the job one interval later),
Akool answers every call after 200 ms, and the poll interval is 10 s (``POLL_MIN`` =
``POLL_MAX``): the workers must make 1,000 detail calls a second. The jobs' records are a
template job made by the worker's own code (:func:`bench.schedule_scale.make_template`)
cloned onto the seeded task ids, first polls spread evenly over one interval.

Real ``headswap worker`` processes and ``headswap beat`` then run for a warm-up and a
measured window. Each worker loads :mod:`bench.lag_probe`, which keeps every poll lag it
observes (the ``headswap_poll_lag_seconds`` observation: the detail call's server time
minus the time its member was due) unbucketed. Reported: lag p50/p90/p99/max of the polls
made in the window, polls/s (the sandbox's detail calls), the due backlog
(``headswap_poll_due_remote_tasks``) and how overdue its oldest member is at the end (a
backlog never polled has no lag observation yet), worker CPU per poll.

Side by side: this project's defaults, and the old limits (a fixed 1,000 members a tick,
``HEADSWAP_POLL_MAX_CLAIM_PER_TICK=1000``, and one call at a time per batch,
``HEADSWAP_POLL_CONCURRENCY=1``; the queue bound of the new claim stays on, so the old
limits do not also flood ``headswap.poll`` here as the old code did).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
import requests

from bench.cluster import Cluster, Sampler, base_env
from bench.lag_probe import LAG_KEY
from bench.throughput import PROJECT_QUEUES, Bench, pct

PENDING = 10_000
LATENCY_S = 0.2
INTERVAL_S = 10.0
TICK_S = 2.0
#: The run's timings: the production tick and lease, a fixed 10 s interval.
TIMING = {
    "HEADSWAP_POLL_TICK_SECONDS": f"{TICK_S:g}",
    "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": f"{INTERVAL_S:g}",
    "HEADSWAP_POLL_MAX_INTERVAL_SECONDS": f"{INTERVAL_S:g}",
    "HEADSWAP_POLL_LEASE_SECONDS": "60",
    "HEADSWAP_READ_TIMEOUT": "10",
    "HEADSWAP_CONNECT_TIMEOUT": "2",
}
PROBE = "bench.lag_probe"


@dataclass(frozen=True)
class Variant:
    key: str
    name: str
    env: Mapping[str, str] = field(default_factory=dict)


VARIANTS = (
    Variant("project", "headswap defaults (claim follows the backlog, POLL_CONCURRENCY 50)"),
    Variant("old_limits", "old limits (1,000 a tick, one call at a time per batch)",
            {"HEADSWAP_POLL_MAX_CLAIM_PER_TICK": "1000", "HEADSWAP_POLL_CONCURRENCY": "1"}),
)


# --- the pending tasks ------------------------------------------------------------------

def seed_remote_tasks(sandbox: Any, request: Mapping[str, Any], count: int) -> list[str]:
    """``count`` tasks created at the sandbox for the template's (analysed) video, each with
    its own face (the sandbox counts identical requests as duplicates)."""
    local = threading.local()
    url = sandbox.api_url("/v4/headswap/task/create")

    def create(i: int) -> str:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body = {"video_url": request["video_url"], "model_name": "akool-premium",
                "resolution": "720p",
                "mappings": [{"obj_id": 0, "img_url": f"https://cdn.example.com/lag/{i}.jpg"}]}
        answer = session.post(url, json=body, headers=sandbox.headers(), timeout=30).json()
        if answer.get("code") != 1000:
            raise RuntimeError(f"sandbox refused a seed create: {answer}")
        return str(answer["data"]["_id"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(count)))


@dataclass
class Seed:
    """The template job and its footprint (made once), and the sandbox's task ids."""

    footprint: Any
    remote_ids: list[str]


def make_seed(redis_url: str, sandbox: Any, count: int) -> Seed:
    """A template job in ``redis_url`` (made by the worker's code against ``sandbox``) and
    ``count`` more tasks at the sandbox for the same video."""
    from bench import schedule_scale

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    rt = schedule_scale.runtime_for(schedule_scale.settings_for(redis_url, sandbox))
    template = schedule_scale.make_template(rt)
    record = rt.store.get(template) or {}
    footprint = schedule_scale.Footprint(r, template, rt.store.keys.job(template), set())
    remote_ids = seed_remote_tasks(sandbox, record["request"], count)
    rt.store.close()
    return Seed(footprint, remote_ids)


def write_jobs(r: redis.Redis, seed: Seed, poll_key: str) -> list[str]:
    """One job record per seeded task, shaped like the template; not yet due."""
    job_ids = []
    far = time.time() + 86_400
    with r.pipeline(transaction=False) as pipe:
        for i, remote in enumerate(seed.remote_ids):
            ids = {"job": uuid.uuid4().hex, "remote": remote, "idem": f"lag-{i:09d}"}
            seed.footprint.write(pipe, ids, poll_key, far)
            job_ids.append(ids["job"])
            if i % 2000 == 1999:
                pipe.execute()
        pipe.execute()
    return job_ids


def make_due_over_one_interval(r: redis.Redis, poll_key: str, job_ids: list[str]) -> None:
    """First polls spread evenly over the next interval (server clock)."""
    secs, micros = r.time()
    now = secs + micros / 1e6
    step = INTERVAL_S / max(1, len(job_ids))
    with r.pipeline(transaction=False) as pipe:
        for i, job_id in enumerate(job_ids):
            pipe.zadd(poll_key, {job_id: now + i * step})
        pipe.execute()


# --- one run ----------------------------------------------------------------------------

def _due_now(r: redis.Redis, poll_key: str) -> tuple[int, float]:
    """Members due and unclaimed, and how overdue the oldest is (0 when none)."""
    secs, micros = r.time()
    now = secs + micros / 1e6
    due = int(r.zcount(poll_key, "-inf", now))
    oldest = r.zrange(poll_key, 0, 0, withscores=True)
    overdue = max(0.0, now - float(oldest[0][1])) if oldest and due else 0.0
    return due, overdue


def run_variant(bench: Bench, seed: Seed, variant: Variant, *, warmup_s: float,
                window_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    from headswap_client.keys import Keys

    sb = bench.sandbox
    sb.config(latency=0.0)
    url = bench.fresh_db()
    r = redis.Redis.from_url(url, decode_responses=True)
    poll_key = Keys("headswap").schedule("poll")
    job_ids = write_jobs(r, seed, poll_key)
    env = base_env(url, sb, {**TIMING, **variant.env})
    cluster = Cluster(url, env)
    try:
        for index in range(bench.workers):
            cluster.start_worker(bench.concurrency, f"lag{index}@%h", ["--include", PROBE],
                                 queues=PROJECT_QUEUES)
        cluster.wait_ready(60)
        sb.config(latency=LATENCY_S)
        make_due_over_one_interval(r, poll_key, job_ids)
        cluster.start_beat()
        time.sleep(warmup_s)
        roles = {"worker": [p.pid for p in cluster.workers],
                 "beat": [cluster.others["beat"].pid], "sandbox": [sb.proc.pid],
                 "redis": [bench.redis_pid]}
        backlog: list[tuple[int, float]] = []
        queued: list[int] = []
        before = sb.stats()
        with Sampler(roles) as sampler:
            started = time.time()
            while time.time() < started + window_s:
                backlog.append(_due_now(r, poll_key))
                queued.append(int(r.llen("headswap.poll")))
                time.sleep(0.5)
            ended = time.time()
        after = sb.stats()
        end_due, end_overdue = _due_now(r, poll_key)
        time.sleep(2 * 0.5)  # the probes' last flush
        lags = sorted(float(lag) for t, lag in (e.split() for e in r.lrange(LAG_KEY, 0, -1))
                      if started <= float(t) <= ended)
    finally:
        sb.config(latency=0.0)
        cluster.stop()
        r.close()
    polls = int(after["detail_calls"]) - int(before["detail_calls"])
    seconds = ended - started
    worker_cpu = sampler.cpu.get("worker", 0.0)
    row = {
        "name": variant.name, "pending": len(job_ids), "env": dict(variant.env),
        "window_s": round(seconds, 1), "polls": polls,
        "polls_per_s": round(polls / seconds, 1),
        "needed_polls_per_s": round(len(job_ids) / INTERVAL_S, 1),
        "lag_observations": len(lags),
        "lag_p50_s": round(statistics.median(lags), 3) if lags else None,
        "lag_p90_s": round(pct(lags, 90) or 0, 3) if lags else None,
        "lag_p99_s": round(pct(lags, 99) or 0, 3) if lags else None,
        "lag_max_s": round(lags[-1], 3) if lags else None,
        "due_backlog_max": max((d for d, _ in backlog), default=0),
        "due_backlog_end": end_due, "oldest_overdue_end_s": round(end_overdue, 2),
        "poll_queue_max": max(queued, default=0),
        "worker_cpu_ms_per_poll": round(worker_cpu * 1000 / max(1, polls), 3),
        "cpu_s_by_role": {k: round(v, 1) for k, v in sampler.cpu.items()},
        "other_cpu_s": round(sampler.other_cpu, 1),
        "cpu_utilisation": round((sum(sampler.cpu.values()) + sampler.other_cpu)
                                 / max(1e-9, sampler.wall), 2),
    }
    log(f"    {row['polls_per_s']:.0f} polls/s of {row['needed_polls_per_s']:.0f} needed; "
        f"lag p50 {row['lag_p50_s']} s, p99 {row['lag_p99_s']} s; due backlog at the end "
        f"{end_due:,} (oldest {end_overdue:.1f} s overdue); worker CPU "
        f"{row['worker_cpu_ms_per_poll']} ms/poll")
    return row


def run(bench: Bench, *, pending: int = PENDING, warmup_s: float = 20.0,
        window_s: float = 30.0, variants: tuple[Variant, ...] = VARIANTS,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every variant on the same seeded tasks; ``bench.sandbox`` is left with latency 0."""
    sb = bench.sandbox
    sb.reset()
    sb.config(processing_time=3600.0, analysis_time=0.05, latency=0.0, webhooks=False)
    t = time.perf_counter()
    seed = make_seed(bench.fresh_db(), sb, pending)
    log(f"  {pending:,} tasks pending at the sandbox ({time.perf_counter() - t:.0f} s to seed)")
    rows = {}
    for variant in variants:
        log(f"  {variant.name}")
        rows[variant.key] = run_variant(bench, seed, variant, warmup_s=warmup_s,
                                        window_s=window_s, log=log)
    return {"rows": rows, "latency_s": LATENCY_S, "interval_s": INTERVAL_S, "tick_s": TICK_S,
            "timing": TIMING, "workers": bench.workers, "concurrency": bench.concurrency,
            "warmup_s": warmup_s, "cpus": os.cpu_count()}
