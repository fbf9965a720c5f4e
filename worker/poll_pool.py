"""The poller's threads: the detail calls of a poll batch run at once, within a bound.

A ``poll_batch`` asks Akool about up to ``HEADSWAP_POLL_BATCH_SIZE`` (50) remote tasks;
one after another that is 50 round trips (10 s at 200 ms each). Each worker process has
one :class:`PollPool` of ``HEADSWAP_POLL_CONCURRENCY`` threads, shared by all the batches
its Celery threads run: a batch hands its members to the pool and waits until every one
is done, so the task still ends (and is acked) only after its last member, and the
process never has more than that many polls in flight whatever its ``-c``.

What stays as it was, member by member: each member is polled once (its own work item);
one that raises is logged and does not stop the others (its lease brings it back); the
thread doing the work runs in a copy of the batch's context (the current span, so the
``headswap.poll`` spans and their ``akool.task_detail`` children are what they were) and
its log lines name the ``headswap.poll_batch`` task (:func:`config.logs.working_for`).
With ``HEADSWAP_POLL_CONCURRENCY=1`` the members run in the task's own thread, one at a
time, as before.

Shared with the pool threads: the runtime's Redis client (redis-py's connection pool is
thread-safe), the Akool client (one ``requests.Session``; its pool has a connection per
poller thread on top of the worker threads', ``Settings.akool_pool_size``; the bearer token
is read and refreshed under a lock), prometheus-client metrics (locked).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from config.logs import working_for

log = logging.getLogger(__name__)


class PollPool:
    """``size`` threads per process, started on first use (a forked child starts its own)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():  # threads do not fork
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="poll")
                self._pid = os.getpid()
            return self._executor

    def run_each(self, work: Callable[[str], None], members: Sequence[str]) -> None:
        """``work(member)`` for every member, at most ``size`` at once in this process;
        returns when all have finished. An exception is logged with its member."""
        if self.size == 1 or len(members) <= 1:
            for member in members:
                _guarded(work, member)
            return
        context = working_for()
        pool = self._pool()
        futures: list[Future[None]] = []
        for member in members:
            try:
                futures.append(pool.submit(context().run, _guarded, work, member))
            except RuntimeError:  # the interpreter is exiting: no new threads; do it here
                _guarded(work, member)
        wait(futures)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def _guarded(work: Callable[[str], None], member: str) -> None:
    try:
        work(member)
    except Exception:  # one bad member must not stop the batch; its lease retries it
        log.exception("poll failed", extra={"member": member})
