"""At volume: generated malformed jobs through the real submit path — 3,000 in
``make test``, 10,000 in ``make chaos`` (``HEADSWAP_MALFORMED_JOBS``).

Each message is a valid job with one or more mutations that make it invalid (wrong types,
huge strings, deep nesting, odd unicode, missing and extra fields, 0 or 6+ mappings,
duplicate obj_ids, non-http URLs). The worker must never crash, the sandbox must count
zero creates, and every job must end ``rejected`` with field errors.
"""

from __future__ import annotations

import os
import time
from typing import Any

from headswap_client.schemas import validate_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack
from worker.errors import JobValidationError

N_JOBS = int(os.environ.get("HEADSWAP_MALFORMED_JOBS", "3000"))
URL = "https://cdn.example.com/in.mp4"
FACE = "https://cdn.example.com/face.jpg"
KNOWN = {"video_url", "mappings", "model_name", "resolution", "template_id",
         "keep_original_sound", "webhookUrl", "job_id", "idempotency_key", "callback_task",
         "callback_url", "metadata"}

odd_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
not_a_string = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
bad_urls = st.one_of(
    st.sampled_from(["ftp://cdn.example.com/a.mp4", "file:///etc/passwd", "javascript:alert(1)",
                     "data:video/mp4;base64,AAAA", "cdn.example.com/a.mp4", "//cdn.example.com/a",
                     "http://", "https://exa mple.com/a", "", " ", "https://\u0000.com/"]),
    odd_text.map(lambda t: "gopher://" + t),
    st.integers(2049, 6000).map(lambda n: "https://cdn.example.com/" + "a" * n),
)


def nested(depth: int) -> Any:
    value: Any = {"x": 1}
    for _ in range(depth):
        value = {"n": value} if depth % 2 else [value]
    return {"deep": value}


MUTATIONS = {
    "drop_required": st.sampled_from(["video_url", "mappings", "resolution"]).map(
        lambda k: ("drop", k, None)),
    "video_url_type": not_a_string.map(lambda v: ("set", "video_url", v)),
    "video_url_bad": bad_urls.map(lambda v: ("set", "video_url", v)),
    "img_url_bad": bad_urls.map(lambda v: ("set", "mappings", [{"obj_id": 0, "img_url": v}])),
    "mappings_type": st.one_of(not_a_string.filter(lambda v: not isinstance(v, list)),
                               odd_text).map(lambda v: ("set", "mappings", v)),
    "mappings_count": st.sampled_from([0, 6, 7, 10, 50]).map(
        lambda n: ("set", "mappings", [{"obj_id": i, "img_url": FACE} for i in range(n)])),
    "duplicate_obj_ids": st.integers(0, 50).map(
        lambda i: ("set", "mappings", [{"obj_id": i, "img_url": FACE}] * 2)),
    "obj_id_bad": st.one_of(st.integers(max_value=-1), st.floats(allow_nan=False).filter(
        lambda f: not f.is_integer()), odd_text, st.booleans(), st.none()).map(
        lambda v: ("set", "mappings", [{"obj_id": v, "img_url": FACE}])),
    "mapping_extra_key": odd_text.filter(lambda k: k not in ("obj_id", "img_url")).map(
        lambda k: ("set", "mappings", [{"obj_id": 0, "img_url": FACE, k: 1}])),
    "resolution_bad": st.one_of(odd_text.filter(lambda t: t not in ("480p", "720p")),
                                not_a_string).map(lambda v: ("set", "resolution", v)),
    "model_bad": odd_text.filter(lambda t: t != "akool-premium").map(
        lambda v: ("set", "model_name", v)),
    "sound_not_bool": st.one_of(st.integers(), odd_text, st.none()).map(
        lambda v: ("set", "keep_original_sound", v)),
    "huge_template": st.integers(129, 100_000).map(lambda n: ("set", "template_id", "t" * n)),
    "deep_metadata": st.integers(5, 60).map(lambda d: ("set", "metadata", nested(d))),
    "huge_metadata": st.integers(4100, 20000).map(lambda n: ("set", "metadata", {"k": "x" * n})),
    "metadata_type": not_a_string.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: ("set", "metadata", v)),
    "extra_field": odd_text.filter(lambda k: k not in KNOWN).map(lambda k: ("set", k, "x")),
    "callback_task_bad": st.one_of(odd_text, st.just({"queue": "q"}),
                                   st.just({"name": "bad name!"})).map(
        lambda v: ("set", "callback_task", v)),
}


@st.composite
def malformed_job(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {"video_url": URL, "resolution": "720p",
                               "mappings": [{"obj_id": 0, "img_url": FACE}]}
    kinds = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3, unique=True))
    for kind in kinds:
        op, key, value = draw(MUTATIONS[kind])
        if op == "drop":
            message.pop(key, None)
        else:
            message[key] = value
    return message


def generate(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    @settings(max_examples=n, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(malformed_job())
    def collect(message: dict[str, Any]) -> None:
        out.append(message)

    collect()
    return out


def test_thousands_of_malformed_jobs_are_all_rejected_and_akool_is_never_called(redis_server):
    messages = generate(N_JOBS)
    # Hypothesis may shrink or repeat; top up deterministically so the figure holds.
    while len(messages) < N_JOBS:
        messages.append({**messages[len(messages) % 100], "unknown_field": len(messages)})
    for message in messages[:200]:  # the generator itself makes only invalid jobs
        try:
            validate_job(message)
        except JobValidationError:
            continue
        raise AssertionError(f"generated a valid job: {message!r}")

    with SandboxProcess.start(knobs=FAST_KNOBS) as sb, \
            running_stack(redis_server.url, sb, workers=2, concurrency=8) as stack:
        producer = producer_for(stack)
        started = time.monotonic()
        for i, message in enumerate(messages):
            producer.celery.send_task("headswap.submit", kwargs={**message, "job_id": f"m{i}"},
                                      queue="headswap.submit")
        deadline = time.monotonic() + 240
        pending = {f"m{i}" for i in range(N_JOBS)}
        rejected_with_fields = 0
        while pending and time.monotonic() < deadline:
            pipe = stack.redis.pipeline(transaction=False)
            ordered = sorted(pending)
            for job_id in ordered:
                pipe.hmget(producer.store.keys.job(job_id), "state", "field_errors")
            for job_id, (state, field_errors) in zip(ordered, pipe.execute(), strict=True):
                if state == "rejected":
                    pending.discard(job_id)
                    rejected_with_fields += bool(field_errors and field_errors != "{}")
            if pending:
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        stats = sb.stats()
        alive = all(p.poll() is None for p in stack.workers)
        tracebacks = stack.logs().count("Traceback")
        producer.close()
    print(f"\n{N_JOBS} malformed jobs: {N_JOBS - len(pending)} rejected "
          f"({rejected_with_fields} with field errors) in {elapsed:.1f}s; "
          f"creates at Akool: {stats['create_requests']}; workers alive: {alive}; "
          f"tracebacks in logs: {tracebacks}")
    assert not pending, f"{len(pending)} jobs not rejected, e.g. {sorted(pending)[:3]}"
    assert rejected_with_fields == N_JOBS
    assert stats["create_requests"] == 0 and stats["analyze_calls"] == 0
    assert alive and tracebacks == 0
