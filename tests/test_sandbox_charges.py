"""What a task costs at the sandbox (unknown #18, issue 14): the ``credits_per_task`` knob,
reported as ``deduction_lock_duration`` at create and ``deduction_credit`` once final, and
counted in ``/_sandbox/stats`` as ``credits_charged`` and ``charged_by_job``.

In-process on the HTTP-free engine with a hand-driven clock: no server, no sleeping.
"""

from __future__ import annotations

from typing import Any

import pytest

from worker.sandbox.auth import Credentials
from worker.sandbox.engine import Engine
from worker.sandbox.knobs import Knobs
from worker.sandbox.stats import Stats

KEY = "charge-test-key"
HEADERS = {"x-api-key": KEY}
VIDEO = "https://media.example.com/videos/charges.mp4?duration=6"
HOOK = "http://127.0.0.1:9/webhooks/akool?job_id="


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> Engine:
    knobs = Knobs().updated({"processing_time": 2.0, "analysis_time": 0.0})
    eng = Engine(Credentials(KEY), knobs, seed=3, base_url="http://sandbox.test", clock=clock)
    assert eng.analyze(HEADERS, {"video_url": VIDEO, "type": "head"})["code"] == 1000
    return eng


def create(engine: Engine, face: str, job_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "video_url": VIDEO, "mappings": [{"obj_id": 0, "img_url": f"https://f.test/{face}.jpg"}],
        "model_name": "akool-premium", "resolution": "720p"}
    if job_id is not None:
        body["webhookUrl"] = HOOK + job_id
    return engine.create(HEADERS, body)


def detail(engine: Engine, task_id: str) -> dict[str, Any]:
    data = engine.task_detail(HEADERS, {"_id": task_id})["data"]
    assert isinstance(data, dict)
    return data


def test_the_create_reports_the_knob_as_its_charge(engine: Engine) -> None:
    assert create(engine, "a")["data"]["deduction_lock_duration"] == 1  # the default knob
    engine.update_config({"credits_per_task": 7})
    assert create(engine, "b")["data"]["deduction_lock_duration"] == 7
    engine.update_config({"credits_per_task": 0})
    assert create(engine, "c")["data"]["deduction_lock_duration"] == 0


def test_the_detail_reports_the_final_charge_once_final(engine: Engine, clock: Clock) -> None:
    engine.update_config({"credits_per_task": 4})
    task_id = create(engine, "a", "job-a")["data"]["_id"]
    running = detail(engine, task_id)
    assert running["status"] in (1, 2) and "deduction_credit" not in running
    engine.update_config({"credits_per_task": 9})  # a later price does not reprice the task
    clock.now += 2.5
    final = detail(engine, task_id)
    assert final["status"] == 3 and final["deduction_credit"] == 4
    assert engine.task_view(task_id)["charge"] == 4  # type: ignore[index]


def test_a_failed_task_keeps_its_charge(engine: Engine, clock: Clock) -> None:
    """Credits are taken at create and not refunded when the task fails (SANDBOX.md)."""
    engine.update_config({"credits_per_task": 3, "fail_ratio": 1.0, "credits": 10})
    task_id = create(engine, "a", "job-f")["data"]["_id"]
    clock.now += 2.5
    final = detail(engine, task_id)
    assert final["status"] == 4 and final["deduction_credit"] == 3
    assert engine.stats()["credits_left"] == 7
    assert engine.stats()["charged_by_job"] == {"job-f": 3}


def test_the_webhook_payload_carries_the_final_charge(engine: Engine) -> None:
    engine.update_config({"credits_per_task": 5})
    task_id = create(engine, "a", "job-w")["data"]["_id"]
    task = engine._tasks[task_id]
    assert task.webhook_payload("http://sandbox.test")["deduction_credit"] == 5


def test_stats_count_credits_in_all_and_per_job(engine: Engine) -> None:
    create(engine, "a", "job-1")
    engine.update_config({"credits_per_task": 2})
    create(engine, "b", "job-2")
    create(engine, "c", "job-2")  # the same job created twice: charged twice
    create(engine, "d")  # no job id in the create (no webhookUrl): in the total only
    engine.update_config({"credits": 1})
    refused = create(engine, "e", "job-3")  # 1104: nothing created, nothing charged
    assert refused["code"] == 1104
    stats = engine.stats()
    assert stats["credits_charged"] == 1 + 2 + 2 + 2
    assert stats["charged_by_job"] == {"job-1": 1, "job-2": 4}
    assert stats["creates_by_job"] == {"job-1": 1, "job-2": 2}
    engine.reset()
    assert engine.stats()["credits_charged"] == 0 and engine.stats()["charged_by_job"] == {}


def test_stats_counter_alone() -> None:
    stats = Stats()
    stats.count_create("fp1", "j1", 3)
    stats.count_create("fp2", None, 2)
    stats.count_create("fp3", "j1", 0)
    out = stats.snapshot()
    assert out["credits_charged"] == 5
    assert out["charged_by_job"] == {"j1": 3}
    assert out["creates_by_job"] == {"j1": 2}
