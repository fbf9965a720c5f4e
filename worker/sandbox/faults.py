"""Injected faults per API request: latency, 429 bursts, 5xx before/after executing, hangs.

Order for one request: the latency is slept first; then a pending 429 burst answers 429;
else ``http_5xx_ratio`` answers 500 (nothing executed); else the request is executed, and
then ``hang_ratio`` holds the answer for ``hang_seconds`` and, for create only,
``http_5xx_after_ratio`` replaces the answer with HTTP 502.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from worker.sandbox.knobs import Knobs, Span


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request around its execution."""

    latency: float = 0.0
    reject_status: int | None = None
    retry_after: float = 0.0
    fail_after: bool = False
    hang: float = 0.0


def draw_span(rng: random.Random, span: Span) -> float:
    """A value from ``span``: the fixed value, or uniform in ``[min, max]``."""
    low, high = span
    return low if low == high else rng.uniform(low, high)


def _chance(rng: random.Random, ratio: float) -> bool:
    return ratio >= 1.0 or (ratio > 0.0 and rng.random() < ratio)


class FaultInjector:
    """Holds the 429 burst state. Not locked: call it under the engine's lock."""

    def __init__(self) -> None:
        self.burst_remaining = 0
        self._every = 0.0
        self._next_periodic: float | None = None
        # A periodic burst is a rate-limit window: it ends after ``retry_after`` seconds,
        # as a real limiter's would, so a client that honours Retry-After gets through.
        self._periodic_remaining = 0
        self._periodic_until = 0.0

    def arm_burst(self, count: int) -> None:
        """The next ``count`` API requests get HTTP 429."""
        self.burst_remaining = count

    def reset(self) -> None:
        """Forget armed bursts and the periodic schedule."""
        self.burst_remaining = 0
        self._every = 0.0
        self._next_periodic = None
        self._periodic_remaining = 0
        self._periodic_until = 0.0

    def _tick_periodic(self, knobs: Knobs, now: float) -> None:
        every = knobs.burst_429_every
        if every <= 0:
            self._every, self._next_periodic = 0.0, None
            return
        if self._next_periodic is None or every != self._every:
            self._every, self._next_periodic = every, now + every
        if now >= self._next_periodic:
            self._periodic_remaining = knobs.burst_429_size
            self._periodic_until = now + max(knobs.retry_after, 0.0)
            self._next_periodic = now + every

    def _take_burst(self, now: float) -> bool:
        if self.burst_remaining > 0:
            self.burst_remaining -= 1
            return True
        if self._periodic_remaining > 0 and now <= self._periodic_until:
            self._periodic_remaining -= 1
            return True
        return False

    def decide(
        self, knobs: Knobs, rng: random.Random, now: float, is_create: bool
    ) -> FaultDecision:
        """Decide the faults of one API request (uses the seeded ``rng``)."""
        latency = draw_span(rng, knobs.latency)
        self._tick_periodic(knobs, now)
        if self._take_burst(now):
            return FaultDecision(latency, 429, knobs.retry_after)
        if _chance(rng, knobs.http_5xx_ratio):
            return FaultDecision(latency, 500)
        fail_after = is_create and _chance(rng, knobs.http_5xx_after_ratio)
        hang = knobs.hang_seconds if _chance(rng, knobs.hang_ratio) else 0.0
        return FaultDecision(latency, None, 0.0, fail_after, hang)
