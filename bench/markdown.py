"""``docs/BENCHMARKS.md`` from one run's results.

Every table and every number in the generated text comes from the run. The findings
section also quotes measurements made while investigating (patched copies of the code,
dated); those are marked as such and do not change from run to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.report import (
    COMPACT_HASH_ENCODINGS,
    FAIRNESS_HEADER,
    LATENCY_TOLERANCE,
    TARGET_BYTES_PER_JOB,
    TARGET_CREATES_PER_S,
    TARGET_DETAIL_PER_JOB,
    TARGET_FAIR_WAIT_RATIO,
    TARGET_JAIN,
    TARGET_RATIO_MINIMAL,
    TARGET_REAL_DETAIL_PER_JOB,
    TARGET_SHARE_ERROR_PCT,
    TARGET_SIGNAL_SLACK_S,
    TARGET_TICK_MS,
    fairness_rows,
    fmt,
    md_table,
    ratio,
    runs,
)

ROLES = ("worker", "beat", "webhook", "sandbox", "redis", "producer")


def write_markdown(results: Mapping[str, Any], path: Path, png_name: str) -> None:
    parts = [header(results), targets(results), throughput(results, png_name),
             where_time_goes(results), real_latency(results), poll_timing(results),
             throughput_slow(results), schedule(results), rate_limit(results),
             copy_memory(results), fairness(results), poll_lag(results),
             capacity_section(results), findings(results), settings(results),
             reproducing()]
    path.write_text("\n\n".join(p.strip() for p in parts if p).rstrip() + "\n")


def total_cpu(run: Mapping[str, Any]) -> float:
    return float(sum(v for v in run.get("cpu_ms_per_job", {}).values() if v))


def share(profile: Mapping[str, Any] | None, library: str, entry: str | None = None) -> float:
    """% of worker Python time in ``library`` (and ``entry``) from the py-spy profile."""
    if not profile:
        return 0.0
    if entry is None:
        return float(sum(p for lib, p in profile.get("by_library", []) if lib == library))
    return float(sum(p for (e, lib), p in profile.get("by_entry_library", [])
                     if lib == library and e == entry))


# --- header and targets ----------------------------------------------------------------

def header(results: Mapping[str, Any]) -> str:
    meta = results["meta"]
    m = meta["machine"]
    topo = meta["topology"]
    quick = ("\n\n> **Quick mode** (`--quick`): tiny sizes for the smoke test; the figures "
             "are not meaningful.") if meta.get("quick") else ""
    noisy = ""
    rows = list(runs(results.get("throughput", {})).values())
    others = [r["other_cpu_ms_per_job"] / max(1e-9, total_cpu(r) + r["other_cpu_ms_per_job"])
              for r in rows if r.get("cpu_ms_per_job")]
    if others and max(others) > 0.10:
        noisy = (f"\n\n> Other processes used up to {max(others):.0%} of the CPU during the timed "
                 "windows (column *other processes* below): the throughput figures are lower "
                 "than on an idle machine. The ratios compare runs made minutes apart.")
    return f"""# Benchmarks

Written by `make bench` (`python -m bench.run`, about {meta['duration_s'] / 60:.1f} minutes)
on {meta['started']}: {m['cpus']} cores, {m['memory_gb']} GB, Python {m['python']},
Celery {m['celery']}, redis-py {m['redis_py']}, redis-server
{meta.get('redis_server', {}).get('version')}. Load average before the run
{m['load_before']}, after {meta.get('load_after')}. Rerun it to refresh every table and the
plot; the raw figures are in `bench-results.json`.

