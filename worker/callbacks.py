"""HTTP callbacks to producers: the final job record POSTed to the job's ``callback_url``.

:func:`worker.notify.notify` enqueues ``headswap.deliver_callback`` (queue
``headswap.notify``, argument: the job id only) for a terminal job with a ``callback_url``;
:func:`deliver` makes one attempt per task run, so a slow producer endpoint never holds up
a notification. One attempt:

1. the URL's host is resolved once (``socket.getaddrinfo``); if **any** address is
   loopback, private, link-local, unique-local, multicast, unspecified, reserved or
   otherwise not global, and not inside ``HEADSWAP_CALLBACK_ALLOWED_NETWORKS``, nothing is
   sent and the callback is dead-lettered ``blocked_address`` (SSRF protection);
2. the connection goes to the checked address itself (the URL's host travels in the
   ``Host`` header and as TLS SNI / certificate name), so a DNS answer that changes between
   check and connect (rebinding) cannot redirect the request;
3. ``POST`` of the JSON record, signed (see :func:`sign`), redirects not followed.

Outcome of an attempt: any 2xx is delivered; 408, 429, 5xx, connection errors and timeouts
are retried with exponential backoff and jitter (never before ``Retry-After``, capped) up
to ``HEADSWAP_CALLBACK_MAX_ATTEMPTS``; any other answer (3xx, other 4xx) is permanent.
A permanent failure or the last attempt writes a dead letter::

    {p}:callback-dead:<job_id>   hash: job_id, event_id, state, url, reason, attempts,
                                 last_status, last_error, at   (expires with the job)
    {p}:callback-dead            zset: job ids by dead-letter time

and the job record gets ``callback_status`` = ``delivered`` | ``failed`` (``pending``
while attempts go on), ``callback_attempts``, ``callback_last_status``, ``callback_error``.

Delivery is at least once: a receiver deduplicates by ``X-Headswap-Event-Id``
(``<job_id>:<state>``, the same on every attempt). Secrets never leave this module: the
HMAC key is read from settings here, and neither it nor a signature is ever logged.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from requests.adapters import HTTPAdapter

from worker import states
from worker.jobs import CALLBACK_RECORD_FIELDS, public_record
from worker.timing import full_jitter

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

    from worker.runtime import Runtime

log = logging.getLogger(__name__)

TASK_NAME = "headswap.deliver_callback"

SIGNATURE_VERSION = "v1"
HEADER_EVENT_ID = "X-Headswap-Event-Id"
HEADER_TIMESTAMP = "X-Headswap-Timestamp"
HEADER_SIGNATURE = "X-Headswap-Signature"
HEADER_ATTEMPT = "X-Headswap-Delivery-Attempt"
USER_AGENT = "headswap-callbacks/1"

#: Default accepted age of a delivery, for :func:`verify_callback_signature`.
DEFAULT_TOLERANCE_SECONDS = 300

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

#: Dead-letter reasons.
BLOCKED_ADDRESS = "blocked_address"
NO_SECRET = "no_callback_secret"  # noqa: S105  (a reason, not a password)
INVALID_URL = "invalid_url"
PERMANENT_STATUS = "http_status"
EXHAUSTED = "attempts_exhausted"

#: Delivery bookkeeping kept on the job record (not part of the record producers get).
RECORD_FIELDS = CALLBACK_RECORD_FIELDS

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- signing ------------------------------------------------------------------------------


def _mac(secret: str, timestamp: int | str, body: bytes) -> crypto_hmac.HMAC:
    mac = crypto_hmac.HMAC(secret.encode("utf-8"), hashes.SHA256())
    mac.update(str(timestamp).encode("ascii") + b"." + body)
    return mac


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Headswap-Signature`` value: ``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    return f"{SIGNATURE_VERSION}={_mac(secret, timestamp, body).finalize().hex()}"


def verify_callback_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    header: str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """For producers: is this callback authentic and fresh?

    ``timestamp`` is the ``X-Headswap-Timestamp`` header, ``body`` the raw request body
    (exactly the bytes received, before any JSON parsing), ``header`` the
    ``X-Headswap-Signature`` header. True only when the timestamp is within ``tolerance``
    seconds of now and one ``v1=`` signature in the header matches (compared in constant
    time). Deduplicate accepted deliveries by ``X-Headswap-Event-Id``.
    """
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    for part in (header or "").split(","):
        version, _, value = part.strip().partition("=")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = bytes.fromhex(value)
        except ValueError:
            continue
        try:
            _mac(secret, ts, raw).verify(candidate)  # constant-time comparison
        except InvalidSignature:
            continue
        return True
    return False


def event_id(job_id: str, state: str) -> str:
    """One id per terminal event of a job, the same on every attempt."""
    return f"{job_id}:{state}"


def callback_body(record: Mapping[str, Any]) -> bytes:
    """The POSTed JSON: the record producers see (the same as the callback task's)."""
    view = public_record(dict(record))
    view.pop("notified_at", None)
    return json.dumps(view, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


# --- address policy (SSRF) ----------------------------------------------------------------


class BlockedAddress(Exception):
    """The callback host resolves to an address callbacks may not reach."""


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _unwrap(ip: IPAddress) -> IPAddress:
    """``::ffff:127.0.0.1`` is 127.0.0.1 to the kernel; judge it as such."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_allowed(ip: IPAddress | str, allowed: Sequence[IPNetwork] = ()) -> bool:
    """May a callback connect to ``ip``? Public (global) addresses yes; loopback, private
    (RFC 1918), link-local, unique-local, multicast, unspecified, reserved and other
    non-global addresses only when inside one of ``allowed``."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
    candidates = {addr, _unwrap(addr)}
    for net in allowed:
        if any(c.version == net.version and c in net for c in candidates):
            return True
    a = _unwrap(addr)
    return not (
        a.is_loopback
        or a.is_private
        or a.is_link_local
        or a.is_multicast
        or a.is_unspecified
        or a.is_reserved
        or (isinstance(a, ipaddress.IPv6Address) and a.is_site_local)
        or not a.is_global
    )


def resolve_checked(
    host: str,
    port: int,
    allowed: Sequence[IPNetwork] = (),
    resolver: Resolver = socket.getaddrinfo,
) -> IPAddress:
    """Resolve ``host`` once and return the address to connect to.

    Raises :class:`BlockedAddress` when any resolved address is refused (a name that
    answers with both a public and a private address is refused as a whole), and
    ``socket.gaierror`` / ``OSError`` when the name does not resolve.
    """
    infos = resolver(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]
        addr = ipaddress.ip_address(raw)
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise socket.gaierror(f"no address for {host}")
    blocked = [a for a in addresses if not address_allowed(a, allowed)]
    if blocked:
        raise BlockedAddress(f"{host} resolves to refused address {blocked[0]}")
    return addresses[0]


# --- the HTTP side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A callback URL, split for a pinned connection."""

    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, no brackets
    port: int
    path: str  # path and query
    auth: tuple[str, str] | None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned_url(self, ip: IPAddress) -> str:
        netloc = f"[{ip}]:{self.port}" if ip.version == 6 else f"{ip}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"


def parse_target(url: str) -> Target:
    """Raises ValueError for anything but an http(s) URL with a host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    port = parts.port or (443 if scheme == "https" else 80)  # ValueError for a bad port
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("host name is not valid") from exc
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    return Target(scheme, host, port, path, auth)


def safe_url(url: str) -> str:
    """The URL for logs and dead letters: no credentials, no query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PinnedHostAdapter(HTTPAdapter):
    """Connects to the IP in the URL while naming the host of the ``Host`` header.

    :func:`deliver` puts the checked IP in the URL and the real host in ``Host``; for
    HTTPS this adapter makes the host the TLS SNI name and the certificate name checked,
    so verification is against the name, the connection against the checked address.
    """

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_header = request.headers.get("Host")
        if host_header and host_params["scheme"] == "https":
            name = urlsplit(f"//{host_header}").hostname
            if name:
                extra = cast(dict[str, Any], pool_kwargs)  # urllib3 pool key fields
                extra["server_hostname"] = name
                extra["assert_hostname"] = name
        return host_params, pool_kwargs


_session: requests.Session | None = None
_session_lock = threading.Lock()


def shared_session() -> requests.Session:
    """One small pooled session per process, with no proxies or netrc from the env."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                session.trust_env = False
                adapter = PinnedHostAdapter(pool_connections=8, pool_maxsize=8, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                _session = session
    return _session


# --- retry policy -------------------------------------------------------------------------


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    ``base * 2**(attempt-1)``, capped at ``cap``, with jitter in [half, full]; never
    earlier than the receiver's ``Retry-After`` (itself capped at ``cap``).
    """
    delay = full_jitter(min(cap, base * (2 ** max(0, attempt - 1))), rng)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, cap))
    return delay


