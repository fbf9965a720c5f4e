"""The one settings object: read once from ``HEADSWAP_*`` environment variables.

Every process (worker, beat, webhook, sandbox client, producer) calls :func:`get_settings`
and gets the same frozen, typed object. Invalid values fail fast with one
:class:`ConfigError` listing every problem, a line per variable: values that do not parse
(environs with ``eager=False``), secret files that cannot be read, and rules between
variables (judged on the values that did parse). ``headswap`` prints it and exits 2.
Secrets may also be read from files (``HEADSWAP_AKOOL_API_KEY_FILE=/run/secrets/key``) so
they can be mounted from a Kubernetes Secret instead of living in the pod's environment.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from environs import EnvError, FileAwareEnv
from headswap_client.redaction import redact_url as redact_url
from headswap_client.redaction import redact_urls as redact_urls
from headswap_client.sentinel import SentinelURL as SentinelURL
from headswap_client.sentinel import sentinel_of as sentinel_of
from marshmallow import ValidationError
from marshmallow.validate import OneOf, Range

from config.producers import Policies, PolicyError, parse_policies
from worker.errors import ConfigError

PREFIX = "HEADSWAP_"

#: The real Akool Open API root. Tests, benchmarks and ``make run`` point at the sandbox.
AKOOL_PRODUCTION_URL = "https://openapi.akool.com"


class Secret:
    """A string that never shows itself in ``repr``/``str``, so it cannot leak into logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _MappingEnv(FileAwareEnv):
    """environs reading from an explicit mapping (tests) instead of ``os.environ``.

    An unreadable ``HEADSWAP_<NAME>_FILE`` is collected in ``file_errors`` (the variable
    then counts as unset), so it is reported with every other problem at once."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(eager=False, prefix=PREFIX, strip_whitespace=True)
        self._mapping = environ
        self.file_errors: dict[str, str] = {}

    def _get_value(self, env_key: str, default: Any) -> Any:
        file_key = f"{env_key}{self.file_suffix}"
        if file_path := self._mapping.get(file_key):
            try:
                with open(file_path, encoding="utf-8") as fh:
                    return fh.read().strip()
            except OSError as err:
                self.file_errors[file_key] = (
                    f"must be the path of a readable file ({err.strerror}: {file_path})")
                return default
        return self._mapping.get(env_key, default)


@dataclass(frozen=True, repr=False)
class Settings:
    """Typed configuration. Field docs name the ``HEADSWAP_*`` variable (upper-cased)."""

    # --- Redis (broker and job store) -------------------------------------------------
    #: HEADSWAP_REDIS_URL: broker and store. ``rediss://`` for TLS; a password may be in it.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: HEADSWAP_REDIS_CA_FILE: CA bundle that signs the Redis server's certificate
    #: (``rediss://``); the system store is used when empty. Certificates are verified.
    redis_ca_file: str = ""
    #: HEADSWAP_KEY_PREFIX: every store key starts with ``{prefix}:`` (a Redis Cluster hash tag).
    key_prefix: str = "headswap"
    #: HEADSWAP_REDIS_MIN_REPLICAS: the lock taken before a create waits for this many
    #: replicas to acknowledge it (``WAIT``), so a failover cannot forget it and hand the
    #: job to a second create; 0 = do not wait (a single Redis). 1 with Sentinel.
    redis_min_replicas: int = 0
    #: HEADSWAP_REDIS_REPLICA_WAIT_MS: how long that wait may take; on timeout no create
    #: is sent and the job retries.
    redis_replica_wait_ms: int = 1000

    # --- Akool API --------------------------------------------------------------------
    #: HEADSWAP_AKOOL_BASE_URL: the Open API root (the sandbox in tests and ``make run``).
    akool_base_url: str = AKOOL_PRODUCTION_URL
    #: HEADSWAP_AKOOL_API_KEY: direct-key auth (``x-api-key``), the recommended method.
    akool_api_key: Secret = field(default_factory=lambda: Secret(""))
    #: HEADSWAP_AKOOL_CLIENT_ID: token auth and the webhook IV.
    akool_client_id: str = ""
    #: HEADSWAP_AKOOL_CLIENT_SECRET: token auth and the webhook AES key.
    akool_client_secret: Secret = field(default_factory=lambda: Secret(""))
    #: HEADSWAP_CONNECT_TIMEOUT: seconds to open a connection (failure = not sent, retryable).
    connect_timeout: float = 3.05
    #: HEADSWAP_READ_TIMEOUT: seconds to wait for an answer (failure on create = ambiguous).
    read_timeout: float = 30.0
    #: HEADSWAP_HTTP_POOL_SIZE: connections kept per host in the client's pool.
    http_pool_size: int = 16
    #: HEADSWAP_ALLOWED_MODELS: model_name values a job may ask for.
    allowed_models: tuple[str, ...] = ("akool-premium",)

    # --- jobs -------------------------------------------------------------------------
    #: HEADSWAP_JOB_RETENTION_SECONDS: terminal jobs expire after this long.
    job_retention_seconds: int = 7 * 24 * 3600
    #: HEADSWAP_IDEMPOTENCY_TTL_SECONDS: idempotency key -> job id mapping lifetime.
    idempotency_ttl_seconds: int = 24 * 3600
    #: HEADSWAP_SUBMIT_RETRY_WINDOW_SECONDS: how long a create that was not received (429,
    #: 503, no connection) is retried, from its first such failure: an Akool outage up to
    #: this long fails no job.
    submit_retry_window_seconds: float = 1800.0
    #: HEADSWAP_SUBMIT_MAX_RETRIES: also bound the attempts by count (0 = only the window).
    submit_max_retries: int = 0
    #: HEADSWAP_AKOOL_BREAKER_FAILURES: consecutive creates without an answer (timeouts,
    #: no connection) that stop all creates, for every worker (0 = no breaker).
    akool_breaker_failures: int = 3
    #: HEADSWAP_AKOOL_BREAKER_PAUSE_SECONDS / _MAX_SECONDS: how long creates stop before a
    #: probe asks Akool again; doubled per failed probe up to the maximum.
    akool_breaker_pause_seconds: float = 5.0
    akool_breaker_pause_max_seconds: float = 60.0
    #: HEADSWAP_AKOOL_SLOW_CREATE_SECONDS: while one of a worker process's creates has
    #: waited this long for its answer, that process sends no new create (0 = half the
    #: read timeout). A create that slow is the first sign of a hung Akool, one read
    #: timeout before the breaker can count it.
    akool_slow_create_seconds: float = 0.0
    #: HEADSWAP_RETRY_BACKOFF_MAX_SECONDS: cap of the exponential backoff between attempts.
    retry_backoff_max_seconds: int = 120

    #: HEADSWAP_VISIBILITY_TIMEOUT_SECONDS: Redis transport redelivers an unacked message
    #: after this long; must exceed the longest task (a create waits at most read_timeout).
    visibility_timeout_seconds: int = 3600
    #: HEADSWAP_RESEND_AFTER_SECONDS: a queued job with no progress for this long gets its
    #: submit message sent again (a lost message cannot strand a job).
    resend_after_seconds: float = 300.0
    #: HEADSWAP_CREDITS_PAUSE_SECONDS: after a 1104, submissions pause this long (all workers).
    credits_pause_seconds: float = 60.0
    #: HEADSWAP_CREDITS_WAIT_MAX_SECONDS: a job waiting for credits fails after this long.
    credits_wait_max_seconds: float = 6 * 3600.0
    #: HEADSWAP_AMBIGUOUS_GRACE_SECONDS: an ambiguous create waits this long for a webhook.
    ambiguous_grace_seconds: float = 900.0
    #: HEADSWAP_AMBIGUOUS_POLICY: ``fail`` (reason ambiguous_submission) or ``resubmit``.
    ambiguous_policy: str = "fail"
    #: HEADSWAP_ANALYSIS_TTL_SECONDS: how long a completed analysis of a URL is reused.
    analysis_ttl_seconds: int = 24 * 3600

    #: HEADSWAP_CREATE_RATE: create calls per second across all workers (0 = no limit).
    create_rate: float = 0.0
    #: HEADSWAP_DETAIL_RATE: detail calls per second across all workers (0 = no limit).
    detail_rate: float = 0.0
    #: HEADSWAP_RATE_BURST: calls a limit lets through at once after a quiet spell.
    rate_burst: int = 1
    #: HEADSWAP_MAX_IN_FLIGHT: tasks at Akool (submitting..processing) at once (0 = no cap).
    max_in_flight: int = 0
    #: HEADSWAP_ADMISSION: ``fair`` (producers share the account by weight and priority,
    #: ``worker.admission``) or ``fifo`` (one first-come line, the behaviour before).
    admission: str = "fair"
    #: HEADSWAP_PRODUCER_POLICY (or ``_FILE``): per-producer weight, in-flight cap, rate
    #: share, daily budget (``config.producers``).
    producer_policy: Policies = field(default_factory=Policies)
    #: HEADSWAP_COST_ESTIMATE_CREDITS: what a create is assumed to cost against a budget
    #: until the producer's first charge of the day is known.
    cost_estimate_credits: float = 1.0

    #: HEADSWAP_NOTIFY_GRACE_SECONDS: a terminal job not notified after this is re-notified.
    notify_grace_seconds: float = 60.0
    #: HEADSWAP_ALLOW_EVICTION: run on a Redis whose maxmemory-policy evicts keys (jobs
    #: then vanish, or are created twice); `headswap worker` refuses to start otherwise.
    allow_eviction: bool = False
    #: HEADSWAP_BEAT_SILENCE_SECONDS: a poll tick missing for longer than this is logged at
    #: ERROR by every worker (beat down, or nothing consumes headswap.poll).
    beat_silence_seconds: float = 60.0
    #: HEADSWAP_SPOOL_DIR: where a created task whose id Redis did not take waits
    #: (durably) until it is recorded; the next worker on this directory applies it.
    spool_dir: str = "/tmp/headswap-spool"  # noqa: S108 (an emptyDir in the pod)

    # --- polling ----------------------------------------------------------------------
    #: HEADSWAP_POLL_TICK_SECONDS: how often beat claims due remote tasks.
    poll_tick_seconds: float = 2.0
    #: HEADSWAP_POLL_BATCH_SIZE: remote tasks per poll_batch message.
    poll_batch_size: int = 50
    #: HEADSWAP_POLL_LEASE_SECONDS: a claimed remote task is not re-claimed before this.
    poll_lease_seconds: float = 60.0
    #: HEADSWAP_POLL_MAX_CLAIM_PER_TICK: the most remote tasks one poll tick claims. Below
    #: it a tick claims what is due, bounded by what the workers took since the previous
    #: tick (:mod:`worker.poll_claim`); what is not claimed stays due for the next tick.
    poll_max_claim_per_tick: int = 10_000
    #: HEADSWAP_POLL_CONCURRENCY: detail calls a worker process makes at once for its poll
    #: batches (one thread pool per process, shared by its batches); 1 = one call at a
    #: time per batch, in the task's own thread. The Akool client's connection pool gets
    #: this many connections on top of HEADSWAP_HTTP_POOL_SIZE.
    poll_concurrency: int = 50
    #: HEADSWAP_POLL_MIN_INTERVAL_SECONDS / _MAX_: bounds of the poll back-off.
    poll_min_interval_seconds: float = 2.0
    poll_max_interval_seconds: float = 60.0
    #: HEADSWAP_PROCESSING_SECONDS_PER_VIDEO_SECOND: first-poll estimate per second of video.
    processing_seconds_per_video_second: float = 3.0

    # --- webhook / callbacks ----------------------------------------------------------
    #: HEADSWAP_WEBHOOK_PUBLIC_URL: public URL of our receiver; when set it is sent as
    #: ``webhookUrl`` and polling drops to the safety-net interval.
    webhook_public_url: str = ""
    #: HEADSWAP_WEBHOOK_IV_PADDING: how a client id shorter than 16 bytes becomes the IV.
    webhook_iv_padding: str = "zero"
    #: HEADSWAP_WEBHOOK_MAX_SKEW_SECONDS: deliveries whose timestamp is further than this
    #: from now are refused (replay window); their nonces are remembered twice as long.
    webhook_max_skew_seconds: float = 300.0
    #: HEADSWAP_SAFETY_NET_POLL_SECONDS: poll interval while a webhook is expected.
    safety_net_poll_seconds: float = 300.0
    #: HEADSWAP_WEBHOOK_TRUST_PAYLOAD: apply a delivery's final status and URL as sent,
    #: without confirming them with a detail call. A risk: anyone with the client id can
    #: sign a delivery, and AES-CBC without a MAC is malleable (docs/OPERATIONS.md).
    webhook_trust_payload: bool = False
    #: HEADSWAP_WEBHOOK_REFUSAL_FLOOR_MS: a refused delivery is answered no sooner than
    #: this after its body was read, so no failure kind answers faster than another.
    webhook_refusal_floor_ms: float = 10.0
    #: HEADSWAP_WEBHOOK_PROCESSES: gunicorn worker processes of the receiver (their
    #: metrics are summed by the gunicorn master: prometheus-client multiprocess mode).
    webhook_processes: int = 1
    #: HEADSWAP_WEBHOOK_THREADS: request threads of each receiver process.
    webhook_threads: int = 32
    #: HEADSWAP_WEBHOOK_MAX_CONNECTIONS: open client connections the receiver holds at most.
    webhook_max_connections: int = 500
    #: HEADSWAP_WEBHOOK_REQUEST_TIMEOUT_SECONDS: a request's headers and body must have
    #: arrived this long after its first byte, or the connection is closed.
    webhook_request_timeout_seconds: float = 10.0
    #: HEADSWAP_WEBHOOK_KEEPALIVE_SECONDS: an idle kept-alive connection is closed after this.
    webhook_keepalive_seconds: int = 5
    #: HEADSWAP_CALLBACK_SECRETS: Standard Webhooks secrets (``whsec_<base64>``, comma- or
    #: space-separated) for ``callback_url`` POSTs: each one signs every delivery, so
    #: during a rotation receivers holding the old or the new secret both verify.
    callback_secrets: tuple[Secret, ...] = ()
    #: HEADSWAP_CALLBACK_MAX_ATTEMPTS: POSTs of one callback before it is dead-lettered.
    callback_max_attempts: int = 8
    #: HEADSWAP_CALLBACK_BACKOFF_BASE_SECONDS: delay before the second attempt (doubles).
    callback_backoff_base_seconds: float = 5.0
    #: HEADSWAP_CALLBACK_BACKOFF_MAX_SECONDS: cap of the delay between two attempts.
    callback_backoff_max_seconds: float = 300.0
    #: HEADSWAP_CALLBACK_CONNECT_TIMEOUT / _READ_TIMEOUT: seconds, per callback POST.
    callback_connect_timeout: float = 3.0
    callback_read_timeout: float = 10.0
    #: HEADSWAP_CALLBACK_ALLOWED_NETWORKS: CIDRs a callback may reach although they are
    #: loopback/private/link-local/... (refused by default: SSRF protection).
    callback_allowed_networks: tuple[str, ...] = ()

    # --- durable outputs (worker.storing) ---------------------------------------------
    #: HEADSWAP_STORAGE_URL: where finished videos are copied before ``succeeded``:
    #: ``file:///dir`` (a local directory), ``s3://bucket[/prefix]`` (any S3-compatible
    #: store), or ``none`` (no copy: a job succeeds with Akool's URL only).
    storage_url: str = "file:///tmp/headswap-outputs"
    #: HEADSWAP_STORAGE_ENDPOINT_URL: the S3 API endpoint (MinIO, SeaweedFS, GCS's
    #: ``https://storage.googleapis.com``); empty = AWS S3 of ``storage_region``.
    storage_endpoint_url: str = ""
    #: HEADSWAP_STORAGE_REGION
    storage_region: str = "us-east-1"
    #: HEADSWAP_STORAGE_ACCESS_KEY_ID / _SECRET_ACCESS_KEY (or ``*_FILE``): S3 credentials;
    #: both empty = boto3's default chain (IRSA / workload identity, instance profile).
    storage_access_key_id: Secret = field(default_factory=lambda: Secret(""))
    storage_secret_access_key: Secret = field(default_factory=lambda: Secret(""))
    #: HEADSWAP_STORAGE_KEY_TEMPLATE: the object key of a job's video; ``{producer}``
    #: (``metadata.producer``, else ``_``), ``{date}`` (YYYY/MM/DD the copy began, UTC),
    #: ``{job_id}``, ``{remote_id}``.
    storage_key_template: str = "{producer}/{date}/{job_id}.mp4"
    #: HEADSWAP_STORAGE_PRESIGN_SECONDS: lifetime of the presigned GET URL a job gets for
    #: its S3 copy (0 = none; at most 7 days, SigV4's limit).
    storage_presign_seconds: int = 24 * 3600
    #: HEADSWAP_STORAGE_CHUNK_BYTES: the copy buffer: bytes read from Akool at a time.
    storage_chunk_bytes: int = 1 << 20
    #: HEADSWAP_STORAGE_PART_BYTES: S3 multipart part size (>= 5 MiB); a copy holds at
    #: most two parts in memory.
    storage_part_bytes: int = 8 << 20
    #: HEADSWAP_STORAGE_RETRY_WINDOW_SECONDS: a copy failing for now (cut download, 5xx,
    #: storage away) is retried with backoff this long; then the job fails ``store_failed``.
    storage_retry_window_seconds: float = 6 * 3600.0
    #: HEADSWAP_STORAGE_BACKOFF_BASE_SECONDS / _MAX_SECONDS: first retry delay (doubles,
    #: jittered) and its cap.
    storage_backoff_base_seconds: float = 2.0
    storage_backoff_max_seconds: float = 300.0
    #: HEADSWAP_STORAGE_ATTEMPT_SECONDS: one copy attempt is abandoned after this long (a
    #: stalled download); also the lease after which a copy whose worker died is re-sent.
    storage_attempt_seconds: float = 900.0

    # --- logging ----------------------------------------------------------------------
    #: HEADSWAP_LOG_FORMAT: ``json`` (one object per line) or ``text``.
    log_format: str = "json"
    #: HEADSWAP_LOG_LEVEL
    log_level: str = "INFO"

    @property
    def slow_create_seconds(self) -> float:
        """How long a create may wait for its answer before its process sends no more."""
        return self.akool_slow_create_seconds or self.read_timeout / 2

    @property
    def akool_pool_size(self) -> int:
        """Connections the Akool client keeps: one per worker thread
        (``HEADSWAP_HTTP_POOL_SIZE``) plus one per poller thread, so no call waits for one
        or opens a connection that is thrown away after it."""
        return self.http_pool_size + (self.poll_concurrency if self.poll_concurrency > 1 else 0)

    @property
    def longest_call_seconds(self) -> float:
        """Longer than any Akool call can take: a step stuck past it lost its worker."""
        return self.connect_timeout + self.read_timeout + 30.0

    @property
    def longest_callback_seconds(self) -> float:
        """Longer than any callback attempt can take: its lock and its retry's lease."""
        return self.callback_connect_timeout + self.callback_read_timeout + 30.0

    @property
    def storage_lock_seconds(self) -> float:
        """Longer than one copy attempt can take (its deadline is checked between reads,
        a read waits at most ``read_timeout``): the per-job copy lock."""
        return self.storage_attempt_seconds + self.read_timeout + 5.0

    @property
    def storage_lease_seconds(self) -> float:
        """How long after entering ``storing`` (or after a retry's countdown) a copy that
        no attempt finished is sent again: a worker killed mid-copy, a lost message."""
        return self.storage_lock_seconds + 5.0

    @property
    def stores_outputs(self) -> bool:
        """Whether a finished video is copied to durable storage before ``succeeded``."""
        return self.storage_url.strip().lower() != "none"

    @property
    def uses_token_auth(self) -> bool:
        return bool(self.akool_client_id and self.akool_client_secret) and not self.akool_api_key

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict safe to print: secrets masked, URL passwords hidden."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Secret):
                value = "***" if value else ""
            elif isinstance(value, tuple) and value and isinstance(value[0], Secret):
                value = tuple("***" for _ in value)
            elif name == "redis_url":
                value = redact_url(value)
            out[name] = value
        return out


