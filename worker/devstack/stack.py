"""A stack of the product's own processes on one Redis: workers, beat, webhook receiver.

Each process is started with the command an operator runs (``headswap worker``,
``headswap beat``, ``headswap webhook``), configured only through ``HEADSWAP_*``
variables. :meth:`Stack.wait_ready` is the one readiness probe: a worker is ready when
its own presence record (:mod:`worker.store.presence`, written on Celery's ``worker_ready``)
names its pid; a webhook receiver when ``GET /healthz`` answers 200.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from celery.utils.nodenames import default_nodename, host_format

from config.settings import load_settings
from worker.cli import DEFAULT_QUEUES, celery_worker_args, headswap_command
from worker.devstack.procs import Proc, spawn, stop_all, wait_until
from worker.store import presence, redis_client


def sandbox_env(sandbox: Any) -> dict[str, str]:
    """The ``HEADSWAP_AKOOL_*`` variables that point a worker at a running sandbox."""
    return {
        "HEADSWAP_AKOOL_BASE_URL": sandbox.url,
        "HEADSWAP_AKOOL_API_KEY": sandbox.api_key,
        "HEADSWAP_AKOOL_CLIENT_ID": getattr(sandbox, "client_id", None) or "",
        "HEADSWAP_AKOOL_CLIENT_SECRET": getattr(sandbox, "client_secret", None) or "",
    }


def http_ok(url: str) -> bool:
    # S310: a loopback URL the stack built itself.
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
        return bool(resp.status == 200)
    return False


class Stack:
    """Processes sharing one Redis; ``env`` (laid over ``os.environ``) is what they all see.

    ``workdir`` holds one log file per process; ``cwd`` is where they run.
    """

    def __init__(self, env: Mapping[str, str], workdir: Path | None = None,
                 cwd: Path | None = None) -> None:
        self.env = dict(env)
        self.redis_url = self.env["HEADSWAP_REDIS_URL"]
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="headswap-stack-"))
        self.cwd = cwd
        self.workers: list[Proc] = []
        self.beats: list[Proc] = []
        self.webhooks: list[Proc] = []
        self._hostnames: dict[int, str] = {}
        self._healthz: dict[int, str] = {}
        settings = load_settings(self.env)
        self.key_prefix = settings.key_prefix
        self.redis = redis_client(settings)

    def _spawn(self, args: Sequence[str], log_name: str) -> Proc:
        return spawn(args, env=self.env, log=self.workdir / f"{log_name}.log", cwd=self.cwd)

    def start_worker(self, concurrency: int = 4, name: str | None = None,
                     extra: Sequence[str] = (), queues: str = DEFAULT_QUEUES,
                     app: str = "worker.app") -> Proc:
        """``headswap worker -c N -Q queues -n name [extra]``; for another Celery ``app``
        (the benchmark's baselines) the same command line through ``celery -A app``."""
        index = len(self.workers)
        name = name or f"w{index}@%h"
        celery_args = ["-n", name, *extra]
        if app == "worker.app":
            args = headswap_command("worker", "-c", str(concurrency), "-Q", queues,
                                    *celery_args)
        else:
            args = celery_worker_args(app, concurrency, queues, celery_args)
        proc = self._spawn(args, f"worker{index}")
        self.workers.append(proc)
        self._hostnames[proc.pid] = host_format(default_nodename(name))
        return proc

    def start_beat(self, extra: Sequence[str] = ()) -> Proc:
        """``headswap beat -s <workdir>/beatN-schedule --pidfile ... [extra]``."""
        index = len(self.beats)
        args = headswap_command("beat", "-s", str(self.workdir / f"beat{index}-schedule"),
                                "--pidfile", str(self.workdir / f"beat{index}.pid"), *extra)
        proc = self._spawn(args, f"beat{index}")
        self.beats.append(proc)
        return proc

    def start_webhook(self, port: int, entry: str = "worker.cli",
                      timeout: float = 30) -> Proc:
        """``headswap webhook --port N``, ready when ``/healthz`` answers. ``entry`` is the
        module run as ``headswap`` (the bench's wrapper loads its probe first)."""
        args = [sys.executable, "-m", entry, "webhook", "--host", "127.0.0.1",
                "--port", str(port)]
        proc = self._spawn(args, "webhook" if not self.webhooks else f"webhook{len(self.webhooks)}")
        self.webhooks.append(proc)
        self._healthz[proc.pid] = f"http://127.0.0.1:{port}/healthz"
        self.wait_ready(timeout)
        return proc

    # --- readiness ------------------------------------------------------------------------
    def _ready(self, proc: Proc) -> bool:
        if proc.poll() is not None:
            if proc.returncode == 0:  # stopped on purpose: nothing to wait for
                return True
            raise RuntimeError(f"process {proc.args!r} exited {proc.returncode}:\n"
                               f"{self.logs()[-3000:]}")
        if proc.pid in self._healthz:
            return http_ok(self._healthz[proc.pid])
        record = presence.record_of(self.redis, self.key_prefix, self._hostnames[proc.pid])
        return record is not None and record.get("pid") == proc.pid

    def wait_ready(self, timeout: float = 30) -> None:
        """Until every worker consumes and every webhook receiver answers; raises at once
        (with the logs) if one of them exits with an error."""
        procs = [*self.workers, *self.webhooks]
        wait_until(lambda: all(self._ready(p) for p in procs), timeout,
                   what=f"{len(procs)} stack processes ready")

    # --- the end --------------------------------------------------------------------------
    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))

    def processes(self) -> list[Proc]:
        return [*self.workers, *self.beats, *self.webhooks]

    def stop(self) -> None:
        """SIGTERM to all at once (warm shutdowns overlap), SIGKILL after 20 s."""
        stop_all(self.processes(), timeout=20)
        self.redis.close()
