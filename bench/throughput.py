"""Throughput and latency scenarios: the Celery ceiling, the naive worker, this project.

Every scenario has the same shape: one producer process (this one) enqueues ``n`` jobs as
fast as it can while the workers run them; the clock runs from the first enqueue to the
last completion, so ``jobs/s`` is what the whole machine sustains end to end. Before the
clock starts each scenario runs one warm-up job per source video, which analyses the URL
(Akool requires an analysis before any create; both the project and the naive worker
cache it per URL in Redis), so the timed jobs measure the create-and-follow path.

Latency is measured from the moment the remote task completed at the sandbox (its
``create_time`` plus the processing time) to the moment the completion signal fired in a
worker (:mod:`bench.signal_probe`).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis
from celery import Celery

from bench import naive_worker as naive_meta
from bench.cluster import Cluster, Sampler, base_env
from bench.signal_probe import SIGNALS_KEY
from worker.cli import DEFAULT_QUEUES
from worker.devstack.procs import free_port, wait_until

PROJECT_QUEUES = DEFAULT_QUEUES  # the queues `headswap worker` consumes
CPUS = os.cpu_count() or 1
FACE = "https://cdn.example.com/bench/faces/{run}-{i}.jpg"

#: Timings of the throughput runs (zero processing time at the sandbox): the first poll
#: comes at the poll floor, beat ticks four times a second.
THROUGHPUT_TIMING = {
    "HEADSWAP_POLL_TICK_SECONDS": "0.25",
    "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "0.25",
    "HEADSWAP_POLL_MAX_INTERVAL_SECONDS": "5",
    "HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND": "0.05",
    "HEADSWAP_POLL_LEASE_SECONDS": "10",
    "HEADSWAP_READ_TIMEOUT": "10",
    "HEADSWAP_CONNECT_TIMEOUT": "2",
    "HEADSWAP_RETRY_BACKOFF_MAX_SECONDS": "2",
}

#: Timings of the poll-timing runs (non-zero processing time): a half-second beat and
#: floor, first poll at 0.5 s of processing per second of video.
POLL_TIMING = {
    **THROUGHPUT_TIMING,
    "HEADSWAP_POLL_TICK_SECONDS": "0.5",
    "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "0.5",
    "HEADSWAP_POLL_MAX_INTERVAL_SECONDS": "10",
    "HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND": "0.5",
}


@dataclass
class Bench:
    """What every scenario shares: the Redis server, the sandbox, the process topology."""

    redis_url: str  # the server's URL (db 0); each scenario takes a fresh database
    redis_pid: int
    sandbox: Any
    workers: int = 2
    concurrency: int = 8
    video_urls: int = 4
    _next_db: int = 1
    log: Callable[[str], None] = print
    profile_hook: Callable[[Cluster, str], Any] | None = None

    def fresh_db(self) -> str:
        db = self._next_db
        self._next_db = db % 15 + 1
        url = self.redis_url.rsplit("/", 1)[0] + f"/{db}"
        redis.Redis.from_url(url).flushdb()
        return url


@dataclass
class Run:
    """Raw observations of one timed scenario."""

    name: str
    jobs: int
    started: float = 0.0
    enqueued: float = 0.0
    finished: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def pace(start: float, i: int, rate: float | None) -> None:
    """Open-loop arrivals: job ``i`` is enqueued at ``start + i / rate`` (None: at once)."""
    if rate:
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def video_url(index: int, duration: float) -> str:
    return f"https://cdn.example.com/bench/video-{index}.mp4?duration={duration:g}"


Durations = float | tuple[float, ...]


def durations_of(bench: Bench, duration: Durations) -> tuple[float, ...]:
    """The source videos' durations: ``bench.video_urls`` videos of one duration, or one
    video per duration given (job ``i`` uses video ``i % count``)."""
    if isinstance(duration, tuple):
        return duration
    return (duration,) * bench.video_urls


def celery_client(env: Mapping[str, str], config: Callable[[], dict[str, Any]]) -> Celery:
    """A Celery producer configured like the workers (settings read from ``env``)."""
    old = dict(os.environ)
    os.environ.update(env)
    try:
        from config.settings import get_settings

        get_settings.cache_clear()
        app = Celery("bench-producer", set_as_current=False)
        app.config_from_object(config())
    finally:
        os.environ.clear()
        os.environ.update(old)
        get_settings.cache_clear()
    return app


def sandbox_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, int]:
    keys = ("create_requests", "creates", "detail_calls", "analyze_calls",
            "analysis_detail_calls", "token_calls", "duplicate_creates", "webhook_deliveries",
            "webhook_attempts", "http_5xx", "http_429")
    return {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in keys}


def read_signals(r: redis.Redis) -> dict[str, float]:
    out: dict[str, float] = {}
    for raw in r.lrange(SIGNALS_KEY, 0, -1):
        entry = json.loads(raw)
        if entry.get("state") == "succeeded":
            out.setdefault(entry["job_id"], float(entry["at"]))
    return out


def signal_processes(r: redis.Redis) -> dict[str, int]:
    """How many completion signals fired in each kind of process."""
    counts: dict[str, int] = {}
    for raw in r.lrange(SIGNALS_KEY, 0, -1):
        kind = json.loads(raw).get("process", "worker")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def wait_signals(r: redis.Redis, count: int, timeout: float) -> float:
    """Block until ``count`` completion signals were recorded; return when the last came."""
    deadline = time.monotonic() + timeout
    while int(r.llen(SIGNALS_KEY)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{r.llen(SIGNALS_KEY)} of {count} jobs signalled "
                               f"after {timeout:.0f}s")
        time.sleep(0.02)  # the end time comes from the signals' own stamps
    return max(read_signals(r).values(), default=time.time())


def remote_times(sandbox: Any, remote_ids: Mapping[str, str],
                 processing_time: float) -> dict[str, tuple[float, float]]:
    """job id -> (when the sandbox created its remote task, when that task completed),
    wall clock; a task's own drawn processing time when the sandbox tells it."""
    def one(item: tuple[str, str]) -> tuple[str, tuple[float, float] | None]:
        job_id, remote_id = item
        try:
            view = sandbox.task(remote_id)
        except Exception:
            return job_id, None
        created = view["detail"]["create_time"] / 1000
        took = float(view.get("processing_seconds", processing_time))  # its own, if a spread
        return job_id, (created, created + took)
    with ThreadPoolExecutor(4) as pool:
        return {j: t for j, t in pool.map(one, remote_ids.items()) if t is not None}