Everything is real and on this machine: a private `redis-server`, the Akool sandbox
(`worker/sandbox`) over HTTP, and Celery workers and beat as separate processes started
by the dev stack (`worker/devstack`) with the production commands (`headswap worker`,
`headswap beat`; the worker: threads pool, {topo['workers']}
worker processes × {topo['concurrency']} threads, no gossip or mingle; JSON logs at
`HEADSWAP_LOG_LEVEL=WARNING`, the level Celery used to force on workers, so figures stay
comparable with earlier runs — the production default, INFO, adds Celery's per-task
lines).{quick}{noisy}"""


def targets(results: Mapping[str, Any]) -> str:
    rows = [(t["target"], t["value"], "**met**" if t["met"] else "**not met**")
            for t in results.get("targets", [])]
    missed = [t for t in results.get("targets", []) if not t["met"]]
    out = ["## Targets (issues #6, #14, #16)", md_table(["target", "measured", ""], rows)]
    if missed:
        reasons = list(dict.fromkeys(why(t["target"], results) for t in missed))
        out.append("Why the targets marked *not met* are not met:")
        out.append("\n".join(f"- {reason}" for reason in reasons))
    return "\n\n".join(out)


def why(target: str, results: Mapping[str, Any]) -> str:
    if "minimal Akool client" in target:
        return why_minimal(results)
    if target.startswith("real latency: ≥"):
        return why_creates(results)
    if target.startswith("real latency: ≤"):
        return why_real_detail(results)
    if target.startswith("real latency: remote done"):
        return why_signal_latency(results)
    if target.startswith("beat tick"):
        return why_tick(results)
    if "Celery ceiling" in target:
        return why_ceiling(results)
    if "naive" in target:
        return why_naive(results)
    if "KB of Redis" in target:
        return why_memory(results)
    if target.startswith("poll lag"):
        return why_poll_lag(results)
    if "admission" in target or "Jain" in target or "2:1:1" in target:
        return why_fairness(target, results)
    if "detail calls" in target:
        return ("The first poll comes later than the task's completion or finds it "
                "unfinished; see section 2.")
    return f"{target}: see the section below."


def why_minimal(results: Mapping[str, Any]) -> str:
    tp = results.get("throughput", {})
    minimal, off = tp.get("minimal"), tp.get("project_webhook_off")
    if not minimal or not off:
        return "Minimal client: not measured."
    cm, co = minimal["cpu_ms_per_job"], off["cpu_ms_per_job"]
    diff = {role: (co.get(role) or 0) - (cm.get(role) or 0) for role in ROLES}
    extra = total_cpu(off) - total_cpu(minimal)
    prof = results.get("profile", {}).get("workers")
    own = ""
    if prof and prof.get("by_library"):
        worker = co.get("worker") or 0
        parts = [(lib, share(prof, lib)) for lib in (
            "Redis client (store, Lua, limiter)", "validation (marshmallow)", "our code",
            "JSON", "metrics (prometheus)", "signal receivers")]
        own = (" Inside the project's workers (profile below), the parts the minimal client "
               "does not have: " + ", ".join(
                   f"{lib} {fmt(pct, 0)} % (≈ {fmt(worker * pct / 100)} ms)" for lib, pct in parts
                   if pct >= 0.5) + ".")
    allowed = total_cpu(minimal) / TARGET_RATIO_MINIMAL
    return (f"**Minimal Akool client.** Both saturate the two cores, so the ratio is the "
            f"inverse ratio of CPU per job: the minimal client costs {fmt(total_cpu(minimal))} "
            f"ms per job (one Celery task, the two HTTP calls and the sandbox answering them), "
            f"this project {fmt(total_cpu(off))} ms, {fmt(extra)} ms more: "
            + ", ".join(f"{role} {diff[role]:+.2f}" for role in ROLES if abs(diff[role]) >= 0.05)
            + f" ms. {TARGET_RATIO_MINIMAL:g} allows "
            f"{fmt(allowed)} ms per job, {fmt(allowed - total_cpu(minimal))} ms above the "
            "minimal client, for validation, the exactly-once state machine "
            f"(lock, record, schedule, outbox: Lua transitions and Redis round trips), the "
            f"poll batch and the notification.{own} Most of it is on the submit path "
            f"(`worker/submission.py`, `worker/jobs.py`, the Lua scripts) and the poll path "
            f"(`worker/polling.py`), whose cuts are listed in the findings.")


def why_creates(results: Mapping[str, Any]) -> str:
    rl = results.get("real_latency", {})
    p = rl.get("project", {})
    other, service = p.get("other_cpu_ms_per_job") or 0, p.get("service_cpu_ms_per_job") or 0
    busy = ""
    if other > 0.5 * service:
        busy = (f" Other processes on the machine used {fmt(other)} ms of CPU per job during "
                f"this run against {fmt(service)} ms for the whole service (CPU use "
                f"{fmt(p.get('cpu_utilisation'))} of {rl.get('cpus', 2)} cores): the worker "
                "got a fraction of a core, so this figure measures the machine's load more "
                "than the worker (docs/OPERATIONS.md *Pool and concurrency* has the sweep "
                "on a quieter machine).")
    return (f"**Creates per second.** One process at -P {rl.get('pool')} -c "
            f"{rl.get('concurrency')} made {fmt(p.get('creates_per_s'), 1)} creates/s; with "
            f"{fmt(rl.get('latency_s'), 2)} s a call a thread makes at most "
            f"{fmt(1 / max(1e-9, rl.get('latency_s') or 1), 1)} creates/s, so the bound is the "
            f"threads (or the GIL: worker CPU {fmt(p.get('worker_cpu_ms_per_job'))} ms per job "
            "on a core shared with everything else of the run)." + busy)


def why_real_detail(results: Mapping[str, Any]) -> str:
    p = results.get("real_latency", {}).get("project", {})
    return (f"**Detail calls at real latency.** {fmt(p.get('detail_per_job'), 2)} per job: a "
            "first poll that finds the task unfinished (an estimate below Akool's processing "
            "time) costs one more each time.")


def why_signal_latency(results: Mapping[str, Any]) -> str:
    rl = results.get("real_latency", {})
    p = rl.get("project", {})
    batch, lat = rl.get("poll_batch_size") or 50, rl.get("latency_s") or 0
    return (f"**Signal latency at real latency.** p50 {fmt(p.get('latency_p50_s'), 2)} s, p99 "
            f"{fmt(p.get('latency_p99_s'), 2)} s against a bound of "
            f"{fmt((rl.get('poll_floor_s') or 0) + TARGET_SIGNAL_SLACK_S, 1)} s. A due job waits "
            f"for the next tick (≤ {fmt(rl.get('poll_tick_s'), 0)} s), then its place in a "
            f"`poll_batch`: a batch makes its {batch} detail calls one after another "
            f"(`worker/polling.py`, `poll_batch`), {batch} × {fmt(lat, 2)} s = "
            f"{fmt(batch * lat, 1)} s per batch, so the last job of a batch is signalled about "
            f"{fmt(batch * lat, 0)} s after the first; the output copy "
            "(`headswap.store_output`, the default) adds one more task before `succeeded`. "
            "Concurrent detail calls within a batch (issue #16 part 3, another branch) take the "
            "batch to about one call's latency.")


def why_tick(results: Mapping[str, Any]) -> str:
    rows = results.get("schedule_scale", {}).get("rows", [])
    if not rows:
        return "Tick: not measured."
    last = rows[-1]
    tick = last["tick_full"]
    prof = results.get("schedule_scale", {}).get("profile") or {}
    spent = ", ".join(f"{lib} {pct} %" for lib, pct in prof.get("by_library", []) if pct >= 5)
    return (f"**Tick at {last['pending']:,} pending.** p50 {fmt(tick['p50_ms'])} ms, p95 "
            f"{fmt(tick['p95_ms'])} ms (of which the claim, one Lua call, "
            f"{fmt(tick['claim_p50_ms'])} ms) against {TARGET_TICK_MS:g} ms; smaller sizes: "
            + ", ".join(f"{r['pending']:,}: {fmt(r['tick_full']['p50_ms'])} ms "
                        f"(claim {fmt(r['tick_full']['claim_p50_ms'])})" for r in rows[:-1])
            + (f". Where a tick's time goes: {spent}" if spent else "")
            + ". The claim grows with the schedule (O(log N) per member, and a bigger "
            "zset misses the CPU caches more); the rest is publishing the poll batches, the "
            "same at every size; a p95 far above the p50 is other load on the machine (the "
            "*other processes* column).")

def why_fairness(target: str, results: Mapping[str, Any]) -> str:
    fair = results.get("fairness", {})
    if "CPU" in target:
        cost = fair.get("overhead", {})
        return (f"**Admission CPU.** Fair admission cost {fmt(cost.get('worker_ratio'), 3)}× "
                "FIFO's worker CPU per job with the cap not binding (section 6). The two runs "
                "are minutes apart on shared cores: compare *other processes* there before "
                "reading a few per cent as the code's.")
    equal = fair.get("rows", {}).get("fair_equal", {})
    if "Jain" in target and equal.get("jain_after_first_admissions"):
        counts = (equal["jain"].get("counts") or [[]])[0]
        return (f"**Jain's index (issue 14).** Its lowest window is the first after *b* and "
                f"*c* arrived (admissions a / b / c = {' / '.join(map(str, counts))}): their "
                "jobs were not yet in their lines, their submit messages still queued behind "
                f"*a*'s {equal.get('submit_queue_when_others_enqueued', 0):,}. From the moment "
                "every producer had been admitted once "
                f"({fmt(equal['backlogged'].get('first_admissions_after_s'), 1)} s later) the "
                f"index was {fmt(equal['jain_after_first_admissions'].get('min'), 3)} at worst: "
                "section 6, *Where the unfairness is*.")
    weighted = fair.get("rows", {}).get("fair_weighted", {})
    if "2:1:1" in target and weighted.get("jain_after_first_admissions"):
        counts = (weighted["jain"].get("counts") or [[]])[0]
        return (f"**Weights 2:1:1 (issue 14).** The share is counted from *b*'s and *c*'s "
                f"arrival, and their first "
                f"{fmt(weighted['backlogged'].get('first_admissions_after_s'), 1)} s went to *a* "
                f"(first window a / b / c = {' / '.join(map(str, counts))}): their submit "
                "messages were queued behind "
                f"{weighted.get('submit_queue_when_others_enqueued', 0):,} of *a*'s. From their "
                "first admissions on, Jain's index on the weight-normalised counts was "
                f"{fmt(weighted['jain_after_first_admissions'].get('min'), 3)} at worst: "
                "section 6, *Where the unfairness is*.")
    return (f"**Fair admission.** {target}: not met in this run; the per-producer figures "
            "are in section 6.")


def why_ceiling(results: Mapping[str, Any]) -> str:
    tp = results.get("throughput", {})
    noop, off = tp.get("noop"), tp.get("project_webhook_off")
    if not noop or not off:
        return "Celery ceiling: not measured."
    prof = results.get("profile", {}).get("workers")
    cpu = off["cpu_ms_per_job"]
    http = cpu.get("worker", 0) * share(prof, "Akool HTTP (requests)") / 100
    bound = total_cpu(noop) / (total_cpu(noop) + cpu.get("sandbox", 0) + http) if http else None
    text = (f"**Ceiling.** Both cores are saturated in every run, so throughput is the inverse "
            f"of the CPU a job costs the machine. A no-op task costs {fmt(total_cpu(noop))} ms "
            f"(worker {fmt(noop['cpu_ms_per_job'].get('worker'))}, producer and Redis the rest). "
            f"A job of this project costs {fmt(total_cpu(off))} ms: "
            + ", ".join(f"{role} {fmt(cpu.get(role))}" for role in ROLES if cpu.get(role))
            + ". Two of its costs exist for any Akool client: the sandbox serving the create "
            f"and detail requests ({fmt(cpu.get('sandbox'))} ms, on the same two cores)")
    if bound:
        floor = total_cpu(noop) + cpu.get("sandbox", 0) + http
        rest = total_cpu(off) - floor
        text += (f" and the two HTTP calls in the worker (≈ {fmt(http)} ms, "
                 f"{fmt(share(prof, 'Akool HTTP (requests)'), 0)} % of worker time). A job "
                 f"that was nothing but one no-op task plus those two calls would cost "
                 f"{fmt(floor)} ms and reach {bound:.0%} of the ceiling")
        if bound < 0.40:
            text += ": 40 % is out of reach on two shared cores whatever the worker does."
        else:
            allowed = total_cpu(noop) / 0.40
            text += (f". 40 % allows {fmt(allowed)} ms per job, so everything else a job does "
                     f"(validation, the store's Redis round trips and Lua transitions, logging, "
                     f"the poll batch: {fmt(rest)} ms today) would have to fit in "
                     f"{fmt(max(0.0, allowed - floor))} ms: not reachable with a Celery task, "
                     "two Akool calls and a Redis state machine per job on two shared cores.")
    else:
        text += ". The rest is the worker's own cost (see the findings)."
    return text


def why_naive(results: Mapping[str, Any]) -> str:
    tp = results.get("throughput", {})
    naive = tp.get("naive", {})
    slow = results.get("throughput_slow")
    off = tp.get("project_webhook_off", {})
    inline = results.get("findings", {}).get("1")
    tasks = ("one submit task and a fiftieth of a poll batch (the notification runs inline)"
             if inline else "a submit and a notify task and a fiftieth of a poll batch")
    text = ("**Naive worker at zero processing time.** With the task final at once, the naive "
            "worker makes the same Akool calls as this project "
            f"({fmt(naive.get('create_per_job'))} create and "
            f"{fmt(naive.get('detail_per_job'))} detail per job). Its Celery cost is two tasks "
            f"(the create, then one retry); this project's is {tasks}, and its own work per "
            "job (validating, the state machine's Redis round trips and Lua transitions, "
            "logging) takes most of what that saves: worker CPU "
            f"{fmt(off.get('cpu_ms_per_job', {}).get('worker'))} ms against "
            f"{fmt(naive.get('cpu_ms_per_job', {}).get('worker'))} ms per job. What the design "
            "saves is the polls a real processing time causes, and zero processing time has "
            "none.")
    if slow:
        r = ratio(slow["project"].get("capacity_jobs_per_s"),
                  slow["naive"].get("capacity_jobs_per_s"))
        text += (f" With {slow['processing_time_s']:g} s of processing (section 2b) the naive "
                 f"worker makes {fmt(slow['naive']['detail_per_job'])} detail calls per job, "
                 "each a Celery round trip, and costs the machine "
                 f"{fmt(slow['naive']['service_cpu_ms_per_job'])} ms of CPU per job against "
                 f"this project's {fmt(slow['project']['service_cpu_ms_per_job'])} ms: "
                 f"{fmt(r)}× the capacity on the same cores.")
    return text


def why_memory(results: Mapping[str, Any]) -> str:
    sc = results.get("schedule_scale", {})
    kb = sc.get("key_breakdown", {})
    variant = sc.get("listpack_variant", {})
    last = (sc.get("rows") or [{}])[-1]
    server = results["meta"].get("redis_server", {})
    limit = server.get("hash-max-listpack-value", server.get("hash-max-ziplist-value"))
    parts = [(f"`{row['key']}` ({row['type']})", row["bytes"]) for row in kb.get("keys", [])]
    text = (f"**Memory.** {fmt(last.get('bytes_per_job'), 0)} B per pending job at "
            f"{last.get('pending', 0):,} pending: "
            + ", ".join(f"{name} {fmt(size)} B" for name, size in parts if size) + ".")
    if kb.get("hash encoding") not in COMPACT_HASH_ENCODINGS:
        text += (f" The job hash is a `{kb.get('hash encoding')}` because its `request` field "
                 f"({fmt(kb.get('largest field bytes'))} B) is longer than the server's "
                 f"`hash-max-listpack-value` ({limit} B)")
        if variant:
            text += (f"; with `hash-max-listpack-value {variant['hash_max_listpack_value']}` it "
                     f"takes {fmt(variant['job_hash_bytes'])} B and a pending job "
                     f"{fmt(variant['bytes_per_job'], 0)} B (finding 6)")
        text += "."
    else:
        text += (f" The job hash is already a compact listpack (`hash-max-listpack-value` "
                 f"{limit}).")
    need = (last.get("bytes_per_job") or 0) - TARGET_BYTES_PER_JOB
    text += (f" {fmt(need, 0)} B more than 1.5 KB (1,536 B). Left to take: the idempotency key "
             "exists only for producers that send one; the `inflight` zset entry repeats the "
             "`poll` one for every remote task (a counter in the transition script would keep "
             "the in-flight cap, at the cost of the oldest-in-flight gauge); the stored "
             "`request` keeps null and default fields (`template_id`, `webhook_url`, "
             "`model_name`, `keep_original_sound`, about 90 B); a string key with a TTL costs "
             "far more than a field in a shared hash.")
    return text


def machine_ms_per_poll(row: Mapping[str, Any]) -> float:
    """CPU of the service and its Akool (workers, beat, sandbox, Redis) per detail call."""
    return float(sum(row.get("cpu_s_by_role", {}).values())) * 1000 / max(1, row["polls"])


def why_poll_lag(results: Mapping[str, Any]) -> str:
    lag = results["poll_lag"]
    row = lag["rows"]["project"]
    tick = float(lag["tick_s"])
    kept_up = row["polls_per_s"] >= 0.9 * row["needed_polls_per_s"]
    if kept_up and row["oldest_overdue_end_s"] <= tick:
        return (f"**Poll lag.** Polling kept up ({fmt(row['polls_per_s'], 0)} polls/s of "
                f"{fmt(row['needed_polls_per_s'], 0)}, nothing more than a tick overdue at the "
                f"end), and then the lag is one tick by construction (section 7): p99 "
                f"{fmt(row['lag_p99_s'])} s is the tick plus the spread of one tick's polls. "
                "Only a claim that takes members before they are due would go below it, and "
                "that would make each job's first poll before its estimate (an extra call and a "
                "back-off when Akool takes exactly the estimate).")
    cpus = int(lag.get("cpus") or 1)
    per_poll = machine_ms_per_poll(row)
    ceiling = cpus * 1000 / per_poll if per_poll else 0.0
    cpu = row.get("cpu_s_by_role", {})
    parts = ", ".join(f"{role} {fmt(sec * 1000 / max(1, row['polls']))}"
                      for role, sec in cpu.items() if sec)
    text = (f"**Poll lag.** {fmt(row['polls_per_s'], 0)} polls/s were made of the "
            f"{fmt(row['needed_polls_per_s'], 0)} that {row['pending']:,} tasks at a "
            f"{lag['interval_s']:g} s interval need, with {fmt(row.get('cpu_utilisation'), 2)} "
            f"of the machine's {cpus} cores busy. A poll costs the machine {fmt(per_poll)} ms "
            f"of CPU ({parts}; other processes used {fmt(row.get('other_cpu_s'), 1)} "
            f"CPU-seconds of the window), so {cpus} cores make at most about "
            f"{fmt(ceiling, 0)} polls/s")
    if ceiling < row["needed_polls_per_s"]:
        text += (": the target needs more CPU than this machine has. The sandbox's share is a "
                 "cost of every Akool call that is not the worker's, and the sandbox closes "
                 "every connection (Werkzeug's development server), so each call also pays a "
                 "TCP connect in the worker. With more cores the same settings scale by worker "
                 "processes: each makes up to `HEADSWAP_POLL_CONCURRENCY` / latency polls a "
                 "second (250/s at 200 ms).")
    else:
        text += (f"; {lag['workers']} worker processes × `HEADSWAP_POLL_CONCURRENCY` / "
                 "latency bound what they make.")
    return text


# --- sections --------------------------------------------------------------------------

def throughput(results: Mapping[str, Any], png_name: str) -> str:
    tp = runs(results.get("throughput", {}))
    if not tp:
        return ""
    noop, naive = tp.get("noop", {}), tp.get("naive", {})
    minimal = tp.get("minimal", {})
    on = tp.get("project_webhook_on", {})
    rows = []
    for run in tp.values():
        rss = run["peak_rss_mb"].get("worker", [])
        rows.append((run["name"], run["succeeded"], fmt(run["jobs_per_s"], 1),
                     fmt(ratio(run["jobs_per_s"], noop.get("jobs_per_s")), 3),
                     fmt(ratio(run["jobs_per_s"], minimal.get("jobs_per_s")), 3),
                     fmt(ratio(run["jobs_per_s"], naive.get("jobs_per_s")), 2),
                     fmt(run["create_per_job"], 2), fmt(run["detail_per_job"], 2),
                     fmt(run["latency_p50_s"], 3), fmt(run["latency_p99_s"], 3),
                     " / ".join(fmt(x, 0) for x in rss)))
    dups = "; ".join(f"{r['name']}: {r['duplicate_creates']}" for r in tp.values()
                     if r.get("akool_calls"))
    by_poll = (on.get("completed_by") or {}).get("poll", 0)
    race = ""
    if on and by_poll:
        race = (f"\n\nWith the webhook on, {by_poll} of {on['succeeded']} jobs were finished "
                "by the safety-net poll (3 s here, 300 s by default) instead of their webhook: "
                "at zero processing time the webhook can arrive between the create's answer "
                "and the worker recording it, and the receiver then drops it (finding 5). That "
                "is the p99 of the webhook-on row.")
    elif on:
        race = "\n\nWith the webhook on, every job was finished by its webhook."
    return f"""## 1. Throughput at zero processing time