def classify_status(status: int) -> str:
    """``delivered`` | ``retry`` | ``permanent`` for an HTTP status of the receiver."""
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "permanent"  # redirects (not followed) and other 4xx


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignored, our own backoff applies


# --- delivery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the task should do: nothing (``retry_in`` None) or run again after it."""

    status: str  # delivered | retry | dead | skipped
    retry_in: float | None = None
    reason: str | None = None
    http_status: int | None = None


def deliver(
    rt: Runtime,
    job_id: str,
    *,
    session: requests.Session | None = None,
    resolver: Resolver = socket.getaddrinfo,
    rng: random.Random | None = None,
) -> Outcome:
    """One delivery attempt of a job's callback. Never raises for HTTP or DNS trouble."""
    s = rt.settings
    store = rt.store
    record = store.get(job_id)
    if record is None or not record.get("callback_url"):
        return Outcome("skipped", reason="no_job_or_url")
    if record["state"] not in states.TERMINAL:
        return Outcome("skipped", reason="not_terminal")
    if record.get("callback_status") in (DELIVERED, FAILED):
        return Outcome("skipped", reason="done")
    url = str(record["callback_url"])
    info = {"job_id": job_id, "callback_url": safe_url(url)}

    secret = s.callback_secret.get()
    if not secret:
        log.error(
            "callback not sent: HEADSWAP_CALLBACK_SECRET is not set (callbacks are always "
            "signed); dead-lettered",
            extra=info,
        )
        return _dead(rt, record, NO_SECRET, attempts=_attempts(record))
    try:
        target = parse_target(url)
    except ValueError:
        return _dead(rt, record, INVALID_URL, attempts=_attempts(record))

    lock_ttl = s.callback_connect_timeout + s.callback_read_timeout + 30
    token = store.guards.lock("callback", job_id, lock_ttl)
    if token is None:
        # Another run of this job's delivery is under way; it carries on the chain.
        return Outcome("skipped", reason="in_progress")
    try:
        return _attempt(rt, record, target, secret, info, session, resolver, rng)
    finally:
        store.guards.unlock("callback", job_id, token)


