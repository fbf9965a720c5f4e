"""Targets, rich tables, ``docs/BENCHMARKS.md`` and the PNG plot, from the results dict."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

TARGET_RATIO_CEILING = 0.40
TARGET_RATIO_NAIVE = 3.0
TARGET_DETAIL_PER_JOB = 1.2
TARGET_TICK_MS = 50.0
TARGET_BYTES_PER_JOB = 1536
TARGET_RATE_ERROR_PCT = 5.0
#: issue #16: the project (webhook off, zero processing) against the minimal Akool client
TARGET_RATIO_MINIMAL = 0.8
#: issue #16, real latency (200 ms a call, 30–90 s of processing, one process, defaults)
TARGET_CREATES_PER_S = 150.0
TARGET_REAL_DETAIL_PER_JOB = 1.1
#: remote done -> signal p99 at most the poll floor plus this
TARGET_SIGNAL_SLACK_S = 1.0
#: Issue 14: b's and c's median wait for admission at most this times the equal share's.
TARGET_FAIR_WAIT_RATIO = 1.5
TARGET_JAIN = 0.95
#: weights 2:1:1 give admission shares within this (relative) of 2:1:1
TARGET_SHARE_ERROR_PCT = 10.0
#: fair admission's CPU per job at most this times FIFO's
TARGET_ADMISSION_CPU_RATIO = 1.10
#: "at equal completion latency": the project's p50 may exceed the naive worker's by this.
LATENCY_TOLERANCE = 1.10
#: The encodings of a compact (small) hash: Redis 7 calls it ``listpack``, 6.2 ``ziplist``.
COMPACT_HASH_ENCODINGS = frozenset({"listpack", "ziplist"})


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def runs(tp: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The scenario rows of a throughput section (not its ratios, e.g. ``minimal_client``)."""
    return {k: v for k, v in tp.items() if isinstance(v, dict) and "jobs_per_s" in v}


# --- targets ---------------------------------------------------------------------------

