"""Prometheus metrics for worker and webhook processes (``HEADSWAP_METRICS_PORT``).

Two kinds, and they aggregate differently (docs/OPERATIONS.md "Metrics"):

- **Counters and histograms are per process**: ``sum()`` them across pods. The webhook
  receiver runs several gunicorn processes; they share their counts through
  prometheus-client's multiprocess mode (files in ``PROMETHEUS_MULTIPROC_DIR``), and the
  gunicorn master serves the sum (:func:`multiprocess_registry`).
- **Gauges read from Redis on each scrape** (:class:`StoreCollector`): every pod reports
  the same, global number: ``max()`` them, never ``sum()``.

``headswap_jobs{state}`` holds each unfinished job exactly once (``queued``,
``submitting``, ``at_akool``): its ``sum()`` is the number of jobs not yet ended. Sets
that overlap the states (ambiguous creates, jobs holding an in-flight slot, ended jobs
whose notification is pending) are metrics of their own.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from config.celery import QUEUES
from worker import ledger

log = logging.getLogger(__name__)

AKOOL_CALLS = Counter(
    "headswap_akool_calls_total",
    "Akool API calls by operation and result (ok, an Akool code, http_<status> or an error "
    "class).",
    ["operation", "result"],
)
AKOOL_LATENCY = Histogram(
    "headswap_akool_call_seconds",
    "Latency of Akool API calls, by operation.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRANSITIONS = Counter(
    "headswap_job_transitions_total", "Job state transitions made by this process, by the "
    "state entered and the producer (listed in HEADSWAP_PRODUCER_POLICY, default, or other).",
    ["state", "producer"],
)  # fmt: skip
FAILURES = Counter(
    "headswap_jobs_failed_total", "Jobs failed by this process, by reason and producer.",
    ["reason", "producer"],
)
ADMISSIONS = Counter(
    "headswap_admissions_total", "Jobs fair admission let go to Akool, by producer.",
    ["producer"],
)
BUDGET_HOLDS = Counter(
    "headswap_budget_holds_total", "Times a producer's daily credit budget held its jobs "
    "(once per producer and UTC day), by producer.", ["producer"],
)  # fmt: skip
CREDITS_CHARGED = Counter(
    "headswap_credits_charged_total", "Credits Akool charged for creates this process "
    "recorded, by producer (the ledger in Redis is the total: headswap costs).", ["producer"],
)  # fmt: skip
RATE_LIMIT_WAITS = Counter(
    "headswap_rate_limit_waits_total", "Times a call waited or was deferred by a global limit "
    "or a stop (create, detail, in_flight, akool_breaker, store_lost).", ["limit"],
)  # fmt: skip
UNRECORDED_CREATES = Gauge(
    "headswap_unrecorded_creates",
    "Tasks Akool created whose id this process is still retrying into Redis (spooled).",
    multiprocess_mode="livesum",
)
UNBOUND_CREATES = Counter(
    "headswap_unbound_creates_total",
    "Tasks Akool created (and charged) that no job follows: the job failed or moved on "
    "before the create's answer was recorded.",
    ["alert"],
)
AKOOL_BREAKER = Counter(
    "headswap_akool_breaker_total",
    "The Akool breaker opened (creates stopped: no answer) or closed (Akool answers).",
    ["event"],
)
CONFLICTING_MESSAGES = Counter(
    "headswap_conflicting_messages_total",
    "Valid messages refused because their job id or idempotency key names another job.",
    ["field"],
)
CREDIT_EVENTS = Counter(
    "headswap_insufficient_credits_total", "Creates answered 1104 (insufficient credits)."
)
WEBHOOK_DELIVERIES = Counter(
    "headswap_webhook_deliveries_total",
    "Akool webhook deliveries by outcome: applied, refused (any invalid delivery), "
    "too_large, error.",
    ["outcome"],
)
WEBHOOK_CONFIRMATIONS = Counter(
    "headswap_webhook_confirmations_total",
    "Webhook deliveries checked with Akool's task detail: agreed, disagreed (detail said "
    "otherwise: applied as detail says), unavailable (polled instead), bound, bind_refused.",
    ["result"],
)
DEAD_MESSAGES = Counter(
    "headswap_dead_messages_total",
    "Queue entries this process quarantined in {prefix}:dead-messages, by reason and queue.",
    ["reason", "queue"],
)
MISROUTED_MESSAGES = Counter(
    "headswap_misrouted_messages_total",
    "Our task messages this process found in Celery's default queue (sent without queue=) "
    "and moved onto their own queue, by task (a name no route knows: other).",
    ["task", "queue"],
)

JOB_DURATION = Histogram(
    "headswap_job_duration_seconds",
    "Seconds from a job's record being created (enqueue) to its terminal state, by that "
    "state; observed once, when the job is notified.",
    ["state"],
    buckets=(1, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600),
)
SIGNAL_DELAY = Histogram(
    "headswap_completion_signal_delay_seconds",
    "Seconds from Akool's completion being seen (the terminal transition made by a poll or "
    "a webhook, by source) to the completion signals being fired.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
POLL_LAG = Histogram(
    "headswap_poll_lag_seconds",
    "Seconds from a remote task's poll being due to its detail call (beat tick, claim and "
    "the headswap.poll queue's wait), on the Redis clock.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300),
)
CALLBACK_DELIVERIES = Counter(
    "headswap_callback_deliveries_total",
    "HTTP callback attempts by outcome: delivered (2xx), retried (scheduled again), "
    "dead_lettered (given up: see headswap_callback_dead_letters_total).",
    ["outcome"],
)
CALLBACK_DEAD_LETTERS = Counter(
    "headswap_callback_dead_letters_total",
    "HTTP callbacks dead-lettered, by reason: http_status (the receiver refused: 3xx or "
    "4xx), attempts_exhausted, blocked_address, invalid_url, no_callback_secret.",
    ["reason"],
)

#: Series that exist at 0 from the start: ``increase()`` over a series born at 1 (the
#: first event of a process) sees nothing, so an alert on the first paid-but-failed create
#: or dead letter would never fire.
_KNOWN_LABELS: tuple[tuple[Any, tuple[Any, ...]], ...] = (
    (UNBOUND_CREATES, ("paid_but_failed", "unbound_create")),
    (AKOOL_BREAKER, ("opened", "closed")),
    (FAILURES, (("ambiguous_submission", "default"),)),
    (CALLBACK_DELIVERIES, ("delivered", "retried", "dead_lettered")),
    (CALLBACK_DEAD_LETTERS, ("http_status", "attempts_exhausted", "blocked_address",
                             "invalid_url", "no_callback_secret")),
    (WEBHOOK_DELIVERIES, ("applied", "refused", "too_large", "error")),
)
for _metric, _values in _KNOWN_LABELS:
    for _value in _values:
        _metric.labels(*(_value if isinstance(_value, tuple) else (_value,)))

#: Outcome.status of a callback attempt -> the outcome label (skipped attempts: none).
_CALLBACK_OUTCOMES = {"delivered": "delivered", "retry": "retried", "dead": "dead_lettered"}


def observe_call(operation: str, result: str, seconds: float) -> None:
    AKOOL_CALLS.labels(operation, result).inc()
    AKOOL_LATENCY.labels(operation).observe(seconds)


def observe_notified(record: Mapping[str, Any], signalled_at: float) -> None:
    """A terminal job's signals were fired at ``signalled_at`` (server clock): its
    enqueue-to-end time and, when Akool's answer ended it, the answer-to-signal delay."""
    state = str(record.get("state"))
    ended = _number(record.get(f"{state}_at"))
    created = _number(record.get("created_at"))
    if ended is None:
        return
    if created is not None:
        JOB_DURATION.labels(state).observe(max(0.0, ended - created))
    source = record.get("source")
    if source in ("poll", "webhook"):
        SIGNAL_DELAY.labels(str(source)).observe(max(0.0, signalled_at - ended))


