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


def test_the_watchdog_keeps_a_worker_alive_only_while_redis_is_what_it_waits_for():
    """Issue 12: a Redis paused > 60 s made every worker's heartbeat stale, and liveness
    would restart every pod. Late heartbeats are excused only while Redis does not
    answer; late heartbeats with Redis answering are a stuck worker."""
    assert health.watchdog_should_touch(30.0, redis_answers=False, late_after=10.0)
    assert not health.watchdog_should_touch(30.0, redis_answers=True, late_after=10.0)
    assert not health.watchdog_should_touch(3.0, redis_answers=False, late_after=10.0)


def test_waiting_for_redis_is_alive_but_not_ready(tmp_path: Path, monkeypatch):
    path = tmp_path / "heartbeat"
    monkeypatch.setenv("HEADSWAP_HEARTBEAT_FILE", str(path))
    health.touch(status=health.WAITING_FOR_REDIS)
    assert health.check(60, path)[0]
    ok, detail = health.check(60, path, ready=True)
    assert not ok and "waiting-for-redis" in detail
    health.touch(min_interval=0)
    assert health.check(60, path, ready=True)[0]
    path.write_text("1796000000.000\n")  # a file from before the status existed
    assert health.status(path) == health.OK
