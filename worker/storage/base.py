"""What every storage target offers, and the reader that checksums a copy as it streams."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

#: The metadata names every stored object carries (S3 user metadata / the local sidecar).
META_SHA256 = "sha256"
META_SIZE = "size"


@dataclass(frozen=True)
class StoredObject:
    """A complete object under its final key."""

    key: str
    url: str  # file:///... or s3://bucket/key: where it is (not a credential)
    size: int
    sha256: str
    content_type: str
    reused: bool = False  # found complete by this attempt (a previous one published it)

    def record_fields(self) -> dict[str, Any]:
        """What the job record keeps of the stored copy."""
        fields: dict[str, Any] = {
            "stored_url": self.url, "stored_key": self.key, "stored_size": self.size,
            "stored_sha256": self.sha256, "stored_content_type": self.content_type,
        }  # fmt: skip
        if self.reused:
            fields["stored_reused"] = True
        return fields


class Storage(Protocol):
    """A place outputs are copied to."""

    #: Where objects go, for humans (``make run``'s summary, logs): never a credential.
    location: str

    def find(self, key: str) -> StoredObject | None:
        """The complete object under ``key`` (size and checksum known), else None."""
        ...

    def put(self, key: str, source: HashingReader, content_type: str) -> StoredObject:
        """Stream ``source`` to a temporary name, check it, publish it under ``key``."""
        ...

    def presign(self, key: str, seconds: int) -> str | None:
        """A URL that lets anyone GET the object for ``seconds`` (None: not offered)."""
        ...


class HashingReader:
    """A file-like ``read(n)`` over an iterator of chunks, counting and hashing every byte
    it hands out. Holds at most one chunk beyond what a reader asked for."""

    def __init__(self, chunks: Iterator[bytes], expected_size: int | None = None) -> None:
        self._chunks = chunks
        self._pending = bytearray()
        self._sha = hashlib.sha256()
        self.size = 0
        self.expected_size = expected_size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            for chunk in self._chunks:
                self._pending += chunk
            n = len(self._pending)
        while len(self._pending) < n:
            more = next(self._chunks, None)
            if more is None:
                break
            self._pending += more
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return self._count(out)

    def _count(self, data: bytes) -> bytes:
        self._sha.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()
