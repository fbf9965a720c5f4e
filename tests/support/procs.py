"""Process helpers for tests: the dev stack's (``worker.devstack.procs``), run from the
project root so test modules (``tests.support.*``) import in child processes."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from worker.devstack import procs
from worker.devstack.procs import Proc, free_port, port_open, stop, wait_until

__all__ = ["ROOT", "VENV_BIN", "free_port", "port_open", "running", "spawn", "stop",
           "wait_until"]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def spawn(args: Sequence[str], env: Mapping[str, str] | None = None, log: Path | None = None,
          cwd: Path | None = None) -> Proc:
    return procs.spawn(args, env=env, log=log, cwd=cwd or ROOT)


@contextmanager
def running(args: Sequence[str], **kw: object) -> Iterator[Proc]:
    proc = spawn(args, **kw)  # type: ignore[arg-type]
    try:
        yield proc
    finally:
        stop(proc)
