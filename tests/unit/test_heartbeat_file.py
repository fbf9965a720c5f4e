"""The liveness file when several worker processes share it (a pod running two, the bench):
neither may fail the other's write. Real processes, real files."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from worker import health


def _hammer(path: str, times: int, errors: mp.Queue) -> None:
    import os

    os.environ["HEADSWAP_HEARTBEAT_FILE"] = path
    try:
        for _ in range(times):
            health.touch(min_interval=0)
    except OSError as exc:
        errors.put(repr(exc))
        return
    errors.put("")


def test_two_processes_touching_one_heartbeat_file_never_fail_each_other(tmp_path: Path):
    path = tmp_path / "heartbeat"
    ctx = mp.get_context("spawn")
    errors: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(path), 3000, errors)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [errors.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert results == ["", ""]
    ok, detail = health.check(60, path)
    assert ok, detail
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
