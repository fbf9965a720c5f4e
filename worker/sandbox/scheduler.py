"""One background thread that runs callbacks at due times (a heap; no thread per task)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Scheduler:
    """``call_at(due, fn)`` runs ``fn`` on the scheduler thread at monotonic time ``due``.

    Callbacks must be quick (hand slow work to a pool). An exception in one is logged and
    does not stop the thread.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def call_at(self, due: float, fn: Callable[[], None]) -> None:
        """Schedule ``fn`` for monotonic time ``due`` (past times run at once)."""
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), fn))
            if self._heap[0][0] == due:
                self._cond.notify()

    def pending(self) -> int:
        """How many callbacks wait."""
        with self._cond:
            return len(self._heap)

    def clear(self) -> None:
        """Drop every pending callback."""
        with self._cond:
            self._heap.clear()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread; pending callbacks are dropped."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next_batch(self) -> list[Callable[[], None]] | None:
        with self._cond:
            while not self._stopped:
                now = self._clock()
                if self._heap and self._heap[0][0] <= now:
                    batch = []
                    while self._heap and self._heap[0][0] <= now:
                        batch.append(heapq.heappop(self._heap)[2])
                    return batch
                self._cond.wait(self._heap[0][0] - now if self._heap else None)
            return None

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            for fn in batch:
                try:
                    fn()
                except Exception:
                    log.exception("scheduled callback failed")
