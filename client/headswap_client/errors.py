"""The errors a producer can get from :mod:`headswap_client` — the root of the project's
one exception tree (the worker's ``worker.errors`` extends it and re-exports these)::

    HeadswapError
    ├── ConfigError          settings are invalid (names each setting); fix and restart
    └── JobValidationError   a job failed its schema: fix the message, never retry it

Redis and broker failures reach the caller as redis-py's and kombu's own exceptions
(``redis.exceptions.RedisError``, ``kombu.exceptions.OperationalError``): whether to retry
them is the producer's call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class HeadswapError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(HeadswapError):
    """Settings are missing or invalid. The message names each offending setting."""


class JobValidationError(HeadswapError):
    """A job did not pass its schema. ``errors`` maps field name -> list of messages."""

    def __init__(self, errors: Mapping[str, Any]) -> None:
        self.errors: dict[str, Any] = dict(errors)
        fields = ", ".join(sorted(self.errors)) or "(none)"
        super().__init__(f"invalid job; fields: {fields}")
