"""A local directory as the storage target (``file:///dir``): ``make run``, tests, a
mounted volume.

A copy is written to ``.<name>.parts/.<name>.<token>.part`` (a directory of its own beside the
final name), flushed to disk, checked, and published with ``os.replace`` (atomic on one
filesystem): the final name holds either nothing or a complete file. Parts a dead attempt
left are looked for in that small directory only: never by listing the day's directory,
which holds every copy of the day (a glob there made each copy O(files of the day)).
Its metadata (size, SHA-256, content type, job) goes first to ``<name>.meta.json`` the
same way, so a final file always has its metadata and :meth:`LocalStorage.find` can
trust the pair.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

from worker.errors import StorageRetryable
from worker.storage.base import META_SHA256, META_SIZE, HashingReader, StoredObject

META_SUFFIX = ".meta.json"
PART_SUFFIX = ".part"
WRITE_BYTES = 1 << 20


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = f"file://{self.root}"

    def path(self, key: str) -> Path:
        return self.root / key

    def find(self, key: str) -> StoredObject | None:
        path = self.path(key)
        try:
            meta = json.loads(path.with_name(path.name + META_SUFFIX).read_text("utf-8"))
            size = path.stat().st_size
        except (OSError, ValueError):
            return None
        if meta.get(META_SIZE) != size or not isinstance(meta.get(META_SHA256), str):
            return None
        return StoredObject(key, path.as_uri(), size, meta[META_SHA256],
                            str(meta.get("content_type") or "video/mp4"), reused=True)

    def put(self, key: str, source: HashingReader, content_type: str) -> StoredObject:
        final = self.path(key)
        token = uuid.uuid4().hex[:12]
        parts = parts_dir(final)
        part = parts / f".{final.name}.{token}{PART_SUFFIX}"  # hidden, like its directory
        try:
            parts.mkdir(parents=True, exist_ok=True)
            self._drop_parts(parts)
            with open(part, "wb") as fh:
                while chunk := source.read(WRITE_BYTES):
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if source.expected_size is not None and source.size != source.expected_size:
                raise StorageRetryable(f"wrote {source.size} of {source.expected_size} bytes",
                                       reason="download_cut")  # fmt: skip
            meta = {META_SIZE: source.size, META_SHA256: source.sha256,
                    "content_type": content_type}  # fmt: skip
            self._publish_bytes(final.with_name(final.name + META_SUFFIX),
                                json.dumps(meta).encode(), parts, token)  # fmt: skip
            os.replace(part, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise StorageRetryable(f"the output directory refused the write "
                                   f"({exc.strerror or type(exc).__name__})",
                                   reason="storage_unavailable") from None  # fmt: skip
        finally:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # another attempt's part may still be there
                parts.rmdir()
        return StoredObject(key, final.as_uri(), source.size, source.sha256, content_type)

    def presign(self, key: str, seconds: int) -> str | None:
        return None

    @staticmethod
    def _publish_bytes(path: Path, data: bytes, parts: Path, token: str) -> None:
        tmp = parts / f".{path.name}.{token}{PART_SUFFIX}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @staticmethod
    def _drop_parts(parts: Path) -> None:
        """Parts an attempt that died left behind (never visible under the final name):
        this object's parts directory only."""
        with contextlib.suppress(OSError):
            for stale in parts.iterdir():
                with contextlib.suppress(OSError):
                    stale.unlink()


def parts_dir(final: Path) -> Path:
    """Where the parts of the object ``final`` are written."""
    return final.with_name(f".{final.name}.parts")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
