"""Hostile job messages: each becomes a field error naming the field, never an exception,
and what a rejected record keeps of it stays small and storable."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from headswap_client.schemas import (
    REJECTED_MAX_BYTES,
    ContractPolicy,
    rejection_fields,
    safe_job_id,
    validate_job,
)

from config.settings import load_settings
from worker.errors import JobValidationError

GOOD = {
    "video_url": "https://cdn.example.com/in.mp4",
    "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
    "resolution": "720p",
}
LONE = "\ud83d"  # what json.loads('"\\ud83d"') gives: half of a surrogate pair


def nested_lists(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def errors_of(message: Any, **kw: Any) -> dict[str, Any]:
    with pytest.raises(JobValidationError) as info:
        validate_job(message, **kw)
    return info.value.errors


def at(errors: dict[str, Any], path: tuple[str, ...]) -> list[str]:
    node: Any = errors
    for key in path:
        node = node[key]
    assert isinstance(node, list) and all(isinstance(m, str) for m in node), node
    return node


def mapping(**item: Any) -> dict[str, Any]:
    return {**GOOD, "mappings": [{"obj_id": 0, "img_url": "https://e.com/f.jpg", **item}]}


#: (message, where the error must be, a word the message must contain)
HOSTILE = {
    "job_id with a trailing newline": ({**GOOD, "job_id": "order-1\n"}, ("job_id",), "1-64"),
    "callback task name with a trailing newline": (
        {**GOOD, "callback_task": {"name": "orders.done\n"}}, ("callback_task", "name"), "task"),
    "callback queue with a trailing newline": (
        {**GOOD, "callback_task": {"name": "o.d", "queue": "orders\n"}},
        ("callback_task", "queue"), "task"),
    "non-ASCII task name (JSON Schema's \\w is ASCII)": (
        {**GOOD, "callback_task": {"name": "tâche"}}, ("callback_task", "name"), "task"),
    "lone surrogate in idempotency_key": (
        {**GOOD, "idempotency_key": "k" + LONE}, ("idempotency_key",), "surrogate"),
    "lone surrogate in template_id": ({**GOOD, "template_id": LONE}, ("template_id",), "U+D83D"),
    "lone surrogate in video_url": (
        {**GOOD, "video_url": "https://e.com/" + LONE}, ("video_url",), "surrogate"),
    "lone surrogate in img_url": (mapping(img_url="https://e.com/" + LONE),
                                  ("mappings", "0", "img_url"), "surrogate"),
    "lone surrogate in model_name": ({**GOOD, "model_name": LONE}, ("model_name",), "surrogate"),
    "lone surrogate in a metadata value": (
        {**GOOD, "metadata": {"a": ["x", LONE]}}, ("metadata",), "metadata.a[1]"),
    "lone surrogate in a metadata key": (
        {**GOOD, "metadata": {LONE: 1}}, ("metadata",), "surrogate"),
    "lone surrogate in callback_url": (
        {**GOOD, "callback_url": "https://e.com/" + LONE}, ("callback_url",), "surrogate"),
    "lone surrogate in an unknown field's name": (
        {**GOOD, "x" + LONE: 1}, ("x\\ud83d",), "surrogate"),
    "100,000 levels of lists in metadata": (
        {**GOOD, "metadata": {"a": nested_lists(100_000)}}, ("metadata",), "4 levels"),
    "100,000 levels of lists as a mapping": (
        {**GOOD, "mappings": [nested_lists(100_000)]}, ("mappings", "0", "_schema"), "levels"),
    "5,000-digit obj_id": (mapping(obj_id=10**5000), ("mappings", "0", "obj_id"), "digits"),
    "5,000-digit integer in metadata": (
        {**GOOD, "metadata": {"n": -(10**5000)}}, ("metadata",), "digits"),
    "5,000-digit integer as a metadata key": (
        {**GOOD, "metadata": {10**5000: 1}}, ("metadata",), "strings"),
    "5,000-digit integer as a field name": (
        {**GOOD, 10**5000: 1}, ("<int of 16610 bits>",), "strings"),
    "NaN obj_id": (mapping(obj_id=float("nan")), ("mappings", "0", "obj_id"), "finite"),
    "Infinity in metadata": ({**GOOD, "metadata": {"x": float("inf")}}, ("metadata",), "finite"),
    "non-string field name": ({**GOOD, 7: "x"}, ("7",), "strings"),
    "non-string key in a mapping": (
        {**GOOD, "mappings": [{"obj_id": 0, "img_url": "https://e.com/f", 1: 2}]},
        ("mappings", "0", "1"), "strings"),
    "bytes video_url": ({**GOOD, "video_url": b"https://e.com/v.mp4"}, ("video_url",), "bytes"),
    "bytes in metadata": ({**GOOD, "metadata": {"b": b"\xff"}}, ("metadata",), "bytes"),
    "a set in metadata": ({**GOOD, "metadata": {"s": {1, 2}}}, ("metadata",), "got set"),
    "100,000 mappings": (
        {**GOOD, "mappings": [{"obj_id": -1, "img_url": "ftp://x"}] * 100_000},
        ("mappings",), "between 1 and 5"),
}


@pytest.mark.parametrize(("message", "path", "word"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_message_is_a_field_error_naming_the_field(message, path, word):
    errors = errors_of(message)
    assert any(word in text for text in at(errors, path)), errors
    # what the producer and the reject path see is storable as it is
    json.dumps(errors, ensure_ascii=False).encode("utf-8")


def test_errors_for_many_unknown_fields_are_counted_not_listed():
    errors = errors_of({**GOOD, **{f"f{i}": i for i in range(50_000)}})
    assert len(errors) == 21
    assert errors["_schema"] == ["49980 more unknown fields not listed."]


def test_a_five_megabyte_hostile_message_is_refused_fast():
    """Given a 5 MB message mixing every trick, validate_job answers in well under a second."""
    big = "x" * 1_000_000
    message = {
        **GOOD,
        "template_id": big + LONE,
        "metadata": {"k": [big] * 2, "deep": nested_lists(50_000)},
        big: nested_lists(50_000),
        "mappings": [{"obj_id": i, "img_url": "https://e.com/" + big} for i in range(1)],
    }
    started = time.perf_counter()
    errors = errors_of(message)
    elapsed = time.perf_counter() - started
    assert {"template_id", "metadata", big} <= set(errors)
    assert elapsed < 0.5, elapsed


def test_a_producer_and_the_worker_refuse_webhook_url_alike_when_the_worker_has_its_receiver():
    settings = load_settings({"HEADSWAP_WEBHOOK_PUBLIC_URL": "https://hooks.example.com/akool"})
    policy = ContractPolicy.from_settings(settings)
    message = {**GOOD, "webhookUrl": "https://mine.example.com/akool"}
    with pytest.raises(JobValidationError) as info:
        policy.validate(message)
    assert info.value.errors == {
        "webhookUrl": ["This worker receives Akool webhooks itself; use callback_url."]}
    assert errors_of(message, own_webhook_receiver=True) == info.value.errors


def test_the_policy_from_settings_carries_the_allowed_models():
    policy = ContractPolicy.from_settings(load_settings({"HEADSWAP_ALLOWED_MODELS": "m2"}))
    assert policy.validate({**GOOD, "model_name": "m2"})["model_name"] == "m2"
    job = policy.validate({**GOOD, "model_name": "m2", "webhookUrl": "https://e.com/h"})
    assert job["webhook_url"] == "https://e.com/h"  # no receiver of its own: forwarded


# --- what a rejected record keeps ------------------------------------------------------


def stored_size(kept: dict[str, Any]) -> int:
    return len(json.dumps(kept, ensure_ascii=False).encode("utf-8"))  # raises on a surrogate


def test_a_rejected_record_of_100000_mapping_errors_stays_under_its_bound():
    """The error map marshmallow used to make for 100,000 bad mappings (13.4 MB)."""
    errors = {"mappings": {str(i): {"obj_id": ["Must be greater than or equal to 0 and less "
                                               "than or equal to 10000."],
                                    "img_url": ["Not a valid URL."]} for i in range(100_000)}}
    kept = rejection_fields({**GOOD, "job_id": "j-1"}, errors)
    assert stored_size(kept["field_errors"]) <= REJECTED_MAX_BYTES
    assert kept["job_id"] == "j-1" and kept["reason"] == "invalid"
    assert kept["field_errors"]["mappings"]["_truncated"] == ["99990 more not shown."]
    assert kept["field_errors"]["mappings"]["0"]["img_url"] == ["Not a valid URL."]


def test_a_rejected_record_keeps_only_a_truncated_name_of_a_5mb_unknown_field():
    name, value = "n" * 5_000_000, "v" * 5_000_000
    message = {**GOOD, name: value, "job_id": "bad id\n"}
    kept = rejection_fields(message, errors_of(message))
    encoded = json.dumps(kept, ensure_ascii=False)
    assert stored_size(kept) <= REJECTED_MAX_BYTES + 100
    assert "vvvv" not in encoded
    assert "job_id" not in kept  # it is not a valid id: the caller generates one
    assert "job_id" in kept["field_errors"]
    (long_key,) = [k for k in kept["field_errors"] if k.startswith("nnn")]
    assert len(long_key) == 200 and long_key.endswith("…")


def test_a_rejected_record_never_holds_a_lone_surrogate():
    message = {**GOOD, "idempotency_key": LONE, LONE * 3: 1, "metadata": {LONE: LONE}}
    errors = errors_of(message)
    kept = rejection_fields(message, {**errors, "x" + LONE: [LONE, 10**5000]})
    text = json.dumps(kept, ensure_ascii=False)
    text.encode("utf-8")
    assert "\\ud83d" in text


def test_a_rejected_record_of_deeply_nested_errors_is_summarised():
    errors: dict[str, Any] = {"m": ["leaf"]}
    for _ in range(10_000):
        errors = {"m": errors}
    kept = rejection_fields({}, errors)
    assert stored_size(kept) <= REJECTED_MAX_BYTES


def test_a_rejected_record_keeps_many_long_messages_within_the_bound():
    errors = {f"field{i}": {str(j): {f"k{k}": ["e" * 10_000] * 50 for k in range(30)}
                            for j in range(30)} for i in range(100)}
    kept = rejection_fields({}, errors)
    assert stored_size(kept["field_errors"]) <= REJECTED_MAX_BYTES
    assert kept["field_errors"]["_truncated"][0].endswith("more not shown.")


@pytest.mark.parametrize(("raw", "expected"), [
    ("order-1", "order-1"), ("order-1\n", None), ("a:b", None), ("x" * 65, None),
    (LONE, None), (7, None), (None, None),
])
def test_safe_job_id_returns_only_a_valid_job_id(raw, expected):
    assert safe_job_id({"job_id": raw}) == expected