One producer process enqueues the jobs as fast as it can while the workers run them; the
clock runs from the first enqueue to the last completion signal. Side by side, each with its
own fresh workers on the same Redis and the same Celery settings (`config/celery.py`: JSON,
acks late, prefetch 1, task events off unless `HEADSWAP_TASK_EVENTS`, threads pool):

- **celery no-op (ceiling)**: `bench/noop_app.py`, a task that does nothing, sent with
  `send_task`. Nothing built on Celery can run jobs faster. (The workers alone drain a full
  queue at {fmt(noop.get('drain_only_per_s'), 0)} tasks/s; end to end the producer's
  `send_task` is part of the cost, as it is for every scenario.)
- **naive worker**: `bench/naive_worker.py`, one Celery task per job that analyses the
  source once, creates, then polls itself with `retry(countdown=1)` and fires the same
  signal.
- **minimal Akool client (the fair ceiling)**: `bench/minimal_client.py`, one Celery task
  per job that makes the create and the detail call over the project's own HTTP session
  (`worker.akool.new_session`: same pool, timeouts, headers) and fires the same signal;
  nothing else (no validation, no state, no exactly-once guard). Sources are analysed
  before the clock starts. Any Akool client on Celery pays at least this.
- **headswap**: `Producer.submit` to the `job_succeeded` signal (recorded by
  `bench/signal_probe.py`, loaded with `--include` as a producer's receiver would be), with
  beat; webhook off (polling) and on (the sandbox delivers to `headswap webhook`). These
  rows run with `HEADSWAP_STORAGE_URL=none`, so they make the same Akool calls as the
  others; the row *outputs copied* runs the default (each finished video copied to a local
  directory by `headswap.store_output` before `succeeded`) and shows what the copy costs.

All jobs use four source videos: each scenario first runs one job per video, which
analyses it (Akool's person analysis is required before a create and is cached per URL in
Redis by both workers), so the timed jobs measure create-and-follow, not analysis. Each job
has its own face image, so the sandbox's duplicate check sees every job apart.

*jobs/s* is end to end, from the first enqueue to the last signal. Latency is from the
remote task's completion at the sandbox to the signal; with every job enqueued at once it
includes waiting behind the backlog (the unloaded latency is in section 2).

{md_table(["scenario", "jobs", "jobs/s", "÷ ceiling", "÷ minimal client", "÷ naive", "create/job",
           "detail/job", "latency p50 s", "latency p99 s", "peak RSS per worker MB"], rows)}

Duplicate creates (sandbox fingerprints): {dups}.{race}

![benchmarks]({png_name})"""


def where_time_goes(results: Mapping[str, Any]) -> str:
    tp = runs(results.get("throughput", {}))
    if not tp:
        return ""
    rows = []
    for run in tp.values():
        cpu = run["cpu_ms_per_job"]
        rows.append((run["name"], *(fmt(cpu.get(r)) for r in ROLES), fmt(total_cpu(run)),
                     fmt(run["other_cpu_ms_per_job"])))
    out = ["## Where the time goes",
           "CPU milliseconds per job, by process (user + system, from `psutil`, over the "
           "timed window; *producer* is the bench process enqueueing and waiting):",
           md_table(["scenario", *ROLES, "total", "other processes"], rows)]
    prof = results.get("profile", {}).get("workers")
    if prof and prof.get("by_entry_library"):
        rows = [(e, lib, pct) for (e, lib), pct in prof["by_entry_library"] if pct >= 0.3]
        out.append(
            f"Inside the workers ({prof['samples']:,} py-spy samples, `--gil`: Python CPU time, "
            f"during a separate run of {fmt(prof.get('jobs_per_s_while_profiled'), 0)} jobs/s "
            "with the webhook off). Each sample is charged to the task it ran in and to the "
            "library our code had called at that moment:")
        out.append(md_table(["task", "library", "% of worker time"], rows))
        machinery = share(prof, "Celery worker machinery")
        http = share(prof, "Akool HTTP (requests)")
        redis = share(prof, "Redis client (store, Lua, limiter)")
        publish = share(prof, "send_task (Celery publish)")
        validation = share(prof, "validation (marshmallow)")
        out.append(
            f"Celery's own work (receiving, acking, task events, the pool) is "
            f"{fmt(machinery, 0)} % of it, once per task; the Akool HTTP calls through "
            f"`requests` {fmt(http, 0)} %; the Redis round trips of the store, the Lua "
            f"transitions and the notification bookkeeping {fmt(redis, 0)} %; publishing "
            f"tasks from inside tasks (poll batches from beat, notify tasks when the "
            f"notification is a task) {fmt(publish, 0)} %; validating the message again in "
            f"the worker {fmt(validation, 0)} %. The findings at the end say what was found "
            "and whether it is fixed in the code measured here.")
    elif prof and prof.get("error"):
        out.append(f"The py-spy profile could not be taken: {prof['error']}")
    return "\n\n".join(out)


def real_latency(results: Mapping[str, Any]) -> str:
    rl = results.get("real_latency")
    if not rl or not rl.get("project"):
        return ""
    rows = []
    for r in (rl["project"], rl.get("naive")):
        if not r:
            continue
        rows.append((r["name"], r["succeeded"], fmt(r.get("creates_per_s"), 1),
                     fmt(r.get("all_created_after_s"), 1), fmt(r["detail_per_job"], 2),
                     fmt(r["latency_p50_s"], 2), fmt(r["latency_p99_s"], 2),
                     fmt(r.get("worker_cpu_ms_per_job")), fmt(r["service_cpu_ms_per_job"]),
                     " / ".join(fmt(x, 0) for x in r["peak_rss_mb"].get("worker", [])),
                     fmt(r["seconds"], 1)))
    p, nv = rl["project"], rl.get("naive") or {}
    low, high = rl["processing_spread_s"]
    per_s = rl["processing_per_video_second"]
    bound = rl["poll_floor_s"] + TARGET_SIGNAL_SLACK_S
    verdict = (f"Targets: ≥ {TARGET_CREATES_PER_S:g} creates/s per process "
               f"({'met' if (p.get('creates_per_s') or 0) >= TARGET_CREATES_PER_S else 'not met'}),"
               f" ≤ {TARGET_REAL_DETAIL_PER_JOB:g} detail calls per job "
               f"({'met' if p['detail_per_job'] <= TARGET_REAL_DETAIL_PER_JOB else 'not met'}), "
               f"remote done → signal p99 ≤ {bound:g} s "
               f"({'met' if (p.get('latency_p99_s') or 1e9) <= bound else 'not met'}: "
               + why_signal_latency(results).split("**", 2)[-1].strip() + ")"
               if (p.get("latency_p99_s") or 1e9) > bound else
               f"Targets: ≥ {TARGET_CREATES_PER_S:g} creates/s per process, ≤ "
               f"{TARGET_REAL_DETAIL_PER_JOB:g} detail calls per job, p99 ≤ {bound:g} s: see "
               "the targets table.")
    naive_text = ""
    if nv:
        naive_text = (f" The naive worker at the same concurrency made "
                      f"{fmt(nv.get('creates_per_s'), 1)} creates/s and "
                      f"{fmt(nv['detail_per_job'], 2)} detail calls per job, each a Celery "
                      f"round trip: {fmt(nv.get('worker_cpu_ms_per_job'))} ms of worker CPU per "
                      f"job against {fmt(p.get('worker_cpu_ms_per_job'))}.")
    return f"""## 1b. Real latency (issue #16)

Akool as users see it: the sandbox answers every API call after {fmt(rl['latency_s'], 2)} s
and takes {fmt(rl['processing_per_video_second'], 1)} s per second of source video, so
{rl['videos']} videos of {fmt(low / per_s, 1)}–{fmt(high / per_s, 0)} s make a
{low:g}–{high:g} s spread (`processing_per_video_second`, docs/SANDBOX.md). One
`headswap worker` process at the shipped defaults (`-P {rl['pool']} -c {rl['concurrency']}`,
HTTP pool = `-c`, tick {fmt(rl['poll_tick_s'], 0)} s, poll floor {fmt(rl['poll_floor_s'], 0)} s,
batches of {rl.get('poll_batch_size')}, outputs copied to a local directory), with beat; the
estimate
`HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND` calibrated to the same
{fmt(rl['processing_per_video_second'], 1)} s. Beside it the naive worker, one process at the
same concurrency, polling every second. Every job is enqueued at once. *creates/s* is jobs ÷
the time from the first enqueue to the last create the sandbox received; latency is from the
remote task's completion to the signal; worker CPU is the worker process's over the whole
run (idle waiting included).

{md_table(["scenario", "jobs", "creates/s", "all created after s", "detail/job",
           "latency p50 s", "latency p99 s", "worker CPU ms/job", "service CPU ms/job",
           "peak RSS MB", "seconds"], rows)}

{verdict}{naive_text}"""


def poll_timing(results: Mapping[str, Any]) -> str:
    pt = results.get("poll_timing", {})
    if not pt:
        return ""
    timing = pt.get("timing", {})
    estimate = float(timing.get("HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND", 0)) * \
        float(pt.get("video_duration_s", 0))
    rows = [(r["name"], r["jobs"], fmt(r["detail_per_job"], 2), fmt(r["latency_p50_s"], 3),
             fmt(r["latency_p99_s"], 3), fmt(r.get("enqueue_to_signal_p50_s"), 2))
            for r in [*pt.get("project", []), pt.get("naive")] if r]
    matched = next((r for r in pt.get("project", []) if r.get("estimate") == "matched"), None)
    naive = pt.get("naive")
    jobs = pt["project"][0]["jobs"] if pt.get("project") else 0
    verdict = ""
    if matched and naive:
        ok = matched["detail_per_job"] <= TARGET_DETAIL_PER_JOB and \
            (matched["latency_p50_s"] or 0) <= (naive["latency_p50_s"] or 0) * LATENCY_TOLERANCE
        verdict = ("\n\nWith the estimate right, this project asks "
                   f"{fmt(matched['detail_per_job'])} times per job against the naive worker's "
                   f"{fmt(naive['detail_per_job'])}, and "
                   f"signals completion at p50 {fmt(matched['latency_p50_s'])} s against "
                   f"{fmt(naive['latency_p50_s'])} s: the target (≤ {TARGET_DETAIL_PER_JOB} calls "
                   f"at equal latency) is {'met' if ok else 'not met'}.")
    return f"""## 2. Poll timing (webhook off)

Item 4 of the issue: the first poll comes after the expected processing time
(`HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND` × the video's duration), later polls back
off with the task's age (a quarter of it, between `POLL_MIN_INTERVAL` and
`POLL_MAX_INTERVAL`). The sandbox's processing time is one fixed value for all tasks (it
cannot follow the video's duration), so the runs set it and the estimate apart: videos of
{fmt(pt.get('video_duration_s'), 0)} s, an estimate of {fmt(estimate, 1)} s, and Akool taking
exactly the estimate, 1 s longer, and 1 s less. Beat ticks every
{timing.get('HEADSWAP_POLL_TICK_SECONDS')} s, the floor is
{timing.get('HEADSWAP_POLL_MIN_INTERVAL_SECONDS')} s. {jobs} jobs per row, enqueued at once;
latency from the remote completion to the signal.

{md_table(["scenario", "jobs", "detail/job", "latency p50 s", "latency p99 s",
           "enqueue → signal p50 s"], rows)}{verdict}

When Akool is slower than the estimate, the back-off keeps the extra calls to one or two at
about half a second to a second of latency; when it is faster, the job waits for the
estimate (no extra call, but the latency grows by the overestimate). Calibrate the
estimate from the low end of the observed processing time per second of video (the
`submitted_at` → `succeeded_at` span of finished jobs divided by their `video_duration`).

The first poll is also capped at `POLL_MAX_INTERVAL_SECONDS` (`worker/submission.py`,
`_create`). With the defaults (3 s per video second, 60 s) that cap binds only at Akool's
20 s duration limit, but with a longer estimate or a lower cap the first poll comes early
and the back-off (a quarter of the age) spends calls and latency: a 10.5 s task polled
first at a 10 s cap took 1.9 calls and 2.8 s of latency per job in one of these runs,
against 1.0 and 0.3 s uncapped. Cap the first poll separately (or not below the estimate)."""


def throughput_slow(results: Mapping[str, Any]) -> str:
    slow = results.get("throughput_slow")
    if not slow:
        return ""
    rows = [(r["name"], r["succeeded"], fmt(r["detail_per_job"], 2),
             fmt(r["cpu_ms_per_job"].get("worker")), fmt(r["service_cpu_ms_per_job"]),
             fmt(r["capacity_jobs_per_s"], 0), fmt(r["latency_p50_s"], 2),
             fmt(r["latency_p99_s"], 2))
            for r in (slow["project"], slow["naive"])]
    r = ratio(slow["project"].get("capacity_jobs_per_s"),
              slow["naive"].get("capacity_jobs_per_s"))
    return f"""## 2b. Cost per job with processing time (supplementary)

Section 1 has no polls to save. Here Akool takes {slow['processing_time_s']:g} s per task
(this project's estimate matches it; the naive worker polls every second, and a whole
number of seconds would let its last poll land just after completion), and jobs arrive
at a steady {fmt(slow.get('offered_jobs_per_s'), 0)} jobs/s, below what either can do, so
that each runs as designed rather than throttled by its own backlog. The figure compared is
the CPU a job costs the service and its Akool (workers, beat, sandbox, Redis; not the bench
process that enqueues); on two saturated cores *capacity* = 2,000 ms/s ÷ that. At this light
load fixed costs (beat ticks, idle loops) weigh more per job than in section 1, for both.
This project has {fmt(r)}× the naive worker's capacity.

{md_table(["scenario", "jobs", "detail/job", "worker CPU ms/job", "service CPU ms/job",
           "capacity jobs/s", "latency p50 s", "latency p99 s"], rows)}"""


def schedule(results: Mapping[str, Any]) -> str:
    sc = results.get("schedule_scale", {})
    if not sc:
        return ""
    rows = [(r["pending"], fmt(r["bytes_per_job"], 0), fmt(r["used_memory_mb"], 1),
             fmt(r["tick_full"]["p50_ms"]), fmt(r["tick_full"]["p95_ms"]),
             fmt(r["tick_full"]["claim_p50_ms"]), fmt(r["tick_light"]["p50_ms"]),
             fmt(r["tick_idle"]["p50_ms"])) for r in sc.get("rows", [])]
    kb = sc.get("key_breakdown", {})
    keys_table = md_table(["key", "type", "bytes per job"],
                          [(f"`{row['key']}`", row["type"], row["bytes"])
                           for row in kb.get("keys", [])])
    prof = sc.get("profile") or {}
    prof_text = ""
    if prof.get("by_library"):
        prof_text = ("\n\npyinstrument over ten full ticks (" + fmt(prof.get("ms_per_call")) +
                     " ms each with the profiler on): " + ", ".join(
                         f"{lib} {pct} %" for lib, pct in prof["by_library"] if pct >= 1) +
                     ". The claim is one Lua call; the time is in publishing the "
                     f"{sc.get('tick_cap', 0) // max(1, sc.get('batch_size', 1))} "
                     "`poll_batch` messages.")
    at = sc.get("at_largest")
    at_text = ""
    if at:
        at_text = (f"\n\nMeasured at {at['pending']:,} pending (not extrapolated): the event "
                   f"stream filled to its cap ({at['stream_entries']:,} entries) takes "
                   f"{fmt(at['stream_mb'], 1)} MB, {fmt(at['stream_bytes_per_job'], 0)} B per "
                   f"pending job at this size; the idempotency keys (a string key with a TTL "
                   f"per job that has one) take {fmt(at['idempotency_bytes_per_job'], 0)} B per "
                   f"job, main and expiry dictionaries included. So a pending job costs "
                   f"{fmt(at['bytes_per_job'], 0)} B as measured, "
                   f"{fmt(at['with_stream_bytes_per_job'], 0)} B with its share of a full "
                   f"stream, {fmt(at['without_idempotency_bytes_per_job'], 0)} B without an "
                   "idempotency key.")
    variant = sc.get("listpack_variant")
    variant_text = ""
    if variant and kb.get("hash encoding") not in COMPACT_HASH_ENCODINGS:
        variant_text = (f"\n\nThe same jobs with `hash-max-listpack-value "
                        f"{variant['hash_max_listpack_value']}` ({variant['pending']:,} pending): "
                        f"{fmt(variant['bytes_per_job'], 0)} B per job, the job hash "
                        f"{fmt(variant['job_hash_bytes'])} B as a `{variant['hash_encoding']}`.")
    return f"""## 3. Scale of the schedule

A template job is made by the worker's own code against the sandbox (the analysis of its
source, then `worker.submission.submit`: validate, lock, create, record, first poll
scheduled), with an idempotency key, a callback task and metadata as in the README's
example. Every key it left and every shared structure it entered are then cloned inside
Redis (one Lua call writes 10,000 jobs from the template's footprint), with fresh ids of
the same length, to each size. A *full* tick makes
{sc.get('tick_cap', 0):,} members due (the most one tick claims: `POLL_BATCH_SIZE` × 20
batches) and times the poll tick itself (`worker.sweeper.tick`), with real `send_task` to the
broker; a *one-batch* tick has
{sc.get('batch_size')} due, an *idle* one none.

{md_table(["pending", "B/job", "used_memory MB", "full tick p50 ms", "full tick p95 ms",
           "of which claim ms", "one-batch tick ms", "idle tick ms"], rows)}

Where a pending job's bytes are (`MEMORY USAGE` of the template's own keys; shared keys
divided by the jobs in them). The job hash has {kb.get('hash fields')} fields and is a
`{kb.get('hash encoding')}`:

