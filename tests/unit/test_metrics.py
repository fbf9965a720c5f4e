"""What a scrape says: job states once each, derived sets apart, the latencies observed at
their events, callback outcomes, build info (real redis-server for the store gauges)."""

from __future__ import annotations

import pytest
from headswap_client import states
from prometheus_client import CollectorRegistry

from tests.unit.test_callbacks import PUBLIC, FakeSession, make_rt, terminal_job
from worker import metrics, polling
from worker.callbacks import delivery
from worker.store import JobStore

__all__ = ["make_rt"]  # the fixture, shared with tests/unit/test_callbacks.py


@pytest.fixture
def store(redis_client):
    return JobStore(redis_client, "m", retention_seconds=3600, idempotency_ttl=600)


def scrape(store, breaker_failures=3) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(metrics.StoreCollector(store, breaker_failures))
    return registry


def sample(name, labels=None, registry=None):
    return (registry or metrics.REGISTRY).get_sample_value(name, labels or {})


def make(store, job_id, *path):
    store.create(job_id, {}, fingerprint=job_id)
    for target in path:
        fields = {"remote_id": f"r-{job_id}"} if target == states.SUBMITTED else None
        store.transition(job_id, target, fields=fields)


def test_job_states_count_each_unfinished_job_once_and_derived_sets_apart(store):
    # Given 2 queued, 2 submitting (one of them ambiguous), 3 at Akool and 2 ended jobs
    make(store, "q1")
    make(store, "q2")
    make(store, "s1", states.SUBMITTING)
    make(store, "s2", states.SUBMITTING)
    store.update("s2", state=states.SUBMITTING, absent="ambiguous_at",
                 stamp=("ambiguous_at",), join={"ambiguous": 600})
    make(store, "a1", states.SUBMITTING, states.SUBMITTED)
    make(store, "a2", states.SUBMITTING, states.SUBMITTED, states.PROCESSING)
    make(store, "a3", states.SUBMITTING, states.SUBMITTED)
    make(store, "e1", states.SUBMITTING, states.SUBMITTED, states.SUCCEEDED)
    make(store, "e2", states.REJECTED)
    # When Prometheus scrapes
    registry = scrape(store)
    jobs = {s: sample("headswap_jobs", {"state": s}, registry)
            for s in ("queued", "submitting", "at_akool")}
    # Then each unfinished job is in exactly one state: sum() is their number
    assert jobs == {"queued": 2, "submitting": 2, "at_akool": 3}
    assert sum(jobs.values()) == 7
    # and the sets that overlap states, or hold ended jobs, are metrics of their own
    assert sample("headswap_jobs_ambiguous", registry=registry) == 1
    assert sample("headswap_jobs_in_flight", registry=registry) == 5
    assert sample("headswap_jobs_notify_pending", registry=registry) == 2
    assert sample("headswap_pending_remote_tasks", registry=registry) == 3


def test_the_breaker_reads_open_from_its_threshold_until_a_probe_closes_it(store):
    assert sample("headswap_akool_breaker_open", registry=scrape(store)) == 0
    for _ in range(3):
        store.guards.breaker_failure("akool", 3, 0.05, 0.05, 600)
    registry = scrape(store)
    assert sample("headswap_akool_breaker_open", registry=registry) == 1
    assert sample("headswap_akool_breaker_failures", registry=registry) == 3
    store.guards.breaker_reset("akool")
    assert sample("headswap_akool_breaker_open", registry=scrape(store)) == 0


def test_the_store_lost_hold_is_a_gauge(store):
    assert sample("headswap_store_lost", registry=scrape(store)) == 0
    store.guards.hold("store-lost", "test")
    assert sample("headswap_store_lost", registry=scrape(store)) == 1


