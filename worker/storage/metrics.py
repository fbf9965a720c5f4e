"""Prometheus metrics of output copies (a module of its own: ``worker/metrics.py`` is
the rest of the process's)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

BYTES_COPIED = Counter(
    "headswap_output_bytes_copied_total", "Bytes of finished videos copied to storage."
)
COPIES = Counter(
    "headswap_output_copies_total",
    "Outputs stored, by result: copied, or reused (a complete object a previous attempt "
    "published).",
    ["result"],
)
COPY_SECONDS = Histogram(
    "headswap_output_copy_seconds",
    "Duration of one copy attempt, by outcome (stored, retry, gone).",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
COPY_FAILURES = Counter(
    "headswap_output_copy_failures_total",
    "Copy attempts that failed, by reason (download_cut, download_timeout, download_http, "
    "download_failed, storage_unavailable, output_expired, output_refused, store_failed).",
    ["reason"],
)
