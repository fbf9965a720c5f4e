"""Sandbox webhook delivery: sealed with the real Akool crypto, retried with backoff,
fired by the scheduler without any client poll."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.sandbox import FAST_KNOBS, SandboxProcess, WebhookReceiver, sandbox_fixture
from worker.webhook_crypto import WebhookCryptoError, open_delivery

VIDEO = "https://media.example.com/videos/hooks.mp4"
FACE = "https://media.example.com/faces/ref.jpg"
CREATE = "/v4/headswap/task/create"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    yield from sandbox_fixture(knobs={**FAST_KNOBS, "processing_time": 0.3})


@pytest.fixture(autouse=True)
def _clean(sandbox: SandboxProcess) -> None:
    sandbox.reset(reset_config=True)
    sandbox.analyze(VIDEO)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rec:
        yield rec


def create(sandbox: SandboxProcess, hook: str) -> str:
    body = {"video_url": VIDEO, "mappings": [{"obj_id": 0, "img_url": FACE}],
            "model_name": "akool-premium", "resolution": "720p", "webhookUrl": hook}
    response = sandbox.call("POST", CREATE, json=body).json()
    assert response["code"] == 1000, response
    return str(response["data"]["_id"])


def opened(sandbox: SandboxProcess, body: Any) -> dict[str, Any]:
    assert sandbox.client_id and sandbox.client_secret
    return open_delivery(body, sandbox.client_id, sandbox.client_secret, pad="strict")


def test_delivery_on_completion_is_sealed(sandbox: SandboxProcess,
                                          receiver: WebhookReceiver) -> None:
    task_id = create(sandbox, receiver.hook_url("job-1"))
    [request] = receiver.wait_for(1)  # no client poll happened
    assert sandbox.stats()["detail_calls"] == 0
    assert request["path"] == "/hook?job_id=job-1"
    assert request["headers"]["Content-Type"] == "application/json"
    body = request["body"]
    assert set(body) == {"signature", "dataEncrypt", "timestamp", "nonce"}
    assert isinstance(body["timestamp"], int) and isinstance(body["nonce"], str)
    payload = opened(sandbox, body)
    detail = sandbox.call("GET", "/v4/headswap/task/detail", params={"_id": task_id}).json()
    assert payload == {"_id": task_id, "status": 3, "type": "headswap",
                       "url": detail["data"]["video_url"], "deduction_credit": 1}
    assert detail["data"]["deduction_credit"] == 1
    tampered = {**body, "nonce": body["nonce"] + "1"}
    with pytest.raises(WebhookCryptoError):
        opened(sandbox, tampered)
    stats = _wait_stat(sandbox, "webhook_deliveries", 1)  # counted once the 200 is back
    assert stats["webhook_attempts"] == 1
    assert stats["creates_by_job"] == {"job-1": 1}
    assert stats["charged_by_job"] == {"job-1": 1} and stats["credits_charged"] == 1
    assert sandbox.task(task_id)["webhook"]["delivered"] is True


def test_failed_task_delivery_carries_error(sandbox: SandboxProcess,
                                            receiver: WebhookReceiver) -> None:
    sandbox.config(fail_ratio=1.0)
    task_id = create(sandbox, receiver.hook_url())
    [request] = receiver.wait_for(1)
    payload = opened(sandbox, request["body"])
    assert payload["_id"] == task_id and payload["status"] == 4 and payload["url"] == ""
    assert payload["error_code"] == 1016 and payload["error_reason"]


def test_retries_until_200(sandbox: SandboxProcess) -> None:
    sb = sandbox
    sb.config(processing_time=0.1, webhook_backoff=0.2)
    with WebhookReceiver(statuses=[500, 503]) as rec:
        task_id = create(sb, rec.hook_url("retry"))
        requests_seen = rec.wait_for(3)
        assert [r["status"] for r in requests_seen] == [500, 503, 200]
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(requests_seen)]
        assert gaps[0] >= 0.15 and gaps[1] >= 0.35  # 0.2 then 0.4 (doubling)
        payloads = [opened(sb, r["body"]) for r in requests_seen]
        assert all(p == payloads[0] for p in payloads)
        assert payloads[0]["_id"] == task_id
        stats = _wait_stat(sb, "webhook_deliveries", 1)
        assert stats["webhook_attempts"] == 3
        assert sb.task(task_id)["webhook"]["attempts"] == 3


def test_gives_up_after_max_attempts(sandbox: SandboxProcess) -> None:
    sandbox.config(webhook_max_attempts=2, webhook_backoff=0.05)
    with WebhookReceiver(default_status=500) as rec:
        task_id = create(sandbox, rec.hook_url())
        rec.wait_for(2)
        sandbox_stats = _wait_stat(sandbox, "webhook_failures", 1)
        assert len(rec.requests) == 2
        assert sandbox_stats["webhook_attempts"] == 2 and sandbox_stats["webhook_deliveries"] == 0
        assert sandbox.task(task_id)["webhook"]["gave_up"] is True


def test_unreachable_receiver_counts_attempts(sandbox: SandboxProcess) -> None:
    sandbox.config(webhook_max_attempts=2, webhook_backoff=0.05, webhook_timeout=0.5)
    create(sandbox, "http://127.0.0.1:9/hook")
    stats = _wait_stat(sandbox, "webhook_failures", 1)
    assert stats["webhook_attempts"] == 2


def test_webhooks_off(sandbox: SandboxProcess, receiver: WebhookReceiver) -> None:
    sandbox.config(webhooks=False)
    create(sandbox, receiver.hook_url())
    _wait_stat(sandbox, "webhooks_disabled", 1)
    assert receiver.requests == []


def _wait_stat(sandbox: SandboxProcess, key: str, value: int,
               timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = sandbox.stats()
        if stats[key] >= value or time.monotonic() > deadline:
            assert stats[key] == value, stats
            return stats
        time.sleep(0.03)
