"""The local spool of created tasks not yet recorded in Redis.

A create that Akool answered cost credits, and its task id exists nowhere but in the
worker's memory until Redis has it. When that write fails (Redis down, paused, failing
over) the id goes here first — one small file per job, written to a temporary name,
fsynced, then renamed, so a file is either whole or absent — and the worker keeps trying
Redis. The file is removed once Redis has the id; whatever is left when the worker stops
(SIGTERM, kill -9, a crash) is applied by the next worker that starts on this directory,
and by every worker periodically (:func:`worker.submission.apply_spool`).

``HEADSWAP_SPOOL_DIR`` (default ``/tmp/headswap-spool``: the pod's emptyDir, which survives
a container restart but not the pod; mount a volume there to outlive the pod). Pure file
operations: no Redis, no Akool.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Spooled:
    """One created task waiting to be recorded."""

    job_id: str
    remote_id: str
    status: int
    video_duration: float | None
    created_at: float  # this host's clock: only for the operator's eyes
    path: Path


class Spool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def _path(self, job_id: str) -> Path:
        # Job ids are safe by the contract; a hash keeps the name safe whatever it holds.
        return self.dir / f"{hashlib.sha256(job_id.encode()).hexdigest()[:32]}.json"

    def put(self, job_id: str, remote_id: str, status: int, video_duration: float | None,
            created_at: float) -> Path:  # fmt: skip
        """Write the entry durably (temp file, fsync, rename, fsync of the directory)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        entry = {"job_id": job_id, "remote_id": remote_id, "status": status,
                 "video_duration": video_duration, "created_at": created_at}  # fmt: skip
        path = self._path(job_id)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".spool-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(entry, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.dir)
        return path

    def remove(self, job_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(job_id).unlink()

    def set_aside(self, entry: Spooled) -> None:
        """Keep an entry that cannot be applied (its job is unknown) out of the next
        passes, for the operator: ``<name>.orphan`` beside the others."""
        with contextlib.suppress(FileNotFoundError):
            entry.path.rename(entry.path.with_suffix(".orphan"))

    def entries(self) -> list[Spooled]:
        """Every whole entry, oldest first. A file that does not parse (a disk fault) is
        left where it is, for the operator; it never stops the others."""
        if not self.dir.is_dir():
            return []
        out: list[Spooled] = []
        for path in self.dir.glob("*.json"):
            entry = _read(path)
            if entry is not None:
                out.append(entry)
        return sorted(out, key=lambda e: e.created_at)


def _read(path: Path) -> Spooled | None:
    try:
        raw: Any = json.loads(path.read_text())
        duration = raw.get("video_duration")
        return Spooled(
            job_id=str(raw["job_id"]),
            remote_id=str(raw["remote_id"]),
            status=int(raw["status"]),
            video_duration=float(duration) if duration is not None else None,
            created_at=float(raw["created_at"]),
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
