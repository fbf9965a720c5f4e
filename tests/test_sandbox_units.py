"""Pure pieces of the sandbox, in-process: knobs, URL profiles, timelines, backoff, ids."""

from __future__ import annotations

import pytest

from tests.support.sandbox import knob_flags
from worker.sandbox.cli import add_arguments, knobs_from_args
from worker.sandbox.ids import is_object_id, new_object_id, new_token
from worker.sandbox.knobs import KnobError, Knobs
from worker.sandbox.records import Timeline
from worker.sandbox.videos import hashed_duration, profile
from worker.sandbox.webhooks import backoff_delay


def test_knob_flags_round_trip_through_the_cli_parser() -> None:
    import argparse

    knobs = {"processing_time": [1, 3], "latency": 0.2, "credits": None, "webhooks": False,
             "allowed_models": ["a", "b"], "max_concurrent": 4, "require_analysis": True}
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parsed = knobs_from_args(parser.parse_args(["--api-key", "k", *knob_flags(knobs)]))
    assert parsed == Knobs().updated(knobs)


@pytest.mark.parametrize(("change", "message"), [
    ({"fail_ratio": 1.5}, "fail_ratio"),
    ({"processing_time": [3, 1]}, "processing_time"),
    ({"processing_time": [1, 2, 3]}, "processing_time"),
    ({"latency": -1}, "latency"),
    ({"credits": 1.5}, "credits"),
    ({"credits": True}, "credits"),
    ({"webhooks": "yes"}, "webhooks"),
    ({"allowed_models": []}, "allowed_models"),
    ({"webhook_max_attempts": 0}, "webhook_max_attempts"),
    ({"token_ttl": 0}, "token_ttl"),
    ({"hang_seconds": float("inf")}, "hang_seconds"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_knobs_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(KnobError, match=message):
        Knobs().updated(change)


def test_profile_from_url() -> None:
    p = profile("https://x.test/v.mp4?persons=4&duration=7.5")
    assert (p.persons, p.duration, p.duration_ok) == (4, 7.5, True)
    assert not p.task_fails and not p.analysis_fails
    assert profile("https://x.test/v.mp4?persons=99").persons == 20
    assert profile("https://x.test/v.mp4?persons=abc").persons == 1
    assert profile("https://x.test/v.mp4?duration=25").duration_ok is False
    assert profile("https://x.test/sandbox-fail.mp4").task_fails
    assert profile("https://x.test/sandbox-analysis-fail.mp4").analysis_fails
    assert not profile("https://x.test/sandbox-analysis-fail.mp4").task_fails
    durations = {hashed_duration(f"https://x.test/{i}.mp4") for i in range(300)}
    assert min(durations) >= 3.0 and max(durations) <= 20.0 and len(durations) > 50
    assert hashed_duration("https://x.test/a.mp4") == hashed_duration("https://x.test/a.mp4")


def test_timeline_phases() -> None:
    line = Timeline(start=100.0, total=10.0)
    assert line.status_at(100.0, 3) == (1, 0)
    assert line.status_at(101.9, 3) == (1, 0)
    status, progress = line.status_at(106.0, 3)
    assert status == 2 and 40 < progress < 60
    assert line.status_at(109.99, 3)[1] == 99
    assert line.status_at(110.0, 3) == (3, 100)
    assert line.status_at(110.0, 4) == (4, 0)
    assert Timeline(start=5.0, total=0.0).status_at(5.0, 3) == (3, 100)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, 0.5, 10) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_ids_and_tokens() -> None:
    ids = {new_object_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_object_id(i) for i in ids)
    assert not is_object_id("xyz") and not is_object_id("A" * 24)
    token = new_token("sandbox", 1_700_000_000)
    assert token.count(".") == 2 and token != new_token("sandbox", 1_700_000_000)


def test_processing_can_follow_the_video_duration() -> None:
    import random

    from worker.sandbox.engine import processing_seconds

    rng = random.Random(1)
    spread = Knobs().updated({"processing_time": 0, "processing_per_video_second": 4.5})
    # 30 to 90 s across videos of 6.7 to 20 s: a spread the worker's estimate can follow
    assert processing_seconds(spread, rng, 20.0) == 90.0
    assert processing_seconds(spread, rng, 20 / 3) == pytest.approx(30.0)
    jitter = Knobs().updated({"processing_time": [1, 2], "processing_per_video_second": 3})
    assert all(31.0 <= processing_seconds(jitter, rng, 10.0) <= 32.0 for _ in range(50))
    assert processing_seconds(Knobs(), rng, 20.0) == 2.0  # off by default: processing_time only
    with pytest.raises(KnobError, match="processing_per_video_second"):
        Knobs().updated({"processing_per_video_second": -1})
