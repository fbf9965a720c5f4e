"""Global limits shared by every worker process, kept in Redis.

Rates use GCRA (the generic cell rate algorithm): one key per limit holding the
"theoretical arrival time"; one script decides and updates, on the Redis server's clock so
pods with skewed clocks agree (``worker/store/lua/gcra.lua``). A denied caller learns
exactly how long to wait.

The cap on tasks in flight at Akool is enforced inside the ``queued -> submitting``
transition itself (see ``worker/store/lua/transition.lua``), so racing workers cannot
overshoot it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from worker.store.guards import Guards


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int = 1

    @property
    def enabled(self) -> bool:
        return self.per_second > 0


class RateLimiter:
    """``acquire()`` returns 0 when a call may go now, else the seconds to wait."""

    def __init__(self, guards: Guards, name: str, rate: Rate) -> None:
        self.name = name
        self.rate = rate
        self._guards = guards

    def acquire(self) -> float:
        if not self.rate.enabled:
            return 0.0
        return self._guards.rate_wait(self.name, 1.0 / self.rate.per_second, self.rate.burst)

    def wait(self, max_block: float) -> float:
        """Block (sleeping) until granted or until waiting longer than ``max_block``.

        Returns 0 when granted, else the wait still needed (the caller defers the work).
        """
        deadline = time.monotonic() + max_block
        while True:
            needed = self.acquire()
            if needed <= 0:
                return 0.0
            if time.monotonic() + needed > deadline:
                return needed
            time.sleep(needed)
