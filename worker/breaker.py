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

The state is data in Redis (``{p}:circuit:akool``, ``{p}:failures:akool``) on the server's
clock; reading it costs nothing extra (the same round trip as the credits pause).
"""

from __future__ import annotations

import logging
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


#: The hold opened when Redis lost our data.
STORE_LOST = "store-lost"


def read(store: JobStore) -> Gate:
    """The credits pause, the store-lost hold, the breaker's pause and its failures: one
    round trip."""
    (credits, akool, lost), failures = store.guards.circuits(
        ("credits", NAME, STORE_LOST), NAME)  # fmt: skip
    return Gate(wait=akool, credits_paused=credits, failures=failures, store_lost=lost)


def admit(store: JobStore, client: AkoolClient, settings: Settings, gate: Gate) -> float | None:
    """None when a create may go; else seconds to wait. Probes Akool when half-open."""
    if gate.wait:
        return gate.wait + full_jitter(1.0)
    threshold = settings.akool_breaker_failures
    if not threshold or gate.failures < threshold:
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