def remote_done_times(sandbox: Any, remote_ids: Mapping[str, str],
                      processing_time: float) -> dict[str, float]:
    """job id -> when its remote task completed at the sandbox (wall clock)."""
    return {j: done for j, (_, done) in remote_times(sandbox, remote_ids,
                                                     processing_time).items()}


def creation(started: float, times: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """How fast the remote tasks were created: from the first enqueue to the last create."""
    if not times:
        return {}
    last = max(created for created, _ in times.values())
    span = max(1e-9, last - started)
    return {"all_created_after_s": round(span, 2), "creates_per_s": round(len(times) / span, 1)}


def summarize(run: Run, sampler: Sampler, calls: Mapping[str, int],
              latency: Mapping[str, float] | None) -> dict[str, Any]:
    succeeded = len(run.signals) if run.signals else run.jobs
    elapsed = max(1e-9, run.finished - run.started)
    per_job = max(1, succeeded)
    lat = sorted(latency.values()) if latency else []
    e2e = sorted(run.signals[j] - run.extra["enqueued_at"][j] for j in run.signals
                 if j in run.extra.get("enqueued_at", {}))
    service = sum(sec for role, sec in sampler.cpu.items() if role != "producer")
    out: dict[str, Any] = {
        "name": run.name,
        "jobs": run.jobs,
        "succeeded": succeeded,
        "seconds": round(elapsed, 3),
        "jobs_per_s": round(succeeded / elapsed, 1),
        "enqueue_per_s": round(run.jobs / max(1e-9, run.enqueued - run.started), 1),
        "akool_calls": dict(calls),
        "create_per_job": round(calls.get("create_requests", 0) / per_job, 3),
        "detail_per_job": round(calls.get("detail_calls", 0) / per_job, 3),
        "duplicate_creates": calls.get("duplicate_creates", 0),
        "latency_p50_s": round(statistics.median(lat), 3) if lat else None,
        "latency_p99_s": round(pct(lat, 99) or 0, 3) if lat else None,
        "latency_max_s": round(lat[-1], 3) if lat else None,
        "enqueue_to_signal_p50_s": round(statistics.median(e2e), 3) if e2e else None,
        "enqueue_to_signal_p99_s": round(pct(e2e, 99) or 0, 3) if e2e else None,
        "peak_rss_mb": {role: sampler.peak_rss_mb(role) for role in sampler.procs},
        "cpu_ms_per_job": {role: round(sec * 1000 / per_job, 2)
                           for role, sec in sampler.cpu.items()},
        "other_cpu_ms_per_job": round(sampler.other_cpu * 1000 / per_job, 2),
        "cpu_ms_per_job_total": round(sum(sampler.cpu.values()) * 1000 / per_job, 2),
        # the service's CPU (not the bench process, which enqueues and samples)
        "service_cpu_ms_per_job": round(service * 1000 / per_job, 2),
        "capacity_jobs_per_s": round(CPUS * per_job / max(1e-9, service), 1),
        "cpu_utilisation": round((sum(sampler.cpu.values()) + sampler.other_cpu)
                                 / max(1e-9, sampler.wall), 2),
    }
    out.update({k: v for k, v in run.extra.items() if k != "enqueued_at"})
    return out


# --- the ceiling -----------------------------------------------------------------------

def run_noop(bench: Bench, n: int) -> dict[str, Any]:
    """Raw Celery: ``n`` no-op tasks through the same config, pool and topology."""
    from bench import noop_app

    url = bench.fresh_db()
    env = base_env(url, None, {})
    cluster = Cluster(url, env)
    r = redis.Redis.from_url(url)
    try:
        cluster.start_workers("bench.noop_app", noop_app.QUEUE, bench.workers, bench.concurrency)
        app = celery_client(env, noop_app.noop_config)

        def drained() -> bool:
            return not r.llen(noop_app.QUEUE) and not r.hlen("unacked")

        def wait_drained(timeout: float) -> None:
            # Twice in a row: a message between BRPOP and its unacked entry is in neither.
            wait_until(lambda: drained() and (time.sleep(0.005) or drained()), timeout,
                       interval=0.002, what="no-op queue drained")

        for i in range(bench.workers * bench.concurrency * 4):  # warm-up
            app.send_task(noop_app.TASK, args=(f"warm-{i}",), queue=noop_app.QUEUE)
        wait_drained(60)
        run = Run("celery no-op (ceiling)", n)
        roles = {"worker": [p.pid for p in cluster.workers],
                 "redis": [bench.redis_pid], "producer": [os.getpid()]}
        with Sampler(roles) as sampler:
            run.started = time.time()
            for i in range(n):
                app.send_task(noop_app.TASK, args=(str(i),), queue=noop_app.QUEUE)
            run.enqueued = time.time()
            wait_drained(max(60.0, n / 20))
            run.finished = time.time()
        # Drain-only capacity: the queue filled first, then consumed with nothing else running.
        drain = _drain_only(bench, cluster, app, r, min(n, 3000), wait_drained)
        run.extra["drain_only_per_s"] = drain
        return summarize(run, sampler, {}, None)
    finally:
        cluster.stop()
        r.close()


def _drain_only(bench: Bench, cluster: Cluster, app: Celery, r: redis.Redis, n: int,
                wait_drained: Callable[[float], None]) -> float:
    """Tasks/s the workers drain from a full queue (no producer competing for the CPU)."""
    from bench import noop_app

    for proc in cluster.workers:
        proc.send_signal(signal.SIGSTOP)  # hold consumption while the queue fills
    try:
        for i in range(n):
            app.send_task(noop_app.TASK, args=(f"d{i}",), queue=noop_app.QUEUE)
    finally:
        start = time.time()
        for proc in cluster.workers:
            proc.send_signal(signal.SIGCONT)
    wait_drained(max(60.0, n / 20))
    return round(n / (time.time() - start), 1)


# --- the naive worker ------------------------------------------------------------------

def naive_job(run_id: str, i: int, durations: tuple[float, ...]) -> dict[str, Any]:
    v = i % len(durations)
    return {"job_id": f"{run_id}-{i}", "video_url": video_url(v, durations[v]),
            "mappings": [{"obj_id": 0, "img_url": FACE.format(run=run_id, i=i)}],
            "resolution": "720p"}


def run_naive(bench: Bench, n: int, *, processing_time: float = 0.0,
              duration: Durations = 4.0, poll_seconds: float = 1.0,
              name: str = "naive worker", rate: float | None = None,
              timing: Mapping[str, str] = THROUGHPUT_TIMING,
              then: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``then``: sandbox knobs set after the warm-up (which runs at zero processing time
    when they are given), e.g. a latency and a processing spread."""
    sb = bench.sandbox
    sb.reset(reset_config=True)  # knobs a previous scenario set after its warm-up, too
    sb.config(processing_time=0.0 if then else processing_time, analysis_time=0.05,
              webhooks=False)
    videos = durations_of(bench, duration)
    url = bench.fresh_db()
    env = base_env(url, sb, {**timing, "BENCH_NAIVE_POLL_SECONDS": f"{poll_seconds:g}"})
    cluster = Cluster(url, env)
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        cluster.start_workers("bench.naive_worker", naive_meta.QUEUE, bench.workers,
                              bench.concurrency)
        app = celery_client(env, naive_meta.naive_config)
        run_id = uuid.uuid4().hex[:8]
        for i in range(len(videos)):  # warm-up: one job per source video
            app.send_task(naive_meta.TASK, kwargs=naive_job(run_id + "w", i, videos),
                          queue=naive_meta.QUEUE)
        wait_signals(r, len(videos), 60 + (0 if then else processing_time))
        r.delete(SIGNALS_KEY)
        if then:
            sb.config(**then)
        before = sb.stats()
        run = Run(name, n)
        enqueued_at: dict[str, float] = {}
        roles = {"worker": [p.pid for p in cluster.workers], "sandbox": [sb.proc.pid],
                 "redis": [bench.redis_pid], "producer": [os.getpid()]}
        with Sampler(roles) as sampler:
            run.started = time.time()
            for i in range(n):
                pace(run.started, i, rate)
                job = naive_job(run_id, i, videos)
                enqueued_at[job["job_id"]] = time.time()
                app.send_task(naive_meta.TASK, kwargs=job, queue=naive_meta.QUEUE)
            run.enqueued = time.time()
            run.finished = wait_signals(r, n, max(120.0, n / 5) + processing_time)
        run.signals = read_signals(r)
        calls = sandbox_delta(before, sb.stats())
        with r.pipeline(transaction=False) as pipe:
            for job_id in run.signals:
                pipe.hget(naive_meta.job_key(job_id), "remote_id")
            remote = dict(zip(run.signals, pipe.execute(), strict=True))
        times = remote_times(sb, {j: rid for j, rid in remote.items() if rid},
                             processing_time)
        latency = {j: run.signals[j] - done for j, (_, done) in times.items()}
        run.extra = {"enqueued_at": enqueued_at, "processing_time_s": processing_time,
                     "poll_seconds": poll_seconds, **creation(run.started, times)}
        return summarize(run, sampler, calls, latency)
    finally:
        cluster.stop()
        r.close()


# --- the minimal Akool client ----------------------------------------------------------

def minimal_body(run_id: str, i: int, durations: tuple[float, ...]) -> dict[str, Any]:
    """The create body this project would send for the same job (its own ``to_body``)."""
    from worker.akool_types import CreateTaskRequest, Mapping

    job = project_job(run_id, i, durations)
    return CreateTaskRequest(
        source_video_url=job["video_url"],
        mappings=tuple(Mapping(m["obj_id"], m["img_url"]) for m in job["mappings"]),
        resolution=job["resolution"]).to_body()


def run_minimal(bench: Bench, n: int, *, duration: float = 4.0,
                name: str = "minimal Akool client") -> dict[str, Any]:
    """:mod:`bench.minimal_client`: create + detail per job and nothing else, same HTTP
    session, same Celery settings and topology; the source videos analysed beforehand."""
    from bench import minimal_client as minimal_meta

    sb = bench.sandbox
    sb.reset(reset_config=True)  # knobs a previous scenario set after its warm-up, too
    sb.config(processing_time=0.0, analysis_time=0.05, webhooks=False)
    videos = durations_of(bench, duration)
    for i, seconds in enumerate(videos):  # Akool's analysis of each source, before the clock
        sb.analyze(video_url(i, seconds))
    url = bench.fresh_db()
    env = base_env(url, sb, THROUGHPUT_TIMING)
    cluster = Cluster(url, env)
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        cluster.start_workers("bench.minimal_client", minimal_meta.QUEUE, bench.workers,
                              bench.concurrency)
        app = celery_client(env, minimal_meta.minimal_config)
        run_id = uuid.uuid4().hex[:8]
        for i in range(bench.workers * bench.concurrency):  # warm-up: connections, imports
            app.send_task(minimal_meta.TASK, kwargs={
                "job_id": f"{run_id}w-{i}",
                "body": minimal_body(run_id + "w", i, videos)},
                queue=minimal_meta.QUEUE)
        wait_signals(r, bench.workers * bench.concurrency, 60)
        r.delete(SIGNALS_KEY)
        bodies = [(f"{run_id}-{i}", minimal_body(run_id, i, videos))
                  for i in range(n)]
        before = sb.stats()
        run = Run(name, n)
        enqueued_at: dict[str, float] = {}
        roles = {"worker": [p.pid for p in cluster.workers], "sandbox": [sb.proc.pid],
                 "redis": [bench.redis_pid], "producer": [os.getpid()]}
        with Sampler(roles) as sampler:
            run.started = time.time()
            for job_id, body in bodies:
                enqueued_at[job_id] = time.time()
                app.send_task(minimal_meta.TASK, kwargs={"job_id": job_id, "body": body},
                              queue=minimal_meta.QUEUE)
            run.enqueued = time.time()
            run.finished = wait_signals(r, n, max(120.0, n / 5))
        run.signals = read_signals(r)
        calls = sandbox_delta(before, sb.stats())
        run.extra = {"enqueued_at": enqueued_at, "processing_time_s": 0.0}
        return summarize(run, sampler, calls, None)
    finally:
        cluster.stop()
        r.close()


# --- this project ----------------------------------------------------------------------

def project_job(run_id: str, i: int, durations: tuple[float, ...]) -> dict[str, Any]:
    v = i % len(durations)
    return {"video_url": video_url(v, durations[v]),
            "mappings": [{"obj_id": 0, "img_url": FACE.format(run=run_id, i=i)}],
            "resolution": "720p"}


def wait_created(r: redis.Redis, producer: Any, job_ids: list[str], timeout: float) -> None:
    """Until every job was created at Akool; then they leave the poll schedule (they never
    finish, so no signal of theirs comes into a timed run)."""
    keys = producer.store.keys

    def created() -> bool:
        with r.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(keys.job(job_id), "remote_id")
            return all(pipe.execute())

    wait_until(created, timeout, interval=0.1, what="warm-up jobs created")
    r.zrem(keys.schedule("poll"), *job_ids)


def run_project(bench: Bench, n: int, *, webhook: bool, processing_time: float = 0.0,
                duration: Durations = 4.0, timing: Mapping[str, str] = THROUGHPUT_TIMING,
                name: str | None = None, extra_env: Mapping[str, str] | None = None,
                profile: str | None = None, rate: float | None = None,
                then: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """This project end to end: ``Producer.submit`` to the ``job_succeeded`` signal.
    ``then``: sandbox knobs set after the warm-up (run at zero processing time when given)."""
    from config.settings import load_settings
    from worker.producer import Producer

    name = name or f"headswap, webhook {'on' if webhook else 'off'}"
    sb = bench.sandbox
    sb.reset(reset_config=True)  # knobs a previous scenario set after its warm-up, too
    sb.config(processing_time=0.0 if then else processing_time, analysis_time=0.05,
              webhooks=webhook)
    videos = durations_of(bench, duration)
    url = bench.fresh_db()
    env = base_env(url, sb, {**timing, **(extra_env or {})})
    cluster = Cluster(url, env)
    r = redis.Redis.from_url(url, decode_responses=True)
    producer = None
    try:
        if webhook:
            port = free_port()
            env["HEADSWAP_WEBHOOK_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            cluster.start_webhook(port)
        cluster.start_workers("worker.app", PROJECT_QUEUES, bench.workers, bench.concurrency)
        cluster.start_beat()
        producer = Producer(load_settings(env))
        run_id = uuid.uuid4().hex[:8]
        warm = [producer.submit(**project_job(run_id + "w", i, videos))  # one per video
                for i in range(len(videos))]
        if then:
            # The estimate may put their first poll a minute out: wait for their creates
            # (the analyses are then cached) and take them off the schedule instead.
            wait_created(r, producer, warm, 120)
        else:
            wait_signals(r, len(videos), 60 + processing_time)
        r.delete(SIGNALS_KEY)
        if then:
            sb.config(**then)
        before = sb.stats()
        run = Run(name, n)
        enqueued_at: dict[str, float] = {}
        job_ids: list[str] = []
        roles: dict[str, list[int]] = {
            "worker": [p.pid for p in cluster.workers],
            "beat": [cluster.others["beat"].pid], "sandbox": [sb.proc.pid],
            "redis": [bench.redis_pid], "producer": [os.getpid()]}
        if webhook:  # gunicorn: the master and its one worker process
            master = psutil.Process(cluster.others["webhook"].pid)
            roles["webhook"] = [master.pid, *(c.pid for c in master.children())]
        profiler = bench.profile_hook(cluster, profile) if (profile and bench.profile_hook) \
            else None
        with Sampler(roles) as sampler:
            run.started = time.time()
            for i in range(n):
                pace(run.started, i, rate)
                t = time.time()
                job_id = producer.submit(**project_job(run_id, i, videos))
                enqueued_at[job_id] = t
                job_ids.append(job_id)
            run.enqueued = time.time()
            run.finished = wait_signals(r, n, max(120.0, n / 5) + processing_time)
        profile_result = profiler.finish() if profiler is not None else None
        run.signals = read_signals(r)
        fired_in = signal_processes(r)
        calls = sandbox_delta(before, sb.stats())
        with r.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(producer.store.keys.job(job_id), ["remote_id", "attempts", "source"])
            rows = dict(zip(job_ids, pipe.execute(), strict=True))
        remote = {j: row[0] for j, row in rows.items() if row[0]}
        times = remote_times(sb, remote, processing_time)
        latency = {j: run.signals[j] - done for j, (_, done) in times.items()
                   if j in run.signals}
        sources: dict[str, int] = {}
        for row in rows.values():
            sources[row[2] or "?"] = sources.get(row[2] or "?", 0) + 1
        run.extra = {"enqueued_at": enqueued_at, "processing_time_s": processing_time,
                     **creation(run.started, times), "completed_by": sources,
                     "signals_fired_in": fired_in,
                     "timing": {k.removeprefix("HEADSWAP_").lower(): v
                                for k, v in timing.items() if "POLL" in k or "PROCESSING" in k}}
        if profile_result is not None:
            run.extra["profile"] = profile_result
        return summarize(run, sampler, calls, latency)
    finally:
        if producer is not None:
            producer.close()
        cluster.stop()
        r.close()
