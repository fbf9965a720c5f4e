"""A real stack for integration tests: redis-server, the sandbox, celery workers and beat.

Everything runs as its own process, configured only through ``HEADSWAP_*`` variables,
the way an operator runs it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from tests.support.procs import ROOT, port_open, spawn, stop, wait_until

CELERY = [sys.executable, "-m", "celery", "-A", "worker.app"]
QUEUES = "headswap.submit,headswap.poll,headswap.notify"

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
}


class Stack:
    """Processes sharing one Redis and one sandbox; ``env`` is what they all see."""

    def __init__(self, redis_url: str, env: dict[str, str], workdir: Path) -> None:
        self.redis_url = redis_url
        self.env = env
        self.workdir = workdir
        self.workers: list[subprocess.Popen[bytes]] = []
        self.beats: list[subprocess.Popen[bytes]] = []
        ca_file = env.get("HEADSWAP_REDIS_CA_FILE")
        tls = {"ssl_ca_certs": ca_file} if ca_file else {}
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True, **tls)

    def start_worker(self, concurrency: int = 4, name: str | None = None,
                     include: str = "tests.support.signal_recorder") -> subprocess.Popen[bytes]:
        index = len(self.workers)
        args = [*CELERY, "worker", "-P", "threads", "-c", str(concurrency), "-Q", QUEUES,
                "-n", name or f"w{index}@%h", "--without-gossip", "--without-mingle",
                "--loglevel", "INFO", "--include", include]
        proc = spawn(args, env=self.env, log=self.workdir / f"worker{index}.log")
        self.workers.append(proc)
        return proc

    def start_beat(self) -> subprocess.Popen[bytes]:
        index = len(self.beats)
        schedule = self.workdir / f"beat{index}-schedule"
        args = [*CELERY, "beat", "-s", str(schedule), "--loglevel", "INFO",
                "--pidfile", str(self.workdir / f"beat{index}.pid")]
        proc = spawn(args, env=self.env, log=self.workdir / f"beat{index}.log")
        self.beats.append(proc)
        return proc

    def start_webhook(self, port: int) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "worker.cli", "webhook", "--host", "127.0.0.1",
                "--port", str(port)]
        proc = spawn(args, env=self.env, log=self.workdir / "webhook.log")
        self.beats.append(proc)  # stopped with the rest
        wait_until(lambda: port_open(port), 20, what="webhook receiver")
        return proc

    def wait_ready(self, timeout: float = 30) -> None:
        """Until every worker consumes (its queue bindings exist in Redis)."""
        def ready() -> bool:
            for proc in self.workers:
                if proc.poll() is not None and proc.returncode != 0:  # 0: stopped on purpose
                    raise RuntimeError(f"worker exited {proc.returncode}: {self.logs()[-3000:]}")
            text = self.logs()
            return text.count("ready.") >= len(self.workers)
        wait_until(ready, timeout, what="celery workers ready")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))

    def stop(self) -> None:
        for proc in self.workers + self.beats:
            stop(proc, signal.SIGTERM, timeout=20)
        self.redis.close()

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


_next_db = iter(range(1, 16))


def fresh_db_url(redis_url: str) -> str:
    """The same server, a database no other stack of this session uses: stacks that
    overlap (module fixtures) can never consume each other's queues."""
    base = redis_url.rsplit("/", 1)[0]
    return f"{base}/{next(_next_db)}"


@contextmanager
def running_stack(redis_url: str, sandbox: Any, *, workers: int = 1, beats: int = 1,
                  concurrency: int = 4, extra_env: dict[str, str] | None = None,
                  webhook_port: int | None = None) -> Iterator[Stack]:
    redis_url = fresh_db_url(redis_url)
    env = {
        **FAST,
        "HEADSWAP_REDIS_URL": redis_url,
        "HEADSWAP_AKOOL_BASE_URL": sandbox.url,
        "HEADSWAP_AKOOL_API_KEY": sandbox.api_key,
        "HEADSWAP_AKOOL_CLIENT_ID": getattr(sandbox, "client_id", None) or "",
        "HEADSWAP_AKOOL_CLIENT_SECRET": getattr(sandbox, "client_secret", None) or "",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(extra_env or {}),
    }
    workdir = Path(tempfile.mkdtemp(prefix="headswap-stack-"))
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