def observe_poll_lag(seconds: float) -> None:
    POLL_LAG.observe(max(0.0, seconds))


def observe_callback(status: str, reason: str | None) -> None:
    """One callback attempt's :class:`~worker.callbacks.dead_letters.Outcome`."""
    outcome = _CALLBACK_OUTCOMES.get(status)
    if outcome is None:
        return
    CALLBACK_DELIVERIES.labels(outcome).inc()
    if outcome == "dead_lettered":
        CALLBACK_DEAD_LETTERS.labels(reason or "unknown").inc()


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def build_labels(component: str) -> dict[str, str]:
    """The labels of ``headswap_build_info``."""

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "version": version("headswap-worker"),
        "component": component,
        "python": platform.python_version(),
        "celery": version("celery"),
    }


class BuildInfoCollector(Collector):
    """``headswap_build_info{version,component,python,celery} 1`` (a collector, not an
    ``Info``: multiprocess mode has no ``Info``)."""

    def __init__(self, component: str) -> None:
        self.labels = build_labels(component)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "headswap_build_info",
            "Always 1: the headswap version, process kind (worker, webhook), Python and "
            "Celery versions of the process serving these metrics.",
            labels=list(self.labels),
        )
        info.add_metric(list(self.labels.values()), 1.0)
        yield info