def _attempt(
    rt: Runtime,
    record: Mapping[str, Any],
    target: Target,
    secret: str,
    info: dict[str, Any],
    session: requests.Session | None,
    resolver: Resolver,
    rng: random.Random | None,
) -> Outcome:
    s = rt.settings
    job_id = str(record["job_id"])
    allowed = parse_networks(s.callback_allowed_networks)
    try:
        ip = resolve_checked(target.host, target.port, allowed, resolver)
    except BlockedAddress as exc:
        log.warning("callback refused: address not allowed", extra={**info, "detail": str(exc)})
        return _dead(rt, record, BLOCKED_ADDRESS, attempts=_attempts(record), error=str(exc))
    except (OSError, UnicodeError, ValueError) as exc:
        attempt = _count_attempt(rt, job_id)
        if attempt == 0:
            return Outcome("skipped", reason="job_expired")
        return _failed_attempt(rt, record, attempt, None, f"dns: {type(exc).__name__}", None, rng)

    attempt = _count_attempt(rt, job_id)
    if attempt == 0:
        return Outcome("skipped", reason="job_expired")
    body = callback_body(record)
    timestamp = int(time.time())
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        HEADER_EVENT_ID: event_id(job_id, str(record["state"])),
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(secret, timestamp, body),
        HEADER_ATTEMPT: str(attempt),
    }
    http = session or shared_session()
    started = time.monotonic()
    try:
        response = http.post(
            target.pinned_url(ip),
            data=body,
            headers=headers,
            auth=target.auth,
            timeout=(s.callback_connect_timeout, s.callback_read_timeout),
            allow_redirects=False,
            stream=True,  # the answer's body is never read
        )
    except requests.RequestException as exc:
        return _failed_attempt(rt, record, attempt, None, type(exc).__name__, None, rng)
    status = response.status_code
    retry_after = _retry_after(response)
    response.close()
    elapsed = round(time.monotonic() - started, 3)
    verdict = classify_status(status)
    if verdict == "delivered":
        _update(rt, job_id, {
            "callback_status": DELIVERED, "callback_attempts": attempt,
            "callback_last_status": status, "callback_delivered_at": repr(time.time()),
            "callback_error": "",
        })  # fmt: skip
        log.info(
            "callback delivered",
            extra={**info, "attempt": attempt, "http_status": status, "seconds": elapsed},
        )
        return Outcome("delivered", http_status=status)
    if verdict == "permanent":
        log.warning(
            "callback refused by the receiver; not retried",
            extra={**info, "attempt": attempt, "http_status": status},
        )
        return _dead(rt, record, PERMANENT_STATUS, attempts=attempt, status=status)
    return _failed_attempt(rt, record, attempt, status, f"http {status}", retry_after, rng)


