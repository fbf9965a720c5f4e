"""Pure timing rules: retry backoff and poll intervals. No I/O, so tested without a network.

Jitter is isolated in :func:`full_jitter` so the rules themselves are deterministic.
"""

from __future__ import annotations

import random


def full_jitter(value: float, rng: random.Random | None = None) -> float:
    """A uniform draw in [value/2, value]: spreads retries without ever waiting ~0."""
    r = (rng or random).random()
    return value / 2 + r * value / 2


def retry_delay(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 120.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt ``attempt + 1`` of a create that was not received.

    Exponential (base * 2**(attempt-1)), capped, jittered; never earlier than the
    server's ``Retry-After`` (it knows when it will take us back).
    """
    exp = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = full_jitter(exp, rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap * 10))
    return delay


def first_poll_delay(
    video_duration: float | None,
    *,
    per_video_second: float,
    minimum: float,
    maximum: float,
) -> float:
    """When to ask about a new task for the first time: its expected processing time.

    Polling earlier only spends detail calls on a task that cannot be done yet.
    """
    expected = (video_duration or 10.0) * per_video_second
    return max(minimum, min(maximum, expected))


def next_poll_interval(
    age: float, *, minimum: float, maximum: float, webhook_expected: bool, safety_net: float
) -> float:
    """Interval after a poll that found the task unfinished.

    Grows with the task's age (a quarter of it): a task late past its estimate is
    probably queued behind others at Akool, so asking often is wasted. With a webhook
    on the way, polling is only a safety net.
    """
    if webhook_expected:
        return safety_net
    return max(minimum, min(maximum, age * 0.25))


def transient_pause(
    minimum: float, retry_after: float | None, rng: random.Random | None = None
) -> float:
    """How long to leave a read that failed transiently (429, 5xx, timeout).

    Never before the server's Retry-After, and jittered over [x, 2x] so that retries
    cannot fall into step with a server's periodic limit window.
    """
    return full_jitter(2 * max(minimum, retry_after or 0.0), rng)
