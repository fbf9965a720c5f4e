"""``make run``: the whole product on one machine, with a live view and a summary.

Starts what is not configured — a ``redis-server`` unless ``HEADSWAP_REDIS_URL`` is set,
the sandbox unless ``HEADSWAP_AKOOL_BASE_URL`` is set — plus ``headswap worker`` and
``headswap beat``, all through the dev stack (:mod:`worker.devstack`); submits
valid jobs, invalid jobs, and jobs the sandbox fails; shows progress until every job is
terminal; prints a table of outcomes; stops everything it started. Exit 0 when every job
ended as expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from headswap_client import states
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.devstack.redis_server import start_redis
from worker.devstack.sandbox import SandboxProcess
from worker.devstack.stack import Stack, sandbox_env
from worker.errors import JobValidationError

FACE = "https://cdn.example.com/faces/reference.jpg"


@dataclass
class DemoJob:
    label: str
    expect: str
    message: dict[str, Any]
    raw: bool = False  # sent straight to the queue, as a producer in another language would
    job_id: str | None = None
    local_errors: dict[str, Any] | None = None


def demo_jobs(valid: int) -> list[DemoJob]:
    def job(url: str, **extra: Any) -> dict[str, Any]:
        return {"video_url": url, "mappings": [{"obj_id": 0, "img_url": FACE}],
                "resolution": "720p", **extra}  # fmt: skip

    jobs = [
        DemoJob(f"valid #{i + 1}", states.SUCCEEDED,
                job(f"https://cdn.example.com/in/{i}.mp4?duration={4 + i % 10}",
                    metadata={"producer": "demo"}))
        for i in range(valid)
    ]  # fmt: skip
    jobs += [
        DemoJob("sandbox fails it", states.FAILED, job("https://cdn.example.com/sandbox-fail/1.mp4")),
        DemoJob("sandbox fails it", states.FAILED, job("https://cdn.example.com/sandbox-fail/2.mp4")),
        DemoJob("obj_id not in video", states.REJECTED,
                {**job("https://cdn.example.com/in/0.mp4?duration=4"),
                 "mappings": [{"obj_id": 3, "img_url": FACE}]}),
        DemoJob("6 mappings", states.REJECTED,
                {**job("https://cdn.example.com/in/x.mp4"),
                 "mappings": [{"obj_id": i, "img_url": FACE} for i in range(6)]}),
        DemoJob("ftp video URL", states.REJECTED, job("ftp://cdn.example.com/in.mp4")),
        DemoJob("1080p", states.REJECTED,
                job("https://cdn.example.com/in/y.mp4", resolution="1080p")),
        DemoJob("raw: unknown field", states.REJECTED,
                job("https://cdn.example.com/in/z.mp4", prompt="smile"), raw=True),
        DemoJob("raw: obj_id -1", states.REJECTED,
                {**job("https://cdn.example.com/in/w.mp4"),
                 "mappings": [{"obj_id": -1, "img_url": FACE}]}, raw=True),
    ]  # fmt: skip
    return jobs


@contextlib.contextmanager
def local_stack(console: Console) -> Iterator[dict[str, str]]:
    """Redis and the sandbox unless configured, then ``headswap worker`` and
    ``headswap beat`` (the dev stack); everything started is stopped on the way out."""
    workdir = Path(tempfile.mkdtemp(prefix="headswap-demo-"))
    env = {k: v for k, v in os.environ.items() if k.startswith("HEADSWAP_")}
    env.setdefault("HEADSWAP_LOG_FORMAT", "text")
    # Finished videos are copied to a directory of the demo's own (unless configured).
    env.setdefault("HEADSWAP_STORAGE_URL", (workdir / "outputs").as_uri())
    with contextlib.ExitStack() as started:
        if "HEADSWAP_REDIS_URL" not in os.environ:
            server = start_redis(directory=workdir / "redis")
            started.callback(server.stop)
            env["HEADSWAP_REDIS_URL"] = server.url
            console.print(f"[dim]redis-server on {server.url}[/]")
        if "HEADSWAP_AKOOL_BASE_URL" not in os.environ:
            sandbox = SandboxProcess.start(api_key=secrets.token_hex(16), client_id=None,
                                           client_secret=None,
                                           knobs={"processing_time": [2, 4]},
                                           log_path=workdir / "sandbox.log")
            started.callback(sandbox.stop)
            env.update(sandbox_env(sandbox))
            env.setdefault("HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND", "0.3")
            env.setdefault("HEADSWAP_POLL_MIN_INTERVAL_SECONDS", "0.5")
            env.setdefault("HEADSWAP_POLL_TICK_SECONDS", "0.5")
            console.print(f"[dim]sandbox on {sandbox.url}[/]")
        stack = Stack(env, workdir)
        started.callback(stack.stop)
        stack.start_worker(concurrency=8, name="demo@%h")
        stack.start_beat()
        stack.wait_ready(60)
        console.print(f"[dim]worker and beat started; logs in {workdir}[/]")
        yield stack.env


def run_demo(jobs: int = 12, timeout: float = 180.0) -> int:
    console = Console()
    with local_stack(console) as env:
        from config.settings import load_settings
        from worker.producer import Producer

        producer = Producer(load_settings(env))
        demo = demo_jobs(jobs)
        for item in demo:
            if item.raw:  # the worker validates and rejects; Akool is never called
                item.job_id = secrets.token_hex(12)
                producer.celery.send_task(
                    "headswap.submit",
                    kwargs={**item.message, "job_id": item.job_id},
                    queue="headswap.submit",
                )
                continue
            try:
                item.job_id = producer.submit(**item.message)
            except JobValidationError as exc:
                item.local_errors = exc.errors
        results = _follow(console, producer, demo, timeout)
    return _summary(console, demo, results)


def _follow(console: Console, producer: Any, demo: list[DemoJob], timeout: float) -> dict[str, Any]:
    ids = [d.job_id for d in demo if d.job_id]
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)  # fmt: skip
    task = progress.add_task("jobs terminal", total=len(ids))
    deadline = time.monotonic() + timeout
    records: dict[str, Any] = {}
    with Live(progress, console=console, refresh_per_second=4):
        while time.monotonic() < deadline:
            records = {i: producer.get(i) or {"state": "not yet seen"} for i in ids}
            counts = Counter(r["state"] for r in records.values())
            done = sum(counts[s] for s in states.TERMINAL)
            label = "  ".join(f"{s}:{n}" for s, n in sorted(counts.items()))
            progress.update(task, completed=done, description=f"jobs terminal  [{label}]")
            if done == len(ids):
                break
            time.sleep(0.25)
    return records


def _stored_summary(console: Console, records: list[dict[str, Any]]) -> bool:
    """Where the succeeded jobs' videos are, and whether each file is there with the
    SHA-256 its record names (the local-directory target; other targets are listed)."""
    done = [r for r in records if r.get("state") == states.SUCCEEDED]
    if not done:
        return True
    if not any(r.get("stored_url") for r in done):
        console.print("outputs: not copied (HEADSWAP_STORAGE_URL=none)")
        return True
    matching = 0
    for record in done:
        url = str(record.get("stored_url") or "")
        if url.startswith("file://"):
            path = Path(urlsplit(url).path)
            if path.is_file() and _sha256(path) == record.get("stored_sha256"):
                matching += 1
    where = os.path.commonpath([urlsplit(str(r.get("stored_url") or "")).path for r in done])
    scheme = urlsplit(str(done[0].get("stored_url"))).scheme
    if scheme != "file":
        console.print(f"outputs stored in {scheme}://{urlsplit(str(done[0]['stored_url'])).netloc}"
                      f"{where}: {len(done)} videos")  # fmt: skip
        return all(r.get("stored_url") for r in done)
    good = matching == len(done)
    style = "green" if good else "red"
    console.print(f"outputs stored in {where}: [{style}]{matching} of {len(done)} videos "
                  "present with a matching SHA-256[/]")  # fmt: skip
    return good


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _summary(console: Console, demo: list[DemoJob], records: dict[str, Any]) -> int:
    table = Table(title="headswap demo: outcomes")
    for column in ("job", "expected", "outcome", "detail"):
        table.add_column(column)
    ok = True
    for item in demo:
        if item.local_errors is not None:
            outcome, detail = (
                states.REJECTED,
                "refused by producer.submit: " + ", ".join(item.local_errors),
            )
        else:
            record = records.get(item.job_id or "", {})
            outcome = record.get("state", "unknown")
            detail = record.get("stored_key") or record.get("output_url") or record.get(
                "reason") or ""
            if record.get("field_errors"):
                detail = "fields: " + ", ".join(record["field_errors"])
        good = outcome == item.expect
        ok &= good
        style = "green" if good else "red"
        table.add_row(item.label, item.expect, f"[{style}]{outcome}[/]", str(detail)[:70])
    console.print(table)
    counts = Counter(
        (records.get(d.job_id or "", {}).get("state") if d.local_errors is None else "rejected")
        for d in demo
    )
    console.print("totals: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=str)))
    ok &= _stored_summary(console, [records.get(d.job_id or "", {}) for d in demo
                                     if d.local_errors is None])
    console.print(
        "[green]all jobs ended as expected[/]"
        if ok
        else "[red]some jobs did not end as expected[/]"
    )
    return 0 if ok else 1
