"""An S3-compatible bucket as the storage target (``s3://bucket/prefix``), through boto3.

Why boto3 (over obstore and fsspec/s3fs): ``upload_fileobj`` (s3transfer) streams a
non-seekable reader as a multipart upload holding a bounded number of parts in memory
(``max_in_memory_upload_chunks``), aborts the upload when the reader fails, and botocore
retries each request (standard mode) so a lost part costs one part, not the whole copy;
``head_object`` returns user metadata (the checksum a second attempt checks before
reusing an object: obstore's ``head`` does not), ``copy_object`` replaces metadata on
publish, ``generate_presigned_url`` signs GETs; and mypy-boto3-s3 types all of it.

A copy goes to ``<prefix>/.incoming/<key>.<token>.part``, is checked (its size as S3
reports it against the bytes streamed), then published by a server-side copy to the
final key with ``MetadataDirective=REPLACE`` (content type, ``sha256``, ``size``, job id)
and the part deleted. A part that a killed worker left is expired by the lifecycle rule
docs/OPERATIONS.md gives (``.incoming/`` and incomplete multipart uploads, 1 day).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from config.settings import Settings
from worker.errors import StorageError, StorageRetryable
from worker.storage.base import META_SHA256, META_SIZE, HashingReader, StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

INCOMING = ".incoming"
#: Parts of one copy held in memory at most (s3transfer reads a non-seekable stream ahead).
PARTS_IN_MEMORY = 2
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Storage:
    def __init__(self, client: S3Client, bucket: str, prefix: str = "", *,
                 part_bytes: int = 8 << 20) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.transfer = TransferConfig(
            multipart_threshold=part_bytes, multipart_chunksize=part_bytes,
            max_concurrency=PARTS_IN_MEMORY, use_threads=True,
        )  # fmt: skip
        # s3transfer's own knob (boto3's constructor does not take it): how many parts a
        # non-seekable upload reads ahead — the copy's memory is about this many parts.
        self.transfer.max_in_memory_upload_chunks = PARTS_IN_MEMORY

    @classmethod
    def from_settings(cls, s: Settings) -> S3Storage:
        parts = urlsplit(s.storage_url)
        config = Config(
            region_name=s.storage_region,
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": "path" if s.storage_endpoint_url else "auto"},
            signature_version="s3v4",
        )
        credentials: dict[str, Any] = {}
        if s.storage_access_key_id:
            credentials = {"aws_access_key_id": s.storage_access_key_id.get(),
                           "aws_secret_access_key": s.storage_secret_access_key.get()}
        client = boto3.session.Session().client(
            "s3", endpoint_url=s.storage_endpoint_url or None, config=config, **credentials
        )
        return cls(client, parts.netloc, parts.path, part_bytes=s.storage_part_bytes)

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.key(key)}"

    def find(self, key: str) -> StoredObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise _unavailable(exc) from None
        except BotoCoreError as exc:
            raise _unavailable(exc) from None
        meta = head.get("Metadata") or {}
        size = int(head.get("ContentLength") or 0)
        if meta.get(META_SIZE) != str(size) or not meta.get(META_SHA256):
            return None  # not one of ours, or not published by a copy: copy again
        return StoredObject(key, self.url(key), size, meta[META_SHA256],
                            head.get("ContentType") or "video/mp4", reused=True)

    def put(self, key: str, source: HashingReader, content_type: str) -> StoredObject:
        final = self.key(key)
        part = f"{self.prefix}/{INCOMING}/{key}" if self.prefix else f"{INCOMING}/{key}"
        part = f"{part}.{uuid.uuid4().hex[:12]}.part"
        try:
            self.client.upload_fileobj(source, self.bucket, part,  # type: ignore[arg-type]
                                       ExtraArgs={"ContentType": content_type},
                                       Config=self.transfer)  # fmt: skip
            if source.expected_size is not None and source.size != source.expected_size:
                raise StorageRetryable(f"streamed {source.size} of {source.expected_size} "
                                       "bytes", reason="download_cut")  # fmt: skip
            landed = int(self.client.head_object(Bucket=self.bucket, Key=part)["ContentLength"])
            if landed != source.size:
                raise StorageRetryable(f"the bucket holds {landed} of {source.size} bytes",
                                       reason="storage_short_write")  # fmt: skip
            self.client.copy_object(
                Bucket=self.bucket, Key=final, CopySource={"Bucket": self.bucket, "Key": part},
                MetadataDirective="REPLACE", ContentType=content_type,
                Metadata={META_SHA256: source.sha256, META_SIZE: str(source.size)},
            )  # fmt: skip
        except StorageError:
            self._discard(part)
            raise
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            self._discard(part)
            raise _unavailable(exc) from None
        self._discard(part)
        return StoredObject(key, self.url(key), source.size, source.sha256, content_type)

    def presign(self, key: str, seconds: int) -> str | None:
        if seconds <= 0:
            return None
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(key)},
            ExpiresIn=seconds,
        )  # fmt: skip

    def _discard(self, part: str) -> None:
        """Best effort: a part left behind (storage away) expires by lifecycle rule."""
        with contextlib.suppress(BotoCoreError, ClientError):
            self.client.delete_object(Bucket=self.bucket, Key=part)


def _unavailable(exc: Exception) -> StorageRetryable:
    """A storage failure in words without credentials: the class and the S3 error code."""
    code = ""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "")
    return StorageRetryable(f"the bucket refused or could not be reached "
                            f"({type(exc).__name__}{' ' + code if code else ''})",
                            reason="storage_unavailable")  # fmt: skip
