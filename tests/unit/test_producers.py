"""Per-producer policy (config.producers), the contract's producer and priority fields, and
the ledger's view (worker.ledger): pure functions."""

from __future__ import annotations

import pytest
from headswap_client.errors import JobValidationError
from headswap_client.schemas import ContractPolicy

from config.producers import PolicyError, ProducerPolicy, parse_policies
from config.settings import load_settings
from worker import ledger
from worker.storage.keys import object_key

JOB = {"video_url": "https://e.com/v.mp4", "mappings": [{"obj_id": 0, "img_url": "https://e.com/f"}],
       "resolution": "720p"}


def test_the_compact_form_and_json_say_the_same():
    compact = parse_policies("a:weight=2,max_in_flight=5;b:daily_budget=10,over_budget=fail;"
                             "*:weight=0.5")
    as_json = parse_policies('{"a": {"weight": 2, "max_in_flight": 5}, '
                             '"b": {"daily_budget": 10, "over_budget": "fail"}, '
                             '"*": {"weight": 0.5}}')
    assert compact == as_json
    assert compact.of("a") == ProducerPolicy(weight=2, max_in_flight=5)
    assert compact.of("nobody") == ProducerPolicy(weight=0.5)
    assert compact.as_plan()["b"] == [1.0, 0, 1.0, 10.0, 1]


@pytest.mark.parametrize(("text", "words"), [
    ("a:weight=0", "weight must be > 0"),
    ("a:weight=x", "weight must be a number"),
    ("a:speed=3", "unknown key 'speed'"),
    ("a:max_in_flight=1.5", "whole number"),
    ("a:rate_share=2", "rate_share must be > 0 and <= 1"),
    ("a:over_budget=maybe", "hold or fail"),
    ("A:weight=1", "a name is 1-32"),
    ("a:weight=1;a:weight=2", "listed twice"),
    ("a weight=1", "expected name:key=value"),
    ("{not json", "not valid JSON"),
    ("a:weight=nan", "finite"),
])
def test_a_bad_policy_names_the_producer_and_the_key(text, words):
    with pytest.raises(PolicyError, match=words):
        parse_policies(text)
    with pytest.raises(Exception, match="HEADSWAP_PRODUCER_POLICY"):
        load_settings({"HEADSWAP_PRODUCER_POLICY": text})


def test_metric_labels_are_bounded_by_the_listed_names():
    policies = parse_policies("checkout:weight=2")
    assert policies.label("checkout") == "checkout"
    assert policies.label("default") == "default"
    assert {policies.label(f"team{i}") for i in range(100)} == {"other"}


def test_producer_and_priority_are_validated_and_defaulted():
    policy = ContractPolicy(allowed_models=("akool-premium",), own_webhook_receiver=False)
    job = policy.validate(JOB)
    assert (job["producer"], job["priority"]) == ("default", 5)
    assert policy.validate({**JOB, "producer": "team-a.eu", "priority": 9})["priority"] == 9
    for bad in ({"producer": "Team"}, {"producer": "a:b"}, {"producer": "x" * 33},
                {"producer": "a|b"}, {"priority": 10}, {"priority": "5"}, {"priority": True}):
        with pytest.raises(JobValidationError) as caught:
            policy.validate({**JOB, **bad})
        assert set(caught.value.errors) == set(bad)


def test_the_ledger_view_groups_by_day_and_producer():
    now = 20_000 * 86400 + 3600.0
    fields = {"d20000:a:credits": "250.5", "d20000:a:jobs": "3", "d20000:a:held": "1.5",
              "d19999:a:credits": "100", "d19999:a:jobs": "1",
              "d20000:b:credits": "10", "d20000:b:jobs": "1", "d19990:b:jobs": "9", "junk": "1"}
    rows = ledger.costs(fields, now, days=2)
    assert [(r.day, r.producer, r.jobs, r.credits) for r in rows] == [
        ("2024-10-04", "a", 3, 250.5), ("2024-10-04", "b", 1, 10.0), ("2024-10-03", "a", 1, 100.0)]
    assert rows[0].held_at == 1.5
    assert [r.producer for r in ledger.costs(fields, now, days=30, producer="b")] == ["b", "b"]
    assert set(ledger.today(fields, now)) == {"a", "b"}


def test_the_stored_key_names_the_producer_field_first():
    record = {"job_id": "j1", "storing_at": 0.0, "producer": "checkout",
              "metadata": {"producer": "legacy"}}
    assert object_key("{producer}/{job_id}.mp4", record) == "checkout/j1.mp4"
    assert object_key("{producer}/{job_id}.mp4", {**record, "producer": "default"}) == \
        "legacy/j1.mp4"
    assert object_key("{producer}/{job_id}.mp4", {"job_id": "j1", "storing_at": 0.0}) == \
        "_/j1.mp4"