{keys_table}

The event stream is apart: three entries
per job, {fmt(sc.get('events_bytes_per_job'), 0)} B per job, capped at
{sc.get('events_maxlen', 0):,} entries (about {fmt(sc.get('events_cap_mb'), 1)} MB however many
jobs).{at_text}{variant_text}{prof_text}"""


def rate_limit(results: Mapping[str, Any]) -> str:
    rl = results.get("rate_limit", {})
    if not rl:
        return ""
    names = {"limiter": "4 processes hammering `RateLimiter`",
             "workers": "4 `headswap worker` processes, creates seen by the sandbox"}
    rows = [(names.get(k, k), fmt(v["target_per_s"], 0), v.get("grants"),
             fmt(v["achieved_per_s"], 2), f"{v['error_pct']:+.2f}", v.get("max_in_1s_window"))
            for k, v in rl.items()]
    return f"""## 4. Global create rate limit

`HEADSWAP_CREATE_RATE` is one GCRA key in Redis (`worker/limits.py`), decided by one Lua call
on the Redis clock. Four processes hammer the create key for
{fmt(rl.get('limiter', {}).get('seconds'), 0)} s; then four real worker processes run a backlog of
{rl.get('workers', {}).get('jobs', 0)} jobs with the rate set, and the creates the sandbox
received give the rate Akool saw. Achieved rate = (grants − burst) / (last − first).

