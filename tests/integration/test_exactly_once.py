"""The lock itself: many workers racing on one job past every earlier check."""

from __future__ import annotations

import json
import threading
from collections import Counter

from config.settings import load_settings
from tests.support.dispatch import RecordingDispatcher
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from worker.runtime import Runtime
from worker.submission import submit

MESSAGE = {"job_id": "race-1", "video_url": "https://cdn.example.com/race.mp4?duration=4",
           "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/f.jpg"}],
           "resolution": "720p"}


def test_sixteen_racing_submits_of_one_job_create_it_once(redis_server, redis_client):
    with SandboxProcess.start(knobs={**FAST_KNOBS, "require_analysis": False,
                                     "latency": 0.05}) as sb:
        settings = load_settings({"HEADSWAP_REDIS_URL": redis_server.url,
                                  "HEADSWAP_AKOOL_BASE_URL": sb.url,
                                  "HEADSWAP_AKOOL_API_KEY": sb.api_key})
        rt = Runtime(settings, RecordingDispatcher())
        # The video's analysis is already known, so every thread reaches the lock at once.
        redis_client.hset(rt.store.keys.analysis(MESSAGE["video_url"]),
                          mapping={"status": "completed", "obj_ids": json.dumps([0])})
        barrier = threading.Barrier(16)
        outcomes: list[str] = []

        def racer() -> None:
            barrier.wait()
            outcomes.append(submit(rt, dict(MESSAGE)).status)

        threads = [threading.Thread(target=racer) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        stats = sb.stats()
    assert Counter(outcomes) == {"submitted": 1, "skipped": 15}
    assert stats["create_requests"] == 1 and stats["creates"] == 1
    assert rt.store.get("race-1")["state"] == "submitted"
