"""Akool's output URL, streamed: the one place the copy speaks HTTP to Akool's CDN.

Errors are translated here, before anyone decides to retry (``worker/errors.py``):

=====================================  ======================================
403, 404, 410                          :class:`OutputGone` ``output_expired``
another 4xx                            :class:`OutputGone` ``output_refused``
408, 429, 5xx                          :class:`StorageRetryable` ``download_http``
connect failure / timeout, read        :class:`StorageRetryable` ``download_failed`` /
timeout, a connection cut mid-body,    ``download_timeout`` / ``download_cut``
fewer bytes than Content-Length
=====================================  ======================================

Redirects are followed (CDNs use them); the URL is never logged unredacted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from worker.errors import OutputGone, StorageRetryable

GONE = frozenset({403, 404, 410})
RETRYABLE = frozenset({408, 429})
DEFAULT_CONTENT_TYPE = "video/mp4"


@dataclass
class Download:
    """An open response: its size when announced, its type, and its body in chunks."""

    response: requests.Response
    size: int | None
    content_type: str

    def chunks(self, chunk_bytes: int, deadline: float) -> Iterator[bytes]:
        """The body, ``chunk_bytes`` at a time (never more held); a cut, a stall past the
        read timeout, a short body or the attempt's ``deadline`` (monotonic) raise
        :class:`StorageRetryable`."""
        received = 0
        try:
            for chunk in self.response.iter_content(chunk_bytes):
                received += len(chunk)
                yield chunk
                if time.monotonic() > deadline:
                    raise StorageRetryable("the copy took longer than its attempt may",
                                           reason="download_timeout")  # fmt: skip
        except requests.exceptions.ConnectionError as exc:
            timeout = "timed out" in str(exc).lower()
            raise StorageRetryable(f"download {'stalled' if timeout else 'cut'} after "
                                   f"{received} bytes",
                                   reason="download_timeout" if timeout else "download_cut",
                                   ) from None  # fmt: skip
        except requests.exceptions.RequestException as exc:
            raise StorageRetryable(f"download cut after {received} bytes "
                                   f"({type(exc).__name__})", reason="download_cut") from None
        encoded = self.response.headers.get("Content-Encoding", "identity") != "identity"
        if self.size is not None and not encoded and received != self.size:
            raise StorageRetryable(f"download ended after {received} of {self.size} bytes",
                                   reason="download_cut")  # fmt: skip


class Downloader:
    """A pooled HTTP session for output downloads (one per process, thread-safe)."""

    def __init__(self, connect_timeout: float, read_timeout: float, pool: int = 16) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.trust_env = False  # no environment proxies, as for callbacks
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @contextmanager
    def open(self, url: str) -> Iterator[Download]:
        """GET ``url`` streaming; the response is closed on the way out."""
        if not url.startswith(("http://", "https://")):
            raise OutputGone("the output URL is not http(s)", reason="output_refused")
        try:
            response = self.session.get(url, stream=True, timeout=self.timeout)
        except requests.exceptions.Timeout:
            raise StorageRetryable("the output URL did not answer in time",
                                   reason="download_timeout") from None  # fmt: skip
        except requests.exceptions.RequestException as exc:
            raise StorageRetryable(f"the output URL could not be reached "
                                   f"({type(exc).__name__})", reason="download_failed") from None
        try:
            _check_status(response.status_code)
            length = response.headers.get("Content-Length")
            size = int(length) if length and length.isdigit() else None
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
            if not kind or kind in ("application/octet-stream", "binary/octet-stream"):
                kind = DEFAULT_CONTENT_TYPE
            yield Download(response, size, kind)
        finally:
            response.close()

    def close(self) -> None:
        self.session.close()


def _check_status(status: int) -> None:
    if 200 <= status < 300:
        return
    if status in GONE:
        raise OutputGone(f"the output URL answers {status}: Akool no longer serves it",
                         http_status=status)  # fmt: skip
    if status in RETRYABLE or status >= 500:
        raise StorageRetryable(f"the output URL answers {status}",
                               reason="download_http", http_status=status)
    raise OutputGone(f"the output URL answers {status}", reason="output_refused",
                     http_status=status)  # fmt: skip