#: A URL inside free text: a scheme, ``://``, then everything up to whitespace, a quote,
#: ``<>`` or a backslash (what ends it in a repr, a JSON string or a sentence; commas,
#: brackets and parentheses are legal inside a URL, so they are taken along).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>\\]+")


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`): what a log line, a
    ``repr`` of task arguments or a traceback may carry. A URL without credentials or
    query string is left as it was."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


_POSITIVE = Range(min=0, min_inclusive=False)


def _stripped(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in values or [] if v.strip())


def _cidr_list(values: list[str]) -> None:
    """Every item an IPv4/IPv6 network (``10.0.0.0/8``, ``127.0.0.1``, ``fd00::/8``)."""
    bad = []
    for value in values:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            bad.append(value)
    if bad:
        raise ValidationError(f"not a network (CIDR): {', '.join(bad)}")


#: The smallest callback key accepted (Standard Webhooks asks for 24 to 64 random bytes);
#: the same rule as :func:`headswap_client.signing.parse_secret`, which producers load
#: alone (config cannot import the worker's callbacks: the layers).
_MIN_SECRET_BYTES = 24
_SECRET_SPLIT = re.compile(r"[\s,]+")


def _secret_items(value: str | None) -> list[str]:
    return [item for item in _SECRET_SPLIT.split(value or "") if item]


def _webhook_secrets(value: str) -> None:
    """Every item a ``whsec_<base64>`` secret of at least 24 bytes (values never shown)."""
    for n, item in enumerate(_secret_items(value), start=1):
        where = f"secret {n}"
        if not item.startswith("whsec_"):
            raise ValidationError(
                f"{where} is not in the Standard Webhooks form whsec_<base64 of 24-64 random "
                "bytes>; make one with: python -c 'import base64,os; "
                "print(\"whsec_\" + base64.b64encode(os.urandom(32)).decode())'"
            )
        try:
            key = base64.b64decode(item.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(f"{where}: the part after whsec_ is not base64") from None
        if len(key) < _MIN_SECRET_BYTES:
            raise ValidationError(
                f"{where} holds {len(key)} bytes; at least {_MIN_SECRET_BYTES} are needed"
            )


def _replaced_by_callback_secrets(value: str) -> None:
    """The variable of the old signature scheme: refused loudly rather than ignored."""
    if value:
        raise ValidationError(
            "is no longer read: callbacks are signed the Standard Webhooks way (webhook-id, "
            "webhook-timestamp, webhook-signature headers). Set HEADSWAP_CALLBACK_SECRETS="
            "whsec_<base64 of 24-64 random bytes> instead (several, comma-separated, while "
            "rotating), give the same secret to the producers' receivers, and unset "
            "HEADSWAP_CALLBACK_SECRET (docs/OPERATIONS.md, Secrets)"
        )


def _policy_parses(value: str) -> None:
    try:
        parse_policies(value)
    except PolicyError as exc:
        raise ValidationError(str(exc)) from None


def _producer_policy(value: str | None) -> Policies:
    return parse_policies(value) if value else Policies()


def _callback_secrets(value: str | None, _old: str | None) -> tuple[Secret, ...]:
    """The secrets in order, each once."""
    return tuple(Secret(item) for item in dict.fromkeys(_secret_items(value)))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every ``HEADSWAP_*`` variable.

    Raises :class:`ConfigError` naming each bad variable at once.
    """
    env = _MappingEnv(os.environ if environ is None else environ)
    d = Settings()
    values: dict[str, Any] = {
        "redis_url": env.str("REDIS_URL", d.redis_url),
        "redis_min_replicas": env.int(
            "REDIS_MIN_REPLICAS", d.redis_min_replicas, validate=Range(0, 16)
        ),
        "redis_replica_wait_ms": env.int(
            "REDIS_REPLICA_WAIT_MS", d.redis_replica_wait_ms, validate=Range(1, 60_000)
        ),
        "redis_ca_file": env.str("REDIS_CA_FILE", ""),
        "key_prefix": env.str("KEY_PREFIX", d.key_prefix),
        "akool_base_url": env.str("AKOOL_BASE_URL", d.akool_base_url),
        "akool_api_key": Secret(env.str("AKOOL_API_KEY", "")),
        "akool_client_id": env.str("AKOOL_CLIENT_ID", ""),
        "akool_client_secret": Secret(env.str("AKOOL_CLIENT_SECRET", "")),
        "connect_timeout": env.float("CONNECT_TIMEOUT", d.connect_timeout, validate=_POSITIVE),
        "read_timeout": env.float("READ_TIMEOUT", d.read_timeout, validate=_POSITIVE),
        "http_pool_size": env.int("HTTP_POOL_SIZE", d.http_pool_size, validate=Range(1, 1024)),
        "allowed_models": _stripped(env.list("ALLOWED_MODELS", list(d.allowed_models))),
        "job_retention_seconds": env.int(
            "JOB_RETENTION_SECONDS", d.job_retention_seconds, validate=Range(60)
        ),
        "idempotency_ttl_seconds": env.int(
            "IDEMPOTENCY_TTL_SECONDS", d.idempotency_ttl_seconds, validate=Range(60)
        ),
        "submit_retry_window_seconds": env.float(
            "SUBMIT_RETRY_WINDOW_SECONDS", d.submit_retry_window_seconds, validate=_POSITIVE
        ),
        "akool_breaker_failures": env.int(
            "AKOOL_BREAKER_FAILURES", d.akool_breaker_failures, validate=Range(0, 1000)
        ),
        "akool_breaker_pause_seconds": env.float(
            "AKOOL_BREAKER_PAUSE_SECONDS", d.akool_breaker_pause_seconds, validate=_POSITIVE
        ),
        "akool_breaker_pause_max_seconds": env.float(
            "AKOOL_BREAKER_PAUSE_MAX_SECONDS", d.akool_breaker_pause_max_seconds,
            validate=_POSITIVE,
        ),
        "akool_slow_create_seconds": env.float(
            "AKOOL_SLOW_CREATE_SECONDS", d.akool_slow_create_seconds, validate=Range(0)
        ),
        "submit_max_retries": env.int(
            "SUBMIT_MAX_RETRIES", d.submit_max_retries, validate=Range(0, 10_000)
        ),
        "retry_backoff_max_seconds": env.int(
            "RETRY_BACKOFF_MAX_SECONDS", d.retry_backoff_max_seconds, validate=Range(1)
        ),
        "visibility_timeout_seconds": env.int(
            "VISIBILITY_TIMEOUT_SECONDS", d.visibility_timeout_seconds, validate=Range(60)
        ),
        "resend_after_seconds": env.float(
            "RESEND_AFTER_SECONDS", d.resend_after_seconds, validate=_POSITIVE
        ),
        "credits_pause_seconds": env.float(
            "CREDITS_PAUSE_SECONDS", d.credits_pause_seconds, validate=_POSITIVE
        ),
        "credits_wait_max_seconds": env.float(
            "CREDITS_WAIT_MAX_SECONDS", d.credits_wait_max_seconds, validate=_POSITIVE
        ),
        "ambiguous_grace_seconds": env.float(
            "AMBIGUOUS_GRACE_SECONDS", d.ambiguous_grace_seconds, validate=_POSITIVE
        ),
        "ambiguous_policy": env.str(
            "AMBIGUOUS_POLICY", d.ambiguous_policy, validate=OneOf(["fail", "resubmit"])
        ),
        "analysis_ttl_seconds": env.int(
            "ANALYSIS_TTL_SECONDS", d.analysis_ttl_seconds, validate=Range(60)
        ),
        "create_rate": env.float("CREATE_RATE", d.create_rate, validate=Range(0)),
        "detail_rate": env.float("DETAIL_RATE", d.detail_rate, validate=Range(0)),
        "rate_burst": env.int("RATE_BURST", d.rate_burst, validate=Range(1, 10_000)),
        "max_in_flight": env.int("MAX_IN_FLIGHT", d.max_in_flight, validate=Range(0)),
        "admission": env.str("ADMISSION", d.admission, validate=OneOf(["fair", "fifo"])),
        "producer_policy": _producer_policy(env.str("PRODUCER_POLICY", "",
                                                    validate=_policy_parses)),
        "cost_estimate_credits": env.float(
            "COST_ESTIMATE_CREDITS", d.cost_estimate_credits, validate=Range(0)
        ),
        "notify_grace_seconds": env.float(
            "NOTIFY_GRACE_SECONDS", d.notify_grace_seconds, validate=_POSITIVE
        ),
        "spool_dir": env.str("SPOOL_DIR", d.spool_dir),
        "allow_eviction": env.bool("ALLOW_EVICTION", d.allow_eviction),
        "beat_silence_seconds": env.float(
            "BEAT_SILENCE_SECONDS", d.beat_silence_seconds, validate=_POSITIVE
        ),
        "poll_tick_seconds": env.float(
            "POLL_TICK_SECONDS", d.poll_tick_seconds, validate=_POSITIVE
        ),
        "poll_batch_size": env.int("POLL_BATCH_SIZE", d.poll_batch_size, validate=Range(1, 1000)),
        "poll_lease_seconds": env.float(
            "POLL_LEASE_SECONDS", d.poll_lease_seconds, validate=_POSITIVE
        ),
        "poll_max_claim_per_tick": env.int(
            "POLL_MAX_CLAIM_PER_TICK", d.poll_max_claim_per_tick, validate=Range(1, 1_000_000)
        ),
        "poll_concurrency": env.int(
            "POLL_CONCURRENCY", d.poll_concurrency, validate=Range(1, 512)
        ),
        "poll_min_interval_seconds": env.float(
            "POLL_MIN_INTERVAL_SECONDS", d.poll_min_interval_seconds, validate=_POSITIVE
        ),
        "poll_max_interval_seconds": env.float(
            "POLL_MAX_INTERVAL_SECONDS", d.poll_max_interval_seconds, validate=_POSITIVE
        ),
        "processing_seconds_per_video_second": env.float(
            "PROCESSING_SECONDS_PER_VIDEO_SECOND",
            d.processing_seconds_per_video_second,
            validate=Range(0),
        ),
        "webhook_public_url": env.str("WEBHOOK_PUBLIC_URL", ""),
        "webhook_iv_padding": env.str(
            "WEBHOOK_IV_PADDING", d.webhook_iv_padding, validate=OneOf(["zero", "space"])
        ),
        "webhook_max_skew_seconds": env.float(
            "WEBHOOK_MAX_SKEW_SECONDS", d.webhook_max_skew_seconds, validate=_POSITIVE
        ),
        "safety_net_poll_seconds": env.float(
            "SAFETY_NET_POLL_SECONDS", d.safety_net_poll_seconds, validate=_POSITIVE
        ),
        "webhook_trust_payload": env.bool("WEBHOOK_TRUST_PAYLOAD", d.webhook_trust_payload),
        "webhook_refusal_floor_ms": env.float(
            "WEBHOOK_REFUSAL_FLOOR_MS", d.webhook_refusal_floor_ms, validate=Range(0, 1000)
        ),
        "webhook_processes": env.int(
            "WEBHOOK_PROCESSES", d.webhook_processes, validate=Range(1, 64)
        ),
        "webhook_threads": env.int("WEBHOOK_THREADS", d.webhook_threads, validate=Range(1, 1024)),
        "webhook_max_connections": env.int(
            "WEBHOOK_MAX_CONNECTIONS", d.webhook_max_connections, validate=Range(1, 100_000)
        ),
        "webhook_request_timeout_seconds": env.float(
            "WEBHOOK_REQUEST_TIMEOUT_SECONDS", d.webhook_request_timeout_seconds,
            validate=Range(0.1, 600),
        ),
        "webhook_keepalive_seconds": env.int(
            "WEBHOOK_KEEPALIVE_SECONDS", d.webhook_keepalive_seconds, validate=Range(1, 600)
        ),
        "callback_secrets": _callback_secrets(
            env.str("CALLBACK_SECRETS", "", validate=_webhook_secrets),
            env.str("CALLBACK_SECRET", "", validate=_replaced_by_callback_secrets),
        ),
        "callback_max_attempts": env.int(
            "CALLBACK_MAX_ATTEMPTS", d.callback_max_attempts, validate=Range(1, 100)
        ),
        "callback_backoff_base_seconds": env.float(
            "CALLBACK_BACKOFF_BASE_SECONDS", d.callback_backoff_base_seconds, validate=_POSITIVE
        ),
        "callback_backoff_max_seconds": env.float(
            "CALLBACK_BACKOFF_MAX_SECONDS", d.callback_backoff_max_seconds, validate=_POSITIVE
        ),
        "callback_connect_timeout": env.float(
            "CALLBACK_CONNECT_TIMEOUT", d.callback_connect_timeout, validate=_POSITIVE
        ),
        "callback_read_timeout": env.float(
            "CALLBACK_READ_TIMEOUT", d.callback_read_timeout, validate=_POSITIVE
        ),
        "callback_allowed_networks": _stripped(
            env.list("CALLBACK_ALLOWED_NETWORKS", [], validate=_cidr_list)
        ),
        "storage_url": env.str("STORAGE_URL", d.storage_url),
        "storage_endpoint_url": env.str("STORAGE_ENDPOINT_URL", ""),
        "storage_region": env.str("STORAGE_REGION", d.storage_region),
        "storage_access_key_id": Secret(env.str("STORAGE_ACCESS_KEY_ID", "")),
        "storage_secret_access_key": Secret(env.str("STORAGE_SECRET_ACCESS_KEY", "")),
        "storage_key_template": env.str("STORAGE_KEY_TEMPLATE", d.storage_key_template),
        "storage_presign_seconds": env.int(
            "STORAGE_PRESIGN_SECONDS", d.storage_presign_seconds, validate=Range(0, 604_800)
        ),
        "storage_chunk_bytes": env.int(
            "STORAGE_CHUNK_BYTES", d.storage_chunk_bytes, validate=Range(1024, 64 << 20)
        ),
        "storage_part_bytes": env.int(
            "STORAGE_PART_BYTES", d.storage_part_bytes, validate=Range(5 << 20, 512 << 20)
        ),
        "storage_retry_window_seconds": env.float(
            "STORAGE_RETRY_WINDOW_SECONDS", d.storage_retry_window_seconds, validate=_POSITIVE
        ),
        "storage_backoff_base_seconds": env.float(
            "STORAGE_BACKOFF_BASE_SECONDS", d.storage_backoff_base_seconds, validate=_POSITIVE
        ),
        "storage_backoff_max_seconds": env.float(
            "STORAGE_BACKOFF_MAX_SECONDS", d.storage_backoff_max_seconds, validate=_POSITIVE
        ),
        "storage_attempt_seconds": env.float(
            "STORAGE_ATTEMPT_SECONDS", d.storage_attempt_seconds, validate=Range(1, 86_400)
        ),
        "log_format": env.str("LOG_FORMAT", d.log_format, validate=OneOf(["json", "text"])),
        "log_level": env.str(
            "LOG_LEVEL", d.log_level, validate=OneOf(["DEBUG", "INFO", "WARNING", "ERROR"])
        ),
    }
    problems = dict(env.file_errors)
    try:
        env.seal()
    except EnvError as exc:
        problems.update(_type_errors(exc))
    # Consistency is judged on what did parse (a default stands in for a bad value), and
    # said only where none of its variables is already reported: one message, all of it.
    usable = {k: getattr(d, k) if _unparsed(v) else v for k, v in values.items()}
    settings = Settings(**usable)
    unjudged = set(problems)  # a rule over a variable that did not parse is not judged
    for names, problem in _inconsistencies(settings):
        if unjudged.isdisjoint(f"{PREFIX}{name}" for name in names):
            key = f"{PREFIX}{names[0]}"
            problems[key] = f"{problems[key]}; {problem}" if key in problems else problem
    if problems:
        raise ConfigError(describe_problems(problems))
    return settings


def _unparsed(value: Any) -> bool:
    """What environs gives for a variable that failed to parse (it collects the error)."""
    return value is None or (isinstance(value, Secret) and value.get() is None)


def _type_errors(exc: EnvError) -> dict[str, str]:
    errors = getattr(exc, "error_messages", None)
    if not isinstance(errors, Mapping):
        return {"settings": str(exc)}
    return {str(name): "; ".join(map(str, msgs)) for name, msgs in errors.items()}


def describe_problems(problems: Mapping[str, str]) -> str:
    """One message for every problem: a line per variable, in name order."""
    count = len(problems)
    lines = [f"  {name}: {text}" for name, text in sorted(problems.items())]
    return (f"invalid settings ({count} problem{'s' if count > 1 else ''}; "
            f"fix {'them' if count > 1 else 'it'} and start again):\n" + "\n".join(lines))


def _inconsistencies(s: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Rules between variables: (the variables involved, the first one reported; what is
    wrong)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if s.poll_min_interval_seconds > s.poll_max_interval_seconds:
        problems.append((("POLL_MIN_INTERVAL_SECONDS", "POLL_MAX_INTERVAL_SECONDS"),
                         f"must not exceed {PREFIX}POLL_MAX_INTERVAL_SECONDS"))
    if not s.redis_url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        problems.append((("REDIS_URL",),
                         "must start with redis://, rediss://, unix:// or sentinel://"))
    elif s.redis_url.startswith("sentinel://"):
        try:
            sentinel_of(s.redis_url)
        except ValueError as exc:
            problems.append((("REDIS_URL",), str(exc)))
    if not s.akool_base_url.startswith(("http://", "https://")):
        problems.append((("AKOOL_BASE_URL",), "must be an http(s) URL"))
    if bool(s.akool_client_id) != bool(s.akool_client_secret):
        problems.append((("AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET"),
                         f"must be set together with {PREFIX}AKOOL_CLIENT_SECRET (token auth "
                         "and the webhook need both)"))
    if not s.allowed_models:
        problems.append((("ALLOWED_MODELS",), "must name at least one model"))
    if s.visibility_timeout_seconds <= s.read_timeout + s.retry_backoff_max_seconds:
        problems.append((("VISIBILITY_TIMEOUT_SECONDS", "READ_TIMEOUT",
                          "RETRY_BACKOFF_MAX_SECONDS"),
                         f"must exceed {PREFIX}READ_TIMEOUT + {PREFIX}RETRY_BACKOFF_MAX_SECONDS "
                         "(a running task must never be redelivered)"))
    if s.akool_breaker_pause_max_seconds < s.akool_breaker_pause_seconds:
        problems.append((("AKOOL_BREAKER_PAUSE_MAX_SECONDS", "AKOOL_BREAKER_PAUSE_SECONDS"),
                         f"must not be below {PREFIX}AKOOL_BREAKER_PAUSE_SECONDS"))
    if s.beat_silence_seconds <= 2 * s.poll_tick_seconds:
        problems.append((("BEAT_SILENCE_SECONDS", "POLL_TICK_SECONDS"),
                         f"must exceed twice {PREFIX}POLL_TICK_SECONDS "
                         "(or every late tick is an alarm)"))
    problems += _storage_problems(s)
    return problems


#: What a key template may name (``worker.storage.keys`` renders it).
KEY_TEMPLATE_FIELDS = frozenset({"producer", "date", "job_id", "remote_id"})


def _storage_problems(s: Settings) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with the ``HEADSWAP_STORAGE_*`` settings, each naming its variable."""
    if not s.stores_outputs:
        return []
    problems: list[tuple[tuple[str, ...], str]] = []
    scheme = urlsplit(s.storage_url).scheme
    if scheme not in ("file", "s3"):
        problems.append((("STORAGE_URL",), "must be file:///dir, s3://bucket[/prefix] or none"))
    elif scheme == "file" and not urlsplit(s.storage_url).path.startswith("/"):
        problems.append((("STORAGE_URL",), "a file:// URL needs an absolute path"))
    elif scheme == "s3" and not urlsplit(s.storage_url).netloc:
        problems.append((("STORAGE_URL",), "an s3:// URL needs a bucket name"))
    if bool(s.storage_access_key_id) != bool(s.storage_secret_access_key):
        problems.append((("STORAGE_ACCESS_KEY_ID", "STORAGE_SECRET_ACCESS_KEY"),
                         f"must be set together with {PREFIX}STORAGE_SECRET_ACCESS_KEY"))
    if s.storage_endpoint_url and not s.storage_endpoint_url.startswith(("http://", "https://")):
        problems.append((("STORAGE_ENDPOINT_URL",), "must be an http(s) URL"))
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(s.storage_key_template) if f}
    except ValueError as exc:
        names = set()
        problems.append((("STORAGE_KEY_TEMPLATE",), str(exc)))
    if names - KEY_TEMPLATE_FIELDS:
        problems.append((("STORAGE_KEY_TEMPLATE",),
                         f"names unknown fields {sorted(names - KEY_TEMPLATE_FIELDS)} "
                         f"(allowed: {', '.join(sorted(KEY_TEMPLATE_FIELDS))})"))
    elif "job_id" not in names:
        problems.append((("STORAGE_KEY_TEMPLATE",), "must contain {job_id} (one object per job)"))
    if s.storage_backoff_max_seconds < s.storage_backoff_base_seconds:
        problems.append((("STORAGE_BACKOFF_MAX_SECONDS", "STORAGE_BACKOFF_BASE_SECONDS"),
                         f"must not be below {PREFIX}STORAGE_BACKOFF_BASE_SECONDS"))
    return problems


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return load_settings()
