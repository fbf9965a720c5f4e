"""Fair admission across producers (issue 14, item 6): one account, three producers.

With ``HEADSWAP_MAX_IN_FLIGHT`` binding (20 tasks at Akool, each taking 2 s at the
sandbox), producer ``a`` enqueues a backlog (2,000 jobs), then ``b`` and ``c`` enqueue 50
each (interleaved, one after the other). Every job's *wait for admission* is read from its
record: ``admitted_at - queued_at`` (fair admission stamps ``admitted_at`` when it lets the
job go), or ``submitting_at - created_at`` when there is no ``admitted_at`` (FIFO: the
create lock is the admission). A row ends once every job of ``b`` and ``c`` is admitted
(FIFO: or after ``fifo_watch_s``, since there they wait behind ``a``'s backlog); the rest
of the backlog is purged with the row's database.

Rows, side by side in one run, each with its own fresh workers and beat:

- **fair, equal weights** (``HEADSWAP_ADMISSION=fair``, every producer weight 1);
- **fair, weights 2:1:1** (``a:weight=2;b:weight=1;c:weight=1``);
- **FIFO** (``HEADSWAP_ADMISSION=fifo``: the behaviour before issue 14, the baseline).

Figures per row, over the time *all three producers are backlogged* (from the first job of
the last producer to arrive until some producer has nothing left waiting):

- the admission rate ``R`` (admissions per second, all producers);
- each producer's admissions and share, against its weighted share;
- Jain's fairness index over ``window_s`` windows of weight-normalised admission counts
  (``x_p = n_p / w_p``; ``J = (Σx)² / (N Σx²)``, 1 = perfectly fair, 1/N = one takes all);
- ``b``'s and ``c``'s median wait against what equal shares give: a fluid model in which
  the producer is served at ``R / 3`` while it has jobs waiting, its ``k``-th job admitted
  ``1 / (R / 3)`` after the previous one (or after it arrived, if later).

Then the CPU the admission path costs per job: the same jobs through fair and FIFO
admission with the in-flight cap set but never binding (zero processing time), worker CPU
per job from ``psutil`` (the service's — workers, beat, Redis — beside it, so that work moved
into Lua shows up too). The contended rows' CPU per admitted job is reported as well, but
it is not the comparison: under a binding cap FIFO re-sends every waiting job every few
seconds (``CAP_RECHECK_SECONDS``), a cost fair admission does not have.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from headswap_client.queues import SUBMIT_QUEUE

from bench.cluster import Cluster, Sampler, base_env
from bench.signal_probe import SIGNALS_KEY
from bench.throughput import (
    PROJECT_QUEUES,
    THROUGHPUT_TIMING,
    Bench,
    project_job,
    run_project,
    wait_signals,
)

PRODUCERS = ("a", "b", "c")
#: The record fields a row reads for every job.
FIELDS = ("producer", "priority", "state", "created_at", "queued_at", "admitted_at",
          "submitting_at", "charged")
#: Source videos are 4 s long; an estimate of 0.5 s per video second puts the first poll
#: at the sandbox's 2 s processing time, so a slot frees about when the task ends.
DURATION = 4.0
#: the four source videos every job picks from (``throughput.project_job``)
VIDEOS = (DURATION,) * 4


@dataclass(frozen=True)
class FairPlan:
    """Sizes of the fairness benchmark."""

    backlog: int = 2000  # jobs of producer a
    others: int = 50  # jobs of b, and of c
    max_in_flight: int = 20
    processing_s: float = 2.0
    window_s: float = 5.0
    #: FIFO row: stop this long after b and c enqueued, admitted or not
    fifo_watch_s: float = 20.0
    #: fair rows: give up on b and c after this long (a broken scheduler)
    deadline_s: float = 120.0
    #: jobs of each CPU-overhead run (0 = skip them), and FIFO/fair pairs of runs (1 or 2)
    overhead_jobs: int = 200
    overhead_pairs: int = 2
    #: the contended rows to run, by key (the quick smoke runs the equal-weights row only)
    rows: tuple[str, ...] = ("fair_equal", "fair_weighted", "fifo")


FULL = FairPlan()
QUICK = FairPlan(backlog=150, others=10, max_in_flight=4, processing_s=0.5, window_s=2.0,
                 fifo_watch_s=10.0, deadline_s=60.0, overhead_jobs=0, rows=("fair_equal",))


@dataclass(frozen=True)
class Row:
    key: str
    name: str
    admission: str
    weights: Mapping[str, float]

    @property
    def policy(self) -> str:
        return ";".join(f"{p}:weight={w:g}" for p, w in self.weights.items()) + ";*:weight=1"


EQUAL = Row("fair_equal", "fair, equal weights", "fair", {"a": 1, "b": 1, "c": 1})
WEIGHTED = Row("fair_weighted", "fair, weights 2:1:1", "fair", {"a": 2, "b": 1, "c": 1})
FIFO = Row("fifo", "FIFO (before issue 14)", "fifo", {"a": 1, "b": 1, "c": 1})
ROWS = {row.key: row for row in (EQUAL, WEIGHTED, FIFO)}


def run(bench: Bench, plan: FairPlan, log: Callable[[str], None] = print) -> dict[str, Any]:
    rows = [ROWS[key] for key in plan.rows]
    out: dict[str, Any] = {"plan": dataclasses.asdict(plan), "rows": {}}
    for row in rows:
        log(f"  {row.name}: a × {plan.backlog}, then b and c × {plan.others} "
            f"(max in flight {plan.max_in_flight}, Akool {plan.processing_s:g} s)")
        out["rows"][row.key] = run_row(bench, plan, row)
    if plan.overhead_jobs:
        out["overhead"] = overhead(bench, plan, log)
    return out


# --- one contended row ------------------------------------------------------------------

def row_env(plan: FairPlan, row: Row) -> dict[str, str]:
    return {**THROUGHPUT_TIMING,
            "HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND": f"{plan.processing_s / DURATION:g}",
            "HEADSWAP_MAX_IN_FLIGHT": str(plan.max_in_flight),
            "HEADSWAP_ADMISSION": row.admission,
            "HEADSWAP_PRODUCER_POLICY": row.policy}


def run_row(bench: Bench, plan: FairPlan, row: Row) -> dict[str, Any]:
    from config.settings import load_settings
    from worker.producer import Producer

    sb = bench.sandbox
    sb.reset()
    sb.config(processing_time=plan.processing_s, analysis_time=0.05, webhooks=False)
    url = bench.fresh_db()
    env = base_env(url, sb, row_env(plan, row))
    cluster = Cluster(url, env)
    r = redis.Redis.from_url(url, decode_responses=True)
    producer = None
    try:
        cluster.start_workers("worker.app", PROJECT_QUEUES, bench.workers, bench.concurrency)
        cluster.start_beat()
        producer = Producer(load_settings(env))
        run_id = uuid.uuid4().hex[:8]
        for i in range(len(VIDEOS)):  # warm-up: the analyses, under producer "default"
            producer.submit(**project_job(run_id + "w", i, VIDEOS))
        wait_signals(r, len(VIDEOS), 60 + plan.processing_s)
        r.delete(SIGNALS_KEY)
        owner: dict[str, str] = {}
        roles = {"worker": [p.pid for p in cluster.workers],
                 "beat": [cluster.others["beat"].pid], "redis": [bench.redis_pid],
                 "sandbox": [sb.proc.pid], "producer": [os.getpid()]}
        with Sampler(roles) as sampler:
            started = time.time()
            for i in range(plan.backlog):
                owner[_submit(producer, run_id, "a", i)] = "a"
            backlog_enqueued = time.time()
            for i in range(plan.others):
                for name in ("b", "c"):
                    owner[_submit(producer, run_id, name, i)] = name
            others_enqueued = time.time()
            # submit messages ahead of b's and c's last: a job joins its line only when a
            # worker runs its message (the broker's one queue, first come first served)
            queue_behind = int(r.llen(SUBMIT_QUEUE))
            watched = [j for j, p in owner.items() if p != "a"]
            limit = plan.fifo_watch_s if row.admission == "fifo" else plan.deadline_s
            all_in = _wait_admitted(r, producer.store.keys.job, watched,
                                    others_enqueued + limit)
            ended = time.time()
        records = read_records(r, producer.store.keys.job, owner)
        result = figures(records, owner, row.weights, plan.window_s, end=producer.store.clock())
        admitted = sum(1 for rec in records.values() if admission_time(rec) is not None)
        result.update({
            "name": row.name, "admission": row.admission, "policy": row.policy,
            "jobs": {p: sum(1 for o in owner.values() if o == p) for p in PRODUCERS},
            "others_all_admitted": all_in,
            "submit_queue_when_others_enqueued": queue_behind,
            "enqueue_s": {"backlog": round(backlog_enqueued - started, 2),
                          "others": round(others_enqueued - backlog_enqueued, 2)},
            "seconds": round(ended - started, 2),
            "admitted_in_run": admitted,
            "cpu_s": {role: round(sec, 3) for role, sec in sampler.cpu.items()},
            "other_cpu_s": round(sampler.other_cpu, 3),
            "worker_cpu_ms_per_admitted": round(
                sampler.cpu.get("worker", 0.0) * 1000 / max(1, admitted), 3),
            "duplicate_creates": int(sb.stats()["duplicate_creates"]),
            "producer_field_mismatches": sum(
                1 for j, rec in records.items() if rec.get("producer") not in (owner[j], None)),
            "producer_field_missing": sum(1 for rec in records.values()
                                          if rec.get("producer") is None),
        })
        return result
    finally:
        if producer is not None:
            producer.close()
        cluster.stop()  # the purge: what is left of a's backlog goes with the database
        r.close()


def _submit(producer: Any, run_id: str, name: str, i: int) -> str:
    job = project_job(f"{run_id}{name}", i, VIDEOS)
    return str(producer.submit(**job, producer=name))


def _wait_admitted(r: redis.Redis, key: Callable[[str], str], job_ids: Sequence[str],
                   deadline: float) -> bool:
    """Until every job in ``job_ids`` has been admitted (or ``deadline``)."""
    waiting = list(job_ids)
    while waiting:
        with r.pipeline(transaction=False) as pipe:
            for job_id in waiting:
                pipe.hmget(key(job_id), ["admitted_at", "submitting_at"])
            rows = pipe.execute()
        waiting = [j for j, (adm, sub) in zip(waiting, rows, strict=True) if not (adm or sub)]
        if waiting:
            if time.time() > deadline:
                return False
            time.sleep(0.25)
    return True


def read_records(r: redis.Redis, key: Callable[[str], str],
                 job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(job_ids)
    with r.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(key(job_id), list(FIELDS))
        raw = pipe.execute()
    out: dict[str, dict[str, Any]] = {}
    for job_id, values in zip(ids, raw, strict=True):
        rec: dict[str, Any] = {}
        for name, value in zip(FIELDS, values, strict=True):
            if value is None:
                continue
            rec[name] = float(value) if name.endswith("_at") or name == "charged" else value
        out[job_id] = rec
    return out


# --- figures (pure: tests/unit/test_bench_fairness.py) ----------------------------------

def admission_time(rec: Mapping[str, Any]) -> float | None:
    """When the job was let go: ``admitted_at``, else (FIFO) ``submitting_at``."""
    at = rec.get("admitted_at")
    if at is None:
        at = rec.get("submitting_at")
    return float(at) if at is not None else None


def arrival_time(rec: Mapping[str, Any]) -> float | None:
    """When the job started to wait: ``queued_at`` beside an ``admitted_at``, else
    ``created_at`` (either when only one is there)."""
    first, second = ("queued_at", "created_at") if rec.get("admitted_at") is not None \
        else ("created_at", "queued_at")
    at = rec.get(first, rec.get(second))
    return float(at) if at is not None else None


def jain(values: Sequence[float]) -> float | None:
    """Jain's fairness index of ``values``: 1 when all equal, 1/N when one has everything."""
    total, squares = sum(values), sum(v * v for v in values)
    if not values or squares == 0:
        return None
    return total * total / (len(values) * squares)


