"""Peak memory of one output copy (issue 15): a file ``factor`` times the copy buffer,
streamed from the sandbox over HTTP into the local-directory target, in this process,
with the worker's own code (``Downloader`` -> ``HashingReader`` -> ``LocalStorage.put``).

``tracemalloc`` gives the peak of Python allocations during the copy (what grows with the
file if anything buffers it whole); RSS is sampled too. Bounded means the peak stays a
few buffers, whatever the file's size (measured: 5.0× a 1 MiB buffer for a 20 MiB file and
5.1× for a 60 MiB one — urllib3's read, the chunk, the reader's pending bytes, the write).
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil

from worker.storage import Downloader, HashingReader, LocalStorage

FACE = "https://cdn.example.com/faces/f.jpg"


def _task_url(sandbox: Any) -> str:
    video = "https://cdn.example.com/bench/copy.mp4?duration=4"
    sandbox.analyze(video)
    body = sandbox.call("POST", "/v4/headswap/task/create", json={
        "video_url": video, "mappings": [{"obj_id": 0, "img_url": FACE}],
        "resolution": "720p", "model_name": "akool-premium"}).json()
    return str(sandbox.wait_task(body["data"]["_id"])["video_url"])


def run(sandbox: Any, chunk_bytes: int = 1 << 20, factor: int = 20) -> dict[str, Any]:
    size = chunk_bytes * factor
    sandbox.config(output_size=size, processing_time=0, analysis_time=0.05)
    url = _task_url(sandbox)
    target = LocalStorage(tempfile.mkdtemp(prefix="headswap-bench-copy-"))
    downloader = Downloader(3.0, 30.0)
    proc = psutil.Process()
    rss_peak = [proc.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            rss_peak[0] = max(rss_peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    rss_before = proc.memory_info().rss
    tracemalloc.start()
    sampler.start()
    started = time.perf_counter()
    with downloader.open(url) as download:
        reader = HashingReader(download.chunks(chunk_bytes, time.monotonic() + 120),
                               download.size)
        stored = target.put("bench/copy.mp4", reader, download.content_type)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    done.set()
    sampler.join()
    path = Path(target.root) / "bench/copy.mp4"
    ok = hashlib.sha256(path.read_bytes()).hexdigest() == stored.sha256 and stored.size == size
    sandbox.config(output_size=0)
    return {"file_bytes": size, "copy_buffer_bytes": chunk_bytes, "factor": factor,
            "seconds": round(seconds, 3), "mb_per_s": round(size / seconds / 1e6, 1),
            "python_peak_bytes": peak, "peak_over_buffer": round(peak / chunk_bytes, 2),
            "rss_growth_bytes": rss_peak[0] - rss_before, "sha256_ok": ok,
            "bounded": peak < 8 * chunk_bytes}
