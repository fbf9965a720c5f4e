"""Pure timing rules: retry backoff, ``Retry-After`` and poll intervals. No I/O, so tested
without a network.

One backoff (:func:`retry_delay`) and one ``Retry-After`` parser (:func:`parse_retry_after`)
serve Akool calls and HTTP callbacks alike. Jitter is isolated in :func:`full_jitter` so the
rules themselves are deterministic.
"""

from __future__ import annotations

import email.utils
import random
import time


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
    retry_after_cap: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Exponential (base * 2**(attempt-1)), capped at ``cap``, jittered over [half, full];
    never earlier than the server's ``Retry-After`` (it knows when it will take us back),
    itself honoured up to ``retry_after_cap`` (default ten times ``cap``).
    """
    exp = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = full_jitter(exp, rng)
    if retry_after is not None and retry_after > 0:
        limit = cap * 10 if retry_after_cap is None else retry_after_cap
        delay = max(delay, min(retry_after, limit))
    return delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date);
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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