def backlogged_span(arrivals: Mapping[str, Sequence[float]],
                    admissions: Mapping[str, Sequence[float]],
                    end: float) -> tuple[float, float] | None:
    """``(start, stop)``: from when every producer has a job waiting, until the first
    instant one of them has none left (or ``end``). None if they never all wait at once."""
    if not all(arrivals.get(p) for p in arrivals):
        return None
    start = max(min(times) for times in arrivals.values())
    stop = end
    for name, times in arrivals.items():
        went = admissions.get(name, ())
        waiting = sum(1 for t in times if t <= start) - sum(1 for t in went if t <= start)
        if waiting <= 0:
            return None
        later = sorted([(t, 1) for t in times if t > start] + [(t, -1) for t in went if t > start],
                       key=lambda e: (e[0], -e[1]))
        for t, step in later:
            waiting += step
            if waiting <= 0:
                stop = min(stop, t)
                break
    return (start, stop) if stop > start else None


def expected_waits(arrivals: Sequence[float], rate: float) -> list[float]:
    """Waits of a producer served at ``rate`` admissions/s while it has jobs waiting (the
    fluid model of a fair share): job ``k`` goes ``1 / rate`` after job ``k-1`` went, or
    after it arrived if that is later."""
    waits, last = [], float("-inf")
    for at in sorted(arrivals):
        last = max(last, at) + 1 / rate
        waits.append(last - at)
    return waits


