"""Processes of one benchmark scenario, started the way an operator starts them.

Workers run the project's own ``headswap worker`` command line (threads pool, no gossip,
no mingle, Celery's default log level), beat is ``celery beat``, the webhook receiver is
``headswap webhook``. Readiness comes from Celery's ``worker_ready`` signal (recorded in
Redis by :mod:`bench.signal_probe`), not from log lines, so workers keep the production
log level.

:class:`Sampler` watches the processes while a scenario runs: peak RSS of each and CPU
seconds by role, plus the CPU the rest of the machine used meanwhile (a noisy neighbour
shows up there instead of silently lowering the figures).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from tests.support.procs import ROOT, port_open, spawn, stop, wait_until

READY_KEY = "bench:ready"


def celery_worker_args(app: str, queues: str, concurrency: int, name: str,
                       include: str = "bench.signal_probe") -> list[str]:
    """``headswap worker`` (``worker.cli.worker_command``) for any Celery app module."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", "-P", "threads",
            "-c", str(concurrency), "-Q", queues, "--without-gossip", "--without-mingle",
            "-n", name, "--include", include]


@dataclass
class Cluster:
    """The processes of one scenario; ``env`` is what they all see."""

    redis_url: str
    env: dict[str, str]
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    others: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_workers(self, app: str, queues: str, count: int, concurrency: int) -> None:
        r = redis.Redis.from_url(self.redis_url)
        r.delete(READY_KEY)
        for index in range(count):
            args = celery_worker_args(app, queues, concurrency, f"bench{index}@%h")
            self.workers.append(spawn(args, env=self.env,
                                      log=self.workdir / f"worker{index}.log"))
        def ready() -> bool:
            for proc in self.workers:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited {proc.returncode}:\n{self.logs()[-3000:]}")
            return int(r.scard(READY_KEY)) >= len(self.workers)
        wait_until(ready, 60, interval=0.05, what="celery workers ready")
        r.close()

    def start_beat(self) -> None:
        schedule = self.workdir / "beat-schedule"
        args = [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "-s", str(schedule),
                "--pidfile", str(self.workdir / "beat.pid")]
        self.others["beat"] = spawn(args, env=self.env, log=self.workdir / "beat.log")

    def start_webhook(self, port: int) -> None:
        args = [sys.executable, "-m", "bench.signal_probe", "webhook", "--host", "127.0.0.1",
                "--port", str(port)]
        self.others["webhook"] = spawn(args, env=self.env, log=self.workdir / "webhook.log")
        wait_until(lambda: port_open(port), 30, what="webhook receiver")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))

    def stop(self) -> None:
        procs = [*self.workers, *self.others.values()]
        for proc in procs:  # all at once: a warm shutdown takes a second or two each
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            stop(proc, signal.SIGTERM, timeout=20)
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def base_env(redis_url: str, sandbox: Any | None, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "HEADSWAP_REDIS_URL": redis_url,
        "HEADSWAP_AKOOL_BASE_URL": sandbox.url if sandbox else "http://127.0.0.1:9",
        "HEADSWAP_AKOOL_API_KEY": sandbox.api_key if sandbox else "unused",
        "HEADSWAP_AKOOL_CLIENT_ID": (sandbox.client_id or "") if sandbox else "",
        "HEADSWAP_AKOOL_CLIENT_SECRET": (sandbox.client_secret or "") if sandbox else "",
        "HEADSWAP_HEARTBEAT_FILE": str(Path(tempfile.gettempdir()) / "bench-heartbeat"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    env.update(extra)
    return env


def cpu_seconds(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


class Sampler:
    """Peak RSS per process and CPU seconds per role while a scenario runs.

    ``roles`` maps a role ("worker", "sandbox", ...) to the pids playing it.
    """

    def __init__(self, roles: Mapping[str, Iterable[int]], interval: float = 0.25) -> None:
        self.procs: dict[str, list[psutil.Process]] = {
            role: [psutil.Process(pid) for pid in pids] for role, pids in roles.items()
        }
        self.interval = interval
        self.peak_rss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu0: dict[str, float] = {}
        self._sys0 = 0.0
        self.cpu: dict[str, float] = {}
        self.other_cpu = 0.0
        self.wall = 0.0
        self._t0 = 0.0

    def _all(self) -> list[psutil.Process]:
        return [p for procs in self.procs.values() for p in procs]

    def _sample(self) -> None:
        for proc in self._all():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            self.peak_rss[proc.pid] = max(self.peak_rss.get(proc.pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _role_cpu(self) -> dict[str, float]:
        return {role: sum(cpu_seconds(p) for p in procs) for role, procs in self.procs.items()}

    @staticmethod
    def _system_busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0)
                     + getattr(t, "softirq", 0.0))

    def __enter__(self) -> Sampler:
        self._cpu0 = self._role_cpu()
        self._sys0 = self._system_busy()
        self._t0 = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.wall = time.perf_counter() - self._t0
        cpu1 = self._role_cpu()
        self.cpu = {role: cpu1[role] - self._cpu0.get(role, 0.0) for role in cpu1}
        busy = self._system_busy() - self._sys0
        self.other_cpu = max(0.0, busy - sum(self.cpu.values()))

    def peak_rss_mb(self, role: str) -> list[float]:
        return [round(self.peak_rss.get(p.pid, 0) / 2**20, 1) for p in self.procs.get(role, [])]