{md_table(["measured on", "target/s", "grants", "achieved/s", "error %", "most in any 1 s"],
          rows)}"""



def copy_memory(results: Mapping[str, Any]) -> str:
    cm = results.get("copy_memory")
    if not cm:
        return ""
    rows = [(f"{cm['file_bytes']:,}", f"{cm['copy_buffer_bytes']:,}", cm["factor"],
             f"{cm['python_peak_bytes']:,}", fmt(cm["peak_over_buffer"], 2),
             f"{cm['rss_growth_bytes']:,}", fmt(cm["mb_per_s"], 1),
             "yes" if cm["sha256_ok"] else "NO", "yes" if cm["bounded"] else "NO")]
    return f"""## 5. Output copy memory

One copy of a finished video (`worker/storing.py`'s code: the sandbox's output URL over
HTTP, streamed through `HashingReader` into the local target) of a file {cm['factor']}× the
copy buffer. Bounded means a Python peak under 8 buffers, whatever the file's size.

{md_table(["file bytes", "buffer bytes", "×", "Python peak bytes", "peak / buffer",
           "RSS growth bytes", "MB/s", "SHA-256 ok", "bounded"], rows)}"""

def poll_lag(results: Mapping[str, Any]) -> str:
    lag = results.get("poll_lag")
    if not lag:
        return ""
    rows = [(r["name"], r["pending"], fmt(r["polls_per_s"], 0), fmt(r["needed_polls_per_s"], 0),
             fmt(r["lag_p50_s"]), fmt(r["lag_p90_s"]), fmt(r["lag_p99_s"]), fmt(r["lag_max_s"]),
             f"{r['due_backlog_max']:,} / {r['due_backlog_end']:,}",
             fmt(r["oldest_overdue_end_s"], 1), r["poll_queue_max"],
             fmt(r["worker_cpu_ms_per_poll"]), fmt(machine_ms_per_poll(r)))
            for r in lag["rows"].values()]
    first = next(iter(lag["rows"].values()))
    project, old = lag["rows"].get("project"), lag["rows"].get("old_limits")
    ratio_text = ""
    if project and old and old.get("polls_per_s"):
        times = ratio(project["polls_per_s"], old["polls_per_s"])
        ratio_text = (f"\nThe defaults made {fmt(times, 1)}× the polls per second of the old "
                      "limits on the same machine.\n")
    return f"""## 7. Poll lag