def censored_median(waits: Sequence[float], unadmitted: Sequence[float]) -> tuple[float, bool]:
    """Median wait when the ``unadmitted`` jobs have waited *at least* their value. Second
    item: the median is only a lower bound (an unadmitted job is at or below it)."""
    values = sorted([(w, False) for w in waits] + [(w, True) for w in unadmitted])
    if not values:
        return 0.0, False
    median = statistics.median(v for v, _ in values)
    return median, any(censored for _, censored in values[: len(values) // 2 + 1])


def figures(records: Mapping[str, Mapping[str, Any]], owner: Mapping[str, str],
            weights: Mapping[str, float], window_s: float, end: float) -> dict[str, Any]:
    """Every figure of one row from its jobs' records (``owner``: job id -> producer)."""
    arrivals: dict[str, list[float]] = {p: [] for p in PRODUCERS}
    admissions: dict[str, list[float]] = {p: [] for p in PRODUCERS}
    waits: dict[str, list[float]] = {p: [] for p in PRODUCERS}
    unadmitted: dict[str, list[float]] = {p: [] for p in PRODUCERS}
    for job_id, rec in records.items():
        name = owner[job_id]
        came, went = arrival_time(rec), admission_time(rec)
        if came is None:
            continue
        arrivals[name].append(came)
        if went is None:
            unadmitted[name].append(end - came)
        else:
            admissions[name].append(went)
            waits[name].append(went - came)
    out: dict[str, Any] = {"producers": {}}
    span = backlogged_span(arrivals, admissions, end)
    total_weight = sum(weights[p] for p in PRODUCERS)
    if span is not None:
        start, stop = span
        counts = {p: sum(1 for t in admissions[p] if start <= t < stop) for p in PRODUCERS}
        rate = sum(counts.values()) / (stop - start)
        out["backlogged"] = {"start": start, "seconds": round(stop - start, 2),
                             "admissions": sum(counts.values()), "rate_per_s": round(rate, 3)}
        total = sum(counts.values()) or 1
        for p in PRODUCERS:
            share = counts[p] / total
            fair = weights[p] / total_weight
            out["producers"][p] = {"admitted_backlogged": counts[p], "share": round(share, 4),
                                   "weighted_share": round(fair, 4),
                                   "share_error_pct": round((share / fair - 1) * 100, 1)}
        out["jain"] = window_jain(admissions, weights, start, stop, window_s)
        # The scheduler's view: from when every producer had its first job admitted (a job
        # joins its line when a worker runs its submit message, which may wait behind
        # another producer's in the broker's one queue).
        seen = [min(admissions[p]) for p in PRODUCERS if admissions[p]]
        if len(seen) == len(PRODUCERS) and max(seen) < stop:
            out["jain_after_first_admissions"] = window_jain(admissions, weights, max(seen),
                                                             stop, window_s)
            out["backlogged"]["first_admissions_after_s"] = round(max(seen) - start, 2)
    else:
        rate = 0.0
        out["backlogged"] = None
        out["jain"] = {"windows": 0, "min": None, "mean": None, "per_window": []}
    # admitted, then created: a granted job's submit message may wait behind others
    gaps = sorted(float(rec["submitting_at"]) - float(rec["admitted_at"])
                  for rec in records.values()
                  if rec.get("admitted_at") is not None and rec.get("submitting_at") is not None)
    if gaps:
        out["admitted_to_submitting_s"] = {
            "jobs": len(gaps), "p50": round(statistics.median(gaps), 3),
            "p90": round(gaps[int(0.9 * (len(gaps) - 1))], 3), "max": round(gaps[-1], 3)}
    others_done = [t for p in PRODUCERS[1:] for t in admissions[p]]
    if others_done and not any(unadmitted[p] for p in PRODUCERS[1:]):
        last = max(others_done)
        out["a_waiting_when_others_done"] = len(unadmitted["a"]) + sum(
            1 for t in admissions["a"] if t > last)
    for p in PRODUCERS:
        median, lower_bound = censored_median(waits[p], unadmitted[p])
        fig = out["producers"].setdefault(p, {})
        fig.update({"jobs": len(arrivals[p]), "admitted": len(admissions[p]),
                    "median_wait_s": round(median, 3), "median_is_lower_bound": lower_bound,
                    "max_wait_s": round(max([*waits[p], *unadmitted[p]], default=0.0), 3)})
        if p != "a" and rate > 0:
            equal = statistics.median(expected_waits(arrivals[p], rate / len(PRODUCERS)))
            weighted = statistics.median(
                expected_waits(arrivals[p], rate * weights[p] / total_weight))
            fig.update({"equal_share_median_wait_s": round(equal, 3),
                        "vs_equal_share": round(median / equal, 3) if equal else None,
                        "weighted_share_median_wait_s": round(weighted, 3),
                        "vs_weighted_share": round(median / weighted, 3) if weighted else None})
    return out


def window_jain(admissions: Mapping[str, Sequence[float]], weights: Mapping[str, float],
                start: float, stop: float, window_s: float) -> dict[str, Any]:
    """Jain's index per ``window_s`` window of weight-normalised admission counts, over
    the whole windows in ``[start, stop)`` (the whole span when it is shorter than one)."""
    count = int((stop - start) // window_s)
    bounds = [(start + k * window_s, start + (k + 1) * window_s) for k in range(count)] \
        or [(start, stop)]
    per_window, counts = [], []
    for lo, hi in bounds:
        admitted = [sum(1 for t in admissions[p] if lo <= t < hi) for p in PRODUCERS]
        index = jain([n / weights[p] for n, p in zip(admitted, PRODUCERS, strict=True)])
        if index is not None:
            per_window.append(round(index, 4))
            counts.append(admitted)
    return {"windows": len(per_window), "window_s": window_s if count else round(stop - start, 2),
            "min": min(per_window, default=None),
            "mean": round(statistics.fmean(per_window), 4) if per_window else None,
            "per_window": per_window, "counts": counts}


# --- the CPU the admission path costs -----------------------------------------------------

def overhead(bench: Bench, plan: FairPlan, log: Callable[[str], None]) -> dict[str, Any]:
    """The same jobs through fair and FIFO admission, the cap set but never binding: runs
    in the order FIFO, fair, fair, FIFO (a drift in the machine's load cancels out), each
    mode's figure the mean of its runs."""
    out: dict[str, Any] = {"jobs": plan.overhead_jobs, "runs": []}
    order = ("fifo", "fair", "fair", "fifo")[: 2 * max(1, plan.overhead_pairs)]
    for mode in order:
        log(f"  CPU per job, {mode} admission, cap not binding × {plan.overhead_jobs}")
        env = {"HEADSWAP_ADMISSION": mode, "HEADSWAP_MAX_IN_FLIGHT": str(10 * plan.overhead_jobs),
               "HEADSWAP_PRODUCER_POLICY": EQUAL.policy}
        run_ = run_project(bench, plan.overhead_jobs, webhook=False, extra_env=env,
                           name=f"{mode} admission, cap not binding")
        cpu = run_["cpu_ms_per_job"]
        out["runs"].append({
            "mode": mode, "jobs_per_s": run_["jobs_per_s"], "succeeded": run_["succeeded"],
            "worker_cpu_ms_per_job": cpu.get("worker"),
            "service_cpu_ms_per_job": round(sum(cpu.get(k) or 0
                                                for k in ("worker", "beat", "redis")), 3),
            "other_cpu_ms_per_job": run_["other_cpu_ms_per_job"]})
    for mode in ("fifo", "fair"):
        runs = [r for r in out["runs"] if r["mode"] == mode]
        out[mode] = {key: round(statistics.fmean(r[key] or 0 for r in runs), 3)
                     for key in ("jobs_per_s", "worker_cpu_ms_per_job", "service_cpu_ms_per_job",
                                 "other_cpu_ms_per_job")}
        out[mode]["succeeded"] = sum(r["succeeded"] for r in runs)
        out[mode]["runs"] = len(runs)
    fifo, fair = out["fifo"], out["fair"]
    if fifo["worker_cpu_ms_per_job"] and fair["worker_cpu_ms_per_job"]:
        out["worker_ratio"] = round(fair["worker_cpu_ms_per_job"]
                                    / fifo["worker_cpu_ms_per_job"], 3)
    if fifo["service_cpu_ms_per_job"] and fair["service_cpu_ms_per_job"]:
        out["service_ratio"] = round(fair["service_cpu_ms_per_job"]
                                     / fifo["service_cpu_ms_per_job"], 3)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.fairness``: this benchmark alone (its own Redis and sandbox)."""
    import argparse
    import json
    from pathlib import Path

    from rich.console import Console

    from bench import report
    from worker.devstack.redis_server import start_redis
    from worker.devstack.sandbox import SandboxProcess

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="the smoke sizes")
    parser.add_argument("--rows", default="", help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--backlog", type=int, help="jobs of producer a")
    parser.add_argument("--others", type=int, help="jobs of b, and of c")
    parser.add_argument("--overhead-jobs", type=int, help="jobs per CPU run (0 = none)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    changes: dict[str, Any] = {k: v for k, v in (
        ("backlog", args.backlog), ("others", args.others),
        ("overhead_jobs", args.overhead_jobs)) if v is not None}
    if args.rows:
        changes["rows"] = tuple(args.rows.split(","))
    plan = dataclasses.replace(plan, **changes)
    console = Console(width=200)
    server = start_redis()
    sandbox = SandboxProcess.start(knobs={"processing_time": 0, "analysis_time": 0.05})
    try:
        bench = Bench(server.url, server.process.pid, sandbox, workers=args.workers,
                      concurrency=args.concurrency, log=console.print)
        results = {"fairness": run(bench, plan, console.print)}
    finally:
        sandbox.stop()
        server.stop()
    console.print(report.fairness_table(results["fairness"]))
    console.print(report.targets_table(report.fairness_targets(results["fairness"])))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
