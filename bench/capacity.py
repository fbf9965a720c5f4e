"""Capacity planning from one run's measurements: worker pods for N jobs per hour.

A pod is one ``headswap worker`` process (``-P threads -c T``, a 1-core CPU limit). It
sustains the smaller of two rates:

- **threads**: each job holds a thread while it waits on Akool — the create, the detail
  call that finds it done (webhook off; with the webhook on the receiver makes that call)
  and the download of the output (the copy) — plus the thread time of our own work,
  measured in the real-latency run as ``T / creates per s - latency`` (a create burst: the
  most a job's own work ever holds a thread). Rate = T / (waits + own time).
- **CPU**: 80 % of the pod's core divided by the worker CPU per job (the zero-latency
  throughput rows: outputs copied; webhook on = its row plus what the copy costs).

Processing time does not change the pods (a job waits at Akool on the schedule, not on
a thread); it sets how many jobs are in flight (rate × processing time), hence the Redis
memory (the schedule-scale bytes per pending job) and, with the webhook on, the
safety-net polls (one per ``HEADSWAP_SAFETY_NET_POLL_SECONDS``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

LATENCIES_S = (0.1, 0.2, 0.5, 1.0)
JOBS_PER_HOUR = (10_000, 100_000, 1_000_000)
PROCESSING_S = (60.0, 300.0)
CPU_SHARE = 0.8
MIN_PODS = 2  # the ScaledObject's minReplicaCount


def compute(results: Mapping[str, Any]) -> dict[str, Any] | None:
    tp = results.get("throughput", {})
    rl = results.get("real_latency", {})
    off = tp.get("project_webhook_off")
    on = tp.get("project_webhook_on")
    copy = tp.get("project_webhook_off_copy")
    real = rl.get("project")
    if not (off and on and real and real.get("creates_per_s")):
        return None
    threads = int(rl["concurrency"])
    copy_ms = (copy["cpu_ms_per_job"]["worker"] - off["cpu_ms_per_job"]["worker"]) if copy else 0.0
    cpu_ms = {"off": (copy or off)["cpu_ms_per_job"]["worker"],
              "on": on["cpu_ms_per_job"]["worker"] + max(0.0, copy_ms)}
    own_s = max(0.0, threads / real["creates_per_s"] - rl["latency_s"])
    detail = {"off": float(real.get("detail_per_job") or 1.0), "on": 0.0}
    rows = []
    for latency in LATENCIES_S:
        for webhook in ("off", "on"):
            waits = latency * (1 + detail[webhook] + (1 if copy else 0))
            by_threads = threads / (waits + own_s)
            by_cpu = CPU_SHARE * 1000 / max(1e-9, cpu_ms[webhook])
            rate = min(by_threads, by_cpu)
            rows.append({
                "latency_s": latency, "webhook": webhook,
                "jobs_per_s_per_pod": round(rate, 1),
                "bound": "threads" if by_threads < by_cpu else "CPU",
                "pods": {str(n): max(MIN_PODS, math.ceil(n / 3600 / rate)) for n in JOBS_PER_HOUR},
            })
    sc = results.get("schedule_scale", {})
    per_job = (sc.get("rows") or [{}])[-1].get("bytes_per_job")
    stream_mb = sc.get("events_cap_mb") or 0.0
    flight = [{"processing_s": p, "jobs_per_hour": n, "in_flight": round(n / 3600 * p),
               "redis_mb": round((n / 3600 * p * (per_job or 0)) / 2**20 + stream_mb, 1)}
              for p in PROCESSING_S for n in JOBS_PER_HOUR]
    from config.settings import load_settings

    retention = load_settings({"HEADSWAP_AKOOL_API_KEY": "unused"}).job_retention_seconds
    job_hash = (sc.get("key_breakdown") or {}).get("job hash") or 0
    kept = [{"jobs_per_hour": n, "records": n * retention // 3600,
             "gb_at_least": round(n * retention / 3600 * job_hash / 2**30, 1)}
            for n in JOBS_PER_HOUR]
    return {"threads": threads, "retention_s": retention, "job_hash_bytes": job_hash,
            "retained": kept, "own_thread_s": round(own_s, 3), "cpu_ms_per_job": cpu_ms,
            "copy_cpu_ms": round(copy_ms, 2), "cpu_share": CPU_SHARE, "rows": rows,
            "in_flight": flight, "bytes_per_pending_job": per_job, "stream_cap_mb": stream_mb}


def markdown(cap: Mapping[str, Any]) -> str:
    from bench.report import md_table

    rows = [(f"{r['latency_s']:g} s", r["webhook"], f"{r['jobs_per_s_per_pod']:,.0f}",
             r["bound"], *(f"{r['pods'][str(n)]:,}" for n in JOBS_PER_HOUR))
            for r in cap["rows"]]
    pods = md_table(["Akool latency", "webhook", "jobs/s per pod", "bound by",
                     *(f"pods for {n:,}/h" for n in JOBS_PER_HOUR)], rows)
    flight = md_table(["processing", "jobs/h", "in flight", "Redis MB"],
                      [(f"{f['processing_s']:g} s", f"{f['jobs_per_hour']:,}",
                        f"{f['in_flight']:,}", f"{f['redis_mb']:,}")
                       for f in cap["in_flight"]])
    cpu = cap["cpu_ms_per_job"]
    return (f"Pods of `-c {cap['threads']}` (one process, 1 core) for N jobs per hour, from "
            f"this run: worker CPU {cpu['off']:.2f} ms per job with the webhook off "
            f"(outputs copied), {cpu['on']:.2f} ms with it on; our own thread time "
            f"{cap['own_thread_s']:.2f} s per job; a pod counted at "
            f"{cap['cpu_share']:.0%} of its core; never fewer than {MIN_PODS} pods "
            "(`minReplicaCount`).\n\n" + pods +
            "\n\nProcessing time does not change the pods; it sets the jobs in flight and "
            f"Redis (≈ {cap['bytes_per_pending_job'] or 0:,.0f} B per pending job, plus the "
            f"event stream at its cap, {cap['stream_cap_mb']:g} MB):\n\n" + flight +
            "\n\nFinished jobs weigh more than pending ones: their records stay for "
            f"`HEADSWAP_JOB_RETENTION_SECONDS` ({cap['retention_s'] / 86400:g} days by default), "
            f"each at least a pending job's hash ({cap['job_hash_bytes']:,} B):\n\n"
            + md_table(["jobs/h", "records kept", "Redis GB (at least)"],
                       [(f"{k['jobs_per_hour']:,}", f"{k['records']:,}", f"{k['gb_at_least']:,}")
                        for k in cap["retained"]]))
