"""The JSON Schema producers read and the worker's marshmallow schema refuse alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from headswap_client.schemas import validate_job

from worker.errors import JobValidationError

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "client/headswap_client/contract/submit.schema.json")
    .read_text("utf-8"))
GOOD = {
    "video_url": "https://cdn.example.com/in.mp4",
    "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
    "resolution": "720p",
}

#: Each refused by both. Python's jsonschema reads `$` as Python does (it also matches
#: before a final newline), so these also check the patterns against that engine.
REFUSED_BY_BOTH = {
    "job_id with a trailing newline": {**GOOD, "job_id": "order-1\n"},
    "video_url with a trailing newline": {**GOOD, "video_url": "https://e.com/in.mp4\n"},
    "img_url with a trailing newline": {
        **GOOD, "mappings": [{"obj_id": 0, "img_url": "https://e.com/f.jpg\n"}]},
    "callback_url with a trailing newline": {**GOOD, "callback_url": "https://e.com/cb\n"},
    "callback task name with a trailing newline": {**GOOD, "callback_task": {"name": "a.b\n"}},
    "callback task name outside ASCII": {**GOOD, "callback_task": {"name": "tâche"}},
    "callback queue outside ASCII": {**GOOD, "callback_task": {"name": "a", "queue": "file٣"}},
}


def schema_accepts(message: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(SCHEMA).is_valid(message)


def worker_accepts(message: dict[str, Any]) -> bool:
    try:
        validate_job(message)
    except JobValidationError:
        return False
    return True


@pytest.mark.parametrize("message", REFUSED_BY_BOTH.values(), ids=REFUSED_BY_BOTH.keys())
def test_the_json_schema_and_the_worker_both_refuse(message):
    assert (schema_accepts(message), worker_accepts(message)) == (False, False)