def evaluate(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per target of issue #6: the figure, the bar, met or not."""
    rows: list[dict[str, Any]] = []

    def add(target: str, value: str, met: bool | None, note: str = "") -> None:
        rows.append({"target": target, "value": value, "met": met, "note": note})

    tp = results.get("throughput", {})
    noop, naive = tp.get("noop", {}), tp.get("naive", {})
    for key, label in (("project_webhook_off", "webhook off"), ("project_webhook_on",
                                                                 "webhook on")):
        run = tp.get(key)
        if not run:
            continue
        r_ceiling = ratio(run.get("jobs_per_s"), noop.get("jobs_per_s"))
        r_naive = ratio(run.get("jobs_per_s"), naive.get("jobs_per_s"))
        add(f"end to end ≥ {TARGET_RATIO_CEILING:.0%} of the Celery ceiling ({label})",
            f"{fmt(r_ceiling, 3)} ({fmt(run.get('jobs_per_s'), 1)} / "
            f"{fmt(noop.get('jobs_per_s'), 1)} jobs/s)",
            r_ceiling is not None and r_ceiling >= TARGET_RATIO_CEILING)
        add(f"end to end ≥ {TARGET_RATIO_NAIVE:g}× the naive worker ({label})",
            f"{fmt(r_naive, 2)}× ({fmt(run.get('jobs_per_s'), 1)} / "
            f"{fmt(naive.get('jobs_per_s'), 1)} jobs/s)",
            r_naive is not None and r_naive >= TARGET_RATIO_NAIVE)
    minimal, off = tp.get("minimal"), tp.get("project_webhook_off")
    if minimal and off:
        r_min = ratio(off.get("jobs_per_s"), minimal.get("jobs_per_s"))
        copy = tp.get("project_webhook_off_copy")
        r_copy = ratio(copy["jobs_per_s"], minimal["jobs_per_s"]) if copy else None
        with_copy = f"; copying outputs (the default) {fmt(r_copy, 3)}" if copy else ""
        add(f"project (webhook off) ≥ {TARGET_RATIO_MINIMAL:g} of the minimal Akool client",
            f"{fmt(r_min, 3)} ({fmt(off.get('jobs_per_s'), 1)} / "
            f"{fmt(minimal.get('jobs_per_s'), 1)} jobs/s{with_copy})",
            r_min is not None and r_min >= TARGET_RATIO_MINIMAL)
    rl_ = results.get("real_latency")
    if rl_ and rl_.get("project"):
        p, nv = rl_["project"], rl_.get("naive") or {}
        setup = (f"{fmt(rl_['latency_s'], 2)} s a call, {rl_['processing_spread_s'][0]:g}–"
                 f"{rl_['processing_spread_s'][1]:g} s processing, 1 process -P {rl_['pool']} "
                 f"-c {rl_['concurrency']}")
        add(f"real latency: ≥ {TARGET_CREATES_PER_S:g} creates/s per worker process ({setup})",
            f"{fmt(p.get('creates_per_s'), 1)}/s, all {p['jobs']:,} created after "
            f"{fmt(p.get('all_created_after_s'), 1)} s; worker CPU "
            f"{fmt(p.get('worker_cpu_ms_per_job'))} ms/job "
            f"(naive {fmt(nv.get('creates_per_s'), 1)}/s, "
            f"{fmt(nv.get('worker_cpu_ms_per_job'))} ms/job)",
            (p.get("creates_per_s") or 0) >= TARGET_CREATES_PER_S)
        add(f"real latency: ≤ {TARGET_REAL_DETAIL_PER_JOB:g} detail calls per job",
            f"{fmt(p['detail_per_job'], 2)} (naive 1 s poll: {fmt(nv.get('detail_per_job'), 2)})",
            p["detail_per_job"] <= TARGET_REAL_DETAIL_PER_JOB)
        bound = rl_["poll_floor_s"] + TARGET_SIGNAL_SLACK_S
        add(f"real latency: remote done → signal p99 ≤ poll floor + {TARGET_SIGNAL_SLACK_S:g} s "
            f"({bound:g} s)",
            f"p99 {fmt(p.get('latency_p99_s'), 2)} s, p50 {fmt(p.get('latency_p50_s'), 2)} s "
            f"(naive: p99 {fmt(nv.get('latency_p99_s'), 2)} s)",
            p.get("latency_p99_s") is not None and p["latency_p99_s"] <= bound)
    slow = results.get("throughput_slow")
    if slow:
        r_slow = ratio(slow["project"].get("capacity_jobs_per_s"),
                       slow["naive"].get("capacity_jobs_per_s"))
        add(f"(supplementary) ≥ {TARGET_RATIO_NAIVE:g}× the naive worker at "
            f"{slow['processing_time_s']:g} s of processing (capacity from CPU per job)",
            f"{fmt(r_slow, 2)}× ({fmt(slow['project'].get('capacity_jobs_per_s'), 0)} / "
            f"{fmt(slow['naive'].get('capacity_jobs_per_s'), 0)} jobs/s)",
            r_slow is not None and r_slow >= TARGET_RATIO_NAIVE)
    pt = results.get("poll_timing", {})
    matched = next((r for r in pt.get("project", []) if r.get("estimate") == "matched"), None)
    pt_naive = pt.get("naive")
    if matched and pt_naive:
        calls = matched.get("detail_per_job")
        lat, lat_naive = matched.get("latency_p50_s"), pt_naive.get("latency_p50_s")
        same_latency = lat is not None and lat_naive is not None and \
            lat <= lat_naive * LATENCY_TOLERANCE
        add(f"≤ {TARGET_DETAIL_PER_JOB} detail calls per job, webhook off, at equal latency",
            f"{fmt(calls, 2)} calls/job at p50 {fmt(lat, 2)} s (naive 1 s poll: "
            f"{fmt(pt_naive.get('detail_per_job'), 2)} calls/job at p50 {fmt(lat_naive, 2)} s)",
            calls is not None and calls <= TARGET_DETAIL_PER_JOB and same_latency)
    sc = results.get("schedule_scale", {})
    srows = sc.get("rows", [])
    if srows:
        last = srows[-1]
        tick = last["tick_full"]
        add(f"beat tick ≤ {TARGET_TICK_MS:g} ms at {last['pending']:,} pending",
            f"p50 {fmt(tick['p50_ms'])} ms, p95 {fmt(tick['p95_ms'])} ms "
            f"({tick['claimed']:.0f} claimed and fanned out)",
            tick["p95_ms"] <= TARGET_TICK_MS)
        first_tick = srows[0]["tick_full"]["p50_ms"]
        growth = tick["p50_ms"] / first_tick if first_tick else None
        add("tick time flat as pending grows",
            f"{fmt(growth, 2)}× from {srows[0]['pending']:,} to {last['pending']:,} pending",
            growth is not None and growth <= 1.5)
        per_job = [row["bytes_per_job"] for row in srows]
        spread = (max(per_job) / min(per_job) - 1) * 100 if min(per_job) else None
        add("Redis memory linear in pending jobs",
            f"{', '.join(fmt(b, 0) for b in per_job)} B/job (spread {fmt(spread, 1)} %)",
            spread is not None and spread <= 10)
        add(f"≤ {TARGET_BYTES_PER_JOB / 1024:g} KB of Redis per pending job",
            f"{fmt(last['bytes_per_job'], 0)} B/job at {last['pending']:,} pending",
            last["bytes_per_job"] <= TARGET_BYTES_PER_JOB)
    add_poll_lag(results.get("poll_lag"), add)
    rl = results.get("rate_limit", {})
    for key, label in (("limiter", "limiter, 4 processes"), ("workers", "4 worker processes")):
        run = rl.get(key)
        if run:
            add(f"global create rate within ±{TARGET_RATE_ERROR_PCT:g} % ({label})",
                f"{fmt(run['achieved_per_s'], 2)}/s for {fmt(run['target_per_s'], 0)}/s "
                f"({run['error_pct']:+.2f} %)",
                abs(run["error_pct"]) <= TARGET_RATE_ERROR_PCT)
    rows.extend(fairness_targets(results.get("fairness", {})))
    meta = results.get("meta", {})
    if meta.get("duration_s") is not None and not meta.get("quick"):
        add("`make bench` under 10 minutes", f"{meta['duration_s'] / 60:.1f} min",
            meta["duration_s"] < 600)
    return rows


def poll_lag_met(lag: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Lag p99 within one tick, and no backlog hiding from it: the oldest member still
    due at the end of the window no more than a tick overdue."""
    tick = float(lag["tick_s"])
    return row.get("lag_p99_s") is not None and row["lag_p99_s"] <= tick and \
        row.get("oldest_overdue_end_s", 0) <= tick


def add_poll_lag(lag: Mapping[str, Any] | None, add: Callable[..., None]) -> None:
    if not lag or "project" not in lag.get("rows", {}):
        return
    row, old = lag["rows"]["project"], lag["rows"].get("old_limits")
    text = (f"p99 {fmt(row['lag_p99_s'])} s, p50 {fmt(row['lag_p50_s'])} s; "
            f"{fmt(row['polls_per_s'], 0)} polls/s of {fmt(row['needed_polls_per_s'], 0)} "
            f"needed; oldest still due {fmt(row['oldest_overdue_end_s'], 1)} s")
    if old:
        text += (f" (old limits: p99 {fmt(old['lag_p99_s'])} s, "
                 f"{fmt(old['polls_per_s'], 0)} polls/s)")
    add(f"poll lag p99 ≤ one tick ({lag['tick_s']:g} s) at {row['pending']:,} pending, "
        f"{lag['latency_s'] * 1000:g} ms per call, {lag['interval_s']:g} s interval",
        text, poll_lag_met(lag, row))
def _wait_text(fig: Mapping[str, Any]) -> str:
    bound = "≥ " if fig.get("median_is_lower_bound") else ""
    return f"{bound}{fmt(fig.get('median_wait_s'), 1)} s"


def _ratio_text(fig: Mapping[str, Any], key: str = "vs_equal_share") -> str:
    bound = "≥ " if fig.get("median_is_lower_bound") else ""
    return f"{bound}{fmt(fig.get(key), 2)}×"


def fairness_targets(fair: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 14's targets: fair share of waits, Jain's index, weights, admission CPU."""
    out: list[dict[str, Any]] = []
    rows = fair.get("rows", {})
    equal, weighted, fifo = rows.get("fair_equal"), rows.get("fair_weighted"), rows.get("fifo")

    def add(target: str, value: str, met: bool) -> None:
        out.append({"target": target, "value": value, "met": met, "note": ""})

    if equal:
        figs = [equal["producers"].get(p, {}) for p in ("b", "c")]
        ratios = [f.get("vs_equal_share") for f in figs]
        baseline = ""
        if fifo:
            baseline = "; FIFO: " + ", ".join(
                f"{p} {_wait_text(fifo['producers'].get(p, {}))}" for p in ("b", "c"))
        add(f"fair admission: b's and c's median wait ≤ {TARGET_FAIR_WAIT_RATIO:g}× what "
            "equal shares give (3 producers backlogged)",
            ", ".join(f"{p} {_wait_text(f)} = {_ratio_text(f)} of "
                      f"{fmt(f.get('equal_share_median_wait_s'), 1)} s"
                      for p, f in zip(("b", "c"), figs, strict=True)) + baseline,
            all(r is not None and r <= TARGET_FAIR_WAIT_RATIO for r in ratios)
            and not any(f.get("median_is_lower_bound") for f in figs))
        jn = equal.get("jain", {})
        base = f"; FIFO: min {fmt(fifo['jain'].get('min'), 3)}" if fifo and fifo.get("jain") \
            else ""
        add(f"Jain's fairness index ≥ {TARGET_JAIN:g} over admission windows while all three "
            "are backlogged (equal weights)",
            f"min {fmt(jn.get('min'), 3)}, mean {fmt(jn.get('mean'), 3)} over "
            f"{jn.get('windows', 0)} windows of {fmt(jn.get('window_s'), 1)} s{base}",
            jn.get("min") is not None and jn["min"] >= TARGET_JAIN)
    if weighted:
        shares = weighted["producers"]
        errors = [shares.get(p, {}).get("share_error_pct") for p in ("a", "b", "c")]
        add(f"weights 2:1:1 give 2:1:1 ± {TARGET_SHARE_ERROR_PCT:g} % of admissions while "
            "backlogged",
            ", ".join(f"{p} {fmt(shares.get(p, {}).get('share'), 3)} "
                      f"({shares.get(p, {}).get('share_error_pct', 0):+.1f} %)"
                      for p in ("a", "b", "c")),
            all(e is not None and abs(e) <= TARGET_SHARE_ERROR_PCT for e in errors))
    cost = fair.get("overhead", {})
    if cost.get("worker_ratio") is not None:
        add(f"admission CPU per job ≤ {TARGET_ADMISSION_CPU_RATIO - 1:.0%} more than FIFO's "
            "(worker processes, cap not binding)",
            f"{fmt(cost['worker_ratio'], 3)}× ({fmt(cost['fair']['worker_cpu_ms_per_job'])} / "
            f"{fmt(cost['fifo']['worker_cpu_ms_per_job'])} ms per job; workers + beat + "
            f"Redis {fmt(cost.get('service_ratio'), 3)}×)",
            cost["worker_ratio"] <= TARGET_ADMISSION_CPU_RATIO)
    return out


# --- rich tables (the console, as the run goes) ---------------------------------------

def throughput_table(tp: Mapping[str, Any]) -> Table:
    t = Table(title="throughput, zero processing time")
    for col in ("scenario", "jobs", "jobs/s", "÷ ceiling", "÷ naive", "create/job",
                "detail/job", "lat p50 s", "lat p99 s", "peak RSS/worker MB",
                "worker CPU ms/job"):
        t.add_column(col, justify="right" if col != "scenario" else "left")
    noop, naive = tp.get("noop", {}), tp.get("naive", {})
    for run in runs(tp).values():
        t.add_row(run["name"], fmt(run["succeeded"]), fmt(run["jobs_per_s"], 1),
                  fmt(ratio(run["jobs_per_s"], noop.get("jobs_per_s")), 3),
                  fmt(ratio(run["jobs_per_s"], naive.get("jobs_per_s")), 2),
                  fmt(run["create_per_job"]), fmt(run["detail_per_job"]),
                  fmt(run["latency_p50_s"], 3), fmt(run["latency_p99_s"], 3),
                  fmt(max(run["peak_rss_mb"].get("worker", [0])), 1),
                  fmt(run["cpu_ms_per_job"].get("worker"), 2))
    return t


def fairness_rows(fair: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """One line per contended row (console and markdown)."""
    out = []
    for row in fair.get("rows", {}).values():
        prods, back, jn = row["producers"], row.get("backlogged") or {}, row.get("jain", {})
        b, c = prods.get("b", {}), prods.get("c", {})
        out.append((row["name"], fmt(back.get("rate_per_s"), 2), fmt(back.get("seconds"), 1),
                    " / ".join(fmt(prods.get(p, {}).get("share"), 3) for p in ("a", "b", "c")),
                    f"{_wait_text(b)} ({_ratio_text(b, 'vs_weighted_share')})",
                    f"{_wait_text(c)} ({_ratio_text(c, 'vs_weighted_share')})",
                    fmt(b.get("weighted_share_median_wait_s"), 1),
                    f"{fmt(jn.get('min'), 3)} / {fmt(jn.get('mean'), 3)}",
                    fmt(back.get("first_admissions_after_s"), 1),
                    fmt((row.get("jain_after_first_admissions") or {}).get("min"), 3),
                    f"{b.get('admitted', 0)} + {c.get('admitted', 0)} of "
                    f"{b.get('jobs', 0) + c.get('jobs', 0)}",
                    fmt((row.get("admitted_to_submitting_s") or {}).get("p90"), 2),
                    fmt(row.get("worker_cpu_ms_per_admitted"), 2),
                    row.get("duplicate_creates")))
    return out


FAIRNESS_HEADER = ("scenario", "admissions/s", "all backlogged s", "share a / b / c",
                   "b median wait (÷ its share's)", "c median wait (÷ its share's)",
                   "b's share: median s", "Jain min / mean",
                   "all admitting after s", "Jain min from then", "b + c admitted",
                   "admitted → submitting p90 s",
                   "worker CPU ms / admitted", "dup creates")


def fairness_table(fair: Mapping[str, Any]) -> Table:
    return simple_table("fair admission (issue 14)", FAIRNESS_HEADER, fairness_rows(fair))


def targets_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    t = Table(title="targets (issues #6, #14, #16)")
    t.add_column("target")
    t.add_column("measured")
    t.add_column("met")
    for row in rows:
        met = "[green]yes[/]" if row["met"] else "[red]NO[/]"
        t.add_row(row["target"], row["value"], met)
    return t


def simple_table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title)
    for col in header:
        t.add_column(col)
    for row in rows:
        t.add_row(*(fmt(v) for v in row))
    return t


def print_section(console: Console, results: Mapping[str, Any], section: str) -> None:
    if section == "throughput":
        console.print(throughput_table(results["throughput"]))
    elif section == "throughput_slow":
        slow = results["throughput_slow"]
        rows = [(r["name"], r["succeeded"], r["detail_per_job"], r["cpu_ms_per_job"].get("worker"),
                 r["service_cpu_ms_per_job"], r["capacity_jobs_per_s"], r["latency_p50_s"])
                for r in (slow["project"], slow["naive"])]
        console.print(simple_table("cost per job with processing time", [
            "scenario", "jobs", "detail/job", "worker CPU ms/job", "service CPU ms/job",
            "capacity jobs/s", "lat p50 s"], rows))
    elif section == "real_latency":
        rl = results["real_latency"]
        rows = [(r["name"], r["succeeded"], r.get("creates_per_s"), r.get("all_created_after_s"),
                 r["detail_per_job"], r["latency_p50_s"], r["latency_p99_s"],
                 r.get("worker_cpu_ms_per_job"), r["seconds"])
                for r in (rl.get("project"), rl.get("naive")) if r]
        console.print(simple_table("real latency", [
            "scenario", "jobs", "creates/s", "all created after s", "detail/job", "lat p50 s",
            "lat p99 s", "worker CPU ms/job", "seconds"], rows))
    elif section == "poll_timing":
        pt = results["poll_timing"]
        rows = [(r["name"], r["processing_time_s"], r["detail_per_job"], r["latency_p50_s"],
                 r["latency_p99_s"]) for r in [*pt.get("project", []), pt.get("naive")] if r]
        console.print(simple_table("poll timing (webhook off)", ["scenario", "processing s",
                                   "detail/job", "lat p50 s", "lat p99 s"], rows))
    elif section == "schedule_scale":
        rows = [(r["pending"], r["bytes_per_job"], r["tick_full"]["p50_ms"],
                 r["tick_full"]["p95_ms"], r["tick_light"]["p50_ms"], r["tick_idle"]["p50_ms"])
                for r in results["schedule_scale"]["rows"]]
        console.print(simple_table("schedule scale", ["pending", "B/job", "full tick p50 ms",
                                   "full tick p95 ms", "light tick ms", "idle tick ms"], rows))
    elif section == "fairness":
        console.print(fairness_table(results["fairness"]))
    elif section == "poll_lag":
        rows = [(r["name"], r["pending"], r["polls_per_s"], r["needed_polls_per_s"],
                 r["lag_p50_s"], r["lag_p99_s"], r["oldest_overdue_end_s"],
                 r["worker_cpu_ms_per_poll"]) for r in results["poll_lag"]["rows"].values()]
        console.print(simple_table("poll lag", ["scenario", "pending", "polls/s", "needed/s",
                                   "lag p50 s", "lag p99 s", "oldest due s",
                                   "worker CPU ms/poll"], rows))
    elif section == "rate_limit":
        rows = [(k, v["target_per_s"], v["achieved_per_s"], v["error_pct"],
                 v.get("max_in_1s_window")) for k, v in results["rate_limit"].items()]
        console.print(simple_table("create rate limit", ["measured on", "target/s",
                                   "achieved/s", "error %", "max in 1 s"], rows))


# --- the PNG ---------------------------------------------------------------------------

def plot(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    tp = runs(results.get("throughput", {}))
    names = [run["name"] for run in tp.values()]
    rates = [run["jobs_per_s"] for run in tp.values()]
    ax = axes[0][0]
    palette = ["#888", "#c66", "#a83", "#4a7", "#396", "#48c"]
    bars = ax.bar(range(len(rates)), rates, color=(palette * 2)[:len(rates)])
    ceiling = tp.get("noop", {}).get("jobs_per_s")
    for bar, rate in zip(bars, rates, strict=True):
        label = f"{rate:.0f}/s" + (f"\n{rate / ceiling:.0%}" if ceiling else "")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    if ceiling:
        ax.axhline(ceiling * TARGET_RATIO_CEILING, ls="--", color="k", lw=0.8)
        ax.text(len(rates) - 0.5, ceiling * TARGET_RATIO_CEILING, "40 % of ceiling",
                fontsize=7, va="bottom", ha="right")
    ax.set_xticks(range(len(names)), [n.replace(", ", "\n") for n in names], fontsize=7)
    ax.set_ylabel("jobs/s (2 cores, zero processing time)")
    ax.set_title("throughput, enqueue to signal")

    ax = axes[0][1]
    pt = results.get("poll_timing", {})
    rows = [r for r in [*pt.get("project", []), pt.get("naive")] if r]
    if rows:
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r["latency_p50_s"] or 0 for r in rows], 0.4, label="p50")
        ax.bar([i + 0.2 for i in x], [r["latency_p99_s"] or 0 for r in rows], 0.4, label="p99")
        for i, r in enumerate(rows):
            ax.annotate(f"{r['detail_per_job']:.2f} calls", (i, (r["latency_p99_s"] or 0)),
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(list(x), [r["name"].replace(", ", "\n") for r in rows], fontsize=6)
        ax.set_ylabel("s from remote completion to signal")
        ax.set_title("poll timing: latency and detail calls per job")
        ax.legend(fontsize=7)

    sc = results.get("schedule_scale", {}).get("rows", [])
    ax = axes[1][0]
    if sc:
        pending = [r["pending"] for r in sc]
        ax.plot(pending, [r["tick_full"]["p50_ms"] for r in sc], "o-", label="full tick p50")
        ax.plot(pending, [r["tick_full"]["p95_ms"] for r in sc], "o--", label="full tick p95")
        ax.plot(pending, [r["tick_light"]["p50_ms"] for r in sc], "s-", label="one batch p50")
        ax.axhline(TARGET_TICK_MS, ls="--", color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("pending remote tasks")
        ax.set_ylabel("ms per beat tick")
        ax.set_title("beat tick (claim + fan-out)")
        ax.legend(fontsize=7)
        ax = axes[1][1]
        ax.plot(pending, [r["bytes_per_job"] for r in sc], "o-", label="measured")
        variant = results.get("schedule_scale", {}).get("listpack_variant")
        if variant:
            ax.plot([variant["pending"]], [variant["bytes_per_job"]], "g^",
                    label=f"hash-max-listpack-value {variant['hash_max_listpack_value']}")
        ax.axhline(TARGET_BYTES_PER_JOB, ls="--", color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("pending remote tasks")
        ax.set_ylabel("bytes of Redis per pending job")
        ax.set_title("Redis memory per pending job")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the markdown ----------------------------------------------------------------------

def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)
