"""The job pipeline end to end: real redis-server, celery worker and beat, the sandbox."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import uuid
from collections import Counter

import pytest

from tests.support.procs import wait_until
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack, wait_all_terminal

FACE = "https://cdn.example.com/face.jpg"


def job(n: int | str, **extra):
    return {"video_url": f"https://cdn.example.com/in/{n}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p", **extra}


@pytest.fixture(scope="module")
def sandbox_for_stack():
    sb = SandboxProcess.start(knobs={**FAST_KNOBS, "processing_time": 0.5}, seed=3)
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def stack(redis_server, sandbox_for_stack):
    with running_stack(redis_server.url, sandbox_for_stack, workers=1, beats=1) as st:
        yield st


@pytest.fixture
def producer(stack):
    p = producer_for(stack)
    yield p
    p.close()


def terminal_events(producer, job_ids):
    events = producer.store.events.read(count=100_000)
    wanted = set(job_ids)
    return Counter(e["job_id"] for e in events
                   if e.get("job_id") in wanted and e["state"] in
                   ("succeeded", "failed", "rejected", "cancelled"))


def test_a_job_goes_end_to_end_to_succeeded_with_the_output_url(stack, producer,
                                                                sandbox_for_stack):
    job_id = producer.submit(**job("e2e"))
    record = producer.wait(job_id, timeout=30)
    assert record["state"] == "succeeded"
    assert record["output_url"].startswith(sandbox_for_stack.url + "/_sandbox/output/")
    assert record["remote_id"] and record["attempts"] == 1
    for stamp in ("queued_at", "submitting_at", "submitted_at", "succeeded_at"):
        assert record[stamp] > 0
    assert sandbox_for_stack.stats()["creates_by_job"].get(job_id) is None  # no webhook URL
    assert stack.redis.zscore(producer.store.keys.schedule("poll"), job_id) is None


def test_an_invalid_job_is_rejected_with_field_errors_and_akool_is_never_called(
        stack, producer, sandbox_for_stack):
    before = sandbox_for_stack.stats()["create_requests"]
    job_id = "bad-" + uuid.uuid4().hex[:8]
    bad = {**job("bad"), "job_id": job_id, "resolution": "4k", "mappings": [], "extra": 1}
    producer.celery.send_task("headswap.submit", kwargs=bad, queue="headswap.submit")
    record = producer.wait(job_id, timeout=20)
    assert record["state"] == "rejected"
    assert set(record["field_errors"]) == {"resolution", "mappings", "extra"}
    assert sandbox_for_stack.stats()["create_requests"] == before


def test_a_mapping_not_in_the_analysis_is_rejected_before_create(stack, producer,
                                                                 sandbox_for_stack):
    before = sandbox_for_stack.stats()["create_requests"]
    job_id = producer.submit(**{**job("persons"), "mappings": [{"obj_id": 4, "img_url": FACE}]})
    record = producer.wait(job_id, timeout=20)
    assert record["state"] == "rejected"
    assert "obj_id" in record["field_errors"]["mappings"]["0"]
    assert sandbox_for_stack.stats()["create_requests"] == before


def test_a_redelivered_submit_message_does_not_create_twice(stack, producer,
                                                            sandbox_for_stack):
    job_id = producer.submit(**job("redeliver"))
    message = {**job("redeliver"), "job_id": job_id}
    for _ in range(5):  # what a broker redelivery looks like to the worker
        producer.celery.send_task("headswap.submit", kwargs=message, queue="headswap.submit")
    assert producer.wait(job_id, timeout=30)["state"] == "succeeded"
    stats = sandbox_for_stack.stats()
    assert stats["duplicate_creates"] == 0
    assert terminal_events(producer, [job_id]) == {job_id: 1}


def test_the_same_idempotency_key_gives_the_same_job(stack, producer):
    first = producer.submit(**job("idem"), idempotency_key="order-77")
    second = producer.submit(**job("idem"), idempotency_key="order-77")
    assert first == second
    assert producer.wait(first, timeout=30)["state"] == "succeeded"


def test_a_job_the_remote_side_fails_is_failed_with_akools_reason(stack, producer):
    job_id = producer.submit(**job("sandbox-fail"))
    record = producer.wait(job_id, timeout=30)
    assert record["state"] == "failed" and record["reason"] == "akool_failed"
    assert record["error"]["code"]


def test_cancel_works_only_before_submission(stack, producer):
    job_id = producer.submit(**job("cancel-late"))
    producer.wait(job_id, timeout=30)
    assert producer.cancel(job_id) is False
    assert producer.cancel("no-such-job") is False


def test_callback_task_signals_and_stream_each_see_exactly_one_terminal_event_per_job(
        stack, producer):
    stack.redis.delete("test.callbacks", "test:signals")
    group = "svc-" + uuid.uuid4().hex[:6]
    producer.ensure_group(group, start="$")
    ids = [producer.submit(**job(f"cb{i}"), callback_task={"name": "svc.done",
                                                           "queue": "test.callbacks"})
           for i in range(8)]
    ids.append(producer.submit(**job("cb-fail-sandbox-fail"),
                               callback_task={"name": "svc.done", "queue": "test.callbacks"}))
    results = wait_all_terminal(producer, ids, timeout=60)
    assert Counter(r["state"] for r in results.values()) == {"succeeded": 8, "failed": 1}

    # Notify runs just after the terminal transition: give it a moment, then count.
    wait_until(lambda: len(stack.queued_messages("test.callbacks")) >= len(ids), 15,
               what="callback tasks")
    wait_until(lambda: len([s for s in stack.recorded_signals()
                            if s["job_id"] in ids and s["signal"] != "job_submitted"])
               >= len(ids), 15, what="signals")
    callbacks = stack.queued_messages("test.callbacks")
    assert Counter(m["args"][0]["job_id"] for m in callbacks) == dict.fromkeys(ids, 1)
    assert all(m["task"] == "svc.done" for m in callbacks)
    assert {m["args"][0]["state"] for m in callbacks} == {"succeeded", "failed"}

    signals = [s for s in stack.recorded_signals() if s["job_id"] in ids]
    terminal = Counter(s["job_id"] for s in signals if s["signal"] != "job_submitted")
    assert terminal == dict.fromkeys(ids, 1)

    seen: Counter[str] = Counter()
    for _ in range(20):
        entries = producer.read_events(group, "c1", count=1000, block_ms=200)
        if not entries:
            break
        producer.ack_events(group, [eid for eid, _ in entries])
        seen.update(f["job_id"] for _, f in entries
                    if f.get("job_id") in ids and f["state"] in ("succeeded", "failed"))
    assert seen == dict.fromkeys(ids, 1)


def test_a_producer_in_another_language_enqueues_by_name_without_our_task_code(
        stack, producer, tmp_path):
    """Only celery and the broker URL: the message contract is all a producer needs."""
    job_id = "contract-" + uuid.uuid4().hex[:8]
    payload = json.dumps({**job("contract"), "job_id": job_id})
    script = textwrap.dedent(f"""
        import json, sys
        from celery import Celery
        app = Celery(broker={stack.redis_url!r})
        app.conf.task_serializer = "json"
        app.send_task("headswap.submit", kwargs=json.loads({payload!r}), queue="headswap.submit")
        assert not any(m.startswith(("worker", "tasks")) for m in sys.modules), "imported project"
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=30)
    assert producer.wait(job_id, timeout=30)["state"] == "succeeded"


