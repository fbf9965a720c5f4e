"""Outputs are kept (issue 15): every finished video is copied to durable storage before
``succeeded``, through the faults a download meets — here to the local-directory target
(the S3 target: ``test_outputs_s3.py``).

Real redis-server, the sandbox serving real MP4 bytes over HTTP, ``headswap worker`` and
``headswap beat`` processes; the assertions are what a producer sees: the record, the
signal, the event stream, the file on disk.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.stack import producer_for, running_stack
from worker.devstack.procs import wait_until

pytestmark = pytest.mark.integration

FACE = "https://cdn.example.com/faces/f.jpg"
#: Copy retries come quickly in tests.
FAST_COPY = {"HEADSWAP_STORAGE_BACKOFF_BASE_SECONDS": "0.2",
             "HEADSWAP_STORAGE_BACKOFF_MAX_SECONDS": "0.5"}


def job(name: str, **extra):
    return {"video_url": f"https://cdn.example.com/in/{name}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p", **extra}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs_dir(stack) -> Path:
    return Path(urlsplit(stack.env["HEADSWAP_STORAGE_URL"]).path)


def stored_files(stack) -> list[Path]:
    """Every file a producer could mistake for a video: anything not metadata."""
    return sorted(p for p in outputs_dir(stack).rglob("*")
                  if p.is_file() and not p.name.endswith(".meta.json"))


def test_a_succeeded_job_carries_its_stored_copy_with_a_matching_sha256(redis_server,
                                                                        sandbox):
    with running_stack(redis_server.url, sandbox) as stack:
        producer = producer_for(stack)
        job_id = producer.submit(**job("kept", metadata={"producer": "orders"}))
        record = producer.wait(job_id, timeout=30)

        assert record["state"] == "succeeded", record
        path = Path(urlsplit(record["stored_url"]).path)
        assert path.is_file() and path.is_relative_to(outputs_dir(stack))
        # the documented key: producer / UTC day / job id
        day = time.strftime("%Y/%m/%d", time.gmtime(float(record["storing_at"])))
        assert record["stored_key"] == f"orders/{day}/{job_id}.mp4"
        akool_bytes = requests.get(record["output_url"], timeout=10).content
        assert sha256_file(path) == record["stored_sha256"] == hashlib.sha256(
            akool_bytes).hexdigest()
        assert record["stored_size"] == len(akool_bytes) == path.stat().st_size
        assert record["stored_content_type"] == "video/mp4"
        assert "stored_presigned_url" not in record  # a directory offers none
        # the signal a receiver in the worker got already had the stored copy
        def ended():
            return [s for s in stack.recorded_signals()
                    if s["job_id"] == job_id and s["signal"] != "job_submitted"]
        wait_until(ended, 10)
        [signal] = ended()
        assert signal["signal"] == "job_succeeded"
        assert signal["stored_url"] == record["stored_url"]
        # the stream: storing (Akool's URL), then succeeded with where it is kept
        events = [e for e in producer.store.events.read() if e.get("job_id") == job_id]
        assert [e["state"] for e in events][-2:] == ["storing", "succeeded"]
        assert events[-1]["stored_url"] == record["stored_url"]
        assert events[-1]["stored_sha256"] == record["stored_sha256"]
        assert stored_files(stack) == [path]


def test_cut_and_refused_downloads_are_retried_and_no_partial_file_is_ever_visible(
        redis_server, sandbox):
    """Two downloads cut mid-file and one 503: the job still succeeds, with a complete
    file, and nothing but that file ever appears under a final name."""
    sandbox.config(output_size=600_000, output_rate=2_000_000, output_cuts=2,
                   output_cut_after=200_000, output_5xx=1)
    with running_stack(redis_server.url, sandbox, extra_env=FAST_COPY) as stack:
        producer = producer_for(stack)
        job_id = producer.submit(**job("flaky"))
        seen: set[str] = set()
        deadline = time.monotonic() + 40
        record = producer.get(job_id)
        while time.monotonic() < deadline and (record or {}).get("state") != "succeeded":
            for path in stored_files(stack):  # while copies are under way
                seen.add(path.name)
                if not path.name.startswith("."):
                    assert path.stat().st_size == 600_000  # a final name is complete
            time.sleep(0.02)
            record = producer.get(job_id)

        assert record["state"] == "succeeded", record
        assert record["stored_size"] == 600_000
        path = Path(urlsplit(record["stored_url"]).path)
        assert sha256_file(path) == record["stored_sha256"]
        downloads = sandbox.stats()["output_downloads"]
        assert downloads == {"cut": 2, "http_5xx": 1, "ok": 1}
        assert stored_files(stack) == [path]  # no part left behind
        assert any(name.endswith(".part") for name in seen)  # parts did exist meanwhile


def test_an_expired_output_url_fails_the_job_output_expired_with_an_alert(redis_server,
                                                                          sandbox):
    sandbox.config(output_expiry=0.01)  # gone before any worker can fetch it
    with running_stack(redis_server.url, sandbox, extra_env=FAST_COPY) as stack:
        producer = producer_for(stack)
        job_id = producer.submit(**job("expired"))
        record = producer.wait(job_id, timeout=30)

        assert record["state"] == "failed" and record["reason"] == "output_expired", record
        assert record["error"]["http_status"] == 403
        assert record["output_url"]  # Akool's (dead) URL stays on the record
        alerts = [e for e in producer.store.events.read() if e.get("alert") == "output_expired"]
        assert [a["job_id"] for a in alerts] == [job_id]
        assert sandbox.stats()["output_downloads"] == {"expired": 1}  # asked once, no loop
        assert stored_files(stack) == []