Item 3 of issue #16: {first['pending']:,} tasks pending at the
sandbox (each a real task there, processing for an hour: every poll finds it unfinished and
schedules the next one interval later), every Akool call answered after
{lag['latency_s'] * 1000:g} ms, a fixed poll interval of {lag['interval_s']:g} s
(`POLL_MIN_INTERVAL` = `POLL_MAX_INTERVAL`), beat's tick {lag['tick_s']:g} s (the default),
{lag['workers']} worker processes × {lag['concurrency']} threads. The first polls are spread
evenly over one interval; after a {fmt(lag['warmup_s'], 0)} s warm-up, every poll of a
{fmt(first['window_s'], 0)} s window is measured: its lag is the
`headswap_poll_lag_seconds` observation (the detail call's Redis time minus the time its
member was due), kept unbucketed by `bench/lag_probe.py`. *due now / at end* is
`headswap_poll_due_remote_tasks` (due and not claimed: a backlog the lag figures cannot see
yet), *oldest due* how overdue its oldest member was at the end; *queue* the most
`poll_batch` messages seen waiting in `headswap.poll`. The old limits are
`HEADSWAP_POLL_MAX_CLAIM_PER_TICK=1000` (a fixed 1,000 a tick) with
`HEADSWAP_POLL_CONCURRENCY=1` (one call at a time per batch, 50 × {lag['latency_s']:g} s a
batch); the new claim's queue bound stays on for them, so they do not also flood
`headswap.poll` as the old code did.