def test_the_contract_schema_accepts_its_example_and_refuses_what_the_worker_refuses():
    import jsonschema
    from headswap_client.schemas import validate_job

    from worker.errors import JobValidationError

    with open("client/headswap_client/contract/submit.schema.json") as fh:
        schema = json.load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    for example in schema["examples"]:
        validator.validate(example)
        validate_job(example)
    for bad in ({**job(1), "mappings": []}, {**job(1), "resolution": "1080p"},
                {**job(1), "video_url": "ftp://x/y"}, {**job(1), "unknown": True},
                {**job(1), "mappings": [{"obj_id": -1, "img_url": FACE}]}):
        assert not validator.is_valid(bad)
        with pytest.raises(JobValidationError):
            validate_job(bad)


def test_two_beats_together_never_poll_one_task_twice_in_a_round(redis_server):
    """Two beats tick every 0.2 s; a double claim would show as two detail calls of one
    task milliseconds apart. The minimum poll interval is 0.3 s."""
    with SandboxProcess.start(knobs={**FAST_KNOBS, "processing_time": [1.5, 2.5]}) as sb:
        env = {"HEADSWAP_POLL_TICK_SECONDS": "0.2", "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "0.3",
               "HEADSWAP_POLL_MAX_INTERVAL_SECONDS": "0.3"}
        with running_stack(redis_server.url, sb, workers=2, beats=2, extra_env=env) as st:

            producer = producer_for(st)
            ids = [producer.submit(**job(f"beats{i}")) for i in range(30)]
            results = wait_all_terminal(producer, ids, timeout=60)
            assert {r["state"] for r in results.values()} == {"succeeded"}
            assert "beat: Starting" in (st.workdir / "beat1.log").read_text()
            gaps, polls = [], 0
            for record in results.values():
                times = sb.task(record["remote_id"])["detail_calls"]
                polls += len(times)
                gaps += [b - a for a, b in itertools.pairwise(times)]
            producer.close()
    print(f"\n30 tasks, {polls} detail calls, smallest gap between polls of one task "
          f"{min(gaps):.3f}s")
    assert polls >= 60  # each task was polled several times: the check had material
    assert min(gaps) >= 0.25


def test_the_job_may_come_as_one_positional_object_but_not_as_a_mix(stack, producer):
    ok_id, bad_id = "pos-" + uuid.uuid4().hex[:8], "mix-" + uuid.uuid4().hex[:8]
    producer.celery.send_task("headswap.submit", args=[{**job("pos"), "job_id": ok_id}],
                              queue="headswap.submit")
    producer.celery.send_task("headswap.submit", args=[{"a": 1}],
                              kwargs={**job("mix"), "job_id": bad_id}, queue="headswap.submit")
    assert producer.wait(ok_id, timeout=30)["state"] == "succeeded"
    record = producer.wait(bad_id, timeout=30)
    assert record["state"] == "rejected"
    assert record["field_errors"] == {
        "_schema": ["Send the job as keyword arguments or one JSON object."]}
