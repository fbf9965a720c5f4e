"""Global limits shared by every worker process, kept in Redis.

Rates use GCRA (the generic cell rate algorithm): one key per limit holding the
"theoretical arrival time"; one Lua call decides and updates, using the Redis server's
clock so pods with skewed clocks agree. A denied caller learns exactly how long to wait.

The cap on tasks in flight at Akool is enforced inside the ``queued -> submitting``
transition itself (see ``worker/store.py``), so it cannot be overshot by racing workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

# KEYS[1] tat key; ARGV[1] emission interval (s), ARGV[2] burst (cells)
# returns wait in microseconds (0 = granted)
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = math.floor(tonumber(ARGV[1]) * 1000000)
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1000)
return 0
"""


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int = 1

    @property
    def enabled(self) -> bool:
        return self.per_second > 0


class RateLimiter:
    """``acquire()`` returns 0 when a call may go now, else the seconds to wait."""

    def __init__(self, client: redis.Redis, key: str, rate: Rate) -> None:
        self.key = key
        self.rate = rate
        self._script = client.register_script(_GCRA)

    def acquire(self) -> float:
        if not self.rate.enabled:
            return 0.0
        wait_us = self._script(keys=[self.key], args=[1.0 / self.rate.per_second, self.rate.burst])
        return int(wait_us) / 1_000_000

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
