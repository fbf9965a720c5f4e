"""``make chaos``: run the fault suite, print a table and one final JSON line.

Exit 1 when any scenario lost a job or created one twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from tests.chaos.harness import run_scenario, scenarios, violations


def table(results: list[dict[str, Any]]) -> Table:
    t = Table(title="headswap chaos suite")
    for col in ("scenario", "jobs", "succeeded", "failed (by reason)", "lost", "dup creates",
                "paid but failed", "terminal", "in flight at fault", "p50 s", "p99 s",
                "elapsed s", "exits / restarts", "row figures"):
        t.add_column(col)
    for r in results:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(r["failed_by_reason"].items())) or "0"
        bad = r["lost"] or r["duplicate_creates"]
        style = "red" if bad else "green"
        missed = "red" if r.get("target_misses") else "green"
        t.add_row(r["scenario"], str(r["jobs"]), str(r["succeeded"]),
                  f"{r['failed']} ({reasons})" if r["failed"] else "0",
                  f"[{style}]{r['lost']}[/]", f"[{style}]{r['duplicate_creates']}[/]",
                  f"[{missed}]{r['paid_but_failed']}[/]", str(r["terminal"]),
                  str(r.get("creates_in_flight_at_fault", "-")),
                  str(r["p50_s"]), str(r["p99_s"]), str(r["elapsed_s"]),
                  f"{r.get('worker_exits', 0)} / {r.get('supervisor_restarts', 0)}",
                  row_figures(r))
    return t


def row_figures(result: dict[str, Any]) -> str:
    """The row's own figures (detection, alarm, probes), then any target it missed."""
    text = ", ".join(f"{k}={v}" for k, v in result.get("figures", {}).items()
                     if k not in ("refusal", "ack"))
    misses = "; ".join(result.get("target_misses", []))
    return text + (f" [red]MISSED: {misses}[/]" if misses else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short version run by make test")
    parser.add_argument("--only", default="", help="substring of scenario names to run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    console = Console(width=220)
    results = []
    for sc in scenarios(short=args.short):
        if args.only and args.only not in sc.name:
            continue
        console.print(f"[bold]running[/] {sc.name}: {sc.jobs} jobs, {sc.workers} workers")
        result = run_scenario(sc, seed=args.seed)
        results.append(result)
        console.print(table([result]))
        if "poison" in result:
            console.print(f"  poison: {result['poison']} bad entries, {result['dead_messages']} "
                          f"kept (as expected: {result['dead_as_expected']}), worker exits "
                          f"{result['worker_exits']}, left in queues {result['queues_left']}")
        for item in result["ambiguous_explained"][:5]:
            console.print(f"  ambiguous {item['job_id']}: {item['cause']} -> {item['explanation']}")
        if len(result["ambiguous_explained"]) > 5:
            console.print(f"  ... {len(result['ambiguous_explained']) - 5} more (in the JSON)")
    console.print(table(results))
    problems = {r["scenario"]: violations(r) for r in results if violations(r)}
    summary = {"results": results, "violations": problems, "ok": not problems}
    print(json.dumps(summary, default=str))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
