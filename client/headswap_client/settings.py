"""The client's settings: the few ``HEADSWAP_*`` variables a producer needs.

The worker has its own, larger settings object (``config.settings``); this one reads the
same variables, with the same defaults, for the part of them a producer shares with the
workers — where Redis is, the key prefix, the contract's settings-dependent rules and the
record lifetimes — so that a producer configured like its workers agrees with them::

    ClientSettings.from_env()                                  # HEADSWAP_* from os.environ
    ClientSettings.from_env(redis_url="redis://redis:6379/0")  # explicit values win
    ClientSettings(redis_url="redis://redis:6379/0")           # no environment at all

Every problem is reported at once in one :class:`~headswap_client.errors.ConfigError`
naming the setting and its variable. A ``HEADSWAP_<NAME>_FILE`` variable (a mounted
Kubernetes Secret) gives a value from a file, as for the worker.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from headswap_client.errors import ConfigError
from headswap_client.queues import NOTIFY_QUEUE, SUBMIT_QUEUE
from headswap_client.redaction import redact_url
from headswap_client.sentinel import sentinel_of

PREFIX = "HEADSWAP_"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "sentinel://")


@dataclass(frozen=True, repr=False)
class ClientSettings:
    """What a producer needs to know. Field docs name the ``HEADSWAP_*`` variable."""

    #: HEADSWAP_REDIS_URL: the workers' broker and store (``rediss://`` for TLS,
    #: ``sentinel://host:26379,...?master=<name>`` behind Sentinel).
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: HEADSWAP_REDIS_CA_FILE: CA bundle for the Redis server certificate (``rediss://``).
    redis_ca_file: str = ""
    #: HEADSWAP_KEY_PREFIX: every store key starts with ``{prefix}:``; as the workers'.
    key_prefix: str = "headswap"
    #: HEADSWAP_ALLOWED_MODELS: ``model_name`` values a job may ask for; as the workers'.
    allowed_models: tuple[str, ...] = ("akool-premium",)
    #: HEADSWAP_WEBHOOK_PUBLIC_URL: set when the workers receive Akool's webhooks
    #: themselves; a job's own ``webhookUrl`` is then refused (only its presence matters).
    webhook_public_url: str = ""
    #: HEADSWAP_IDEMPOTENCY_TTL_SECONDS: how long an idempotency key maps to its job.
    idempotency_ttl_seconds: int = 24 * 3600
    #: HEADSWAP_JOB_RETENTION_SECONDS: a cancelled job's record expires after this.
    job_retention_seconds: int = 7 * 24 * 3600
    #: HEADSWAP_RESEND_AFTER_SECONDS: a queued job whose message was lost is re-sent by
    #: the workers after this long.
    resend_after_seconds: float = 300.0
    #: The queues jobs and cancellations are sent to. The workers consume fixed names
    #: (no variable): change these only for a worker deployment that routes otherwise.
    submit_queue: str = SUBMIT_QUEUE
    notify_queue: str = NOTIFY_QUEUE

    def __post_init__(self) -> None:
        problems = _problems(dataclasses.asdict(self))
        if problems:
            raise ConfigError("invalid headswap-client settings: " + "; ".join(problems))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ClientSettings:
        """Settings from ``HEADSWAP_*`` variables (``os.environ`` by default); keyword
        arguments, named like the fields, win over the environment."""
        env = os.environ if environ is None else environ
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown headswap-client settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, parse in _PARSERS.items():
            if name in overrides:
                continue
            variable = PREFIX + name.upper()
            try:
                raw = _read(env, variable)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if raw is None:
                continue
            try:
                values[name] = parse(raw)
            except ValueError:
                problems.append(f"{name} ({variable}): {raw!r} is not {_KIND[parse]}")
        given = {**values, **overrides}
        defaults = {f.name: getattr(_DEFAULTS, f.name) for f in dataclasses.fields(cls)}
        problems += _problems({**defaults, **given}, skip=set(_PARSERS) - set(given))
        if problems:
            raise ConfigError("invalid headswap-client settings: " + "; ".join(problems))
        return cls(**given)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["redis_url"] = redact_url(self.redis_url)
        return f"ClientSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _read(env: Mapping[str, str], variable: str) -> str | None:
    """The variable's value (stripped), from ``<variable>_FILE`` when that is set."""
    if path := env.get(variable + "_FILE"):
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError:
            raise ValueError(f"{variable}_FILE must be a readable file path") from None
    raw = env.get(variable)
    return None if raw is None else raw.strip()


def _models(raw: str) -> tuple[str, ...]:
    # As the worker reads it (environs' list): split on commas, items kept as they are.
    return tuple(raw.split(",")) if raw else ()


_KIND: dict[Callable[[str], Any], str] = {int: "an integer", float: "a number"}
_PARSERS: dict[str, Callable[[str], Any]] = {
    "redis_url": str,
    "redis_ca_file": str,
    "key_prefix": str,
    "allowed_models": _models,
    "webhook_public_url": str,
    "idempotency_ttl_seconds": int,
    "job_retention_seconds": int,
    "resend_after_seconds": float,
}


def _problems(values: Mapping[str, Any], skip: set[str] | None = None) -> list[str]:
    """What is wrong with these field values (``skip``: fields left at their default
    because their variable could not be read: reported already)."""
    def named(field: str) -> str:
        return f"{field} ({PREFIX}{field.upper()})" if field in _PARSERS else field

    v = {k: val for k, val in values.items() if k not in (skip or ())}
    problems = []
    url = v.get("redis_url")
    if url is not None and not url.startswith(_REDIS_SCHEMES):
        problems.append(f"{named('redis_url')} must start with {', '.join(_REDIS_SCHEMES)}")
    elif url is not None and url.startswith("sentinel://"):
        try:
            sentinel_of(url)
        except ValueError as exc:
            problems.append(f"{named('redis_url')}: {exc}")
    if v.get("key_prefix", "x") == "":
        problems.append(f"{named('key_prefix')} must not be empty")
    if "allowed_models" in v and not v["allowed_models"]:
        problems.append(f"{named('allowed_models')} must name at least one model")
    for field in ("idempotency_ttl_seconds", "job_retention_seconds"):
        if field in v and not v[field] >= 60:
            problems.append(f"{named(field)} must be at least 60")
    if "resend_after_seconds" in v and not v["resend_after_seconds"] > 0:
        problems.append(f"{named('resend_after_seconds')} must be positive")
    for field in ("submit_queue", "notify_queue"):
        if field in v and not v[field]:
            problems.append(f"{field} must name a queue")
    return problems


#: The defaults, read once (from_env reports a problem against them).
_DEFAULTS = ClientSettings()
