"""The global create rate, held across processes.

Two measurements:

- **limiter**: four processes hammer one :class:`worker.limits.RateLimiter` key (the key
  the create path uses) at the configured rate; every grant is timestamped. The achieved
  rate is ``(grants - burst) / (last - first)`` over the run, and the worst one-second
  window shows whether a burst ever got through.
- **workers**: four real ``headswap worker`` processes with ``HEADSWAP_CREATE_RATE`` set
  run a backlog of jobs; the creates the sandbox received (its ``create_time``) give the
  rate Akool actually saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import redis

from bench.cluster import ROOT, Cluster, Sampler, base_env
from bench.throughput import (
    PROJECT_QUEUES,
    THROUGHPUT_TIMING,
    Bench,
    project_job,
    wait_signals,
)

RATE = "create"
KEY = "{headswap}:rate:create"  # JobStore("headswap").keys.rate(RATE)


def _hammer(redis_url: str, rate: float, burst: int, seconds: float) -> None:
    """One hammering process (``python -m bench.rate_limit``): says ``ready`` once imported,
    reads the common start time from stdin, prints its grant times."""
    from worker.limits import Rate, RateLimiter
    from worker.store import JobStore

    store = JobStore(redis.Redis.from_url(redis_url))
    assert store.keys.rate(RATE) == KEY
    limiter = RateLimiter(store.guards, RATE, Rate(rate, burst))
    grants: list[float] = []
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    end = start_at + seconds
    while time.time() < end:
        if limiter.wait(max_block=2.0) == 0:
            now = time.time()
            if now < end:
                grants.append(now)
    print(json.dumps(grants))


def achieved(times: list[float], rate: float, burst: int) -> dict[str, Any]:
    times = sorted(times)
    if len(times) <= burst:
        return {"grants": len(times), "achieved_per_s": 0.0, "error_pct": -100.0}
    span = times[-1] - times[0]
    per_s = (len(times) - burst) / span if span > 0 else 0.0
    worst = 0
    j = 0
    for i, t in enumerate(times):  # most grants in any one-second window
        while times[j] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    return {"grants": len(times), "span_s": round(span, 3), "achieved_per_s": round(per_s, 3),
            "error_pct": round((per_s / rate - 1) * 100, 2), "max_in_1s_window": worst}


def run_limiter(redis_url: str, *, processes: int = 4, rate: float = 20.0, burst: int = 1,
                seconds: float = 10.0) -> dict[str, Any]:
    r = redis.Redis.from_url(redis_url)
    r.delete(KEY)
    args = [sys.executable, "-m", "bench.rate_limit", redis_url, str(rate), str(burst),
            str(seconds)]
    children = [subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 cwd=str(ROOT), text=True)
                for _ in range(processes)]  # fmt: skip
    for child in children:  # a loaded machine can take seconds to import: wait for all
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    start_at = time.time() + 0.2
    results = []
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start_at!r}\n")
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=seconds + 60)
        results.append((child.pid, json.loads(out)))
    times = [t for _, grants in results for t in grants]
    summary = achieved(times, rate, burst)
    summary.update({"processes": processes, "target_per_s": rate, "burst": burst,
                    "seconds": seconds,
                    "per_process": sorted(len(grants) for _, grants in results)})
    return summary


def run_workers(bench: Bench, *, processes: int = 4, concurrency: int = 4, rate: float = 20.0,
                jobs: int = 300) -> dict[str, Any]:
    """Real workers, ``HEADSWAP_CREATE_RATE``: the create rate the sandbox saw."""
    from config.settings import load_settings
    from worker.producer import Producer

    sb = bench.sandbox
    sb.reset()
    sb.config(processing_time=0.0, analysis_time=0.05, webhooks=False)
    url = bench.fresh_db()
    env = base_env(url, sb, {**THROUGHPUT_TIMING, "HEADSWAP_CREATE_RATE": f"{rate:g}",
                             "HEADSWAP_RATE_BURST": "1"})
    cluster = Cluster(url, env)
    r = redis.Redis.from_url(url, decode_responses=True)
    producer = None
    try:
        cluster.start_workers("worker.app", PROJECT_QUEUES, processes, concurrency)
        cluster.start_beat()
        producer = Producer(load_settings(env))
        run_id = uuid.uuid4().hex[:8]
        for i in range(bench.video_urls):  # warm-up: analyses
            producer.submit(**project_job(run_id + "w", i, (4.0,) * bench.video_urls))
        wait_signals(r, bench.video_urls, 60)
        r.delete("bench:signals")
        time.sleep(1.5)  # let the limiter's clock run past the warm-up creates
        ids = []
        roles = {"worker": [p.pid for p in cluster.workers]}
        with Sampler(roles) as sampler:
            for i in range(jobs):
                ids.append(producer.submit(**project_job(run_id, i, (4.0,) * bench.video_urls)))
            wait_signals(r, jobs, jobs / rate * 3 + 60)
        with r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(producer.store.keys.job(job_id), "remote_id")
            remote = [rid for rid in pipe.execute() if rid]
        created = sorted(sb.task(rid)["detail"]["create_time"] / 1000 for rid in remote)
        summary = achieved(created, rate, 1)
        summary.update({"processes": processes, "concurrency": concurrency,
                        "target_per_s": rate, "jobs": jobs,
                        "duplicate_creates": sb.stats()["duplicate_creates"],
                        "peak_rss_mb": sampler.peak_rss_mb("worker")})
        return summary
    finally:
        if producer is not None:
            producer.close()
        cluster.stop()
        r.close()


if __name__ == "__main__":
    _hammer(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