def test_a_notified_job_observes_its_duration_and_its_signal_delay():
    before_count = sample("headswap_job_duration_seconds_count", {"state": "succeeded"}) or 0
    before_sum = sample("headswap_job_duration_seconds_sum", {"state": "succeeded"}) or 0
    delays = sample("headswap_completion_signal_delay_seconds_sum", {"source": "webhook"}) or 0
    record = {"state": "succeeded", "created_at": 1000.0, "succeeded_at": 1042.5,
              "source": "webhook"}
    metrics.observe_notified(record, signalled_at=1043.0)
    assert sample("headswap_job_duration_seconds_count", {"state": "succeeded"}) \
        == before_count + 1
    assert sample("headswap_job_duration_seconds_sum", {"state": "succeeded"}) \
        == pytest.approx(before_sum + 42.5)
    assert sample("headswap_completion_signal_delay_seconds_sum", {"source": "webhook"}) \
        == pytest.approx(delays + 0.5)


def test_a_job_akool_never_ended_has_no_signal_delay():
    before = sample("headswap_completion_signal_delay_seconds_count", {"source": "poll"}) or 0
    metrics.observe_notified({"state": "rejected", "created_at": 1.0, "rejected_at": 1.2},
                             signalled_at=2.0)
    assert (sample("headswap_completion_signal_delay_seconds_count", {"source": "poll"}) or 0) \
        == before
    assert sample("headswap_job_duration_seconds_count", {"state": "rejected"}) >= 1


@pytest.mark.parametrize(("status", "reason", "outcome"), [
    ("delivered", None, "delivered"),
    ("retry", None, "retried"),
    ("dead", "http_status", "dead_lettered"),
])
def test_callback_attempts_are_counted_by_outcome(status, reason, outcome):
    before = sample("headswap_callback_deliveries_total", {"outcome": outcome}) or 0
    letters = sample("headswap_callback_dead_letters_total", {"reason": "http_status"}) or 0
    metrics.observe_callback(status, reason)
    assert sample("headswap_callback_deliveries_total", {"outcome": outcome}) == before + 1
    expected = letters + (1 if status == "dead" else 0)
    assert (sample("headswap_callback_dead_letters_total", {"reason": "http_status"}) or 0) \
        == expected


def test_skipped_callback_attempts_are_not_counted():
    total = sum(sample("headswap_callback_deliveries_total", {"outcome": o}) or 0
                for o in ("delivered", "retried", "dead_lettered"))
    metrics.observe_callback("skipped", "in_progress")
    assert sum(sample("headswap_callback_deliveries_total", {"outcome": o}) or 0
               for o in ("delivered", "retried", "dead_lettered")) == total


def test_poll_batches_from_an_older_beat_or_malformed_due_times_feed_no_metric():
    assert polling._due_times(["a", "b"], [10.0, 11.5]) == {"a": 10.0, "b": 11.5}
    assert polling._due_times(["a", "b"], None) == {}
    assert polling._due_times(["a", "b"], [1.0]) == {}
    assert polling._due_times(["a", "b"], ["x", True]) == {}


def test_build_info_names_version_and_component():
    registry = CollectorRegistry()
    registry.register(metrics.BuildInfoCollector("webhook"))
    labels = metrics.build_labels("webhook")
    assert labels["version"] not in ("", "unknown") and labels["component"] == "webhook"
    assert registry.get_sample_value("headswap_build_info", labels) == 1


def test_callback_deliveries_are_counted_where_they_happen(make_rt):
    """Two failed attempts and a last one: retried twice, dead-lettered once (the real
    delivery code and store; the stand-in HTTP session of tests/unit/test_callbacks.py)."""
    rt = make_rt()
    job_id = terminal_job(rt, "metrics-cb")

    def counts():
        return (sample("headswap_callback_deliveries_total", {"outcome": "retried"}),
                sample("headswap_callback_deliveries_total", {"outcome": "dead_lettered"}),
                sample("headswap_callback_dead_letters_total", {"reason": "attempts_exhausted"}))

    retried, dead, exhausted = counts()
    session = FakeSession(500, 503, 502)
    for _ in range(3):
        delivery.deliver(rt, job_id, session=session, resolver=PUBLIC)
    assert counts() == (retried + 2, dead + 1, exhausted + 1)