def _failed_attempt(
    rt: Runtime,
    record: Mapping[str, Any],
    attempt: int,
    status: int | None,
    error: str,
    retry_after: float | None,
    rng: random.Random | None,
) -> Outcome:
    s = rt.settings
    job_id = str(record["job_id"])
    info = {"job_id": job_id, "callback_url": safe_url(str(record["callback_url"]))}
    if attempt >= s.callback_max_attempts:
        log.warning(
            "callback failed on its last attempt; dead-lettered",
            extra={**info, "attempt": attempt, "http_status": status, "error": error},
        )
        return _dead(rt, record, EXHAUSTED, attempts=attempt, status=status, error=error)
    delay = backoff_delay(
        attempt,
        base=s.callback_backoff_base_seconds,
        cap=s.callback_backoff_max_seconds,
        retry_after=retry_after,
        rng=rng,
    )
    # A countdown message sits unacked in a worker: it must come back before Redis
    # would hand it out again (visibility timeout).
    delay = min(delay, s.visibility_timeout_seconds / 2)
    fields: dict[str, Any] = {"callback_status": PENDING, "callback_error": error}
    if status is not None:
        fields["callback_last_status"] = status
    _update(rt, job_id, fields)
    log.info(
        "callback attempt failed; retrying",
        extra={**info, "attempt": attempt, "http_status": status, "error": error,
               "retry_in": round(delay, 3)},
    )  # fmt: skip
    return Outcome("retry", retry_in=delay, http_status=status)


def _attempts(record: Mapping[str, Any]) -> int:
    try:
        return int(record.get("callback_attempts") or 0)
    except (TypeError, ValueError):
        return 0


def _count_attempt(rt: Runtime, job_id: str) -> int:
    """One more attempt on the record; 0 when the job no longer exists (never recreated)."""
    _, count = rt.store.update(job_id, incr="callback_attempts")
    return count


def _update(rt: Runtime, job_id: str, fields: Mapping[str, Any]) -> None:
    """Delivery bookkeeping on an existing job ('' deletes a field)."""
    rt.store.update(job_id, {k: (None if v == "" else v) for k, v in fields.items()
                             if v is not None})  # fmt: skip


def _dead(
    rt: Runtime,
    record: Mapping[str, Any],
    reason: str,
    *,
    attempts: int,
    status: int | None = None,
    error: str | None = None,
) -> Outcome:
    """Write the dead letter and mark the job's callback failed (one transaction)."""
    store = rt.store
    job_id = str(record["job_id"])
    now = time.time()
    letter = {
        "job_id": job_id,
        "event_id": event_id(job_id, str(record["state"])),
        "state": str(record["state"]),
        "url": _without_credentials(str(record.get("callback_url") or "")),
        "reason": reason,
        "attempts": str(attempts),
        "last_status": "" if status is None else str(status),
        "last_error": error or "",
        "at": repr(now),
    }
    store.callbacks.write_dead_letter(job_id, letter, now)
    fields: dict[str, Any] = {
        "callback_status": FAILED,
        "callback_attempts": attempts,
        "callback_error": reason if not error else f"{reason}: {error}",
        "callback_failed_at": repr(now),
    }
    if status is not None:
        fields["callback_last_status"] = status
    _update(rt, job_id, fields)
    log.warning(
        "callback dead-lettered",
        extra={"job_id": job_id, "callback_url": safe_url(letter["url"]), "reason": reason,
               "attempts": attempts, "http_status": status},
    )  # fmt: skip
    return Outcome("dead", reason=reason, http_status=status)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
