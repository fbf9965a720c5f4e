"""Durable storage for finished videos: where a job's output is kept before Akool's URL
expires.

::

    Storage (base.py)       find(key) -> StoredObject | None, put(key, source), presign(key)
    ├── LocalStorage        a directory (``file:///dir``): the default of ``make run`` and tests
    └── S3Storage           any S3-compatible bucket (``s3://bucket/prefix``), through boto3
    Downloader              Akool's output URL, streamed in chunks (requests)
    object_key              the documented key template, rendered from a job record

Every ``put`` writes under a temporary name and publishes only a complete, checked object
(size, SHA-256) under the final key, with its content type and checksum in metadata; a
``find`` that sees a complete object lets a second attempt reuse it. The copy flow that
uses these is :mod:`worker.storing`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from config.settings import Settings
from worker.storage.base import HashingReader, Storage, StoredObject
from worker.storage.download import Download, Downloader
from worker.storage.keys import object_key
from worker.storage.local import LocalStorage
from worker.storage.s3 import S3Storage


def open_storage(settings: Settings) -> Storage:
    """The storage ``HEADSWAP_STORAGE_URL`` names (settings checked it at load)."""
    parts = urlsplit(settings.storage_url)
    if parts.scheme == "file":
        return LocalStorage(parts.path)
    return S3Storage.from_settings(settings)


__all__ = ["Download", "Downloader", "HashingReader", "LocalStorage", "S3Storage", "Storage",
           "StoredObject", "object_key", "open_storage"]  # fmt: skip
