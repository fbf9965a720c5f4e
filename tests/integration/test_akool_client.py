"""The Akool client against the sandbox over real HTTP: every call, every error class."""

from __future__ import annotations

import time

import pytest

from tests.support.procs import free_port
from worker.akool import AkoolClient
from worker.akool_types import CreateTaskRequest, Mapping
from worker.errors import (
    AkoolAmbiguous,
    AkoolAuthError,
    AkoolFatal,
    AkoolInsufficientCredits,
    AkoolNotFound,
    AkoolRetryable,
    ConfigError,
)

VIDEO = "https://cdn.example.com/in.mp4?persons=2&duration=6"
FACE = "https://cdn.example.com/face.jpg"


def client_for(sb, **kw):
    kw.setdefault("api_key", sb.api_key)
    return AkoolClient(sb.url, connect_timeout=1, read_timeout=kw.pop("read_timeout", 3), **kw)


def analysed(client, url=VIDEO):
    analysis = client.analyze(url)
    deadline = time.monotonic() + 10
    while analysis.status not in (3, 4) and time.monotonic() < deadline:
        time.sleep(0.05)
        analysis = client.analysis_detail(analysis.analysis_id)
    return analysis


def request(obj_ids=(0,), url=VIDEO, **kw):
    return CreateTaskRequest(url, tuple(Mapping(i, FACE) for i in obj_ids), **kw)


def test_analysis_finds_zero_based_objects(sandbox):
    analysis = analysed(client_for(sandbox))
    assert analysis.status == 3
    assert analysis.obj_ids == {0, 1}
    assert analysis.source_video_url == VIDEO


def test_create_then_detail_reaches_completion_with_an_output_url(sandbox):
    client = client_for(sandbox)
    analysed(client)
    task = client.create_task(request((0, 1)))
    assert len(task.remote_id) == 24 and task.status == 1
    assert task.output_url is None  # in a create response video_url is the (absent) output
    assert task.video_duration == 6
    deadline = time.monotonic() + 10
    while not task.is_final and time.monotonic() < deadline:
        time.sleep(0.1)
        task = client.task_detail(task.remote_id)
    assert task.status == 3
    assert task.output_url and task.output_url.endswith(".mp4")
    assert task.source_video_url == VIDEO
    assert sandbox.stats()["creates"] == 1


def test_failed_task_carries_code_and_reason(sandbox):
    client = client_for(sandbox)
    analysed(client)
    sandbox.config(fail_ratio=1.0)
    task = client.create_task(request())
    deadline = time.monotonic() + 10
    while not task.is_final and time.monotonic() < deadline:
        time.sleep(0.1)
        task = client.task_detail(task.remote_id)
    assert task.status == 4
    assert task.error_code and task.error_reason


def test_refusals_are_fatal_with_akool_code_and_message(sandbox):
    client = client_for(sandbox)
    analysed(client)
    with pytest.raises(AkoolFatal) as info:
        client.create_task(request(obj_ids=range(6)))
    assert info.value.code == 1003
    assert info.value.msg == "Up to 5 characters can be replaced at one time."
    with pytest.raises(AkoolFatal) as info:
        client.create_task(request(model_name="akool-ultra"))
    assert info.value.code == 1003
    assert sandbox.stats()["creates"] == 0


def test_unknown_task_is_not_found(sandbox):
    with pytest.raises(AkoolNotFound) as info:
        client_for(sandbox).task_detail("0" * 24)
    assert info.value.code == 1014


def test_wrong_api_key_is_an_auth_error_and_the_key_is_not_in_the_message(sandbox):
    client = client_for(sandbox, api_key="wrong-key-123456")
    with pytest.raises(AkoolAuthError) as info:
        client.task_detail("0" * 24)
    assert info.value.code == 1101
    assert "wrong-key-123456" not in str(info.value) + repr(client)


def test_no_credentials_at_all_is_a_config_error_naming_the_variables(sandbox):
    with pytest.raises(ConfigError, match="HEADSWAP_AKOOL_API_KEY"):
        AkoolClient(sandbox.url)


