"""The state machine in Redis: atomic, refusing, timestamped, and streamed."""

import pytest

from worker import states
from worker.errors import JobNotFound, TransitionRefused
from worker.store import JobStore, Op


@pytest.fixture
def store(redis_client):
    return JobStore(redis_client, "t", retention_seconds=3600, idempotency_ttl=600)


def test_every_key_carries_the_hash_tag(store):
    for key in (store.job_key("j"), store.idem_key("k"), store.poll_key, store.events_key,
                store.wakeup_key, store.outbox_key, store.analysis_key("https://e/v")):
        assert key.startswith("{t}:")


def test_create_is_idempotent_by_key(store):
    assert store.create("j1", {"attempts": 0}, idempotency_key="order-1") == (True, "j1")
    assert store.create("j2", {"attempts": 0}, idempotency_key="order-1") == (False, "j1")
    assert store.get("j2") is None
    assert store.job_for_idempotency_key("order-1") == "j1"


def test_a_created_job_is_queued_and_on_the_wakeup_schedule(store, redis_client):
    store.create("j1", {"request": {"video_url": "u"}}, wakeup_at=123.0)
    record = store.get("j1")
    assert record["state"] == states.QUEUED
    assert record["request"] == {"video_url": "u"}
    assert redis_client.zscore(store.wakeup_key, "j1") == 123.0


def test_only_one_of_two_submitters_takes_the_lock(store):
    store.create("j1", {})
    assert store.transition("j1", states.SUBMITTING) == states.QUEUED
    with pytest.raises(TransitionRefused) as info:
        store.transition("j1", states.SUBMITTING)
    assert info.value.current == states.SUBMITTING


def test_every_transition_is_timestamped_and_streamed(store):
    store.create("j1", {}, now=10.0)
    store.transition("j1", states.SUBMITTING, now=11.0)
    store.transition("j1", states.SUBMITTED, fields={"remote_id": "r1"},
                     event={"remote_id": "r1"}, now=12.0)
    record = store.get("j1")
    assert (record["queued_at"], record["submitting_at"], record["submitted_at"]) == (10, 11, 12)
    events = store.read_events()
    assert [(e["state"], e["previous"]) for e in events] == [
        ("queued", ""), ("submitting", "queued"), ("submitted", "submitting")]
    assert events[-1]["remote_id"] == "r1"


def test_terminal_moves_leave_the_schedules_enter_the_outbox_and_expire(store, redis_client):
    store.create("j1", {})
    store.transition("j1", states.SUBMITTING)
    store.transition("j1", states.SUBMITTED, ops=[Op("zadd", store.poll_key, "j1", 5)])
    assert redis_client.zscore(store.poll_key, "j1") == 5
    store.transition("j1", states.SUCCEEDED, fields={"output_url": "https://o"})
    assert redis_client.zscore(store.poll_key, "j1") is None
    assert redis_client.zscore(store.outbox_key, "j1") is not None
    assert 0 < redis_client.ttl(store.job_key("j1")) <= 3600


def test_a_refused_transition_changes_nothing(store, redis_client):
    store.create("j1", {})
    before = redis_client.hgetall(store.job_key("j1"))
    events = redis_client.xlen(store.events_key)
    with pytest.raises(TransitionRefused):
        store.transition("j1", states.SUCCEEDED, fields={"output_url": "x"})
    assert redis_client.hgetall(store.job_key("j1")) == before
    assert redis_client.xlen(store.events_key) == events


def test_submitting_jobs_are_tracked_until_they_leave(store, redis_client):
    store.create("j1", {})
    store.transition("j1", states.SUBMITTING, now=50.0)
    assert redis_client.zscore(store.submitting_key, "j1") == 50.0
    store.transition("j1", states.QUEUED)
    assert redis_client.zscore(store.submitting_key, "j1") is None


def test_unknown_job_is_reported(store):
    with pytest.raises(JobNotFound):
        store.transition("nope", states.CANCELLED)


def test_claim_takes_each_due_member_once_and_leases_it(store, redis_client):
    for i in range(5):
        store.schedule(store.poll_key, f"j{i}", 100 + i)
    first = store.claim_due(store.poll_key, now=102, lease=30, limit=10)
    second = store.claim_due(store.poll_key, now=102, lease=30, limit=10)
    assert first == ["j0", "j1", "j2"] and second == []
    assert redis_client.zscore(store.poll_key, "j0") == 132


def test_allowed_moves_cover_the_design():
    assert states.allowed_from(states.SUBMITTING) == {states.QUEUED}
    assert states.allowed_from(states.CANCELLED) == {states.QUEUED}
    assert states.SUCCEEDED in states.TERMINAL and states.PROCESSING not in states.TERMINAL
    with pytest.raises(ValueError):
        states.allowed_from("exploded")


def test_the_remote_id_maps_to_its_job_only_while_the_job_is_followed(store, redis_client):
    store.create("j1", {})
    store.transition("j1", states.SUBMITTING)
    store.transition("j1", states.SUBMITTED, fields={"remote_id": "r1"})
    assert store.job_for_remote("r1") == "j1"
    store.transition("j1", states.PROCESSING)
    assert store.job_for_remote("r1") == "j1"
    store.transition("j1", states.SUCCEEDED, fields={"output_url": "https://o"})
    assert store.job_for_remote("r1") is None
    assert redis_client.hlen(store.remotes_key) == 0
