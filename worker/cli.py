"""``headswap`` — the command line.

``headswap worker`` / ``headswap beat`` wrap the real Celery commands with the project's
settings; ``headswap sandbox`` runs the Akool emulator; ``headswap demo`` is ``make run``;
``headswap status JOB_ID`` prints one job.

Invalid settings (or no Redis server for ``demo``) end any command with one message
naming every bad variable, exit status 2 and no traceback; a Redis that does not answer
(or fails) ends it with one line and exit status 1. The operator commands log
through ``config/logs.py`` like the services (``HEADSWAP_LOG_FORMAT``/``LOG_LEVEL``,
stderr), so what they change (a ``requeue``'s transition) is logged as a worker would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from config.celery import QUEUES
from worker.errors import ConfigError

#: The queues ``headswap worker`` consumes unless ``-Q`` says otherwise.
DEFAULT_QUEUES = ",".join(QUEUES)
#: ``headswap beat``'s schedule file unless ``-s`` says otherwise.
DEFAULT_SCHEDULE = "/tmp/headswap-beat-schedule"  # noqa: S108 (an emptyDir in the pod)
_PASSTHROUGH = ("worker", "beat")
#: Commands that log as the services do; the others set up logging themselves (worker,
#: beat and webhook in their own processes, the sandbox) or keep a terminal to themselves
#: (``demo``'s live view; its worker and beat log to files) or must stay minimal
#: (``healthcheck``, a probe).
_OPERATOR_COMMANDS = ("status", "stats", "watch", "requeue", "fail", "store-lost",
                      "dead-messages")


def headswap_command(*args: str) -> list[str]:
    """``headswap <args>`` as an argv that needs no PATH: this interpreter, the same entry
    point as the console script (``python -m worker.cli``)."""
    return [sys.executable, "-m", "worker.cli", *args]


#: The pool and concurrency of ``headswap worker`` (and the image's default command):
#: chosen from the real-latency benchmark (docs/BENCHMARKS.md, docs/OPERATIONS.md
#: *Pool and concurrency*). The Akool HTTP pool follows the concurrency.
DEFAULT_POOL = "threads"
DEFAULT_CONCURRENCY = 64


def celery_worker_args(app: str, concurrency: int, queues: str,
                       extra: Sequence[str] = ()) -> list[str]:
    """The one Celery worker command line: threads pool, no gossip, no mingle (pods find
    each other through Redis, not through broadcast chatter), then ``extra`` verbatim.

    ``headswap worker`` runs it for ``worker.app``; the benchmark's baseline apps run it
    for theirs, so every measured worker starts alike."""
    return [
        sys.executable, "-m", "celery", "-A", app,
        "worker", "-P", DEFAULT_POOL, "-c", str(concurrency), "-Q", queues,
        "--without-gossip", "--without-mingle", *extra,
    ]  # fmt: skip


def worker_command(concurrency: int = DEFAULT_CONCURRENCY, queues: str = DEFAULT_QUEUES,
                   extra: Sequence[str] = ()) -> list[str]:
    """What ``headswap worker -c N -Q queues [celery args]`` executes."""
    return celery_worker_args("worker.app", concurrency, queues, extra)


def http_pool_env(concurrency: int, env: Mapping[str, str]) -> dict[str, str]:
    """The Akool HTTP pool follows the worker's concurrency: one kept connection per
    thread, so no thread opens (and drops) a connection of its own. An explicit
    ``HEADSWAP_HTTP_POOL_SIZE`` wins."""
    if "HEADSWAP_HTTP_POOL_SIZE" in env:
        return {}
    return {"HEADSWAP_HTTP_POOL_SIZE": str(concurrency)}


def beat_command(schedule: str = DEFAULT_SCHEDULE, extra: Sequence[str] = ()) -> list[str]:
    """What ``headswap beat -s file [celery args]`` executes."""
    return [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "-s", schedule,
            *extra]


def cmd_worker(args: argparse.Namespace) -> int:
    from config.settings import get_settings
    from worker import ops

    refusal = ops.eviction_refusal(get_settings())
    if refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return 2
    command = worker_command(args.concurrency, args.queues, args.celery_args)
    os.environ.update(http_pool_env(args.concurrency, os.environ))
    os.execv(command[0], command)  # noqa: S606 (fixed argv, no shell)
    return 0  # pragma: no cover


def cmd_beat(args: argparse.Namespace) -> int:
    from config.settings import get_settings

    get_settings()  # a settings error is said here, not as a traceback inside Celery
    command = beat_command(args.schedule, args.celery_args)
    os.execv(command[0], command)  # noqa: S606 (fixed argv, no shell)
    return 0  # pragma: no cover


def cmd_status(args: argparse.Namespace) -> int:
    from worker.producer import Producer

    record = Producer().get(args.job_id)
    if record is None:
        print(f"no job {args.job_id}", file=sys.stderr)
        return 1
    from config.settings import get_settings, redact_urls
    from worker.ops import stored_copy

    stored = stored_copy(get_settings(), record)
    if stored is not None:
        record["stored"] = stored
    # The record keeps the real URLs (delivery needs them); a terminal never shows them.
    print(json.dumps(redact_urls(record), indent=2, sort_keys=True, default=str))
    return 0


def metrics_dir_for_processes(env: MutableMapping[str, str] = os.environ) -> str:
    """The receiver's processes share their Prometheus counters through files
    (prometheus-client's multiprocess mode), which must be chosen before prometheus-client
    is first imported and be empty at start: ``PROMETHEUS_MULTIPROC_DIR`` if set (its old
    ``*.db`` files are removed), else a fresh directory removed at exit."""
    path = env.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
        return path
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="headswap-webhook-metrics-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def cmd_webhook(args: argparse.Namespace) -> int:
    metrics_dir_for_processes()  # before worker.webhook imports prometheus-client
    from worker.webhook import serve

    serve(args.host, args.port)
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from worker.health import check

    ok, message = check(args.max_age, ready=args.ready)
    print(message)
    return 0 if ok else 1


def _runtime() -> Any:
    from config.settings import get_settings
    from worker.dispatch import CeleryDispatcher, sender_app
    from worker.runtime import Runtime

    settings = get_settings()
    return Runtime(settings, CeleryDispatcher(sender_app(settings, "headswap-cli")))


def cmd_stats(args: argparse.Namespace) -> int:
    from worker import ops

    figures = ops.stats(_runtime(), window=args.window)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
        return 0
    from rich.console import Console

    console = Console()
    console.print(_stats_table(figures))
    if figures["producers"]:
        console.print(_producers_table(figures["producers"]))
    return 0


def _producers_table(producers: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="producers (today, UTC)")
    for name in ("producer", "waiting", "admitted", "in flight", "weight", "own cap",
                 "jobs", "credits", "budget"):  # fmt: skip
        table.add_column(name, justify="left" if name == "producer" else "right")
    for name, p in producers.items():
        budget = f"{p['daily_budget']:g}" if p["daily_budget"] else "-"
        if p["budget_held"]:
            budget = f"[red]{budget} held[/red]"
        table.add_row(name, str(p["waiting"]), str(p["admitted"]), str(p["in_flight"]),
                      f"{p['weight']:g}", str(p["max_in_flight"] or "-"),
                      str(p["jobs_today"]), f"{p['credits_today']:g}", budget)  # fmt: skip
    return table


def cmd_costs(args: argparse.Namespace) -> int:
    from worker import ledger

    fields, now = _runtime().store.ledger()
    rows = ledger.costs(fields, now, days=args.days, producer=args.producer)
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"credits charged, last {args.days} day(s), UTC")
    for name in ("day", "producer", "jobs", "credits", "budget held at"):
        table.add_column(name, justify="left" if name in ("day", "producer") else "right")
    for row in rows:
        held = ledger_time(row.held_at) if row.held_at else ""
        table.add_row(row.day, row.producer, str(row.jobs), f"{row.credits:g}", held)
    totals: dict[str, tuple[int, float]] = {}
    for row in rows:
        jobs, credits = totals.get(row.producer, (0, 0.0))
        totals[row.producer] = (jobs + row.jobs, credits + row.credits)
    for producer, (jobs, credits) in sorted(totals.items()):
        table.add_row("[bold]total[/bold]", producer, str(jobs), f"{credits:g}", "")
    Console().print(table)
    return 0


def ledger_time(at: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M:%S")


def _stats_table(figures: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"headswap stats (last {figures['window_s']:.0f} s)")
    table.add_column("what")
    table.add_column("value", justify="right")
    for queue, depth in figures["queues"].items():
        table.add_row(f"queue {queue}", str(depth))
    for key in ("queued", "submitting", "in_flight", "pending_polls", "ambiguous",
                "notify_pending", "oldest_in_flight_s", "credits_paused_until",
                "dead_messages"):  # fmt: skip
        table.add_row(key.replace("_", " "), str(figures[key]))
    for state, rate in figures["per_minute"].items():
        table.add_row(f"{state} per minute", str(rate))
    for reason, count in figures["failed_by_reason"].items():
        table.add_row(f"failed: {reason}", str(count))
    for risk, text in figures.get("redis_risks", {}).items():
        table.add_row(f"[red]redis {risk} risk[/red]", text)
    table.add_row("admission", f"{figures['admission']} "
                  f"({figures['waiting_for_admission']} waiting, "
                  f"{figures['admission_rate_per_s']}/s admitted)")
    if figures.get("misrouted_waiting") or figures.get("misrouted_moved"):
        table.add_row("[yellow]sent without queue= (in 'celery' now / moved)[/yellow]",
                      f"{figures['misrouted_waiting']} / {figures['misrouted_moved']}")
        table.add_row("", "fix the producer: send_task(..., queue='headswap.submit')")
    return table


def cmd_watch(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console
    from rich.live import Live

    from worker import ops

    rt = _runtime()
    deadline = time.monotonic() + args.seconds if args.seconds else None
    with Live(console=Console(), refresh_per_second=2) as live:
        while deadline is None or time.monotonic() < deadline:
            live.update(_stats_table(ops.stats(rt, window=args.window)))
            time.sleep(args.interval)
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    from worker import ops
    from worker.errors import HeadswapError

    try:
        print(ops.requeue(_runtime(), args.job_id, force=args.force))
    except HeadswapError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_fail(args: argparse.Namespace) -> int:
    from worker import ops
    from worker.errors import HeadswapError

    try:
        print(ops.fail(_runtime(), args.job_id, args.reason))
    except HeadswapError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_store_lost(args: argparse.Namespace) -> int:
    from worker import ops

    rt = _runtime()
    if args.ack:
        print(ops.ack_store_lost(rt))
        return 0
    reason = ops.store_lost(rt)
    print(f"creates held: {reason}" if reason else "creates are not held")
    return 1 if reason else 0


def cmd_dead_messages(args: argparse.Namespace) -> int:
    from config.settings import get_settings
    from worker import ops
    from worker.errors import HeadswapError
    from worker.store import open_dead_messages

    dead = open_dead_messages(get_settings())
    if args.requeue or args.delete:
        try:
            print(ops.requeue_dead_message(dead, args.requeue) if args.requeue
                  else ops.delete_dead_message(dead, args.delete))
        except HeadswapError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        return 0
    entries = ops.dead_messages(dead, limit=args.limit)
    if args.json:
        print(json.dumps(entries, sort_keys=True))
        return 0
    from rich.console import Console

    Console().print(_dead_table(entries))
    return 0


def _dead_table(entries: list[dict[str, Any]]) -> Any:
    from datetime import UTC, datetime

    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"headswap dead-messages ({len(entries)} shown, oldest first)")
    for column in ("id", "time (UTC)", "queue", "reason", "size", "preview"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        at = datetime.fromtimestamp(e["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        size = f"{e['size']}" + (" (cut)" if e["truncated"] else "")
        table.add_row(e["id"], at, e["queue"], e["reason"], size, escape(e["preview"]))
    return table


def cmd_demo(args: argparse.Namespace) -> int:
    from config.settings import get_settings
    from worker.demo import run_demo

    get_settings()  # before anything starts: the worker and beat would refuse them too

    return run_demo(jobs=args.jobs, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headswap", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from worker.sandbox import cli as sandbox_cli

    sandbox_cli.add_parser(sub)

    w = sub.add_parser("worker", allow_abbrev=False,
                       help="run a Celery worker (threads pool, all queues)",
                       epilog="Any other option goes to `celery worker` verbatim "
                              "(--include, -l, -n, --autoscale, ...).")  # fmt: skip
    w.add_argument("-c", "--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    w.add_argument("-Q", "--queues", default=DEFAULT_QUEUES)
    w.set_defaults(handler=cmd_worker)

    b = sub.add_parser("beat", allow_abbrev=False,
                       help="run Celery beat (one replica is enough; two do no harm)",
                       epilog="Any other option goes to `celery beat` verbatim.")
    b.add_argument("-s", "--schedule", default=DEFAULT_SCHEDULE)
    b.set_defaults(handler=cmd_beat)

    s = sub.add_parser("status", help="print one job's record as JSON (URLs redacted)")
    s.add_argument("job_id")
    s.set_defaults(handler=cmd_status)

    h = sub.add_parser("webhook", help="run the Akool webhook receiver (WSGI)")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, default=8080)
    h.set_defaults(handler=cmd_webhook)

    hc = sub.add_parser("healthcheck", help="exit 0 while the worker heartbeat is fresh")
    hc.add_argument("--max-age", type=float, default=60.0)
    hc.add_argument("--ready", action="store_true",
                    help="readiness: also fail while the worker waits for Redis")
    hc.set_defaults(handler=cmd_healthcheck)

    st = sub.add_parser("stats", help="queue depths, schedules, rates and failures")
    st.add_argument("--window", type=float, default=300.0, help="seconds of events to count")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=cmd_stats)
    co = sub.add_parser("costs", help="credits Akool charged, per producer and UTC day")
    co.add_argument("--producer", help="only this producer")
    co.add_argument("--days", type=int, default=7, help="days back, today included")
    co.add_argument("--json", action="store_true")
    co.set_defaults(handler=cmd_costs)

    wa = sub.add_parser("watch", help="live view of jobs by state (Ctrl-C to stop)")
    wa.add_argument("--window", type=float, default=60.0)
    wa.add_argument("--interval", type=float, default=1.0)
    wa.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = never)")
    wa.set_defaults(handler=cmd_watch)

    rq = sub.add_parser("requeue", help="send a stuck job through submission again")
    rq.add_argument("job_id")
    rq.add_argument(
        "--force",
        action="store_true",
        help="also for a job in submitting: you assert Akool has no task for it",
    )
    rq.set_defaults(handler=cmd_requeue)

    fa = sub.add_parser("fail", help="fail a non-terminal job by hand")
    fa.add_argument("job_id")
    fa.add_argument("--reason", required=True)
    fa.set_defaults(handler=cmd_fail)

    sl = sub.add_parser("store-lost", help="whether creates are held because Redis lost "
                        "our data; --ack resumes them (reconcile against Akool first)")
    sl.add_argument("--ack", action="store_true")
    sl.set_defaults(handler=cmd_store_lost)

    dm = sub.add_parser("dead-messages",
                        help="queue entries no worker could take; --requeue one after a fix")
    once = dm.add_mutually_exclusive_group()
    once.add_argument("--requeue", metavar="ID", help="push this entry's bytes back on its queue")
    once.add_argument("--delete", metavar="ID", help="forget this entry")
    dm.add_argument("--limit", type=int, default=100, help="entries to list (oldest first)")
    dm.add_argument("--json", action="store_true")
    dm.set_defaults(handler=cmd_dead_messages)

    d = sub.add_parser("demo", help="start everything locally, run demo jobs, print a summary")
    d.add_argument("--jobs", type=int, default=12, help="number of valid demo jobs")
    d.add_argument("--timeout", type=float, default=180.0)
    d.set_defaults(handler=cmd_demo)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; for ``worker`` and ``beat`` every option we do not define is
    Celery's and lands, verbatim and in order, in ``celery_args``."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command in _PASSTHROUGH:
        # A ``--`` (the usual "options end here") is ours to drop, not a literal for Celery.
        if "--" in unknown:
            unknown.remove("--")
        args.celery_args = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    handler: Any = args.handler
    try:
        if args.command in _OPERATOR_COMMANDS:
            from config.logs import setup_logging
            from config.settings import get_settings

            setup_logging(get_settings())
        return int(handler(args) or 0)
    except ConfigError as exc:
        print(f"headswap {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from worker.store import StoreError

        if not isinstance(exc, StoreError):
            raise
        # redis-py names host and port, never the password.
        print(f"headswap {args.command}: Redis failed ({type(exc).__name__}: {exc}); "
              "is HEADSWAP_REDIS_URL right and the server up?", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
