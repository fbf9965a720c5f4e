"""Prometheus metrics for worker and webhook processes (``HEADSWAP_METRICS_PORT``).

Counters and histograms are per process (Prometheus sums them across pods); the
job-state gauges are read from Redis on each scrape by :class:`StoreCollector`, so every
pod reports the same, global numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from config.celery import QUEUES

log = logging.getLogger(__name__)

AKOOL_CALLS = Counter(
    "headswap_akool_calls_total",
    "Akool API calls by operation and result (Akool code, HTTP status or error class).",
    ["operation", "result"],
)
AKOOL_LATENCY = Histogram(
    "headswap_akool_call_seconds",
    "Latency of Akool API calls.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRANSITIONS = Counter(
    "headswap_job_transitions_total", "Job state transitions made by this process.", ["state"]
)
FAILURES = Counter(
    "headswap_jobs_failed_total", "Jobs failed by this process, by reason.", ["reason"]
)
RATE_LIMIT_WAITS = Counter(
    "headswap_rate_limit_waits_total", "Times a call waited or was deferred by a global limit.",
    ["limit"],
)  # fmt: skip
UNRECORDED_CREATES = Gauge(
    "headswap_unrecorded_creates",
    "Tasks Akool created whose id this process is still retrying into Redis (spooled).",
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
    "headswap_webhook_deliveries_total", "Webhook deliveries by outcome.", ["outcome"]
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


def observe_call(operation: str, result: str, seconds: float) -> None:
    AKOOL_CALLS.labels(operation, result).inc()
    AKOOL_LATENCY.labels(operation).observe(seconds)


class StoreCollector(Collector):
    """Global gauges read from the store on scrape (a few O(1)/O(log n) Redis calls)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snap = self.store.snapshot(QUEUES)
            tick_age = self.store.guards.last_tick_age("poll_due")
            evicted = self.store.evicted_keys()
        except Exception:  # a scrape must not crash the process; report nothing this time
            log.warning("metrics scrape could not read Redis", exc_info=True)
            return
        jobs = GaugeMetricFamily("headswap_jobs", "Jobs in non-terminal states.", labels=["state"])
        jobs.add_metric(["queued"], snap.queued)
        jobs.add_metric(["submitting"], snap.submitting)
        jobs.add_metric(["in_flight"], snap.in_flight)
        jobs.add_metric(["ambiguous"], snap.ambiguous)
        jobs.add_metric(["notify_pending"], snap.notify_pending)
        yield jobs
        yield GaugeMetricFamily(
            "headswap_pending_remote_tasks",
            "Remote tasks on the poll schedule.",
            value=snap.pending_polls,
        )
        yield GaugeMetricFamily(
            "headswap_oldest_in_flight_age_seconds",
            "Age of the oldest task in flight.",
            value=snap.oldest_in_flight_s,
        )
        yield GaugeMetricFamily(
            "headswap_credits_circuit_open",
            "1 while submissions pause for credits.",
            value=1.0 if snap.credits_paused_until else 0.0,
        )
        yield GaugeMetricFamily(
            "headswap_dead_messages_kept",
            "Entries in {prefix}:dead-messages: queue entries no worker could take.",
            value=snap.dead_messages,
        )
        depth = GaugeMetricFamily(
            "headswap_queue_length", "Celery queue lengths.", labels=["queue"]
        )
        for name, value in snap.queues.items():
            depth.add_metric([name], value)
        yield depth
        if evicted is not None:
            yield GaugeMetricFamily(
                "headswap_redis_evicted_keys",
                "Keys Redis evicted since it started (INFO stats): any is a lost job or lock.",
                value=evicted,
            )
        yield GaugeMetricFamily(
            "headswap_beat_last_tick_age_seconds",
            "Seconds since beat's poll tick last ran (server clock); alert when it grows.",
            value=-1.0 if tick_age is None else tick_age,
        )


_started = False


def start_metrics_server(port: int, store: Any) -> bool:
    """Serve ``/metrics`` on ``port`` once per process (0 = disabled)."""
    global _started
    if not port or _started:
        return False
    REGISTRY.register(StoreCollector(store))
    start_http_server(port)
    _started = True
    log.info("metrics listening", extra={"port": port})
    return True
