"""Real latency: Akool as users see it, a few hundred milliseconds a call and tasks that
take a minute or so, against one worker process at the shipped defaults.

The sandbox answers every API call after ``latency`` seconds and takes
``processing_per_video_second`` × the video's duration to finish a task: source videos of
6.7 to 20 s make a 30–90 s spread (the worker's estimate,
``HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND``, is calibrated to the same figure, as
docs/OPERATIONS.md tells operators to do). Everything else is the production default:
``headswap worker`` with its default pool and concurrency (``worker.cli``), the default
tick, poll floor and back-off, the default output copy to a local directory. The naive
worker runs beside it at the same concurrency, polling every second.

Measured: creates per second (jobs ÷ time from the first enqueue to the last create the
sandbox saw), detail calls per job, remote-done → signal latency, worker CPU per job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bench import throughput
from config.settings import load_settings
from worker.cli import DEFAULT_CONCURRENCY, DEFAULT_POOL

#: The production defaults the scenario runs at (what config/settings.py says).
DEFAULTS = load_settings({"HEADSWAP_AKOOL_API_KEY": "unused"})

LATENCY_S = 0.2
PER_VIDEO_SECOND = 4.5


def spread(videos: int) -> tuple[float, ...]:
    """``videos`` source videos evenly from 20/3 s to 20 s (the sandbox's longest): at
    4.5 s per second of video, 30 to 90 s of processing."""
    low, high = 20 / 3, 20.0
    if videos <= 1:
        return (high,)
    return tuple(round(low + k * (high - low) / (videos - 1), 3) for k in range(videos))


DURATIONS = spread(16)


def sandbox_knobs(latency: float, per_video_second: float) -> dict[str, Any]:
    return {"latency": latency, "processing_time": 0.0,
            "processing_per_video_second": per_video_second}


def run(bench: throughput.Bench, jobs: int, *, naive_jobs: int | None = None,
        latency: float = LATENCY_S, per_video_second: float = PER_VIDEO_SECOND,
        durations: tuple[float, ...] = DURATIONS, concurrency: int = DEFAULT_CONCURRENCY,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    one = dataclasses.replace(bench, workers=1, concurrency=concurrency)
    knobs = sandbox_knobs(latency, per_video_second)
    longest = max(durations) * per_video_second
    spread = [round(min(durations) * per_video_second, 1), round(longest, 1)]
    # Production defaults, but for the estimate calibrated to this Akool.
    timing = {"HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND": f"{per_video_second:g}"}
    log(f"  headswap, 1 process × {concurrency} {DEFAULT_POOL} (defaults) × {jobs}")
    project = throughput.run_project(
        one, jobs, webhook=False, processing_time=longest, duration=durations,
        timing=timing, then=knobs,
        name=f"headswap defaults (1 process, -P {DEFAULT_POOL} -c {concurrency})")
    out: dict[str, Any] = {
        "latency_s": latency, "processing_spread_s": spread,
        "processing_per_video_second": per_video_second, "videos": len(durations),
        "pool": DEFAULT_POOL, "concurrency": concurrency,
        "poll_floor_s": DEFAULTS.poll_min_interval_seconds,
        "poll_tick_s": DEFAULTS.poll_tick_seconds, "poll_batch_size": DEFAULTS.poll_batch_size,
        "project": project}
    n = jobs if naive_jobs is None else naive_jobs
    if n:
        log(f"  naive worker, 1 process × {concurrency} threads × {n}")
        out["naive"] = throughput.run_naive(
            one, n, processing_time=longest, duration=durations, poll_seconds=1.0,
            timing={}, then=knobs,
            name=f"naive 1 s poll (1 process, -P threads -c {concurrency})")
    bench.sandbox.reset(reset_config=True)  # no latency left for the scenarios after
    for row in (out["project"], out.get("naive")):
        if row:
            row["worker_cpu_ms_per_job"] = row["cpu_ms_per_job"].get("worker")
    return out