{md_table(["scenario", "pending", "polls/s", "needed/s", "lag p50 s", "p90 s", "p99 s",
           "max s", "due: most / at end", "oldest due s", "queue", "worker CPU ms/poll",
           "machine CPU ms/poll"], rows)}
{ratio_text}

Keeping up, lag is about one tick by construction: a member polled *w* seconds after a
tick is due again *w* seconds after a later tick (the interval is a multiple of the tick),
so the tick after that claims it, one tick minus *w* late, and its poll comes *w′* after
that tick: lag ≈ tick − *w* + *w′*, with *w′* ≈ *w* since the claim takes the most overdue
first. What the new limits change is whether the workers keep up at all: the claim follows
the backlog (a tick claims up to twice what the workers took since the previous one, the
rest stays due) and a batch's 50 calls run at once instead of one after another."""


def capacity_section(results: Mapping[str, Any]) -> str:
    from bench import capacity

    cap = results.get("capacity")
    if not cap:
        return ""
    return ("## 8. Capacity planning (from this run)\n\n"
            "How the table is made: `bench/capacity.py` (docs/OPERATIONS.md *Capacity "
            "planning* explains it and gives the KEDA settings).\n\n" + capacity.markdown(cap))

def _row_join(row: Mapping[str, Any]) -> str:
    first = (row["jain"].get("counts") or [[]])[0]
    return (f"in the {row['name']} row every producer had a first job admitted "
            f"{fmt(row['backlogged']['first_admissions_after_s'], 1)} s after *b* and *c* "
            f"arrived, with {row.get('submit_queue_when_others_enqueued', 0):,} of *a*'s "
            "submit messages ahead of theirs, and the first window's admissions were a / b / "
            f"c = {' / '.join(str(n) for n in first)}; from then on Jain's index per window "
            f"was {fmt(row['jain_after_first_admissions'].get('min'), 3)} at worst")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def join_delay_text(fair: Mapping[str, Any]) -> str:
    """What the fair rows say about the time before b and c reach their lines."""
    rows = [r for key, r in fair["rows"].items() if key != "fifo"
            and (r.get("backlogged") or {}).get("first_admissions_after_s") is not None
            and r.get("jain_after_first_admissions")]
    if not rows:
        return ""
    exact = all((r["jain_after_first_admissions"].get("min") or 0) >= TARGET_JAIN for r in rows)
    gap = (fair["rows"].get("fair_equal") or {}).get("admitted_to_submitting_s") or {}
    gap_text = ""
    if gap:
        gap_text = (" The same queue can sit between a grant and its create: a job granted by a "
                    "round another task ran (a poll tick, a completion) gets its submit message "
                    "then, behind whatever is queued, while it holds its in-flight slot. In the "
                    f"equal-weights row admitted → `submitting` took p50 {fmt(gap.get('p50'), 2)} "
                    f"s, p90 {fmt(gap.get('p90'), 2)} s, at most {fmt(gap.get('max'), 2)} s.")
    return ("\n\n**Where the unfairness is: the broker's one queue.** A job joins its "
            "producer's line only when a worker runs its `headswap.submit` message, and those "
            "wait in one first-come queue behind *a*'s flood: until the workers have drained "
            "what is ahead, the scheduler does not know *b* and *c* exist, and *a* takes every "
            "slot that frees. " + _sentence("; ".join(_row_join(r) for r in rows)) + "."
            + (" From there the scheduler holds the weights exactly; what it loses is before "
               "it, and that is a flood's drain time, which grows with the flood and with the "
               "machine's load." if exact else
               " The shares are off even from there.")
            + gap_text + " Joining the line when the job is enqueued (in the producer's "
            "`create.lua`, the same atomic step that creates the record) would remove the "
            "first delay (a suggestion, not measured here).")


def fairness(results: Mapping[str, Any]) -> str:
    fair = results.get("fairness")
    if not fair or not fair.get("rows"):
        return ""
    plan = fair.get("plan", {})
    cost = fair.get("overhead", {})
    cost_text = ""
    if cost.get("fifo") and cost.get("fair"):
        runs = cost.get("runs") or [{**cost[m], "mode": m} for m in ("fifo", "fair")]
        rows = [(f"{r['mode']} admission", r["succeeded"], fmt(r["jobs_per_s"], 1),
                 fmt(r["worker_cpu_ms_per_job"]), fmt(r["service_cpu_ms_per_job"]),
                 fmt(r["other_cpu_ms_per_job"])) for r in runs]
        cost_text = f"""

**What admission costs.** {cost.get('jobs', 0):,} jobs per run through each path with the
in-flight cap set ({10 * cost.get('jobs', 0):,}) but never binding, at zero processing time
(section 1's timings, one producer), runs in the order shown (FIFO, fair, fair, FIFO: a
drift in the machine's load cancels out): worker CPU per job, and the service's (workers,
beat, Redis: work moved into Lua scripts shows there). On the mean of each mode's runs, fair
admission costs
{fmt(cost.get('worker_ratio'), 3)}× FIFO's worker CPU per job and
{fmt(cost.get('service_ratio'), 3)}× the service's.

{md_table(["path", "jobs", "jobs/s", "worker CPU ms/job", "service CPU ms/job",
           "other processes ms/job"], rows)}

The contended rows' *worker CPU per admitted job* (above) is not that comparison: with the
cap binding, FIFO puts every job that finds no slot back on the wake-up schedule for up to
`CAP_RECHECK_SECONDS` (4 s) and sends it again, so its workers keep re-trying the whole
backlog; fair admission keeps waiting jobs as data in Redis and sends a job when it is
admitted."""
    fifo = fair["rows"].get("fifo")
    fifo_text = ""
    if fifo:
        b = fifo["producers"].get("b", {})
        fifo_text = (f" In the FIFO row {b.get('admitted', 0)} of {b.get('jobs', 0)} of b's jobs "
                     f"were admitted in the {fmt(plan.get('fifo_watch_s'), 0)} s it watched "
                     "(a median marked ≥ is a lower bound: jobs still waiting count with the "
                     "wait they had so far).")
    join_text = join_delay_text(fair)
    return f"""## 6. Fair admission across producers (issue 14)

One account, three producers: with `HEADSWAP_MAX_IN_FLIGHT={plan.get('max_in_flight')}` and
Akool (the sandbox) taking {fmt(plan.get('processing_s'), 1)} s per task, producer *a*
enqueues {plan.get('backlog', 0):,} jobs, then *b* and *c* {plan.get('others')} each
(interleaved). A job's wait for admission is `admitted_at − queued_at` from its record
(`submitting_at − created_at` under FIFO, which has no admission stamp). A row ends when
every job of *b* and *c* is admitted (FIFO: or {fmt(plan.get('fifo_watch_s'), 0)} s after
they were enqueued); *a*'s remaining backlog is dropped with the row's database. Rows:
fair admission with equal weights, with weights 2:1:1 (`a:weight=2;b:weight=1;c:weight=1`),
and FIFO (`HEADSWAP_ADMISSION=fifo`, the behaviour before issue 14), each with its own
fresh workers and beat.

The figures cover the time **all three producers are backlogged** (from *b*'s or *c*'s
first job, whichever came later, until the first instant one producer had nothing left
waiting). *admissions/s* is the measured admission rate R over that span; *share* each
producer's part of the admissions in it. *b's share: median* is what *b*'s median wait
would be if it got exactly its weighted share s of R while it had jobs waiting (its k-th
job admitted 1/(s·R) after the one before, or after it arrived): with equal weights
s = 1/3, the equal share of the target (≤ {TARGET_FAIR_WAIT_RATIO:g}× that); in the 2:1:1
row s = 1/4, so against an equal share its waits are 4/3 of these ratios by design.
*Jain* is Jain's fairness index (Σx)² / (3·Σx²) of the three producers' admission counts
divided by their weights, per {fmt(plan.get('window_s'), 0)} s window of the span (1 =
exactly by weight, 1/3 = one producer takes all; target ≥ {TARGET_JAIN:g}); the weighted
row's shares should be 2:1:1 ± {TARGET_SHARE_ERROR_PCT:g} %.{fifo_text}

{md_table(FAIRNESS_HEADER, fairness_rows(fair))}{join_text}{cost_text}"""