class StoreCollector(Collector):
    """Global gauges read from the store on scrape (a few O(1)/O(log n) Redis calls)."""

    def __init__(self, store: Any, breaker_failures: int = 3,
                 producer_label: Callable[[str], str] | None = None) -> None:  # fmt: skip
        self.store = store
        #: A producer's label (``config.producers.Policies.label``): listed names, default,
        #: other — never one series per name a message brings.
        self.producer_label = producer_label or (lambda p: p if p == "default" else "other")
        #: HEADSWAP_AKOOL_BREAKER_FAILURES: the breaker stays open (creates stopped) from
        #: this many consecutive unanswered creates until a probe is answered.
        self.breaker_failures = breaker_failures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snap = self.store.snapshot(QUEUES)
            tick_age = self.store.guards.last_tick_age("poll_due")
            due_polls = self.store.due_count("poll")
            evicted = self.store.evicted_keys()
            (_, akool_pause, lost), failures = self.store.guards.circuits(
                ("credits", "akool", "store-lost"), "akool")  # fmt: skip
        except Exception:  # a scrape must not crash the process; report nothing this time
            log.warning("metrics scrape could not read Redis", exc_info=True)
            return
        at_akool = max(0, snap.in_flight - snap.submitting)
        jobs = GaugeMetricFamily(
            "headswap_jobs",
            "Jobs not yet ended, by state: queued, submitting (a create under way, or "
            "ambiguous), at_akool (submitted or processing). Each job counts once: sum() is "
            "the number of unfinished jobs. Ended jobs are not counted.",
            labels=["state"],
        )
        jobs.add_metric(["queued"], snap.queued)
        jobs.add_metric(["submitting"], snap.submitting)
        jobs.add_metric(["at_akool"], at_akool)
        yield jobs
        yield GaugeMetricFamily(
            "headswap_poll_due_remote_tasks", "Members of the poll schedule due now and not "
            "claimed yet (a tick claims what is due, up to what the workers take): more than "
            "a tick's worth that stays means polls fall behind.", value=due_polls)
        yield from self._gauges(snap, akool_pause, lost, failures, evicted, tick_age)
        yield from self._producers()

    def _producers(self) -> Iterator[GaugeMetricFamily]:
        """Per producer (label bounded): waiting in its line, in flight, and today's
        charged jobs and credits (the ledger, UTC day)."""
        try:
            lines = self.store.admission.lines()
            fields, now = self.store.ledger()
        except Exception:
            log.warning("metrics scrape could not read the lines or the ledger", exc_info=True)
            return
        families = {
            "waiting": GaugeMetricFamily(
                "headswap_producer_waiting", "Jobs waiting for fair admission in each "
                "producer's line.", labels=["producer"]),
            "in_flight": GaugeMetricFamily(
                "headswap_producer_in_flight", "Jobs of each producer holding an Akool "
                "in-flight slot (admitted included).", labels=["producer"]),
            "jobs": GaugeMetricFamily(
                "headswap_producer_jobs_charged_today", "Creates charged to each producer "
                "today (UTC), from the cost ledger.", labels=["producer"]),
            "credits": GaugeMetricFamily(
                "headswap_producer_credits_today", "Credits Akool charged each producer "
                "today (UTC), from the cost ledger.", labels=["producer"]),
        }  # fmt: skip
        sums: dict[str, dict[str, float]] = {name: {} for name in families}

        def add(kind: str, producer: str, value: float) -> None:
            label = self.producer_label(producer)
            sums[kind][label] = sums[kind].get(label, 0.0) + value

        for producer, line in lines.lines.items():
            add("waiting", producer, line.waiting)
            add("in_flight", producer, line.in_flight)
        for producer, cost in ledger.today(fields, now).items():
            add("jobs", producer, cost.jobs)
            add("credits", producer, cost.credits)
        for kind, family in families.items():
            for label, value in sorted(sums[kind].items()):
                family.add_metric([label], value)
            yield family

    def _gauges(self, snap: Any, akool_pause: float | None, lost: float | None,
                failures: int, evicted: int | None,
                tick_age: float | None) -> Iterator[GaugeMetricFamily]:  # fmt: skip
        breaker_open = bool(akool_pause) or (
            self.breaker_failures > 0 and failures >= self.breaker_failures
        )
        values: list[tuple[str, str, float]] = [
            ("headswap_jobs_ambiguous", "Jobs in submitting whose create's outcome is unknown "
             "(a subset of headswap_jobs{state=\"submitting\"}): resolved by a webhook or "
             "failed ambiguous_submission after the grace period.", snap.ambiguous),
            ("headswap_jobs_in_flight", "Jobs holding an Akool in-flight slot (submitting or "
             "at_akool): what HEADSWAP_MAX_IN_FLIGHT caps.", snap.in_flight),
            ("headswap_jobs_notify_pending", "Ended jobs whose completion notification has not "
             "completed yet (the outbox; the sweep re-notifies after "
             "HEADSWAP_NOTIFY_GRACE_SECONDS).", snap.notify_pending),
            ("headswap_pending_remote_tasks", "Members of the poll schedule: Akool tasks of "
             "jobs and person analyses being followed.", snap.pending_polls),
            ("headswap_oldest_in_flight_age_seconds", "Seconds since the oldest job holding "
             "an in-flight slot took it (0 when none).", snap.oldest_in_flight_s),
            ("headswap_credits_circuit_open", "1 while submissions pause for credits (Akool "
             "answered 1104).", 1.0 if snap.credits_paused_until else 0.0),
            ("headswap_akool_breaker_open", "1 while the Akool breaker stops every create "
             "(consecutive creates got no answer; closed when a probe is answered).",
             1.0 if breaker_open else 0.0),
            ("headswap_akool_breaker_failures", "Consecutive creates that got no answer at "
             "all (the breaker opens at HEADSWAP_AKOOL_BREAKER_FAILURES).", float(failures)),
            ("headswap_store_lost", "1 while creates are held because Redis lost our data "
             "(until `headswap store-lost --ack`).", 1.0 if lost else 0.0),
            ("headswap_dead_messages_kept", "Entries in {prefix}:dead-messages: queue entries "
             "no worker could take.", snap.dead_messages),
            ("headswap_beat_last_tick_age_seconds", "Seconds since beat's poll tick last ran "
             "(server clock; -1: never). It grows when beat is down or no worker consumes "
             "headswap.poll.", -1.0 if tick_age is None else tick_age),
        ]
        for name, help_text, value in values:
            yield GaugeMetricFamily(name, help_text, value=value)
        depth = GaugeMetricFamily(
            "headswap_queue_length", "Messages waiting in each Celery queue (Redis list "
            "length; messages a worker has reserved are not counted).", labels=["queue"],
        )  # fmt: skip
        for name, value in snap.queues.items():
            depth.add_metric([name], value)
        yield depth
        if evicted is not None:
            yield GaugeMetricFamily(
                "headswap_redis_evicted_keys",
                "Keys Redis evicted since it started (INFO stats): any is a lost job or lock.",
                value=evicted,
            )


