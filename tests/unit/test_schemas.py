"""The job contract: every rule of the create body and our envelope."""

import pytest
from headswap_client.schemas import validate_job

from worker.errors import JobValidationError

GOOD = {
    "video_url": "https://cdn.example.com/in.mp4",
    "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
    "resolution": "720p",
}


def errors_of(message, **kw):
    with pytest.raises(JobValidationError) as info:
        validate_job(message, **kw)
    return info.value.errors


def test_a_minimal_job_gets_the_documented_defaults():
    job = validate_job(GOOD)
    assert job["model_name"] == "akool-premium"
    assert job["keep_original_sound"] is True
    assert job["metadata"] == {}
    assert job["webhook_url"] is None


def test_webhook_url_keeps_its_camel_case_name_in_the_contract():
    job = validate_job({**GOOD, "webhookUrl": "https://hooks.example.com/akool"})
    assert job["webhook_url"] == "https://hooks.example.com/akool"


@pytest.mark.parametrize("mappings", [[], [{"obj_id": i, "img_url": "https://e.com/f.jpg"}
                                            for i in range(6)]])
def test_mappings_must_number_one_to_five(mappings):
    assert "mappings" in errors_of({**GOOD, "mappings": mappings})


def test_duplicate_obj_ids_are_refused():
    twice = [{"obj_id": 1, "img_url": "https://e.com/a.jpg"},
             {"obj_id": 1, "img_url": "https://e.com/b.jpg"}]
    assert errors_of({**GOOD, "mappings": twice}) == {
        "mappings": ["obj_id values must be distinct."]}


@pytest.mark.parametrize("obj_id", [-1, 1.5, "0", True, None])
def test_obj_id_must_be_a_non_negative_integer(obj_id):
    errors = errors_of({**GOOD, "mappings": [{"obj_id": obj_id, "img_url": "https://e.com/f"}]})
    assert "obj_id" in errors["mappings"]["0"]


@pytest.mark.parametrize("url", ["ftp://e.com/v.mp4", "file:///etc/passwd", "e.com/v.mp4",
                                 "javascript:alert(1)", "https://e.com/" + "a" * 2100])
def test_urls_must_be_http_and_bounded(url):
    assert "video_url" in errors_of({**GOOD, "video_url": url})


def test_resolution_and_model_come_from_fixed_lists():
    errors = errors_of({**GOOD, "resolution": "1080p", "model_name": "akool-ultra"})
    assert set(errors) == {"resolution", "model_name"}
    assert validate_job({**GOOD, "model_name": "m2"}, allowed_models=["m2"])["model_name"] == "m2"


def test_unknown_fields_are_rejected_by_name():
    assert errors_of({**GOOD, "prompt": "smile"}) == {"prompt": ["Unknown field."]}


def test_keep_original_sound_must_be_a_real_boolean():
    assert "keep_original_sound" in errors_of({**GOOD, "keep_original_sound": "yes"})


def test_metadata_must_be_small_and_shallow():
    assert "metadata" in errors_of({**GOOD, "metadata": {"k": "x" * 5000}})
    assert "metadata" in errors_of({**GOOD, "metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}})
    assert validate_job({**GOOD, "metadata": {"order": 7, "tags": ["a"]}})["metadata"]["order"] == 7


def test_callback_task_needs_a_task_name():
    assert "callback_task" in errors_of({**GOOD, "callback_task": {"queue": "q"}})
    job = validate_job({**GOOD, "callback_task": {"name": "orders.done", "queue": "orders"}})
    assert job["callback_task"] == {"name": "orders.done", "queue": "orders"}


def test_job_id_has_a_safe_alphabet():
    assert "job_id" in errors_of({**GOOD, "job_id": "a:b"})
    assert "job_id" in errors_of({**GOOD, "job_id": "x" * 65})


@pytest.mark.parametrize("message", [None, [], "job", 7])
def test_a_message_that_is_not_an_object_is_rejected(message):
    assert errors_of(message) == {"_schema": ["Job must be a JSON object."]}


def test_missing_required_fields_are_each_named():
    assert set(errors_of({})) == {"video_url", "mappings", "resolution"}
