"""The Akool breaker: creates stop, for every worker, while Akool does not answer.

A frozen Akool turned paid work into failed jobs: workers kept sending creates into the
hung API, each one a read timeout, i.e. an ambiguous create that Akool performed (and
charged) once it resumed. Now ``HEADSWAP_AKOOL_BREAKER_FAILURES`` consecutive creates
without an answer (read or connect timeout, refused or cut connection — an answer, even
an error or a 5xx, is an answer) open a circuit in Redis shared by all workers, like the
credits one:

- **open**: no worker sends a create; queued jobs wait (on the wake-up schedule, no
  attempt spent) until the pause ends.
- **half-open** (the pause ended, the failures are still counted): one worker — the one
  that takes the probe lock — asks Akool something cheap and idempotent (the detail of a
  task id that does not exist). An answer closes the breaker and creates resume by
  themselves; no answer reopens it for twice the pause (up to
  ``HEADSWAP_AKOOL_BREAKER_PAUSE_MAX_SECONDS``). The others wait a moment.
- **closed**: any create that is answered forgets the failures.
- **suspect** (fewer failures than the threshold, none answered since): before the next
  create, one probe asks first. A thread freed by its own read timeout used to pick the
  next job and send its create into the same hung API before the count reached the
  threshold; now an unanswered create makes the fleet ask a free question first, and an
  answer lets creates go for a read timeout (``{p}:circuit:akool-answered``) while the
  count goes on (answered creates end it, more failures open the breaker).

One read timeout is still blind: a create that starts just after Akool froze is only
counted when its own timeout expires. So each worker process also watches its own creates
on the wire (:class:`OnTheWire`): while one has waited ``HEADSWAP_AKOOL_SLOW_CREATE_SECONDS``
(half the read timeout) for its answer, that process starts no new create. Per process, so
a worker killed mid-create cannot stall the fleet.

The state is data in Redis (``{p}:circuit:akool``, ``{p}:failures:akool``) on the server's
clock; reading it costs nothing extra (the same round trip as the credits pause).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from config.settings import Settings
from worker import metrics
from worker.akool import AkoolClient
from worker.errors import AkoolError
from worker.store import JobStore
from worker.timing import full_jitter

log = logging.getLogger(__name__)

NAME = "akool"
#: A task id Akool cannot know: its detail is a cheap, read-only question.
PROBE_TASK_ID = "000000000000000000000000"
#: Consecutive failures this far apart are not one outage.
FAILURE_WINDOW_SECONDS = 600.0


@dataclass(frozen=True)
class Gate:
    """What a submit may do now: go (``wait`` None) or wait ``wait`` seconds."""

    wait: float | None
    credits_paused: float | None
    failures: int
    #: Set while Redis is known to have lost our data (see ``worker.lifecycle``): no
    #: creates until an operator reconciles and runs ``headswap store-lost --ack``.
    store_lost: float | None = None
    #: Seconds left of the go-ahead a probe gave after the last failure (suspect state).
    answered: float | None = None


#: The hold opened when Redis lost our data.
STORE_LOST = "store-lost"
#: Set for a read timeout when a probe was answered while failures were counted.
ANSWERED = "akool-answered"


def read(store: JobStore) -> Gate:
    """The credits pause, the store-lost hold, the breaker's pause, the probe's go-ahead and
    the failures: one round trip."""
    (credits, akool, lost, answered), failures = store.guards.circuits(
        ("credits", NAME, STORE_LOST, ANSWERED), NAME)  # fmt: skip
    return Gate(wait=akool, credits_paused=credits, failures=failures, store_lost=lost,
                answered=answered)  # fmt: skip


class OnTheWire:
    """This process's creates waiting for their answer, by start time, and how long the
    answered ones took (a moving average)."""

    #: Answered creates before the average is trusted; its weight for each new answer.
    MIN_SAMPLES = 20
    ALPHA = 0.1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        self._next = 0
        self.answered = 0
        self.typical = 0.0  # seconds: moving average of answered creates

    @contextmanager
    def sending(self) -> Iterator[None]:
        with self._lock:
            token, self._next = self._next, self._next + 1
            self._started[token] = time.monotonic()
        answered = False
        try:
            yield
            answered = True
        finally:
            with self._lock:
                took = time.monotonic() - self._started.pop(token)
                if answered:  # a create that failed (a timeout) says nothing of the norm
                    self.answered += 1
                    self.typical = took if self.answered == 1 else (
                        self.typical + self.ALPHA * (took - self.typical))

    def longest_wait(self) -> float:
        """Seconds the oldest create on the wire has waited (0 with none)."""
        with self._lock:
            oldest = min(self._started.values(), default=None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def slow_after(self, ceiling: float) -> float:
        """When a create on the wire counts as slow: ``SLOW_FACTOR`` times the typical
        answer (at least ``SLOW_FLOOR_SECONDS``) once enough creates have answered, never
        more than ``ceiling``. Against a sandbox answering in milliseconds a freeze is seen
        in 0.25 s, not half a read timeout: fewer creates go into it."""
        with self._lock:
            known, typical = self.answered >= self.MIN_SAMPLES, self.typical
        if not known:
            return ceiling
        return min(ceiling, max(SLOW_FLOOR_SECONDS, SLOW_FACTOR * typical))


#: A create is slow after this many typical answers (and never before this many seconds).
SLOW_FACTOR = 10.0
SLOW_FLOOR_SECONDS = 0.25
#: The creates of this process (one per worker process: threads share it).
ON_THE_WIRE = OnTheWire()


def slow_hold(settings: Settings, wire: OnTheWire = ON_THE_WIRE) -> float | None:
    """Seconds to wait when one of this process's creates is slow to answer, else None.
    Slow: past ``HEADSWAP_AKOOL_SLOW_CREATE_SECONDS`` when set, else past ten typical
    answers of this process's creates, at most half the read timeout."""
    if not settings.akool_breaker_failures:
        return None
    limit = settings.akool_slow_create_seconds or wire.slow_after(settings.slow_create_seconds)
    if wire.longest_wait() < limit:
        return None
    return settings.slow_create_seconds / 2 + full_jitter(1.0)


