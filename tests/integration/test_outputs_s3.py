"""The S3 target against a real S3-compatible server (SeaweedFS, ``weed server -s3``, a
process of its own on free ports), including a kill -9 of that server mid-copy.

What a producer sees: one complete object under the documented key, with its checksum in
the object's metadata, a presigned URL that serves the same bytes, nothing left under the
temporary prefix, and the job ``succeeded`` after the storage came back.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.s3_server import BUCKET, SeaweedS3
from tests.support.stack import producer_for, running_stack
from worker.devstack.procs import wait_until

pytestmark = pytest.mark.integration

FACE = "https://cdn.example.com/faces/f.jpg"
FAST_COPY = {"HEADSWAP_STORAGE_BACKOFF_BASE_SECONDS": "0.2",
             "HEADSWAP_STORAGE_BACKOFF_MAX_SECONDS": "0.5",
             "HEADSWAP_STORAGE_PART_BYTES": str(5 << 20)}


@pytest.fixture(scope="module")
def s3() -> Iterator[SeaweedS3]:
    server = SeaweedS3().start()
    yield server
    server.stop()


def job(name: str):
    return {"video_url": f"https://cdn.example.com/in/{name}.mp4?duration=4",
            "mappings": [{"obj_id": 0, "img_url": FACE}], "resolution": "720p",
            "metadata": {"producer": "s3-tests"}}


def final_objects(s3: SeaweedS3, prefix: str) -> dict[str, int]:
    return {k: v for k, v in s3.objects(prefix + "/").items() if "/.incoming/" not in k}


def test_an_s3_copy_is_one_complete_object_with_its_checksum_and_a_presigned_url(
        redis_server, sandbox, s3):
    env = {**FAST_COPY, **s3.env("plain"), "HEADSWAP_STORAGE_PRESIGN_SECONDS": "600"}
    with running_stack(redis_server.url, sandbox, extra_env=env) as stack:
        producer = producer_for(stack)
        job_id = producer.submit(**job("s3-plain"))
        record = producer.wait(job_id, timeout=30)

        assert record["state"] == "succeeded", record
        key = f"plain/{record['stored_key']}"
        assert record["stored_url"] == f"s3://{BUCKET}/{key}"
        assert record["stored_key"].startswith("s3-tests/") and record["stored_key"].endswith(
            f"/{job_id}.mp4")
        akool = requests.get(record["output_url"], timeout=10).content
        head = s3.client().head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == "video/mp4"
        assert head["Metadata"]["sha256"] == record["stored_sha256"] == hashlib.sha256(
            akool).hexdigest()
        assert int(head["ContentLength"]) == record["stored_size"] == len(akool)
        presigned = requests.get(record["stored_presigned_url"], timeout=10)
        assert presigned.status_code == 200 and presigned.content == akool
        assert record["stored_presigned_expires_at"] > time.time() + 500
        assert s3.objects("plain/") == {key: len(akool)}  # no part left in .incoming/


def test_the_storage_killed_mid_copy_the_job_succeeds_once_it_is_back(redis_server,
                                                                      sandbox, s3):
    """SIGKILL of the S3 server while a 6 MB video streams into it (2 MB/s): the attempt
    fails, is retried with backoff while the server is down, and succeeds once it is
    back; one complete object, never a partial one, under the final key."""
    size = 6_000_000
    sandbox.config(output_size=size, output_rate=2_000_000)
    with running_stack(redis_server.url, sandbox, extra_env={**FAST_COPY, **s3.env("killed")}
                       ) as stack:
        producer = producer_for(stack)
        job_id = producer.submit(**job("s3-killed"))
        wait_until(lambda: sandbox.stats()["output_downloads"].get("ok", 0) >= 1, 30,
                   what="the copy to start")
        time.sleep(1.0)  # mid-stream: about a third of the file sent
        assert (producer.get(job_id) or {})["state"] == "storing"
        s3.kill()
        time.sleep(2.0)  # attempts meanwhile fail: connection refused
        assert (producer.get(job_id) or {})["state"] == "storing"
        s3.start()
        record = producer.wait(job_id, timeout=60)

        assert record["state"] == "succeeded", record
        key = f"killed/{record['stored_key']}"
        assert final_objects(s3, "killed") == {key: size}
        body = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == record["stored_sha256"]
        assert sandbox.stats()["output_downloads"]["ok"] >= 2  # the copy was restarted
        assert "stored_reused" not in record
