"""A real stack for integration tests: the dev stack (``worker.devstack``) with fast
timings, a signal recorder loaded into every worker, and ways to look at what producers
would see.

Everything runs as its own process, started the way an operator starts it
(``headswap worker|beat|webhook``) and configured only through ``HEADSWAP_*`` variables.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.procs import ROOT
from worker.devstack import stack as devstack
from worker.devstack.procs import Proc
from worker.devstack.redis_server import DATABASES
from worker.devstack.stack import sandbox_env

#: Fast timings for tests: first poll after ~0.3 s, then every 0.3-1 s.
FAST = {
    "HEADSWAP_POLL_TICK_SECONDS": "0.5",
    "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "0.3",
    "HEADSWAP_POLL_MAX_INTERVAL_SECONDS": "1.0",
    "HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND": "0.05",
    "HEADSWAP_POLL_LEASE_SECONDS": "5",
    "HEADSWAP_READ_TIMEOUT": "5",
    "HEADSWAP_CONNECT_TIMEOUT": "2",
    "HEADSWAP_RETRY_BACKOFF_MAX_SECONDS": "2",
    "HEADSWAP_LOG_FORMAT": "json",
    # a copy whose worker was killed is re-sent after 10 + 5 + 10 s (not 915 s)
    "HEADSWAP_STORAGE_ATTEMPT_SECONDS": "10",
}
SIGNAL_RECORDER = "tests.support.signal_recorder"


class Stack(devstack.Stack):
    """The dev stack, run from the project root; workers load the signal recorder."""

    def __init__(self, redis_url: str, env: dict[str, str], workdir: Path) -> None:
        super().__init__({**env, "HEADSWAP_REDIS_URL": redis_url}, workdir, cwd=ROOT)

    def start_worker(self, concurrency: int = 4, name: str | None = None,  # type: ignore[override]
                     include: str = SIGNAL_RECORDER, extra: Sequence[str] = (),
                     queues: str = devstack.DEFAULT_QUEUES) -> Proc:
        return super().start_worker(concurrency, name, ["--include", include, *extra],
                                    queues=queues)

    # --- observing what producers would observe ----------------------------------------
    def queued_messages(self, queue: str) -> list[dict[str, Any]]:
        """Decode the Celery messages waiting in a Redis queue (the callback tasks)."""
        out = []
        for raw in self.redis.lrange(queue, 0, -1):
            envelope = json.loads(raw)
            body = envelope["body"]
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body).decode("utf-8")
            args, kwargs, _embed = json.loads(body)
            out.append({"task": envelope["headers"]["task"], "args": args, "kwargs": kwargs})
        return out

    def recorded_signals(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.redis.lrange("test:signals", 0, -1)]


_next_db = iter(range(1, DATABASES))


def fresh_db_url(redis_url: str) -> str:
    """The same server, a database no other stack of this session uses: stacks that
    overlap (module fixtures) can never consume each other's queues."""
    url, _, query = redis_url.partition("?")  # a sentinel:// URL names its master there
    base = url.rsplit("/", 1)[0]
    db = next(_next_db, None)
    if db is None:
        raise RuntimeError(f"all {DATABASES - 1} test databases are in use; raise DATABASES")
    return f"{base}/{db}" + (f"?{query}" if query else "")


@contextmanager
def running_stack(redis_url: str, sandbox: Any, *, workers: int = 1, beats: int = 1,
                  concurrency: int = 4, extra_env: dict[str, str] | None = None,
                  webhook_port: int | None = None) -> Iterator[Stack]:
    redis_url = fresh_db_url(redis_url)
    env = {
        **FAST,
        **sandbox_env(sandbox),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(extra_env or {}),
    }
    workdir = Path(tempfile.mkdtemp(prefix="headswap-stack-"))
    # The spool and heartbeat file of this stack's own: the defaults live in /tmp, shared
    # with every other stack of the machine (two test processes run at once).
    env.setdefault("HEADSWAP_SPOOL_DIR", str(workdir / "spool"))
    env.setdefault("HEADSWAP_HEARTBEAT_FILE", str(workdir / "heartbeat"))
    # Finished videos are copied here (the local-directory target, the tests' default).
    env.setdefault("HEADSWAP_STORAGE_URL", (workdir / "outputs").as_uri())
    if webhook_port:
        env.setdefault("HEADSWAP_WEBHOOK_PUBLIC_URL", f"http://127.0.0.1:{webhook_port}")
    stack = Stack(redis_url, env, workdir)
    try:
        if webhook_port:
            stack.start_webhook(webhook_port)
        for _ in range(workers):
            stack.start_worker(concurrency=concurrency)
        for _ in range(beats):
            stack.start_beat()
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def producer_for(stack: Stack) -> Any:
    """A Producer configured like the stack (imported late: it reads settings)."""
    from config.settings import load_settings
    from worker.producer import Producer

    return Producer(load_settings(stack.env))


def wait_all_terminal(producer: Any, job_ids: list[str],
                      timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    out = {}
    for job_id in job_ids:
        out[job_id] = producer.wait(job_id, timeout=max(0.1, deadline - time.monotonic()))
    return out