_started = False


def start_metrics_server(
    port: int, store: Any, *, component: str = "worker", breaker_failures: int = 3,
    producer_label: Callable[[str], str] | None = None,
) -> bool:
    """Serve ``/metrics`` on ``port`` once per process (0 = disabled): this process's
    counters and the global gauges."""
    global _started
    if not port or _started:
        return False
    REGISTRY.register(StoreCollector(store, breaker_failures, producer_label))
    REGISTRY.register(BuildInfoCollector(component))
    start_http_server(port)
    _started = True
    log.info("metrics listening", extra={"port": port})
    return True


def multiprocess_registry(
    store: Any, *, component: str, breaker_failures: int = 3, path: str | None = None,
    producer_label: Callable[[str], str] | None = None,
) -> CollectorRegistry:
    """The registry a parent process serves for its children (gunicorn's master): the
    counters of every process that wrote to ``PROMETHEUS_MULTIPROC_DIR`` (alive or not),
    summed; the global gauges; build info."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    registry.register(StoreCollector(store, breaker_failures, producer_label))
    registry.register(BuildInfoCollector(component))
    return registry


def serve_registry(port: int, registry: CollectorRegistry) -> None:
    start_http_server(port, registry=registry)
    log.info("metrics listening", extra={"port": port})


def mark_process_dead(pid: int) -> None:
    """A child process ended: drop its live gauges (its counters stay counted)."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
