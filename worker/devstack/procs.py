"""Process helpers for the dev stack: free ports, waiting, spawning, clean shutdown.

Every process is spawned in its own process group (``start_new_session``) with its output
in a log file, so stopping it also stops whatever it forked (Celery's pool, a shell).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

Proc = subprocess.Popen[bytes]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05,
               what: str = "condition") -> None:
    """Call ``predicate`` until it is true; :class:`TimeoutError` after ``timeout`` seconds.

    An exception the predicate raises (a process died) propagates at once.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def spawn(args: Sequence[str], env: Mapping[str, str] | None = None, log: Path | None = None,
          cwd: Path | None = None) -> Proc:
    """Start ``args`` in its own process group; ``env`` is laid over ``os.environ``;
    stdout and stderr go to ``log`` (appended) or are discarded."""
    full_env = {**os.environ, **(env or {})}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
    try:
        return subprocess.Popen(
            list(args), env=full_env, stdout=out, stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None, start_new_session=True,
        )  # fmt: skip
    finally:
        if log:
            out.close()  # type: ignore[union-attr]  # the child holds its own copy


def signal_group(proc: Proc, sig: int) -> None:
    """Send ``sig`` to the process group of ``proc`` (nothing if it already exited)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def stop(proc: Proc, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
    """``sig`` to the group, wait up to ``timeout`` s, then SIGKILL; the exit status."""
    signal_group(proc, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    return proc.returncode


def stop_all(procs: Iterable[Proc], timeout: float = 20) -> None:
    """SIGTERM every group first (a warm Celery shutdown takes a second or two each, so
    they drain together), then wait for each; SIGKILL what outlives ``timeout``."""
    procs = list(procs)
    for proc in procs:
        signal_group(proc, signal.SIGTERM)
    for proc in procs:
        stop(proc, signal.SIGTERM, timeout)


@contextlib.contextmanager
def running(args: Sequence[str], env: Mapping[str, str] | None = None,
            log: Path | None = None, cwd: Path | None = None) -> Iterator[Proc]:
    proc = spawn(args, env=env, log=log, cwd=cwd)
    try:
        yield proc
    finally:
        stop(proc)