def admit(store: JobStore, client: AkoolClient, settings: Settings, gate: Gate) -> float | None:
    """None when a create may go; else seconds to wait. Probes Akool when half-open."""
    if gate.wait:
        return gate.wait + full_jitter(1.0)
    threshold = settings.akool_breaker_failures
    if not threshold or not gate.failures:
        return None
    suspect = gate.failures < threshold
    if suspect and gate.answered:  # a probe was answered since the last failure
        return None
    token = store.guards.lock("probe", NAME, settings.read_timeout + settings.connect_timeout)
    if token is None:  # another worker is asking Akool right now
        return 1.0 + full_jitter(1.0)
    try:
        try:
            client.task_detail(PROBE_TASK_ID)
        except AkoolError as exc:
            if exc.unreachable:
                return _failed(store, settings, probe=True)
        if suspect:  # the failures go on counting; answered creates will end them
            store.guards.open_circuit(ANSWERED, settings.read_timeout)
        else:
            closed(store)
        return None
    finally:
        store.guards.unlock("probe", NAME, token)


def closed(store: JobStore) -> None:
    """Akool answered: forget the failures (and say so when there were any)."""
    if store.guards.breaker_reset(NAME):
        metrics.AKOOL_BREAKER.labels("closed").inc()
        log.warning("Akool answers again: creates resume")


def failed(store: JobStore, settings: Settings) -> None:
    """A create got no answer: one more consecutive failure."""
    if settings.akool_breaker_failures:
        _failed(store, settings, probe=False)


def _failed(store: JobStore, settings: Settings, *, probe: bool) -> float:
    opened, left, failures = store.guards.breaker_failure(
        NAME, settings.akool_breaker_failures, settings.akool_breaker_pause_seconds,
        settings.akool_breaker_pause_max_seconds, FAILURE_WINDOW_SECONDS,
    )  # fmt: skip
    if opened:
        metrics.AKOOL_BREAKER.labels("opened").inc()
        store.events.alert({"alert": "akool_unreachable", "paused_s": f"{left:.1f}",
                            "failures": str(failures)})  # fmt: skip
        log.error("Akool does not answer: all creates stop for %.0f s, then one probe asks "
                  "again", left, extra={"failures": failures, "probe": probe})
    return max(left, 1.0) + full_jitter(1.0)
