import pytest

from config.settings import Secret, load_settings, redact_url
from worker.errors import ConfigError


def test_defaults_load_without_any_variable():
    s = load_settings({})
    assert s.redis_url.startswith("redis://")
    assert s.allowed_models == ("akool-premium",)


def test_every_bad_variable_is_named_in_one_error():
    with pytest.raises(ConfigError) as info:
        load_settings({"HEADSWAP_READ_TIMEOUT": "soon", "HEADSWAP_HTTP_POOL_SIZE": "0",
                       "HEADSWAP_LOG_FORMAT": "xml"})
    message = str(info.value)
    for name in ("HEADSWAP_READ_TIMEOUT", "HEADSWAP_HTTP_POOL_SIZE", "HEADSWAP_LOG_FORMAT"):
        assert name in message


def test_client_id_without_secret_is_refused():
    with pytest.raises(ConfigError, match="HEADSWAP_AKOOL_CLIENT_SECRET"):
        load_settings({"HEADSWAP_AKOOL_CLIENT_ID": "abc"})


def test_poll_bounds_must_be_ordered():
    with pytest.raises(ConfigError, match="POLL_MIN_INTERVAL"):
        load_settings({"HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "90"})


def test_secrets_and_redis_password_never_show_in_repr():
    s = load_settings({"HEADSWAP_AKOOL_API_KEY": "key-VALUE-123",
                       "HEADSWAP_CALLBACK_SECRETS": "whsec_" + "Y2ItVkFMVUUtNDU2" * 3,
                       "HEADSWAP_REDIS_URL": "rediss://user:pw-VALUE-789@cache:6380/0"})
    text = repr(s) + str(s.redacted())
    assert "VALUE" not in text and "Y2ItVkFMVUUtNDU2" not in text
    assert s.akool_api_key.get() == "key-VALUE-123"
    assert s.redis_url == "rediss://user:pw-VALUE-789@cache:6380/0"


def test_secret_can_be_read_from_a_mounted_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("from-file-key\n")
    s = load_settings({"HEADSWAP_AKOOL_API_KEY_FILE": str(path)})
    assert s.akool_api_key == Secret("from-file-key")


def test_redact_url_keeps_urls_without_credentials():
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    assert redact_url("redis://:p@h:1/0") == "redis://***@h:1/0"


def test_redact_urls_walks_a_job_message():
    from config.settings import redact_urls

    message = {"video_url": "https://c.example/v.mp4?sig=s1", "n": 3, "mappings": [
        {"obj_id": 0, "img_url": "https://u:p@c.example/f.jpg"}], "note": "no url here"}
    assert redact_urls(message) == {
        "video_url": "https://c.example/v.mp4?***", "n": 3, "note": "no url here",
        "mappings": [{"obj_id": 0, "img_url": "https://***@c.example/f.jpg"}]}
    assert redact_urls(("https://h/p?t=1",)) == ["https://h/p?***"]


@pytest.mark.parametrize(("text", "expected"), [
    ("{'video_url': 'https://c.example/v.mp4?X-Amz-Signature=s1'}",
     "{'video_url': 'https://c.example/v.mp4?***'}"),
    ('["https://u:p,w@c.example/f.jpg", 2]', '["https://***@c.example/f.jpg", 2]'),
    ("polling http://[::1]:8080/x?token=t1 now", "polling http://[::1]:8080/x?*** now"),
    ("plain https://c.example/a.mp4, kept", "plain https://c.example/a.mp4, kept"),
    ("redis://:pw@h:6379/0 down", "redis://***@h:6379/0 down"),
    ("no url at all", "no url at all"),
])
def test_redact_text_redacts_every_url_inside_free_text(text, expected):
    """What a Celery log line or a repr of task arguments holds (issue 11)."""
    from config.settings import redact_text

    assert redact_text(text) == expected


def test_every_log_line_has_its_urls_redacted_whoever_logged_it():
    """Celery logs a failed task's ``args`` with ``safe_repr`` — the job's URLs whole —
    and any library may put a URL in a message: the formatter redacts the finished line."""
    import json
    import logging

    from config.logs import JsonFormatter, RedactingFormatter

    formatter = RedactingFormatter(JsonFormatter(), ["s3cr3t-value"])
    record = logging.LogRecord("celery.app.trace", logging.ERROR, __file__, 1,
                               "Task %(name)s raised: %(exc)s", None, None)
    record.args = {"name": "headswap.submit", "exc": "boom s3cr3t-value"}
    record.data = {"args": "({'img_url': 'https://u:pw-LEAK@c.example/f.jpg'},)",
                   "kwargs": "{'video_url': 'https://c.example/v.mp4?token=LEAK2'}"}
    line = formatter.format(record)
    assert "LEAK" not in line and "s3cr3t" not in line
    out = json.loads(line)  # still one JSON object
    assert "https://***@c.example/f.jpg" in out["data"]["args"]


def test_the_old_callback_secret_variable_is_refused_naming_the_new_form():
    """Callbacks are signed the Standard Webhooks way now: a deployment still setting the
    old variable stops at start, told what to set, rather than sending unsigned-looking
    or unverifiable callbacks. The value is never echoed."""
    with pytest.raises(ConfigError) as err:
        load_settings({"HEADSWAP_CALLBACK_SECRET": "old-style-VALUE-1"})
    text = str(err.value)
    assert "HEADSWAP_CALLBACK_SECRET:" in text and "HEADSWAP_CALLBACK_SECRETS=whsec_" in text
    assert "old-style-VALUE-1" not in text


@pytest.mark.parametrize(("value", "says"), [
    ("plain-VALUE-secret", "secret 1 is not in the Standard Webhooks form"),
    ("whsec_" + "A" * 44 + ",whsec_VALUE!!", "secret 2: the part after whsec_ is not base64"),
    ("whsec_VkFMVUU=", "secret 1 holds 5 bytes; at least 24"),
])
def test_callback_secrets_not_in_the_whsec_form_are_named(value, says):
    with pytest.raises(ConfigError, match="HEADSWAP_CALLBACK_SECRETS") as err:
        load_settings({"HEADSWAP_CALLBACK_SECRETS": value})
    assert says in str(err.value)
    assert "VALUE" not in str(err.value)


def test_callback_secrets_may_come_from_a_mounted_file(tmp_path):
    one, two = "whsec_" + "A" * 44, "whsec_" + "B" * 44
    path = tmp_path / "secrets"
    path.write_text(f"{one}\n{two}\n")
    s = load_settings({"HEADSWAP_CALLBACK_SECRETS_FILE": str(path)})
    assert [x.get() for x in s.callback_secrets] == [one, two]
    assert s.redacted()["callback_secrets"] == ("***", "***")


def test_type_errors_file_errors_and_rules_between_variables_come_in_one_message(tmp_path):
    """All at once: a variable that does not parse, a secret file that is not there, and a
    rule between two variables that did parse; a rule over a bad variable is not judged."""
    with pytest.raises(ConfigError) as info:
        load_settings({"HEADSWAP_READ_TIMEOUT": "soon",
                       "HEADSWAP_AKOOL_API_KEY_FILE": str(tmp_path / "missing"),
                       "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "90",
                       "HEADSWAP_VISIBILITY_TIMEOUT_SECONDS": "61"})
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0].startswith("invalid settings (3 problems")
    assert lines[1:] == [
        f"  HEADSWAP_AKOOL_API_KEY_FILE: must be the path of a readable file "
        f"(No such file or directory: {tmp_path / 'missing'})",
        "  HEADSWAP_POLL_MIN_INTERVAL_SECONDS: must not exceed "
        "HEADSWAP_POLL_MAX_INTERVAL_SECONDS",
        "  HEADSWAP_READ_TIMEOUT: Not a valid number.",
    ]


def test_an_empty_model_list_is_refused():
    with pytest.raises(ConfigError, match="HEADSWAP_ALLOWED_MODELS: must name at least one"):
        load_settings({"HEADSWAP_ALLOWED_MODELS": " , "})


def test_the_akool_pool_has_a_connection_per_worker_and_per_poller_thread():
    assert load_settings({}).akool_pool_size == 16 + 50
    assert load_settings({"HEADSWAP_HTTP_POOL_SIZE": "8",
                          "HEADSWAP_POLL_CONCURRENCY": "20"}).akool_pool_size == 28
    # One at a time in the batch's own thread: no poller threads, no extra connections.
    assert load_settings({"HEADSWAP_POLL_CONCURRENCY": "1"}).akool_pool_size == 16
    with pytest.raises(ConfigError, match="HEADSWAP_POLL_CONCURRENCY"):
        load_settings({"HEADSWAP_POLL_CONCURRENCY": "0"})
    with pytest.raises(ConfigError, match="HEADSWAP_POLL_MAX_CLAIM_PER_TICK"):
        load_settings({"HEADSWAP_POLL_MAX_CLAIM_PER_TICK": "0"})
