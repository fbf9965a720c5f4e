"""The sandbox's fault and account knobs over real HTTP: 5xx before/after executing,
429 bursts, hangs, latency, credits, concurrency and the seeded RNG."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.sandbox import FAST_KNOBS, SandboxProcess, sandbox_fixture

VIDEO = "https://media.example.com/videos/faults.mp4"
FACE = "https://media.example.com/faces/ref.jpg"
CREATE = "/v4/headswap/task/create"
DETAIL = "/v4/headswap/task/detail"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    yield from sandbox_fixture(knobs=FAST_KNOBS, seed=5)


@pytest.fixture(autouse=True)
def _clean(sandbox: SandboxProcess) -> None:
    sandbox.reset(reset_config=True)
    sandbox.analyze(VIDEO)


def body(job: str = "j1", face: str = FACE) -> dict[str, Any]:
    return {"video_url": VIDEO, "mappings": [{"obj_id": 0, "img_url": face}],
            "model_name": "akool-premium", "resolution": "480p",
            "webhookUrl": f"http://127.0.0.1:9/hook?job_id={job}"}


def test_http_5xx_ratio_answers_500_without_executing(sandbox: SandboxProcess) -> None:
    sandbox.config(http_5xx_ratio=1.0)
    response = sandbox.call("POST", CREATE, json=body())
    assert response.status_code == 500
    detail = sandbox.call("GET", DETAIL, params={"_id": "0" * 24})
    assert detail.status_code == 500
    sandbox.config(http_5xx_ratio=0.0)
    stats = sandbox.stats()
    assert stats["create_requests"] == 1 and stats["creates"] == 0 and stats["tasks"] == 0
    assert stats["http_5xx"] == 2 and stats["create_rejections_by_code"] == {}
    assert sandbox.call("POST", CREATE, json=body()).json()["code"] == 1000


def test_http_5xx_after_executes_then_answers_502(sandbox: SandboxProcess) -> None:
    sandbox.config(http_5xx_after_ratio=1.0)
    response = sandbox.call("POST", CREATE, json=body("ambiguous"))
    assert response.status_code == 502
    # only create is affected: detail calls still answer normally
    assert sandbox.call("GET", DETAIL, params={"_id": "0" * 24}).json()["code"] == 1014
    stats = sandbox.stats()
    assert stats["creates"] == 1 and stats["creates_by_job"] == {"ambiguous": 1}
    assert stats["http_5xx"] == 1 and stats["tasks"] == 1


def test_burst_429_then_normal(sandbox: SandboxProcess) -> None:
    sandbox.config(burst_429=2, retry_after=2)
    for _ in range(2):
        limited = sandbox.call("POST", CREATE, json=body())
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert sandbox.config()["burst_429"] == 0
    assert sandbox.call("POST", CREATE, json=body()).json()["code"] == 1000
    stats = sandbox.stats()
    assert stats["http_429"] == 2 and stats["creates"] == 1 and stats["create_requests"] == 3


def test_fractional_retry_after(sandbox: SandboxProcess) -> None:
    sandbox.config(burst_429=1, retry_after=0.5)
    limited = sandbox.call("GET", DETAIL, params={"_id": "0" * 24})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "0.5"


def test_periodic_429_bursts(sandbox: SandboxProcess) -> None:
    sandbox.config(burst_429_every=0.8, burst_429_size=2)
    params = {"_id": "0" * 24}
    assert sandbox.call("GET", DETAIL, params=params).status_code == 200  # starts the clock
    time.sleep(0.85)
    codes = [sandbox.call("GET", DETAIL, params=params).status_code for _ in range(3)]
    assert codes == [429, 429, 200]


def test_hang_executes_create_then_holds_the_answer(sandbox: SandboxProcess) -> None:
    sandbox.config(hang_ratio=1.0, hang_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        sandbox.call("POST", CREATE, json=body("hung"), timeout=0.4)
    assert time.monotonic() - started < 1.4
    sandbox.config(hang_ratio=0.0)
    stats = sandbox.stats()
    assert stats["creates"] == 1 and stats["hangs"] == 1
    assert stats["creates_by_job"] == {"hung": 1} and stats["tasks"] == 1


def test_hang_with_patient_client_gets_the_answer(sandbox: SandboxProcess) -> None:
    sandbox.config(hang_ratio=1.0, hang_seconds=0.3)
    started = time.monotonic()
    response = sandbox.call("POST", CREATE, json=body(), timeout=5)
    assert time.monotonic() - started >= 0.3
    assert response.json()["code"] == 1000


def test_latency_applies_to_api_only(sandbox: SandboxProcess) -> None:
    sandbox.config(latency=0.5)
    started = time.monotonic()
    sandbox.call("GET", DETAIL, params={"_id": "0" * 24})
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    sandbox.stats()
    assert time.monotonic() - started < 0.4


def test_credits_run_out_with_1104(sandbox: SandboxProcess) -> None:
    sandbox.config(credits=3, credits_per_task=2)
    assert sandbox.call("POST", CREATE, json=body("a")).json()["code"] == 1000
    assert sandbox.config()["credits"] == 1
    refused = sandbox.call("POST", CREATE, json=body("b")).json()
    assert refused == {"code": 1104, "msg": "Insufficient credit balance"}
    assert sandbox.config()["credits"] == 1
    stats = sandbox.stats()
    assert stats["creates"] == 1 and stats["credits_left"] == 1
    assert stats["create_rejections_by_code"] == {"1104": 1}
    sandbox.config(credits=None)
    assert sandbox.call("POST", CREATE, json=body("c")).json()["code"] == 1000


def test_max_concurrent_answers_1005(sandbox: SandboxProcess) -> None:
    sandbox.config(max_concurrent=1, processing_time=1.0)
    first = sandbox.call("POST", CREATE, json=body("a")).json()
    assert first["code"] == 1000
    refused = sandbox.call("POST", CREATE, json=body("b")).json()
    assert refused == {"code": 1005, "msg": "Frequent operation"}
    assert sandbox.stats()["active_tasks"] == 1
    sandbox.wait_task(first["data"]["_id"])
    assert sandbox.call("POST", CREATE, json=body("b")).json()["code"] == 1000
    stats = sandbox.stats()
    assert stats["creates"] == 2 and stats["create_rejections_by_code"] == {"1005": 1}


def test_credits_checked_before_concurrency(sandbox: SandboxProcess) -> None:
    sandbox.config(max_concurrent=0, credits=0)
    assert sandbox.call("POST", CREATE, json=body()).json()["code"] == 1104
    sandbox.config(credits=None)
    assert sandbox.call("POST", CREATE, json=body()).json()["code"] == 1005


def outcomes(sandbox: SandboxProcess, count: int) -> list[int]:
    ids = [sandbox.call("POST", CREATE, json=body(f"s{i}", f"{FACE}?i={i}")).json()["data"]["_id"]
           for i in range(count)]
    return [sandbox.task(task_id)["outcome"] for task_id in ids]


def test_seeded_rng_is_reproducible_after_reset(sandbox: SandboxProcess) -> None:
    sandbox.config(fail_ratio=0.5)
    first = outcomes(sandbox, 16)
    sandbox.reset()
    sandbox.analyze(VIDEO)
    second = outcomes(sandbox, 16)
    assert first == second
    assert set(first) == {3, 4}
