"""Where the time goes: py-spy on the live worker processes, pyinstrument on the beat tick.

py-spy samples the running ``headswap worker`` processes from outside (``--gil``: only
the thread holding the GIL, i.e. Python CPU time; ``--nonblocking``: the workers are
never paused). Each sampled stack is charged to

- the **task** it ran in (the first frame of ``tasks/``), or to Celery's own machinery
  (receiving, acking, task events, the pool) when no task frame is on the stack, and
- the **library** our code called at that moment: the first frame below our code
  (``requests``/``urllib3`` = Akool HTTP, ``redis`` = the store, ``celery``/``kombu`` =
  ``send_task``, ``marshmallow``, ``logging``...), or "our code" when the sample is in
  our own frames.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

OURS = ("worker/", "tasks/", "config/", "bench/", "headswap_client/", "client/")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")

LIBRARIES = [
    (("requests/", "urllib3/", "http/", "socket.py", "ssl.py", "email/"), "Akool HTTP (requests)"),
    (("redis/",), "Redis client (store, Lua, limiter)"),
    (("celery/utils/dispatch",), "signal receivers"),
    (("celery/", "kombu/", "vine/", "amqp/"), "send_task (Celery publish)"),
    (("marshmallow/",), "validation (marshmallow)"),
    (("logging/", "config/logs"), "logging"),
    (("json/",), "JSON"),
    (("prometheus_client/",), "metrics (prometheus)"),
    (("uuid.py", "random.py", "hashlib"), "ids and hashing"),
]


def py_spy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


def parse_frame(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame, ""
    return match["func"], match["path"]


def is_ours(path: str) -> bool:
    return path.startswith(OURS)


def library_of(path: str) -> str:
    for prefixes, name in LIBRARIES:
        if any(path.startswith(p) or f"/{p}" in path for p in prefixes):
            return name
    top = path.split("/", 1)[0] or "?"
    return f"other ({top})"


def entry_of(frames: Sequence[tuple[str, str]]) -> str:
    for func, path in frames:
        if path.startswith("tasks/"):
            return {"poll_due": "beat tick (poll_due)", "poll_batch": "poll (poll_batch)",
                    "submit": "submit", "notify": "notify", "analyze": "analyze",
                    "sweep": "sweep"}.get(func, func)
    return "Celery machinery (receive, ack, events, pool)"


def classify(frames: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(entry, library) for one stack, root first."""
    entry = entry_of(frames)
    first = next((i for i, (_, path) in enumerate(frames) if is_ours(path)), None)
    if first is None:
        return entry, "Celery worker machinery"
    for _, path in frames[first:]:
        if not is_ours(path):
            return entry, library_of(path)
    return entry, "our code"


def summarize_stacks(lines: Iterable[str]) -> dict[str, Any]:
    by_library: collections.Counter[str] = collections.Counter()
    by_entry: collections.Counter[str] = collections.Counter()
    by_both: collections.Counter[tuple[str, str]] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = [parse_frame(f) for f in stack.split(";") if f]
        entry, library = classify(frames)
        by_library[library] += n
        by_entry[entry] += n
        by_both[(entry, library)] += n
        for func, path in frames:  # inclusive time per function of ours
            if is_ours(path) and not path.startswith("bench/"):
                ours[f"{func} ({path})"] += n
        total += n

    def share(counter: collections.Counter[Any]) -> list[tuple[Any, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common()] if total else []

    return {"samples": total, "by_library": share(by_library), "by_entry": share(by_entry),
            "by_entry_library": [([e, lib], pct) for (e, lib), pct in share(by_both)[:25]],
            "our_functions": share(ours)[:20]}


class SpyProfiler:
    """py-spy recording the given processes until :meth:`finish`."""

    def __init__(self, pids: Sequence[int], rate: int = 200) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-spy-"))
        self.procs = []
        for pid in pids:
            out = self.dir / f"{pid}.txt"
            args = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                    "--output", str(out), "--nonblocking", "--gil"]
            self.procs.append((subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE), out))
        time.sleep(0.5)
        for proc, _ in self.procs:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"py-spy could not attach: {err.strip()[:300]}")

    def finish(self) -> dict[str, Any]:
        lines: list[str] = []
        for proc, out in self.procs:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if out.exists():
                lines.extend(out.read_text(errors="replace").splitlines())
        shutil.rmtree(self.dir, ignore_errors=True)
        return {"tool": "py-spy --gil", **summarize_stacks(lines)}


def spy_hook(cluster: Any, label: str) -> SpyProfiler:
    return SpyProfiler([p.pid for p in cluster.workers])


def profile_call(fn: Callable[[], Any], setup: Callable[[], Any] | None = None,
                 repeat: int = 10) -> dict[str, Any]:
    """pyinstrument over ``repeat`` calls of ``fn`` (``setup`` runs unprofiled before each):
    time by library, as with py-spy."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    wall = 0.0
    session = None
    for _ in range(repeat):
        if setup is not None:
            setup()
        profiler.start()
        start = time.perf_counter()
        fn()
        wall += time.perf_counter() - start
        session = profiler.stop()
    assert session is not None
    by_library: collections.Counter[str] = collections.Counter()

    def walk(frame: Any, stack: list[tuple[str, str]]) -> None:
        path = _short_path(frame.file_path or "")
        here = [*stack, (frame.function or "?", path)]
        if frame.total_self_time:
            by_library[classify(here)[1]] += frame.total_self_time
        for child in frame.children:
            walk(child, here)

    root = session.root_frame()
    if root is not None:
        walk(root, [])
    total = sum(by_library.values()) or 1.0
    return {"tool": "pyinstrument", "calls": repeat,
            "ms_per_call": round(wall * 1000 / repeat, 2),
            "by_library": [(k, round(100 * v / total, 1)) for k, v in by_library.most_common()]}


def _short_path(path: str) -> str:
    """``/.../site-packages/redis/client.py`` -> ``redis/client.py``; ours relative to root."""
    for marker in ("site-packages/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker.startswith("/lib") and "/" in tail else tail
    root = str(Path(__file__).resolve().parents[1]) + "/"
    return path[len(root):] if path.startswith(root) else path