FINDINGS: list[tuple[str, str, str]] = [
    ("1", "The notify task (`worker/polling.py`, `_finish`)",
     "Every finished job was a second Celery task: the poller published `headswap.notify` "
     "(with its task-sent event), a worker received, ran and acked it (three more events), "
     "and `notify` read the record again. Fix: when the poller finishes a job, call "
     "`worker.notify.notify` in the same thread (the job is already in the outbox, so a crash "
     "is still covered by the sweeper's re-notify). Measured on the patched copy: 132 → 177 "
     "jobs/s, worker CPU 9.5 → 6.7 ms per job. Keep sending the task from the webhook "
     "receiver: see finding 8."),
    ("2", "`requests` read the environment on every call (`worker/akool.py`, `AkoolClient`)",
     "With `trust_env` on, each request looks up proxy settings in `os.environ`. Fix: read "
     "them once when building the session (`get_environ_proxies(base_url)`, the CA bundle "
     "variables), then `session.trust_env = False`. Measured: 820 → 660 µs of CPU per call."),
    ("3", "Redis reads nobody uses (`worker/submission.py`, `_create`)",
     "The record was read only to pass it to `job_submitted`, even with no receiver "
     "connected. Fix: `if signals.job_submitted.receivers:` first. One round trip per job "
     "(≈ 0.15 ms in the client); `notify` re-reading the record the poller just wrote is "
     "another. Not checked here: its only trace is a Redis round trip no producer can "
     "observe, so no behaviour test can hold it; the per-job worker CPU above shows it."),
    ("4", "Celery task events (`config/celery.py`)",
     "`task_send_sent_event` and `worker_send_task_events` cost four event messages per "
     "task. Turning them off raised the no-op ceiling 863 → 1,256 tasks/s and this project "
     "175 → 227 jobs/s (the ratio barely moves: both pay it). Fix: a setting, "
     "`HEADSWAP_TASK_EVENTS`, off by default, for whoever runs Flower (worker heartbeats "
     "are sent either way)."),
    ("5", "A webhook that beats the create's answer was dropped (`worker/webhook.py`, "
          "`WebhookApp._bind`)",
     "When the webhook arrives after the receiver's `job_for_remote()` lookup failed but "
     "after the worker recorded the create, the job is no longer `submitting`, the receiver "
     "answered 200 \"unknown task\" and the job waited for the safety-net poll (300 s by "
     "default; 21 of 2,000 jobs in the first runs). Fix: in `WebhookApp._bind`, return the "
     "job when its recorded `remote_id` is the webhook's. Status here: whether any job of the "
     "webhook-on run needed the safety net."),
    ("6", "Job hashes were hashtables (`worker/store.py`, Redis config)",
     "The `request` JSON field (~300 B) is longer than Redis' default "
     "`hash-max-listpack-value` (64 B), so every job hash used the hashtable encoding, about "
     "twice the memory of a listpack: 1,616 B against 872 B (section 3). Fix: "
     "`hash-max-listpack-value 1024` on the Redis server (a deploy setting for any Redis "
     "the workers use, worth a line in `docs/OPERATIONS.md`), or keep the request JSON out "
     "of the hash. Status here: the encoding of the measured job hash."),
    ("7", "The beat tick",
     "Flat (one Lua claim, O(log N) per member); its time is publishing the poll batches. "
     "Nothing to fix at 100,000 pending."),
    ("8", "Signals fire in the webhook receiver (`worker/polling.py`, `_finish`, called by "
          "`worker/webhook.py`)",
     "With finding 1 applied to every caller of `_finish`, a job finished by its webhook "
     "fires `job_succeeded` inside the `headswap webhook` process. Producers load their "
     "receivers into the workers (`headswap worker --include`, README *Learning the "
     "outcome*), so they never hear of those jobs. The bench loads its probe into the "
     "receiver too, to keep measuring, and counts where each signal fired. Fix: notify "
     "inline only from the poller (`apply_remote_status(..., source)` → "
     "`_finish(..., inline=source == \"poll\")`), and keep sending `headswap.notify` from "
     "the webhook receiver."),
]


def findings(results: Mapping[str, Any]) -> str:
    status = results.get("findings", {})
    label = {True: "fixed in the code measured here", False: "**open**", None: "not checked"}
    items = []
    for key, title, text in FINDINGS:
        if key == "7":
            items.append(f"{key}. **{title}.** {text}")
            continue
        state = status.get(key)
        said = f"fixed; guarded by `{state}`" if isinstance(state, str) else label[state]
        items.append(f"{key}. **{title}** — {said}. {text}")
    fired = {}
    for run in runs(results.get("throughput", {})).values():
        for kind, count in (run.get("signals_fired_in") or {}).items():
            fired[kind] = fired.get(kind, 0) + count
    where = ""
    if fired.get("webhook"):
        where = (f" In this run {fired['webhook']:,} of {sum(fired.values()):,} completion "
                 "signals fired in the webhook receiver.")
    return ("## Findings and suggested fixes\n\n"
            "What stood in the way, found with these benchmarks and py-spy, and whether the "
            "code this run measured still has it (from the run's own figures, or the behaviour "
            "test named that fails if the bottleneck returns). Gains were measured on a "
            "patched copy during the investigation "
            "(2026-11-24, same machine, webhook off, 1,500–3,000 jobs, runs repeated; ±10 % "
            "run-to-run noise here)." + where + "\n\n"
            + "\n".join(items) + "\n\n"
            "With fixes 1, 2, 3 and 5 applied together (patched copy, events on): 180–212 jobs/s "
            "with the webhook off (130 before, worker CPU 9.5 → 5.3–6.4 ms per job), 153 with "
            "the webhook on, every job finished by its own webhook (p99 0.8 s). That is about a "
            "quarter of the no-op ceiling and 1.1–1.3× the naive worker at zero processing time: "
            "the remaining distance to 40 % is the Akool calls themselves (see *Why* above).")


def settings(results: Mapping[str, Any]) -> str:
    meta = results["meta"]
    tt = meta.get("throughput_timing", {})
    pt = results.get("poll_timing", {}).get("timing", {})
    keys = sorted(set(tt) | set(pt))
    rows = [(k, tt.get(k, "–"), pt.get(k, "–")) for k in keys]
    return ("## Settings used\n\n"
            "Timings scaled down from the production defaults (2 s tick, 2 s floor, 3 s of "
            "processing per video second, 300 s safety net) so that zero or a few seconds of "
            "processing time give realistic ratios within minutes. The webhook-on run sets "
            "`HEADSWAP_SAFETY_NET_POLL_SECONDS=3`. Sandbox: analysis 0.05 s, no latency, no "
            "faults. Everything else is the default.\n\n"
            + md_table(["variable", "throughput runs", "poll-timing runs"], rows))


def reproducing() -> str:
    return """## Reproducing

```sh
make bench    # everything: writes this file, the PNG and bench-results.json
.venv/bin/python -m bench.run --quick --out /tmp/bench   # the smoke run (tests/test_bench_short.py)
.venv/bin/python -m bench.run --workers 2 --concurrency 8 --no-profile
```

`bench/`: `run.py` (orchestrator), `throughput.py` (scenarios), `noop_app.py` (the
ceiling), `naive_worker.py` (the baseline), `signal_probe.py` (completion stamps),
`schedule_scale.py`, `rate_limit.py`, `poll_lag.py` and `lag_probe.py` (poll lag at
10,000 pending), `fairness.py` (issue 14's producers; alone:
`python -m bench.fairness [--quick] [--rows fair_equal,fifo]`), `profiling.py` (py-spy,
pyinstrument), `cluster.py`
(scenario processes on `worker.devstack`, RSS and CPU sampling), `report.py` and
`markdown.py` (targets, tables, plot)."""
