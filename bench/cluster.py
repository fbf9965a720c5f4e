"""Processes of one benchmark scenario: the dev stack (``worker.devstack``), started the
way an operator starts them.

Workers of this project are ``headswap worker``, beat is ``headswap beat``, the webhook
receiver is ``headswap webhook`` (through :mod:`bench.signal_probe`, which loads the probe
first). The baseline apps (no-op, naive) run the same worker command line
(``worker.cli.celery_worker_args``) for their own Celery app. Readiness is the stack's one
probe: the presence record each worker writes on Celery's ``worker_ready``
(:mod:`worker.presence`), so workers keep the production log level.

:class:`Sampler` watches the processes while a scenario runs: peak RSS of each and CPU
seconds by role, plus the CPU the rest of the machine used meanwhile (a noisy neighbour
shows up there instead of silently lowering the figures).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil

from worker.cli import http_pool_env
from worker.devstack.stack import Stack, sandbox_env

#: The project root: child processes import ``bench.*`` from here.
ROOT = Path(__file__).resolve().parents[1]
PROBE = "bench.signal_probe"


class Cluster(Stack):
    """The processes of one scenario; ``env`` is what they all see (the caller's dict
    itself: a variable set on it before a process starts reaches that process)."""

    def __init__(self, redis_url: str, env: dict[str, str]) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        # The default output copy (a local directory), one of its own per scenario: gone
        # with the scenario, never shared with other runs on the machine.
        env.setdefault("HEADSWAP_STORAGE_URL", (workdir / "outputs").as_uri())
        super().__init__({**env, "HEADSWAP_REDIS_URL": redis_url}, workdir, cwd=ROOT)
        env["HEADSWAP_REDIS_URL"] = redis_url
        self.env = env
        self.others: dict[str, Any] = {}

    def start_workers(self, app: str, queues: str, count: int, concurrency: int) -> None:
        if app != "worker.app":  # `headswap worker` sizes its HTTP pool itself
            self.env.update(http_pool_env(concurrency, self.env))
        for index in range(count):
            self.start_worker(concurrency, f"bench{index}@%h", ["--include", PROBE],
                              queues=queues, app=app)
        self.wait_ready(60)

    def start_beat(self) -> Any:  # type: ignore[override]
        self.others["beat"] = super().start_beat()
        return self.others["beat"]

    def start_webhook(self, port: int) -> Any:  # type: ignore[override]
        self.others["webhook"] = super().start_webhook(port, entry=PROBE)
        return self.others["webhook"]

    def stop(self) -> None:
        super().stop()
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def base_env(redis_url: str, sandbox: Any | None, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "HEADSWAP_REDIS_URL": redis_url,
        **(sandbox_env(sandbox) if sandbox else {"HEADSWAP_AKOOL_BASE_URL": "http://127.0.0.1:9",
                                                 "HEADSWAP_AKOOL_API_KEY": "unused"}),
        "HEADSWAP_HEARTBEAT_FILE": str(Path(tempfile.gettempdir()) / "bench-heartbeat"),
        # What Celery left the workers at before its logging honoured ours: figures stay
        # comparable with earlier runs (the production default is INFO).
        "HEADSWAP_LOG_LEVEL": "WARNING",
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
