"""Hiding credentials in URLs: what may be logged, stored or shown of a job's URLs.

A job's URLs may carry credentials (``user:password@``) or presigned query strings
(``X-Amz-Signature=``, ``token=``): they travel whole in the message, but what Celery logs
and shows (``argsrepr``/``kwargsrepr``), the event stream and the CLI get them redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """A URL safe to log, store and show: credentials and query string hidden, fragment
    dropped (``https://u:pw@h:8443/p?token=x`` -> ``https://***@h:8443/p?***``).

    The one redactor: settings (the Redis URL), callback logs and dead letters use it. A
    URL it cannot parse is not echoed at all.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    # Everything after the last "@" is where it points (several hosts for Sentinel).
    hosts = parts.netloc.rpartition("@")[2]
    netloc = f"***@{hosts}" if "@" in parts.netloc else hosts
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def redact_urls(value: Any) -> Any:
    """``value`` with every string that holds a URL redacted (:func:`redact_url`), dicts
    and lists walked: what a log line or a task event may show of a job message."""
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: redact_urls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_urls(v) for v in value]
    return value
