"""``headswap`` — the command line.

``headswap worker`` / ``headswap beat`` wrap the real Celery commands with the project's
settings; ``headswap sandbox`` runs the Akool emulator; ``headswap demo`` is ``make run``;
``headswap status JOB_ID`` prints one job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

QUEUES = "headswap.submit,headswap.poll,headswap.notify"


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.app", *args]


def worker_command(concurrency: int, queues: str, extra: Sequence[str]) -> list[str]:
    return _celery(
        "worker", "-P", "threads", "-c", str(concurrency), "-Q", queues,
        "--without-gossip", "--without-mingle", *extra,
    )  # fmt: skip


def cmd_worker(args: argparse.Namespace) -> int:
    command = worker_command(args.concurrency, args.queues, args.celery_args)
    os.execv(command[0], command)  # noqa: S606 (fixed argv, no shell)
    return 0  # pragma: no cover


def cmd_beat(args: argparse.Namespace) -> int:
    command = _celery("beat", "-s", args.schedule, *args.celery_args)
    os.execv(command[0], command)  # noqa: S606 (fixed argv, no shell)
    return 0  # pragma: no cover


def cmd_status(args: argparse.Namespace) -> int:
    from worker.producer import Producer

    record = Producer().get(args.job_id)
    if record is None:
        print(f"no job {args.job_id}", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=2, sort_keys=True, default=str))
    return 0


def cmd_webhook(args: argparse.Namespace) -> int:
    from worker.webhook import serve

    serve(args.host, args.port)
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from worker.health import check

    ok, message = check(args.max_age)
    print(message)
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo(jobs=args.jobs, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headswap", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from worker.sandbox import cli as sandbox_cli

    sandbox_cli.add_parser(sub)

    w = sub.add_parser("worker", help="run a Celery worker (threads pool, all queues)")
    w.add_argument("-c", "--concurrency", type=int, default=8)
    w.add_argument("-Q", "--queues", default=QUEUES)
    w.add_argument("celery_args", nargs=argparse.REMAINDER, help="passed to celery worker")
    w.set_defaults(handler=cmd_worker)

    b = sub.add_parser("beat", help="run Celery beat (one replica is enough; two do no harm)")
    b.add_argument("-s", "--schedule", default="/tmp/headswap-beat-schedule")  # noqa: S108
    b.add_argument("celery_args", nargs=argparse.REMAINDER, help="passed to celery beat")
    b.set_defaults(handler=cmd_beat)

    s = sub.add_parser("status", help="print one job's record as JSON")
    s.add_argument("job_id")
    s.set_defaults(handler=cmd_status)

    h = sub.add_parser("webhook", help="run the Akool webhook receiver (WSGI)")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, default=8080)
    h.set_defaults(handler=cmd_webhook)

    hc = sub.add_parser("healthcheck", help="exit 0 while the worker heartbeat is fresh")
    hc.add_argument("--max-age", type=float, default=60.0)
    hc.set_defaults(handler=cmd_healthcheck)

    d = sub.add_parser("demo", help="start everything locally, run demo jobs, print a summary")
    d.add_argument("--jobs", type=int, default=12, help="number of valid demo jobs")
    d.add_argument("--timeout", type=float, default=180.0)
    d.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Any = args.handler
    return int(handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