def test_out_of_credits_is_its_own_class(sandbox):
    client = client_for(sandbox)
    analysed(client)
    sandbox.config(credits=0)
    with pytest.raises(AkoolInsufficientCredits) as info:
        client.create_task(request())
    assert info.value.code == 1104
    assert sandbox.stats()["creates"] == 0


def test_too_many_concurrent_tasks_is_retryable(sandbox):
    client = client_for(sandbox)
    analysed(client)
    sandbox.config(max_concurrent=1, processing_time=30)
    client.create_task(request())
    with pytest.raises(AkoolRetryable) as info:
        client.create_task(request())
    assert info.value.code == 1005


def test_429_is_retryable_with_retry_after(sandbox):
    sandbox.config(burst_429=1, retry_after=3)
    client = client_for(sandbox)
    with pytest.raises(AkoolRetryable) as info:
        client.task_detail("0" * 24)
    assert info.value.http_status == 429 and info.value.retry_after == 3
    with pytest.raises(AkoolNotFound):  # the burst is over
        client.task_detail("0" * 24)


def test_5xx_before_execution_is_ambiguous_on_create_and_retryable_on_reads(sandbox):
    client = client_for(sandbox)
    analysed(client)
    sandbox.config(http_5xx_ratio=1.0)
    with pytest.raises(AkoolAmbiguous):
        client.create_task(request())
    with pytest.raises(AkoolRetryable):
        client.task_detail("0" * 24)


def test_502_after_execution_is_ambiguous_and_the_task_really_exists(sandbox):
    client = client_for(sandbox)
    analysed(client)
    sandbox.config(http_5xx_after_ratio=1.0)
    with pytest.raises(AkoolAmbiguous) as info:
        client.create_task(request())
    assert info.value.http_status == 502
    assert sandbox.stats()["creates"] == 1  # why it must never be resubmitted blindly


def test_read_timeout_on_create_is_ambiguous(sandbox):
    client = client_for(sandbox, read_timeout=0.5)
    analysed(client)
    sandbox.config(hang_ratio=1.0, hang_seconds=2)
    with pytest.raises(AkoolAmbiguous, match="read timeout"):
        client.create_task(request())
    assert sandbox.stats()["creates"] == 1


def test_read_timeout_on_detail_is_retryable(sandbox):
    sandbox.config(hang_ratio=1.0, hang_seconds=2)
    with pytest.raises(AkoolRetryable):
        client_for(sandbox, read_timeout=0.5).task_detail("0" * 24)


def test_connection_refused_is_retryable_even_on_create():
    client = AkoolClient(f"http://127.0.0.1:{free_port()}", api_key="k", connect_timeout=1)
    with pytest.raises(AkoolRetryable, match="could not connect"):
        client.create_task(request())


def test_token_auth_fetches_once_and_refreshes_once_after_revocation(sandbox):
    client = client_for(sandbox, api_key="", client_id=sandbox.client_id,
                        client_secret=sandbox.client_secret)
    client.analyze(VIDEO)
    client.analyze(VIDEO)
    assert sandbox.stats()["token_calls"] == 1
    sandbox.revoke_tokens()
    client.analyze(VIDEO)  # 1101 -> one refresh -> success
    assert sandbox.stats()["token_calls"] == 2


def test_wrong_client_secret_fails_at_get_token(sandbox):
    client = client_for(sandbox, api_key="", client_id=sandbox.client_id,
                        client_secret="not-the-secret-000000000")
    with pytest.raises(AkoolAuthError):
        client.analyze(VIDEO)


def _no_proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_the_client_reads_proxy_settings_once_when_it_is_built(sandbox, monkeypatch):
    """Finding 2 of docs/BENCHMARKS.md, as behaviour: the environment is read once, at
    construction, not on every call (requests' trust_env re-reads it per request)."""
    _no_proxy_env(monkeypatch)
    client = client_for(sandbox)
    # a proxy that would refuse every connection, set after the client was built
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    assert analysed(client).status == 3
    client.close()


def test_a_proxy_in_the_environment_at_construction_is_used(sandbox, monkeypatch):
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    client = client_for(sandbox)
    with pytest.raises(AkoolRetryable):  # the dead proxy refuses the connection
        client.analyze(VIDEO)
    client.close()
